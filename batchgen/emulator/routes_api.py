"""Handlers of the public API (``/api/v1``) and of the URLs it hands out (files, results)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import extras, openapi
from .catalog import image_limit, models_listing
from .config import ApiKey
from .envelope import ApiError, json_response, not_found, validation_failed
from .faults import NONE
from .files import FileRecord
from .generations import create_status, create_task, find_task, result_answer, show_task
from .idempotency import canonical, check_key
from .middleware import (
    DROP,
    FAULT,
    KEY,
    ROUTES,
    STATE,
    RouteInfo,
    drop_connection,
    slow_down,
)
from .mp4 import video_for
from .state import EmulatorState
from .tasks import Task
from .uploads import read_upload, store_upload

api = web.RouteTableDef()


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _key(request: web.Request) -> ApiKey:
    return request[KEY]


def _file(request: web.Request, record: FileRecord) -> dict[str, Any]:
    """The file object under the ``file_id_field``, ``files_answer`` and extra-field switches."""
    cfg = request.app[STATE].config
    view = record.view(_origin(request), cfg.file_id_field, cfg.files_answer == "minimal")
    return extras.plain(view) if cfg.extra_fields else view


def _task(request: web.Request, state: EmulatorState, task: Task) -> dict[str, Any]:
    """The task object now (with unknown fields when ``extra_fields`` is on)."""
    view = show_task(state, task, _origin(request))
    return extras.task(view) if state.config.extra_fields else view


@api.get("/api/v1/models", name="models")
async def list_models(request: web.Request) -> web.Response:
    """The model catalogue (public)."""
    cfg = request.app[STATE].config
    listing = models_listing(dict(cfg.prices), image_limit(cfg.size_limit))
    return json_response(extras.listing(listing) if cfg.extra_fields else listing)


@api.get("/api/v1/openapi.json", name="openapi")
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document of the emulated API (public)."""
    return json_response(openapi.document(_origin(request), request.app[STATE].config))


@api.get("/api/v1/credits", name="credits")
async def get_credits(request: web.Request) -> web.Response:
    """The account's balance."""
    state = request.app[STATE]
    state.tasks.settle(state.clock.now(), state.wallet)
    answer = {"current_credits": state.wallet.balance(_key(request).account)}
    return json_response(extras.plain(answer) if state.config.extra_fields else answer)


@api.post("/api/v1/files", name="upload_file")
async def upload_file(request: web.Request) -> web.Response:
    """Upload a reference file (multipart)."""
    state = request.app[STATE]
    upload = await read_upload(request)
    record = store_upload(state, _key(request).account, upload)
    return json_response(_file(request, record), status=201)


@api.get("/api/v1/files/{file_id}", name="get_file")
async def get_file(request: web.Request) -> web.Response:
    """One uploaded file of the account (404 once it expired)."""
    state = request.app[STATE]
    file_id = request.match_info["file_id"]
    record = state.files.find(_key(request).account, file_id)
    if record is None:
        raise not_found(f"no file {file_id!r} in this account")
    if state.clock.now() >= record.expires_at:
        raise not_found(f"file {file_id!r} expired; upload it again")
    return json_response(_file(request, record))


@api.post("/api/v1/generations", name="create_generation")
async def create_generation(request: web.Request) -> web.Response:
    """Create a task (idempotent with ``Idempotency-Key``)."""
    state = request.app[STATE]
    key = _key(request)
    body = await _json_body(request)
    idem = request.headers.get("Idempotency-Key")
    if idem is not None:
        check_key(idem)
        replay = await state.idempotency.claim(
            key.account,
            idem,
            canonical(body),
            state.clock.now(),
            state.config.idempotency_ttl_s,
            wait=state.config.replay_in_flight == "wait",
        )
        if replay is not None:
            payload = _task(request, state, state.tasks.tasks[replay])
            return json_response(payload, status=200, headers={"Idempotent-Replayed": "true"})
    task_id = None
    try:
        await slow_down(request)
        task = create_task(state, key, body, idem)
        task_id = task.id
    finally:
        if idem is not None:
            state.idempotency.finish(key.account, idem, task_id)
    response = json_response(
        _task(request, state, task), status=create_status(state.config.create_status, task.id)
    )
    if request.get(FAULT, NONE).drop_after_create:
        drop_connection(request)
        return DROP
    return response


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise validation_failed(f"the request body is not valid JSON: {exc}") from exc


@api.get("/api/v1/generations/{task_id}", name="get_generation")
async def get_generation(request: web.Request) -> web.Response:
    """One task of the account, with its status now."""
    state = request.app[STATE]
    task = find_task(state, _key(request), request.match_info["task_id"])
    return json_response(_task(request, state, task))


@api.get("/results/{task_id}/{token}/{name}", name="result")
async def download_result(request: web.Request) -> web.Response:
    """A result video (signed, temporary URL; no key needed, and none should be sent)."""
    task_id = request.match_info["task_id"]
    answer = result_answer(request.app[STATE], task_id, request.match_info["token"])
    if answer == "missing":
        raise not_found("no such result")
    if answer == "expired":
        raise ApiError(
            410, "url_expired", "this result URL expired; GET the task again for a fresh URL"
        )
    return web.Response(body=video_for(task_id), content_type="video/mp4")


@api.get("/files/{file_id}/{name}", name="file_content")
async def download_file(request: web.Request) -> web.Response:
    """The bytes of an uploaded file (until it expires)."""
    state = request.app[STATE]
    record = state.files.records.get(request.match_info["file_id"])
    data = state.files.blobs.get(record.sha256) if record is not None else None
    if record is None or data is None:
        raise not_found("no such file")
    if state.clock.now() >= record.expires_at:
        raise ApiError(410, "file_expired", "this file expired; upload it again")
    return web.Response(body=data, content_type=record.mime_type)


ROUTES.update(
    models=RouteInfo("api"),
    openapi=RouteInfo("api"),
    credits=RouteInfo("api", "credits:read"),
    upload_file=RouteInfo("api", "files:create"),
    get_file=RouteInfo("api", "files:read"),
    create_generation=RouteInfo("api", "generations:create", is_create=True),
    get_generation=RouteInfo("api", "generations:read"),
    result=RouteInfo("download"),
    file_content=RouteInfo("download"),
)
