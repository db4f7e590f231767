"""Unknown response fields (the ``extra_fields`` switch), as Rivya's compatibility policy allows.

Without a new API version the service may add optional response fields, so with this switch on
every JSON object the public API answers with (task and its result and error, file, models list
and each model entry, credits, the error envelope and its error) carries fields no client knows.
Maps whose keys are data (``reference_media.kinds``) are left alone: a new key there would be a
new file kind, not a new field.
"""

from __future__ import annotations

from typing import Any

EXTRA_FIELDS: dict[str, Any] = {
    "x_future": {"rollout": "beta", "since": "2026-06-01", "flags": ["a", "b"]},
    "tier": "pro",
}


def _more(obj: Any) -> Any:
    """``obj`` with the extra fields when it is an object (``null`` stays ``null``)."""
    return plain(obj) if isinstance(obj, dict) else obj


def plain(payload: dict[str, Any]) -> dict[str, Any]:
    """A flat object (a file, the credits answer) with the extra fields."""
    return {**payload, **EXTRA_FIELDS}


def task(payload: dict[str, Any]) -> dict[str, Any]:
    """A task object, with its ``result`` and ``error`` objects."""
    return plain(payload) | {"result": _more(payload["result"]), "error": _more(payload["error"])}


def listing(payload: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/v1/models``: the list and each entry."""
    return plain(payload) | {"data": [plain(entry) for entry in payload["data"]]}


def envelope(payload: dict[str, Any]) -> dict[str, Any]:
    """The error envelope and the error inside it."""
    return plain(payload) | {"error": plain(payload["error"])}
