"""Admin and ledger routes (``/_emulator``): for tests and demos, never for production.

Served only when admin is enabled (by default only on loopback hosts). No key is needed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .envelope import json_response, validation_failed
from .ledger import build_ledger
from .middleware import ROUTES, STATE, RouteInfo

admin = web.RouteTableDef()
RESTART: web.AppKey[Callable[[float], Awaitable[None]]] = web.AppKey("restart")


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise validation_failed(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise validation_failed("the request body must be a JSON object")
    return body


@admin.get("/_emulator/ledger", name="ledger")
async def ledger(request: web.Request) -> web.Response:
    """Every task, charge, file and request count so far."""
    state = request.app[STATE]
    return json_response(build_ledger(state, state.clock.now()))


@admin.post("/_emulator/admin/topup", name="topup")
async def topup(request: web.Request) -> web.Response:
    """Add ``credits`` to ``account`` (default: the first key's account)."""
    state = request.app[STATE]
    body = await _json_object(request)
    credits = body.get("credits")
    if not isinstance(credits, int) or isinstance(credits, bool) or credits <= 0:
        raise validation_failed("credits must be a positive whole number")
    account = body.get("account", state.config.keys[0].account)
    if not isinstance(account, str):
        raise validation_failed("account must be a string")
    state.topup(account, credits)
    return json_response({"account": account, "current_credits": state.wallet.balance(account)})


@admin.get("/_emulator/admin/switches", name="get_switches")
async def get_switches(request: web.Request) -> web.Response:
    """Every switch and its current value."""
    return json_response(request.app[STATE].config.to_dict())


@admin.post("/_emulator/admin/switches", name="set_switches")
async def set_switches(request: web.Request) -> web.Response:
    """Flip switches: a JSON object of ``{switch: value}``; answers with every switch."""
    state = request.app[STATE]
    body = await _json_object(request)
    try:
        state.apply_config(state.config.replace(**body))
    except (ValueError, TypeError) as exc:
        raise validation_failed(str(exc)) from exc
    return json_response(state.config.to_dict())


@admin.post("/_emulator/admin/restart", name="restart")
async def restart(request: web.Request) -> web.Response:
    """Restart the server after answering: every connection drops, state is kept."""
    body = await _json_object(request)
    downtime = body.get("downtime_s", 0.0)
    if not isinstance(downtime, int | float) or isinstance(downtime, bool) or downtime < 0:
        raise validation_failed("downtime_s must be a non-negative number of seconds")
    await request.app[RESTART](float(downtime))
    return json_response({"restarting": True, "downtime_s": downtime}, status=202)


ROUTES.update(
    ledger=RouteInfo("admin"),
    topup=RouteInfo("admin"),
    get_switches=RouteInfo("admin"),
    set_switches=RouteInfo("admin"),
    restart=RouteInfo("admin"),
)
