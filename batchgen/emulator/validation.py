"""Validation of ``POST /api/v1/generations`` bodies against the emulator's model table.

Pure: takes the parsed JSON and a function that resolves a reference URL to an uploaded file,
returns normalised string params or raises ``validation_failed`` listing every problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .catalog import MODELS, param_defaults, param_options
from .envelope import validation_failed

TOP_LEVEL_KEYS = {"model", "prompt", "params", "client_request_id"}
REFERENCE_KEYS = {"url", "kind", "name", "mimeType", "durationToken", "durationSeconds"}
PROMPT_LIMIT = 2000
BOOL_PARAMS = {"multi_shots", "sound"}
INT_PARAMS = {"duration"}

# Resolves a reference URL to (kind, mime_type) of this account's unexpired upload, or
# returns a reason string why it cannot be used.
FileResolver = Callable[[str], "tuple[str, str] | str"]


def validate_generation(
    body: Any,
    resolve_file: FileResolver,
    *,
    count_utf16: bool = False,
    extra_params: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Check a create body; return its params as strings with defaults filled in.

    ``count_utf16``: count the prompt limit in UTF-16 code units (as a JavaScript backend
    would), so a character outside the Basic Multilingual Plane counts twice.
    ``extra_params``: param names accepted besides the model's (any string value).
    """
    if not isinstance(body, dict):
        raise validation_failed("the request body must be a JSON object")
    problems: list[str] = []
    unknown = sorted(set(body) - TOP_LEVEL_KEYS)
    if unknown:
        problems.append(f"unknown fields {unknown}; allowed are {sorted(TOP_LEVEL_KEYS)}")
    model = body.get("model")
    if not isinstance(model, str) or model not in MODELS:
        problems.append(f"model must be one of {sorted(MODELS)}, got {model!r}")
        model = None
    _check_prompt(body.get("prompt"), problems, count_utf16)
    _check_client_request_id(body, problems)
    params: dict[str, str] = {}
    if model is not None:
        params = _check_params(model, body.get("params", {}), resolve_file, problems, extra_params)
    if problems:
        raise validation_failed("; ".join(problems))
    return params


def _check_prompt(prompt: Any, problems: list[str], count_utf16: bool) -> None:
    if not isinstance(prompt, str):
        problems.append("prompt is required and must be a string of 1-2000 characters")
    elif not prompt.strip():
        problems.append("prompt must not be empty or blank")
    elif count_utf16 and utf16_length(prompt) > PROMPT_LIMIT:
        problems.append(
            f"prompt is {utf16_length(prompt)} characters (UTF-16 code units); "
            f"the limit is {PROMPT_LIMIT}"
        )
    elif len(prompt) > PROMPT_LIMIT:
        problems.append(f"prompt is {len(prompt)} characters; the limit is {PROMPT_LIMIT}")


def utf16_length(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (JavaScript's ``string.length``)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _check_client_request_id(body: dict[str, Any], problems: list[str]) -> None:
    value = body.get("client_request_id")
    if value is None:
        return
    if not isinstance(value, str):
        problems.append("client_request_id must be a string")
    elif len(value) > 128:
        problems.append(f"client_request_id is {len(value)} characters; the limit is 128")


def _check_params(
    model: str,
    params: Any,
    resolve_file: FileResolver,
    problems: list[str],
    extra_params: frozenset[str] = frozenset(),
) -> dict[str, str]:
    if not isinstance(params, dict):
        problems.append("params must be a JSON object")
        return {}
    options = param_options(model)
    out = param_defaults(model)
    for key, value in params.items():
        if key == "referenceMediaItems":
            _check_references(model, value, resolve_file, problems)
        elif key in extra_params:
            if not isinstance(value, str):
                problems.append(f"params.{key} must be a string")
        elif key not in options:
            allowed = [*options, "referenceMediaItems"]
            problems.append(f"params.{key} is not a {model} parameter; allowed are {allowed}")
        else:
            text = _as_string(key, value)
            if text not in options[key]:
                problems.append(
                    f"params.{key} must be one of {list(options[key])} (as a string), got {value!r}"
                )
            else:
                out[key] = text
    return out


def _as_string(key: str, value: Any) -> str | None:
    """The documented string form of a param value, accepting the native JSON form too."""
    if isinstance(value, str):
        return value
    if key in BOOL_PARAMS and isinstance(value, bool):
        return "true" if value else "false"
    if key in INT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _check_references(
    model: str, items: Any, resolve_file: FileResolver, problems: list[str]
) -> None:
    ref = MODELS[model]["reference_media"]
    if not isinstance(items, list):
        problems.append("params.referenceMediaItems must be a list")
        return
    if len(items) > ref["max_files"]:
        problems.append(
            f"params.referenceMediaItems has {len(items)} items; {model} takes at most "
            f"{ref['max_files']}"
        )
    for n, item in enumerate(items):
        where = f"params.referenceMediaItems[{n}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object with url and kind")
            continue
        _check_reference(where, item, ref["kinds"], resolve_file, problems)


def _check_optional_fields(where: str, item: dict[str, Any], problems: list[str]) -> None:
    for opt in ("name", "mimeType", "durationToken"):
        if item.get(opt) is not None and not isinstance(item[opt], str):
            problems.append(f"{where}.{opt} must be a string")
    seconds = item.get("durationSeconds")  # documented, optional; null is the same as absent
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
    ):
        problems.append(f"{where}.durationSeconds must be a non-negative number of seconds")


def _check_reference(
    where: str,
    item: dict[str, Any],
    kinds: dict[str, Any],
    resolve_file: FileResolver,
    problems: list[str],
) -> None:
    unknown = sorted(set(item) - REFERENCE_KEYS)
    if unknown:
        problems.append(f"{where} has unknown fields {unknown}")
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        problems.append(f"{where}.kind must be one of {sorted(kinds)}, got {kind!r}")
    _check_optional_fields(where, item, problems)
    url = item.get("url")
    if not isinstance(url, str):
        problems.append(f"{where}.url is required: a url returned by POST /api/v1/files")
        return
    found = resolve_file(url)
    if isinstance(found, str):
        problems.append(f"{where}.url {found}")
        return
    file_kind, mime = found
    if kind in kinds and file_kind != kind:
        problems.append(f"{where}.kind is {kind!r} but the uploaded file is a {file_kind}")
    if kind in kinds and mime not in kinds[kind]["mime_types"]:
        problems.append(f"{where}: {mime} is not accepted; use {kinds[kind]['mime_types']}")
    mime_claim = item.get("mimeType")
    if isinstance(mime_claim, str) and mime_claim != mime:
        problems.append(
            f"{where}.mimeType is {mime_claim!r} but the uploaded file is {mime}; "
            "send the mime_type the Files API returned"
        )
