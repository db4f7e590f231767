"""The error envelope, request ids and JSON responses, shared by every route.

Every non-2xx answer is ``{"error": {"code", "message", "requestId"}}``; handlers raise
``ApiError`` and the middleware turns it into that envelope.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from . import extras

_PREFIX = os.urandom(3).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A request id unique within this process (and very likely across restarts)."""
    return f"req_{_PREFIX}{next(_COUNTER):08x}"


class ApiError(Exception):
    """An answer with an error envelope: raise it from a handler or a check."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A compact JSON response."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


def error_response(err: ApiError, request_id: str, extra_fields: bool = False) -> web.Response:
    """The envelope for ``err``, with its extra headers and the request id.

    ``extra_fields``: add unknown fields to the envelope and its error (the switch).
    """
    payload: dict[str, Any] = {
        "error": {"code": err.code, "message": err.message, "requestId": request_id}
    }
    if extra_fields:
        payload = extras.envelope(payload)
    headers = {**err.headers, "X-Request-Id": request_id}
    return json_response(payload, status=err.status, headers=headers)


def validation_failed(message: str) -> ApiError:
    """400 ``validation_failed`` with ``message``."""
    return ApiError(400, "validation_failed", message)


def not_found(message: str) -> ApiError:
    """404 ``not_found`` with ``message``."""
    return ApiError(404, "not_found", message)
