"""The emulator's own model table: kling-3-0 as the contract describes it.

Deliberately separate from ``batchgen.contract`` so that the client and the emulator cannot
share one misreading of ``shared/rivya-api.md``.
"""

from __future__ import annotations

import copy
from typing import Any

MAX_IMAGE_BYTES = 10 * 1024 * 1024
# "10 MB" read the decimal way (the ``size_limit`` switch): a reading the real service may take
MAX_IMAGE_BYTES_DECIMAL = 10_000_000
IMAGE_MIME_TYPES = ("image/jpeg", "image/png", "image/webp")

KLING_3_0: dict[str, Any] = {
    "id": "kling-3-0",
    "display_name": "Kling 3.0",
    "category": "video",
    "runtime": "async_task",
    "base_credits": 90,
    "billing_type": "FIXED",
    "max_prompt_length": 2000,
    "api_status": "available",
    "api_input_status": "partial_requires_files",
    "supported_api_inputs": ["text", "file"],
    "requires_files_api": False,
    "url_input_supported": False,
    "file_kinds": ["image"],
    "reference_media": {
        "max_files": 2,
        "kinds": {"image": {"max_bytes": MAX_IMAGE_BYTES, "mime_types": list(IMAGE_MIME_TYPES)}},
    },
    "params": [
        {"key": "mode", "type": "select", "default": "pro", "options": ["std", "pro"]},
        {"key": "multi_shots", "type": "select", "default": "false", "options": ["false", "true"]},
        {
            "key": "duration",
            "type": "select",
            "default": "5",
            "options": [str(n) for n in range(3, 16)],
        },
        {"key": "sound", "type": "select", "default": "false", "options": ["false", "true"]},
        {
            "key": "aspect_ratio",
            "type": "select",
            "default": "16:9",
            "options": ["16:9", "9:16", "1:1"],
        },
    ],
    "notices": [],
}

MODELS: dict[str, dict[str, Any]] = {"kling-3-0": KLING_3_0}


def image_limit(size_limit: str) -> int:
    """The most bytes a reference image may have under the ``size_limit`` switch."""
    return MAX_IMAGE_BYTES_DECIMAL if size_limit == "decimal" else MAX_IMAGE_BYTES


def models_listing(
    prices: dict[str, int], max_image_bytes: int = MAX_IMAGE_BYTES
) -> dict[str, Any]:
    """The body of ``GET /api/v1/models``.

    ``base_credits`` follows the configured price and the image ``max_bytes`` the limit the
    emulator enforces (the ``size_limit`` switch), so the listing never contradicts an upload.
    """
    data = []
    for model_id, entry in MODELS.items():
        item = copy.deepcopy(entry)
        item["base_credits"] = prices.get(model_id, entry["base_credits"])
        image = item["reference_media"]["kinds"].get("image")
        if image is not None:
            image["max_bytes"] = max_image_bytes
        data.append(item)
    return {"object": "list", "data": data}


def param_options(model_id: str) -> dict[str, tuple[str, ...]]:
    """``{param key: allowed string values}`` for ``model_id``."""
    return {p["key"]: tuple(p["options"]) for p in MODELS[model_id]["params"]}


def param_defaults(model_id: str) -> dict[str, str]:
    """``{param key: default string value}`` for ``model_id``."""
    return {p["key"]: p["default"] for p in MODELS[model_id]["params"]}
