"""The one middleware every request passes: envelope, counting, gate, faults, auth.

Order for ``/api/v1`` routes: public API switch (503) -> per-key rate limit (429) -> seeded
faults (5xx, drop, slow, 429 burst) -> key and scope (401/403) -> handler. Downloads skip the
rate limit and auth; admin routes skip everything but counting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from .auth import bearer_token, require_scope
from .config import ApiKey
from .envelope import ApiError, error_response, new_request_id
from .faults import FAULT_ANSWERS, NONE, Fault
from .ledger import DROPPED, ResultRequest
from .ratelimit import Verdict, limit_headers, retry_after
from .state import EmulatorState

STATE: web.AppKey[EmulatorState] = web.AppKey("state", EmulatorState)
KEY: web.RequestKey[ApiKey] = web.RequestKey("key", ApiKey)
FAULT: web.RequestKey[Fault] = web.RequestKey("fault", Fault)
log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RouteInfo:
    """How the middleware treats one named route."""

    kind: str  # api | download | admin
    scope: str | None = None  # None: public
    is_create: bool = False


ROUTES: dict[str, RouteInfo] = {}
UNROUTED = RouteInfo("other")
API_ORIGIN = "api"  # the ``origin`` of the API's own rows in the ledger's result_requests
# A marker, never sent: returned when the connection was closed without an answer.
DROP = web.Response(status=599)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run ``handler`` behind the checks for its route; every error becomes the envelope."""
    state = request.app[STATE]
    route = request.match_info.route
    info = ROUTES.get(route.name or "", UNROUTED)
    endpoint = route.resource.canonical if route.resource is not None else "(unmatched)"
    request_id = new_request_id()
    extra = state.config.extra_fields and info.kind != "admin"
    try:
        response = await _guarded(request, handler, state, info)
    except ApiError as err:
        response = error_response(err, request_id, extra)
    except web.HTTPException as exc:
        response = error_response(_http_error(request, exc), request_id, extra)
    except Exception:  # a bug in the emulator: still answer with the envelope
        log.exception("emulator bug while answering %s %s", request.method, request.path)
        bug = ApiError(500, "internal_error", "emulator bug")
        response = error_response(bug, request_id, extra)
    status = DROPPED if response is DROP else response.status
    state.counter.count(request.method, endpoint, status)
    if route.name == "result":
        state.counter.result_request(result_row(request, API_ORIGIN, status))
    if response is DROP:
        return web.Response(status=500)  # never sent: the transport is closed
    return response


def result_row(request: web.Request, origin: str, status: int) -> ResultRequest:
    """The ledger's record of one request for a result file."""
    has_auth = "Authorization" in request.headers
    now = request.app[STATE].clock.now()
    return ResultRequest(origin, request.method, request.path, status, has_auth, now)


async def _guarded(
    request: web.Request, handler: Handler, state: EmulatorState, info: RouteInfo
) -> web.StreamResponse:
    if info.kind == "api":
        return await _api(request, handler, state, info)
    if info.kind == "download" and state.faulty:
        if _fault(request, state, info) is DROP:
            return DROP
        await slow_down(request)
    return await handler(request)


async def _api(
    request: web.Request, handler: Handler, state: EmulatorState, info: RouteInfo
) -> web.StreamResponse:
    cfg = state.config
    if cfg.public_api_disabled:
        raise ApiError(
            503,
            "public_api_disabled",
            "the public API is switched off for maintenance; retry later",
            {"Retry-After": str(cfg.public_api_disabled_retry_after_s)},
        )
    token = bearer_token(request.headers.get("Authorization"))
    who = token if token is not None else f"ip:{request.remote}"
    now = state.clock.now()
    verdict = state.limiter.check(who, now, cfg.rate_limit_per_s, cfg.rate_limit_window_s)
    if not verdict.allowed:
        raise _rate_limited(state, verdict, now)
    if state.faulty:
        if _fault(request, state, info, who) is DROP:
            return DROP
        if not info.is_create:  # creates sleep after claiming their idempotency key
            await slow_down(request)
    if info.scope is not None:
        key = state.keyring.authenticate(request.headers.get("Authorization"))
        require_scope(key, info.scope)
        request[KEY] = key
    try:
        response = await handler(request)
    except ApiError as err:
        err.headers.update(limit_headers(verdict))
        raise
    response.headers.update(limit_headers(verdict))
    return response


def _rate_limited(state: EmulatorState, verdict: Verdict, now: float) -> ApiError:
    headers = limit_headers(verdict)
    headers.update(retry_after(state.config.retry_after_mode, verdict, now))
    return ApiError(429, "rate_limited", "too many requests in the current window", headers)


def _fault(
    request: web.Request, state: EmulatorState, info: RouteInfo, who: str | None = None
) -> web.StreamResponse | None:
    """Apply a seeded fault; returns DROP when the connection was closed."""
    identity = f"{request.method} {request.path}|{request.headers.get('Idempotency-Key', '')}"
    fault = state.planner.decide(state.config, identity, info.is_create)
    request[FAULT] = fault
    if fault is NONE:
        return None
    _record(state, request, fault)
    if fault.burst and who is not None:
        now = state.clock.now()
        state.limiter.start_burst(who, now, state.config.rate_limit_burst_s)
        cfg = state.config
        verdict = state.limiter.check(who, now, cfg.rate_limit_per_s, cfg.rate_limit_window_s)
        raise _rate_limited(state, verdict, now)
    if fault.answer is not None:
        code, message = FAULT_ANSWERS[fault.answer]
        raise ApiError(fault.answer, code, message)
    if fault.drop:
        drop_connection(request)
        return DROP
    return None


def _record(state: EmulatorState, request: web.Request, fault: Fault) -> None:
    endpoint = request.match_info.route.resource
    name = endpoint.canonical if endpoint is not None else request.path
    for kind, on in (
        ("burst_429", fault.burst),
        (str(fault.answer), fault.answer is not None),
        ("drop_before", fault.drop),
        ("drop_after_create", fault.drop_after_create),
        ("slow", fault.slow_s > 0),
    ):
        if on:
            state.counter.fault(kind, request.method, name)


async def slow_down(request: web.Request) -> None:
    """Sleep for the request's slow fault, if it has one."""
    fault = request.get(FAULT, NONE)
    if fault.slow_s > 0:
        await asyncio.sleep(fault.slow_s)


def drop_connection(request: web.Request) -> None:
    """Close the connection without answering."""
    if request.transport is not None:
        request.transport.close()


def _http_error(request: web.Request, exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return ApiError(404, "not_found", f"no such endpoint: {request.method} {request.path}")
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        message = f"{request.path} does not take {request.method}; it takes {allow}"
        return ApiError(405, "method_not_allowed", message, {"Allow": allow})
    return ApiError(exc.status, "bad_request", exc.reason or "the request was not understood")
