"""The second origin that serves result files when ``result_origin`` is ``other`` (a "CDN").

The contract allows result URLs on another origin than the API, where the key must never go.
This small aiohttp app serves only ``/results/...`` paths, needs no key, and records in the
ledger every request it gets, with whether it carried an ``Authorization`` header, so a test
can prove the client never sent its key there. Like a CDN's signed URLs it answers an expired
URL with 403 and an unknown one with 404, in plain text rather than the API's error envelope.
"""

from __future__ import annotations

from aiohttp import web

from .generations import result_answer
from .middleware import STATE, Handler, result_row
from .mp4 import video_for
from .state import EmulatorState

OTHER_ORIGIN = "other"  # the ``origin`` of this app's rows in the ledger's result_requests


@web.middleware
async def _record(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer (404 for anything but a result), then record the request in the ledger."""
    state = request.app[STATE]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = web.Response(status=exc.status, text=f"{exc.status} {exc.reason}\n")
    state.counter.result_request(result_row(request, OTHER_ORIGIN, response.status))
    return response


async def _result(request: web.Request) -> web.Response:
    state = request.app[STATE]
    task_id = request.match_info["task_id"]
    answer = result_answer(state, task_id, request.match_info["token"])
    if answer == "expired":
        return web.Response(status=403, text="AccessDenied: this signed URL has expired\n")
    if answer != "ok":
        return web.Response(status=404, text="NoSuchKey\n")
    return web.Response(body=video_for(task_id), content_type="video/mp4")


def build_result_app(state: EmulatorState) -> web.Application:
    """The second origin's app, sharing ``state`` with the API."""
    app = web.Application(middlewares=[_record])
    app[STATE] = state
    app.router.add_get("/results/{task_id}/{token}/{name}", _result)
    return app
