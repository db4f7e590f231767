"""The Rivya wire format, pure: error table, envelopes, task and file objects, base URLs.

Everything here is a function of bytes, headers and values already in hand: no network, no
aiohttp, no logging. ``batchgen.client`` does the I/O and calls these to read what came back.

* ``error_type(status, code)`` is the contract's table of HTTP status and ``error.code`` to the
  typed errors of ``batchgen.errors``; ``error_from_answer`` builds the whole error from an answer.
  A 429's ``Retry-After`` (seconds or an HTTP date) is read here and only here
  (``parse_retry_after``), into ``RateLimitedError.retry_after_s``: the client, the limiter and
  the retry policy read that typed value, never the header. The ``X-RateLimit-Limit``,
  ``-Remaining`` and ``-Reset`` headers of any answer are read by ``window_hint`` into the
  limiter's ``WindowHint`` (all optional: a server may send none of them).
* ``parse_task`` and ``parse_uploaded_file`` read the objects of 2xx answers, tolerating nulls.
* ``check_base_url`` and ``check_api_key`` decide whether the key may travel to a base URL.
* Server text is never trusted: ``clean_text`` makes it safe for a terminal (no control
  characters or ANSI escapes, capped length), ``safe_url`` shows a URL without its userinfo,
  query or fragment, ``is_safe_id`` decides whether an id may go into a URL path or a message,
  and numbers out of range make a ``BadAnswerError`` (that job fails; the run goes on).
* ``ClientStats`` counts the client's request events (``batchgen.events``) by endpoint and
  status, shaped like the emulator ledger.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from yarl import URL

from batchgen.errors import (
    ApiError,
    AuthError,
    BadAnswerError,
    ClientRequestError,
    ConfigError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitedError,
    ScopeDeniedError,
    ServerError,
    ServiceDisabledError,
    ServiceUnavailableError,
    TransportError,
    ValidationFailedError,
)
from batchgen.events import Event, RateLimited, RequestAnswered, RequestRetried
from batchgen.limits import WindowHint
from batchgen.models import (
    RemoteStatus,
    RemoteTask,
    UploadedFile,
    is_loopback_host,
    parse_timestamp,
)

SCOPES = (
    "models:read",
    "generations:create",
    "generations:read",
    "files:create",
    "files:read",
    "credits:read",
    "webhooks:manage",
)
AUTH_CODES = frozenset({"api_key_missing", "api_key_invalid", "api_key_revoked", "api_key_expired"})
_JOB_ERRORS_BY_CODE: Mapping[str, type[ApiError]] = {
    "validation_failed": ValidationFailedError,
    "not_found": NotFoundError,
    "idempotency_conflict": IdempotencyConflictError,
}
_JOB_ERRORS_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: ValidationFailedError,
    404: NotFoundError,
    409: IdempotencyConflictError,
}
MAX_CREDITS = 1_000_000  # a task's reserved/final credits outside 0..this are a bad answer
MAX_WALLET = 10**15  # a wallet outside 0..this is a bad answer, not a balance
MAX_TEXT_CHARS = 500  # server text (messages, codes, statuses) shown at most this long
MAX_URL_CHARS = 200  # URLs in messages are cut to this
MAX_RETRY_AFTER_S = 3600.0  # a Retry-After is never honoured for longer than an hour
DEFAULT_FILE_TTL_S = 3600.0  # an upload of unknown expiry is reused for at most an hour
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")  # task and file ids
_EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/webp": (".webp",),
}
_HINTS: Mapping[type[ApiError], str] = {
    AuthError: "Check RIVYA_API_KEY: it must be a current key for this base URL. Nothing was "
    "marked failed; fix the key, then run the same command again.",
    InsufficientCreditsError: "Top up credits, then run the same command again: finished "
    "jobs are kept and blocked jobs are resubmitted.",
}


# --------------------------------------------------------------------------- base URL and key


def check_base_url(base_url: str, api_key: str | None) -> URL:
    """Validate the base URL (and that the key may travel to it); return it without a slash."""
    try:
        url = URL(base_url.strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the base URL {base_url!r} is not a URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"the base URL {base_url!r} must be an http(s) URL with a host",
            hint="Set RIVYA_BASE_URL to something like https://rivya.ai",
        )
    if url.user or url.password or url.query_string or url.fragment:
        raise ConfigError("the base URL must not carry credentials, a query or a fragment")
    if api_key is not None and url.scheme == "http" and not is_loopback_host(url.host):
        raise ConfigError(
            f"refusing to send the API key over plain http to {url.host}",
            hint="Use https:// (plain http is allowed only for loopback, e.g. the emulator).",
        )
    return url.with_path(url.path.rstrip("/"))


def check_api_key(api_key: str | None) -> None:
    """Reject keys that could not travel in a header (never echoing the key)."""
    if api_key is None:
        return
    if not api_key or any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in api_key):
        raise ConfigError(
            "the API key is empty or contains spaces or control characters",
            hint="Copy the key again into RIVYA_API_KEY (it starts with rvya_sk_).",
        )


# --------------------------------------------------------------------------- server text

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and two-byte ones.
_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_]?)|\x9b[0-?]*[ -/]*[@-~]?"
)
_BREAKS = re.compile("[\t\n\r\v\f\u2028\u2029\x85]+")
# C0 and C1 controls, DEL, and the bidi controls that reorder what a terminal shows.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_URL_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def clean_text(text: object, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` made safe to print (pure): ANSI escapes removed, line breaks and tabs turned
    into one space, other control (and bidi) characters into ``?``, at most ``limit``
    characters (the last one ``…`` when cut)."""
    value = text if isinstance(text, str) else str(text)
    value = _ESCAPES.sub("", value[: limit * 4])
    value = _CONTROLS.sub("?", _BREAKS.sub(" ", value))
    return value if len(value) <= limit else value[: max(0, limit - 1)] + "…"


def safe_url(url: str, limit: int = MAX_URL_CHARS) -> str:
    """``url`` fit for a message (pure): no userinfo (``https://KEY@host`` -> ``https://host``),
    no query, no fragment, cleaned (``clean_text``) and cut to ``limit`` characters. Works on
    text that does not parse as a URL too."""
    text = url if isinstance(url, str) else str(url)
    text = re.split(r"[?#]", text, maxsplit=1)[0]
    text = _USERINFO.sub(r"\1", text.strip())
    return clean_text(text, limit)


def safe_urls_in(text: str) -> str:
    """``text`` with every URL in it replaced by its ``safe_url`` form (pure)."""
    return _URL_TOKEN.sub(lambda m: safe_url(m.group()), text)


def is_safe_id(value: object) -> bool:
    """True for a task or file id that may go into a URL path and a message: 1-128 characters
    of ``[A-Za-z0-9_.:-]``, starting with a letter or digit (so never ``.`` or ``..``)."""
    return isinstance(value, str) and SAFE_ID.fullmatch(value) is not None


def shown(value: object, limit: int = 60) -> str:
    """A value from an answer as a message shows it: its repr, cleaned and cut."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__} too long to show>"
    return clean_text(text, limit)


def clamp_retry_after(seconds: float | None, deadline_s: float | None) -> float | None:
    """A server's Retry-After as the client honours it (pure): at most an hour and at most the
    retry deadline, so one answer cannot pause every worker indefinitely."""
    if seconds is None:
        return None
    cap = MAX_RETRY_AFTER_S if deadline_s is None else min(MAX_RETRY_AFTER_S, deadline_s)
    return min(max(0.0, seconds), cap)


# --------------------------------------------------------------------------- errors


def error_type(status: int, code: str) -> type[ApiError]:
    """The contract's table: which error type an HTTP status and ``error.code`` mean."""
    if status == 429:
        return RateLimitedError
    if code == "insufficient_credits" or status == 402:
        return InsufficientCreditsError
    if status >= 500:
        return ServiceUnavailableError if code == "public_api_disabled" else ServerError
    if code in AUTH_CODES or status == 401:
        return AuthError
    if code == "api_scope_denied" or status == 403:
        return ScopeDeniedError
    by_code = _JOB_ERRORS_BY_CODE.get(code) or _JOB_ERRORS_BY_STATUS.get(status)
    return by_code or ClientRequestError


@dataclass(frozen=True)
class Envelope:
    """What an error answer said: ``error.code``, ``error.message`` and ``requestId``."""

    code: str
    message: str
    request_id: str | None


def parse_envelope(status: int, body: bytes, headers: Mapping[str, str]) -> Envelope:
    """Read the error envelope; cope with non-JSON or envelope-less bodies."""
    header_id = headers.get("X-Request-Id")
    error = json_or_none(body)
    if isinstance(error, dict):
        error = error.get("error", error)
    if not isinstance(error, dict):
        kind = clean_text(headers.get("Content-Type", "no content type").split(";")[0], 80)
        header_id = clean_text(header_id, 100) if header_id else None
        return Envelope(f"http_{status}", f"no error envelope ({kind} body)", header_id)
    code = error.get("code")
    message = error.get("message")
    request_id = error.get("requestId") or error.get("request_id") or header_id
    return Envelope(
        code=clean_text(code, 100) if isinstance(code, str) and code else f"http_{status}",
        message=clean_text(message) if isinstance(message, str) else "(no message)",
        request_id=clean_text(request_id, 100) if isinstance(request_id, str) else None,
    )


def json_or_none(body: bytes) -> Any:
    """The parsed body, or None when it is not JSON (or nested too deeply to parse)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def scope_named(message: str, needed: str | None) -> str | None:
    """The scope a 403 is about: the one the message names, else the endpoint's own."""
    for scope in SCOPES:
        if scope in message:
            return scope
    return needed


def error_from_answer(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    endpoint: str,
    scope: str | None = None,
    now: datetime | None = None,
) -> ApiError:
    """Build the typed error for a non-2xx answer (pure; the caller scrubs secrets)."""
    env = parse_envelope(status, body, headers)
    kind = error_type(status, env.code)
    text = f"{endpoint} answered HTTP {status} {env.code}: {env.message}"
    if env.request_id:
        text += f" (requestId {env.request_id})"
    hint = _HINTS.get(kind)
    if kind is ScopeDeniedError:
        missing = scope_named(env.message, scope)
        hint = f"The API key lacks the '{missing or 'unknown'}' scope; use a key that has it."
    common: dict[str, Any] = {
        "code": env.code,
        "status": status,
        "request_id": env.request_id,
        "hint": hint,
    }
    if kind is RateLimitedError or kind is ServiceUnavailableError:
        wait = parse_retry_after(headers.get("Retry-After"), now or server_now(headers))
        if kind is RateLimitedError:
            return RateLimitedError(text, retry_after_s=wait, **common)
        return ServiceDisabledError(text, retry_after_s=wait, **common)
    return kind(text, **common)


def server_now(headers: Mapping[str, str]) -> datetime | None:
    # An HTTP-date Retry-After is on the server's clock: measure it from the server's Date.
    try:
        return parsedate_to_datetime(headers["Date"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (pure).

    Returns None when the header is absent or unreadable (the caller then backs off on its own),
    and never a negative number (a date in the past means "now").
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def window_hint(headers: Mapping[str, str]) -> WindowHint | None:
    """The ``X-RateLimit-*`` headers of an answer (pure): None when it has no usable
    ``X-RateLimit-Limit``; a Remaining or Reset that is not a plain non-negative number is None.
    """
    limit = _header_number(headers.get("X-RateLimit-Limit"))
    if limit is None or limit < 1:
        return None
    remaining = _header_number(headers.get("X-RateLimit-Remaining"))
    reset = _header_number(headers.get("X-RateLimit-Reset"))
    return WindowHint(
        limit=int(limit),
        remaining=None if remaining is None else int(remaining),
        reset_s=reset,
    )


def _header_number(value: str | None) -> float | None:
    if value is None or len(value) > 20:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if math.isnan(number) or math.isinf(number) or number < 0:
        return None
    return number


def _seconds_until_http_date(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


# --------------------------------------------------------------------------- task and file objects


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _result_urls(result: object) -> tuple[str, ...]:
    if not isinstance(result, dict):
        return ()
    urls = [u for u in result.get("urls") or () if isinstance(u, str) and u]
    primary = result.get("primary_url")
    if isinstance(primary, str) and primary:
        urls = [primary, *(u for u in urls if u != primary)]
    return tuple(dict.fromkeys(urls))


def wallet_credits(payload: object) -> int:
    """``current_credits`` of a credits answer: a whole number in 0..``MAX_WALLET``, else a
    ``TransportError`` (an absurd wallet must not decide that the credits ran out, or not)."""
    value = int_or_none(payload.get("current_credits") if isinstance(payload, dict) else None)
    if value is None or not 0 <= value <= MAX_WALLET:
        shown = clean_text(repr(payload), 120)
        raise TransportError(f"GET /api/v1/credits answered no usable 'current_credits': {shown}")
    return value


def _credits(payload: Mapping[str, Any], name: str) -> int | None:
    """A task's credit field: absent or null is None; a whole number in 0..``MAX_CREDITS`` is
    itself; anything else (negative, huge, NaN, a string, a bool) is a ``BadAnswerError``."""
    value = payload.get(name)
    if value is None:
        return None
    number = int_or_none(value) if not isinstance(value, float) or math.isfinite(value) else None
    if number is None or not 0 <= number <= MAX_CREDITS:
        raise BadAnswerError(
            f"the task's {name} is {shown(value)}, not a whole number of credits in "
            f"0..{MAX_CREDITS:,}"
        )
    return number


def _timestamp(value: object) -> str | None:
    """An ISO-8601 timestamp as sent, or None when absent or unreadable (never an error)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        readable = parse_timestamp(value) is not None
    except (OverflowError, OSError, ValueError):
        readable = False
    return clean_text(value, 64) if readable else None


def checked_id(value: object, what: str) -> str:
    """``value`` if it is a safe id (``is_safe_id``), else a ``BadAnswerError`` naming it."""
    if isinstance(value, str) and is_safe_id(value):
        return value
    raise BadAnswerError(
        f"the {what} id {shown(value)} is not a safe id (1-128 characters of "
        "letters, digits and _.:-)"
    )


def parse_task(payload: object, *, replayed: bool = False) -> RemoteTask:
    """The task object of a 2xx answer; ``result`` and ``error`` may be null, status any text.

    The id must be safe (``is_safe_id``) and the credits in range, else ``BadAnswerError``;
    timestamps that do not parse are dropped; server text is cleaned (``clean_text``)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
        raise TransportError("the API answered 2xx without a task object (no 'id')")
    task_id = checked_id(payload["id"], "task")
    error = payload.get("error")
    error = error if isinstance(error, dict) else {}
    code, message = error.get("code"), error.get("message")
    status = payload.get("status")
    return RemoteTask(
        id=task_id,
        status=RemoteStatus.parse(status),
        raw_status=clean_text(status, 100) if isinstance(status, str) else None,
        reserved_credits=_credits(payload, "reserved_credits"),
        final_credits=_credits(payload, "final_credits"),
        result_urls=_result_urls(payload.get("result")),
        error_code=clean_text(code, 100) if isinstance(code, str) else None,
        error_message=clean_text(message) if isinstance(message, str) else None,
        replayed=replayed,
        created_at=_timestamp(payload.get("created_at")),
        updated_at=_timestamp(payload.get("updated_at")),
    )


def parse_uploaded_file(
    payload: object,
    *,
    name: str,
    size_bytes: int,
    mime_type: str = "application/octet-stream",
    now: float | None = None,
) -> UploadedFile:
    """The file object of a 2xx upload answer. Only ``url`` is required (the contract names
    only ``url`` and ``duration_token``): the id (``id``, ``file_id`` or absent: ""), MIME type,
    size and expiry are taken when present and sane, else the caller's ``mime_type`` (what
    batchgen detected), the local ``size_bytes``, and an expiry ``DEFAULT_FILE_TTL_S`` after
    ``now`` (so an upload of unknown lifetime is not reused forever)."""
    if not isinstance(payload, dict):
        raise TransportError("the Files API answered 2xx without a file object")
    url = payload.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise TransportError("the Files API answered 2xx without a file url")
    raw_id = payload.get("id") or payload.get("file_id")
    file_id = "" if raw_id is None or raw_id == "" else checked_id(raw_id, "file")
    mime, stored_name = payload.get("mime_type"), payload.get("name")
    size = int_or_none(payload.get("size_bytes"))
    return UploadedFile(
        id=file_id,
        url=url,
        mime_type=mime if isinstance(mime, str) and _MIME.fullmatch(mime) else mime_type,
        size_bytes=size if size is not None and 0 < size < 2**40 else size_bytes,
        name=clean_text(stored_name, 200) if isinstance(stored_name, str) and stored_name else name,
        expires_at=_timestamp(payload.get("expires_at")) or _default_expiry(now),
    )


_MIME = re.compile(r"[a-z]+/[A-Za-z0-9.+-]{1,100}")


def _default_expiry(now: float | None) -> str:
    when = datetime.fromtimestamp((time.time() if now is None else now) + DEFAULT_FILE_TTL_S, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def upload_filename(name: str, mime_type: str) -> str:
    """The file name an upload is sent under: ``name`` with the extension of its detected
    type (``hero.jpg`` holding PNG bytes is sent as ``hero.png``); unknown types keep it."""
    extensions = _EXTENSIONS.get(mime_type)
    if not extensions:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and f".{ext.lower()}" in extensions:
        return name
    return (stem if dot and stem else name) + extensions[0]


def result_gone(status: int) -> bool:
    """401/403/404/410 on a result URL (any host, the API's included) mean it expired or its
    signature no longer holds: fetch the task again. Never an ``AuthError``."""
    return status in (401, 403, 404, 410)


# --------------------------------------------------------------------------- stats


@dataclass
class ClientStats:
    """Requests by (endpoint, HTTP status; None = no answer), 429s and retries, per client.

    Counted from the client's events, in ``record`` and nowhere else.
    """

    by_endpoint: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    rate_limited: int = 0
    retries: int = 0

    def record(self, event: Event) -> None:
        """Count one request event (others are ignored): usable as an ``EventBus`` subscriber."""
        if isinstance(event, RequestAnswered):
            self.by_endpoint[(event.endpoint, event.status)] += 1
        elif isinstance(event, RateLimited):
            self.rate_limited += 1
        elif isinstance(event, RequestRetried):
            self.retries += 1

    @property
    def requests(self) -> int:
        return sum(self.by_endpoint.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view, shaped like the emulator ledger's request counts."""
        rows = [
            {"endpoint": e, "status": s, "count": n}
            for (e, s), n in sorted(
                self.by_endpoint.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))
            )
        ]
        return {
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "by_endpoint": rows,
        }
