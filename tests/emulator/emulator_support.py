"""Helpers for the emulator's conformance tests: request bodies, images and a tiny client.

The client here is deliberately not ``batchgen.client``: these tests check the emulator
against the contract, so they speak HTTP themselves with plain aiohttp.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio

from batchgen.emulator.server import RunningEmulator

TEST_DEFAULTS: dict[str, Any] = {"time_scale": 0.001, "seed": 1234, "rate_limit_per_s": 1000.0}
SAME_KEY = object()  # "use the emulator's key"


def png_bytes(width: int = 2, height: int = 2, padding: int = 0) -> bytes:
    """A valid PNG (plus ``padding`` bytes in an ancillary chunk, to reach a size)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    extra = chunk(b"tEXt", b"pad\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00"
    b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
)


@dataclass
class Reply:
    """One HTTP answer: status, headers and the JSON body (or raw bytes)."""

    status: int
    headers: Any
    body: Any
    raw: bytes

    @property
    def code(self) -> str | None:
        """``error.code`` of an error envelope."""
        return self.body["error"]["code"] if isinstance(self.body, dict) else None


def body_for(prompt: str = "a calm lake at dawn", **params: Any) -> dict[str, Any]:
    """A valid kling-3-0 create body."""
    body: dict[str, Any] = {"model": "kling-3-0", "prompt": prompt}
    if params:
        body["params"] = params
    return body


class Api:
    """A tiny HTTP client bound to one emulator."""

    def __init__(self, session: aiohttp.ClientSession, emu: RunningEmulator) -> None:
        self.session = session
        self.emu = emu

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: Any = SAME_KEY,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        """Send one request; ``key=None`` sends no Authorization header."""
        sent = dict(headers or {})
        key = self.emu.api_key if key is SAME_KEY else key
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        url = path if path.startswith("http") else self.emu.base_url + path
        async with self.session.request(method, url, headers=sent, **kwargs) as resp:
            raw = await resp.read()
            body: Any = raw
            if resp.content_type == "application/json":
                body = await resp.json()
            return Reply(resp.status, resp.headers, body, raw)

    async def create(self, body: Any = None, idem: str | None = None, **kwargs: Any) -> Reply:
        """POST /api/v1/generations."""
        headers = {"Idempotency-Key": idem} if idem is not None else {}
        return await self.call(
            "POST", "/api/v1/generations", json=body or body_for(), headers=headers, **kwargs
        )

    async def task(self, task_id: str, **kwargs: Any) -> Reply:
        """GET /api/v1/generations/{id}."""
        return await self.call("GET", f"/api/v1/generations/{task_id}", **kwargs)

    async def upload(
        self,
        data: bytes,
        name: str = "ref.png",
        kind: str = "image",
        model: str | None = "kling-3-0",
        **fields: str,
    ) -> Reply:
        """POST /api/v1/files with a multipart form."""
        form = aiohttp.FormData()
        form.add_field(
            "file", io.BytesIO(data), filename=name, content_type="application/octet-stream"
        )
        form.add_field("kind", kind)
        if model is not None:
            form.add_field("model", model)
        for field, value in fields.items():
            form.add_field(field, value)
        return await self.call("POST", "/api/v1/files", data=form)

    async def credits(self) -> int:
        """GET /api/v1/credits."""
        reply = await self.call("GET", "/api/v1/credits")
        return int(reply.body["current_credits"])

    async def wait_done(self, task_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Poll until the task is terminal; return it."""
        with anyio.fail_after(timeout_s):
            while True:
                reply = await self.task(task_id)
                assert reply.status == 200, reply.body
                if reply.body["status"] in ("succeeded", "failed"):
                    return dict(reply.body)
                await anyio.sleep(0.005)
