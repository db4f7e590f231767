"""The kling-3-0 rules, as the client checks them before anything is sent.

Pure data and small pure functions; the source of truth is ``../shared/rivya-api.md``
(section "The kling-3-0 model"). The manifest accepts the native JSON/YAML forms the API also
accepts (``duration: 5``, ``sound: false``); :func:`normalize_param` turns them into the
documented string form (``"5"``, ``"false"``), which is the only form the client sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from batchgen.models import MODEL_ID as MODEL_ID  # re-exported: the model these rules are for

BASE_CREDITS = 90  # the models endpoint's ``base_credits``; used only as an offline estimate
MIN_PROMPT_CHARS = 1
# "1-2000 characters" [doc]. The service may count code points (Python's len) or UTF-16 code
# units (a JavaScript backend, where an emoji counts twice): validation holds a prompt to both.
MAX_PROMPT_CHARS = 2000
MAX_PROMPT_UTF16_UNITS = 2000
MAX_REFERENCES = 2
# "10 MB" [doc]: the models entry reads it as 10 MiB, but the service may mean 10,000,000 bytes.
# Validation and upload hold a reference to the smaller, decimal reading.
MAX_REFERENCE_BYTES_BINARY = 10 * 1024 * 1024
MAX_REFERENCE_BYTES = 10_000_000
REFERENCE_MIME_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_CLIENT_REQUEST_ID = 128


@dataclass(frozen=True)
class ParamRule:
    """One kling-3-0 param: its documented default and allowed values (string form)."""

    name: str
    default: str
    options: tuple[str, ...]

    @property
    def is_boolean(self) -> bool:
        return self.options == ("false", "true")


def _rule(name: str, default: str, options: tuple[str, ...]) -> tuple[str, ParamRule]:
    return name, ParamRule(name, default, options)


# In the documented order (the order the models endpoint lists them, and the order of id parts).
PARAMS: Mapping[str, ParamRule] = dict(
    [
        _rule("mode", "pro", ("std", "pro")),
        _rule("multi_shots", "false", ("false", "true")),
        _rule("duration", "5", tuple(str(n) for n in range(3, 16))),
        _rule("sound", "false", ("false", "true")),
        _rule("aspect_ratio", "16:9", ("16:9", "9:16", "1:1")),
    ]
)
PARAM_NAMES: tuple[str, ...] = tuple(PARAMS)
DEFAULT_PARAMS: Mapping[str, str] = {name: rule.default for name, rule in PARAMS.items()}

# ``extra_params``: params batchgen does not know yet (the compatibility policy [doc] lets the
# service add optional params without a new API version), sent as given in string form.
EXTRA_PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
REFERENCE_ITEMS_PARAM = "referenceMediaItems"


def extra_param_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an ``extra_params`` key, or None if it can."""
    if name in PARAMS:
        return (
            f"extra_params '{name}' is a kling-3-0 param batchgen knows and checks; "
            f"set it under `params` instead"
        )
    if name == REFERENCE_ITEMS_PARAM:
        return (
            f"extra_params '{name}' is built by batchgen from `references`; "
            "list the images under `references` instead"
        )
    if not EXTRA_PARAM_NAME.fullmatch(name):
        return (
            f"extra_params name '{name}' must be 1 to 64 letters, digits or '_', "
            "starting with a letter"
        )
    return None


def utf16_units(text: str) -> int:
    """How long ``text`` is to a JavaScript backend: characters outside the Basic Multilingual
    Plane (most emoji) are two UTF-16 code units each."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def native_to_text(value: object) -> str | None:
    """The documented string form of a native scalar, or None when it has none.

    ``True``/``False`` become ``"true"``/``"false"``, integers their decimal digits, strings stay
    as they are. Floats, None and containers have no string form (``duration: 5.0`` is refused
    rather than guessed at).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def normalize_param(name: str, value: object) -> str | None:
    """The documented string form of ``value`` for param ``name``, or None if it is not allowed."""
    rule = PARAMS.get(name)
    text = native_to_text(value)
    if rule is None or text is None:
        return None
    return text if text in rule.options else None


def describe_value(value: object) -> str:
    """How a refused value is shown in a message: YAML-ish, quoted when it is text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null (empty)"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def allowed_values_text(name: str) -> str:
    """``3, 4, ..., 15`` style list of the allowed values of a param, for messages."""
    return ", ".join(PARAMS[name].options)


def param_value_message(name: str, value: object) -> str:
    """The teaching message for a refused param value: what was given and what is allowed."""
    message = (
        f"{name} {describe_value(value)} is not allowed; "
        f"kling-3-0 accepts {name}: {allowed_values_text(name)}"
    )
    if PARAMS[name].is_boolean and str(value).lower() in _YAML11_BOOLEANS:
        message += " (yes/no/on/off are text in YAML 1.2: write true or false)"
    return message


_YAML11_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


def sniff_image_mime(head: bytes) -> str | None:
    """The MIME type from a file's first bytes (its signature), for JPEG, PNG and WebP only."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def sniff_other_kind(head: bytes) -> str | None:
    """A friendly name for common files that are *not* accepted references (for messages)."""
    signatures = (
        (b"GIF87a", "a GIF image"),
        (b"GIF89a", "a GIF image"),
        (b"BM", "a BMP image"),
        (b"%PDF", "a PDF document"),
        (b"II*\x00", "a TIFF image"),
        (b"MM\x00*", "a TIFF image"),
    )
    for magic, kind in signatures:
        if head.startswith(magic):
            return kind
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "a HEIC/AVIF image or an MP4 video"
    return None
