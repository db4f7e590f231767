"""A small hostile HTTP server for the client tests: it lies, stalls, floods and echoes the key.

Not the emulator (which plays the contract straight): each route here is one way a real or
compromised service could misbehave. Every request's method, path and whether it carried an
``Authorization`` header are recorded in ``seen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

VIDEO_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
VIDEO = VIDEO_HEAD + bytes(2000)
FILLER = b"\x00" * 65536
DEEP = 700  # "$DEEP" in a task: a list nested this deep (json.loads manages; a walk may not)


@dataclass
class Seen:
    method: str
    path: str
    authorized: bool
    authorization: str | None


@dataclass
class Hostile:
    """The server's switches (set by tests) and what it saw."""

    base_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    task: dict[str, Any] = field(default_factory=dict)  # answered by the generations endpoints
    credits_mode: str = "ok"  # ok | 503 | 503-once | 429-huge | redirect
    redirect_to: str = ""  # another origin, for the redirect routes
    hits: dict[str, int] = field(default_factory=dict)

    def auth_paths(self) -> list[str]:
        return [s.path for s in self.seen if s.authorized]


def _envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, "requestId": "req_hostile"}}
    return web.json_response(body, status=status, headers=headers)


async def _stream(
    request: web.Request, body: AsyncIterator[bytes], length: int | None = None
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    if length is not None:
        resp.content_length = length
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        async for chunk in body:
            await resp.write(chunk)
    return resp


async def _endless() -> AsyncIterator[bytes]:
    yield VIDEO_HEAD
    while True:
        yield FILLER
        await asyncio.sleep(0)


async def _trickle() -> AsyncIterator[bytes]:
    yield VIDEO_HEAD
    while True:
        await asyncio.sleep(0.3)
        yield b"\x00"


async def _truncated(request: web.Request) -> web.StreamResponse:
    """Content-Length 1000, 500 bytes sent, then the connection closes."""
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(VIDEO[:500])
    assert request.transport is not None
    request.transport.close()
    return resp


RESULTS: dict[str, Callable[[web.Request, Hostile], Awaitable[web.StreamResponse]]] = {
    "ok": lambda r, s: _ready(web.Response(body=VIDEO, content_type="video/mp4")),
    "endless": lambda r, s: _stream(r, _endless()),
    "big-declared": lambda r, s: _stream(r, _endless(), length=10**12),
    "trickle": lambda r, s: _stream(r, _trickle()),
    "truncated": lambda r, s: _truncated(r),
    "not-video": lambda r, s: _ready(
        web.Response(text="<html>hi</html>", content_type="text/html")
    ),
    "redirect": lambda r, s: _ready(
        web.Response(status=302, headers={"Location": f"{s.redirect_to}/r/ok"})
    ),
    "401": lambda r, s: _ready(_envelope(401, "api_key_invalid", "go away")),
    "403": lambda r, s: _ready(_envelope(403, "api_scope_denied", "go away")),
}


async def _ready(resp: web.StreamResponse) -> web.StreamResponse:
    return resp


def _key_of(request: web.Request) -> str:
    return request.headers.get("Authorization", "Bearer none").partition(" ")[2]


def build_app(state: Hostile) -> web.Application:
    app = web.Application()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        state.seen.append(Seen(request.method, request.path, auth is not None, auth))
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        return await handler(request)

    app.middlewares.append(record)

    async def task(request: web.Request) -> web.Response:
        key = _key_of(request)
        escaped = "".join(f"\\u{ord(ch):04x}" for ch in key)  # the key, JSON-escaped
        deep = "[" * DEEP + '"$EKEY"' + "]" * DEEP  # as deep as a parser manages, in text
        text = json.dumps(state.task).replace('"$DEEP"', deep)
        text = text.replace("$EKEY", escaped).replace("$KEY", key)
        return web.Response(text=text, content_type="application/json", status=200)

    async def credits(request: web.Request) -> web.Response:
        mode = state.credits_mode
        if mode == "503" or (mode == "503-once" and state.hits[request.path] == 1):
            return _envelope(503, "public_api_disabled", "down", {"Retry-After": "1"})
        if mode == "429-huge":
            return _envelope(429, "rate_limited", "slow down", {"Retry-After": str(10**9)})
        if mode == "redirect":
            raise web.HTTPFound(f"{state.redirect_to}/api/v1/credits?token={_key_of(request)}")
        return web.json_response({"current_credits": 5})

    async def result(request: web.Request) -> web.StreamResponse:
        make = RESULTS.get(request.match_info["kind"])
        if make is None:
            raise web.HTTPNotFound()
        return await make(request, state)

    app.router.add_get("/api/v1/generations/{id}", task)
    app.router.add_post("/api/v1/generations", task)
    app.router.add_get("/api/v1/credits", credits)
    app.router.add_get("/r/{kind}", result)
    app.router.add_get("/api/v1/results/{kind}", result)
    return app


@contextlib.asynccontextmanager
async def running_hostile() -> AsyncIterator[Hostile]:
    """A hostile server on 127.0.0.1 and an ephemeral port, for the length of the block."""
    state = Hostile()
    runner = web.AppRunner(build_app(state), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
