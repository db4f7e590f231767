"""``build_app``: the aiohttp application for one emulator state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .config import EmulatorConfig
from .middleware import STATE, gate
from .routes_admin import RESTART, admin
from .routes_api import api
from .state import EmulatorState

MAX_JSON_BODY = 1024 * 1024


async def _no_restart(downtime_s: float) -> None:
    raise web.HTTPNotImplemented(reason="restart needs a server started by running_emulator")


def build_app(
    config: EmulatorConfig,
    *,
    admin_enabled: bool = True,
    state: EmulatorState | None = None,
    restart: Callable[[float], Awaitable[None]] | None = None,
) -> web.Application:
    """The emulator as an aiohttp app (admin and ledger routes only when ``admin_enabled``)."""
    app = web.Application(middlewares=[gate], client_max_size=MAX_JSON_BODY)
    app[STATE] = state if state is not None else EmulatorState(config)
    app[RESTART] = restart or _no_restart
    app.add_routes(api)
    if admin_enabled:
        app.add_routes(admin)
    return app
