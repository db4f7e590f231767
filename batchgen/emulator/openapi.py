"""The OpenAPI 3.1 document of the emulated API (``GET /api/v1/openapi.json``).

It describes the public ``/api/v1`` surface as the emulator implements it, including the
[decided] shapes of the contract and the native JSON forms of params the emulator accepts.
Every error answer is the envelope, declared once as the ``default`` response.
"""

from __future__ import annotations

import copy
from typing import Any

from .catalog import KLING_3_0
from .config import EmulatorConfig

REF = "#/components/schemas/"
ISO = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR_RESPONSE = _json(_ref("Error"), "error envelope (any non-2xx status)")


def _choice(key: str, native: dict[str, Any] | None) -> dict[str, Any]:
    params = {p["key"]: p for p in KLING_3_0["params"]}
    string = {"type": "string", "enum": params[key]["options"]}
    return {"anyOf": [string, native]} if native else string


def _params_schema() -> dict[str, Any]:
    boolean = {"type": "boolean"}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "mode": _choice("mode", None),
            "multi_shots": _choice("multi_shots", boolean),
            "duration": _choice("duration", {"type": "integer", "minimum": 3, "maximum": 15}),
            "sound": _choice("sound", boolean),
            "aspect_ratio": _choice("aspect_ratio", None),
            "referenceMediaItems": {
                "type": "array",
                "maxItems": 2,
                "items": _ref("ReferenceMediaItem"),
            },
        },
    }


def _schemas(statuses: list[str]) -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "requestId"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "requestId": {"type": "string"},
                    },
                }
            },
        },
        "ModelEntry": {
            "type": "object",
            "required": sorted(KLING_3_0),
            "properties": {k: {} for k in KLING_3_0} | {"id": {"type": "string"}},
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _ref("ModelEntry")},
            },
        },
        "Credits": {
            "type": "object",
            "required": ["current_credits"],
            "properties": {"current_credits": {"type": "integer"}},
        },
        "ReferenceMediaItem": {
            "type": "object",
            "required": ["url", "kind"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string"},
                "kind": {"type": "string", "enum": ["image"]},
                "name": nullable_str,
                "mimeType": nullable_str,
                "durationToken": nullable_str,
                "durationSeconds": {"type": ["number", "null"], "minimum": 0},
            },
        },
        "GenerationRequest": {
            "type": "object",
            "required": ["model", "prompt"],
            "additionalProperties": False,
            "properties": {
                "model": {"type": "string", "enum": ["kling-3-0"]},
                "prompt": {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": r"\S"},
                "params": _params_schema(),
                "client_request_id": {"type": ["string", "null"], "maxLength": 128},
            },
        },
        "Task": _task_schema(statuses),
        "File": _file_schema(),
        "Upload": {
            "type": "object",
            "required": ["file", "kind"],
            "additionalProperties": False,
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "kind": {"type": "string", "enum": ["image", "video", "audio"]},
                "model": {"type": "string", "enum": ["kling-3-0"]},
                "client_request_id": {"type": "string", "maxLength": 128},
            },
        },
    }


def _task_schema(statuses: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [
            "id",
            "status",
            "model",
            "reserved_credits",
            "final_credits",
            "created_at",
            "updated_at",
            "result",
            "error",
        ],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": statuses},
            "model": {"type": "string"},
            "reserved_credits": {"type": "integer"},
            "final_credits": {"type": "integer"},
            "created_at": ISO,
            "updated_at": ISO,
            "result": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["primary_url", "urls"],
                        "properties": {
                            "primary_url": {"type": "string"},
                            "urls": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                ]
            },
            "error": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    },
                ]
            },
        },
    }


def _file_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "id is named file_id instead when the emulator runs that variant; with "
        "files_answer minimal only url and duration_token are present",
        "required": ["url", "duration_token"],
        "properties": {
            "id": {"type": "string"},
            "file_id": {"type": "string"},
            "object": {"const": "file"},
            "kind": {"enum": ["image", "video", "audio"]},
            "name": {"type": "string"},
            "mime_type": {"type": "string"},
            "size_bytes": {"type": "integer"},
            "url": {"type": "string"},
            "duration_seconds": {"type": ["number", "null"]},
            "duration_token": {"type": ["string", "null"]},
            "created_at": ISO,
            "expires_at": ISO,
        },
    }


def _op(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": ok | {"default": ERROR_RESPONSE}, **extra}


def _path_id(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,255}$"},
}


def _paths() -> dict[str, Any]:
    task = _ref("Task")
    return {
        "/api/v1/models": {
            "get": _op("List models", {"200": _json(_ref("ModelList"), "models")}, security=[])
        },
        "/api/v1/credits": {"get": _op("Credit balance", {"200": _json(_ref("Credits"), "ok")})},
        "/api/v1/files": {
            "post": _op(
                "Upload a reference file",
                {"201": _json(_ref("File"), "stored")},
                requestBody={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("Upload")}},
                },
            )
        },
        "/api/v1/files/{fileId}": {
            "get": _op(
                "One file", {"200": _json(_ref("File"), "ok")}, parameters=_path_id("fileId")
            )
        },
        "/api/v1/generations": {
            "post": _op(
                "Create a generation task",
                {s: _json(task, "task") for s in ("200", "201", "202")},
                parameters=[IDEMPOTENCY_HEADER],
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("GenerationRequest")}},
                },
            )
        },
        "/api/v1/generations/{taskId}": {
            "get": _op("Task status", {"200": _json(task, "task")}, parameters=_path_id("taskId"))
        },
    }


def statuses(config: EmulatorConfig | None) -> list[str]:
    """The task statuses the emulator may answer with under ``config``'s switches."""
    names = ["queued", "processing", "succeeded", "failed"]
    if config is not None and config.interim_status_name:
        names.append(config.interim_status_name)
    if config is not None and config.end_status_rate > 0:
        names.append(config.end_status_name)
    return names


def document(origin: str, config: EmulatorConfig | None = None) -> dict[str, Any]:
    """The document, with ``origin`` as its server, true to ``config``'s switches."""
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {"title": "Rivya Public API v1 (batchgen emulator)", "version": "1.0.0"},
            "servers": [{"url": origin}],
            "security": [{"bearerAuth": []}],
            "paths": _paths(),
            "components": {
                "schemas": _schemas(statuses(config)),
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            },
        }
    )
