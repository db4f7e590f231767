"""The client's pure wire helpers: the error table, envelopes, task and file objects, base URLs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.client import RivyaClient
from batchgen.errors import (
    RETRYABLE,
    AuthError,
    ClientRequestError,
    ConfigError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitedError,
    ScopeDeniedError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    ValidationFailedError,
)
from batchgen.models import RemoteStatus
from batchgen.wire import (
    check_base_url,
    error_from_answer,
    error_type,
    is_loopback_host,
    parse_envelope,
    parse_retry_after,
    parse_task,
    parse_uploaded_file,
)


def envelope(code: str, message: str = "m", request_id: str = "req_1") -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "requestId": request_id}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "api_key_missing", AuthError),
        (401, "api_key_invalid", AuthError),
        (401, "api_key_revoked", AuthError),
        (401, "api_key_expired", AuthError),
        (401, "something_new", AuthError),
        (403, "api_scope_denied", ScopeDeniedError),
        (400, "validation_failed", ValidationFailedError),
        (404, "not_found", NotFoundError),
        (409, "idempotency_conflict", IdempotencyConflictError),
        (402, "insufficient_credits", InsufficientCreditsError),
        (400, "insufficient_credits", InsufficientCreditsError),
        (402, "payment_required", InsufficientCreditsError),
        (429, "rate_limited", RateLimitedError),
        (429, "http_429", RateLimitedError),
        (503, "public_api_disabled", ServiceUnavailableError),
        (503, "service_unavailable", ServerError),
        (500, "internal_error", ServerError),
        (502, "brand_new_code", ServerError),
        (418, "brand_new_code", ClientRequestError),
        (422, "validation_failed", ValidationFailedError),
        (405, "method_not_allowed", ClientRequestError),
    ],
)
def test_error_table(status: int, code: str, expected: type) -> None:
    """Each (status, code) of the contract's table maps to its error type."""
    assert error_type(status, code) is expected


@given(st.integers(400, 599).filter(lambda s: s != 429), st.text(max_size=30))
def test_unknown_codes_retry_on_5xx_only(status: int, code: str) -> None:
    """An unknown code is retryable on a 5xx and never on a 4xx (429 aside)."""
    retryable = issubclass(error_type(status, f"x_{code}"), RETRYABLE)
    assert retryable == (status >= 500)


def test_envelope_fields_are_kept() -> None:
    """code, message and requestId of the envelope end up on the typed error."""
    err = error_from_answer(
        400, envelope("validation_failed", "duration must be 3..15", "req_9"), {}, endpoint="POST x"
    )
    assert isinstance(err, ValidationFailedError)
    assert (err.code, err.status, err.request_id) == ("validation_failed", 400, "req_9")
    assert "duration must be 3..15" in str(err) and "req_9" in str(err)


@pytest.mark.parametrize(
    "body",
    [b"<html>Bad Gateway</html>", b"", b"\xff\xfe", b"[1, 2]", b'{"error": "nope"}', b"null"],
)
def test_non_envelope_bodies(body: bytes) -> None:
    """Bodies that are not an envelope still give a typed error, keyed by the HTTP status."""
    env = parse_envelope(502, body, {"Content-Type": "text/html", "X-Request-Id": "req_h"})
    assert env.code == "http_502" and env.request_id == "req_h"
    assert isinstance(error_from_answer(502, body, {}, endpoint="GET x"), ServerError)


def test_scope_named_from_message_or_endpoint() -> None:
    """A 403 names the scope its message mentions, else the scope the endpoint needs."""
    named = error_from_answer(
        403, envelope("api_scope_denied", "lacks the scope 'files:create'"), {}, endpoint="POST f"
    )
    fallback = error_from_answer(
        403, envelope("api_scope_denied", "denied"), {}, endpoint="GET c", scope="credits:read"
    )
    assert "files:create" in str(named) and "credits:read" in str(fallback)


def test_rate_limited_retry_after_forms() -> None:
    """Retry-After in seconds or as an HTTP date (on the server's clock) becomes seconds."""
    body = envelope("rate_limited")
    seconds = error_from_answer(429, body, {"Retry-After": "3"}, endpoint="GET x")
    dated = error_from_answer(
        429,
        body,
        {"Retry-After": "Mon, 11 May 2026 00:00:05 GMT", "Date": "Mon, 11 May 2026 00:00:00 GMT"},
        endpoint="GET x",
    )
    missing = error_from_answer(429, body, {}, endpoint="GET x")
    assert isinstance(seconds, RateLimitedError) and seconds.retry_after_s == 3
    assert isinstance(dated, RateLimitedError) and dated.retry_after_s == 5
    assert isinstance(missing, RateLimitedError) and missing.retry_after_s is None
    now = datetime(2026, 5, 11, 0, 0, 4, tzinfo=UTC)
    late = error_from_answer(
        429, body, {"Retry-After": "Mon, 11 May 2026 00:00:05 GMT"}, endpoint="x", now=now
    )
    assert isinstance(late, RateLimitedError) and late.retry_after_s == 1


def test_task_parsing_copes_with_nulls_and_new_statuses() -> None:
    """A failed task with error null, a null result and an unknown status all parse."""
    failed = parse_task({"id": "task_1", "status": "failed", "result": None, "error": None})
    assert (failed.status, failed.error_code, failed.result_urls) == ("failed", None, ())
    odd = parse_task({"id": "task_2", "status": "paused_for_review", "reserved_credits": 90})
    assert odd.status is RemoteStatus.UNKNOWN and odd.raw_status == "paused_for_review"
    assert not odd.is_terminal and odd.reserved_credits == 90
    done = parse_task(
        {
            "id": "task_3",
            "status": "succeeded",
            "final_credits": 90,
            "result": {
                "primary_url": "https://x/b.mp4",
                "urls": ["https://x/a.mp4", "https://x/b.mp4"],
            },
        },
        replayed=True,
    )
    assert done.result_urls == ("https://x/b.mp4", "https://x/a.mp4") and done.replayed
    err = parse_task({"id": "t", "status": "failed", "error": {"code": "generation_failed"}})
    assert err.error_code == "generation_failed"


@pytest.mark.parametrize("payload", [None, [], {}, {"id": ""}, {"id": 5}, "task_1"])
def test_task_without_id_is_a_transport_error(payload: object) -> None:
    """A 2xx without a task object is an unusable answer (retryable), never a crash."""
    with pytest.raises(TransportError):
        parse_task(payload)


@pytest.mark.parametrize("field", ["id", "file_id"])
def test_file_id_variants(field: str) -> None:
    """The Files API's id may be called id or file_id."""
    upload = parse_uploaded_file(
        {field: "file_1", "url": "https://x/f.png", "mime_type": "image/png"},
        name="f.png",
        size_bytes=10,
    )
    assert (upload.id, upload.url, upload.size_bytes, upload.name) == (
        "file_1",
        "https://x/f.png",
        10,
        "f.png",
    )
    with pytest.raises(TransportError):
        parse_uploaded_file({field: "file_1"}, name="f.png", size_bytes=10)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.200.3.4", True),
        ("::1", True),
        ("[::1]", True),
        ("128.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    """Only localhost, 127.0.0.0/8 and ::1 count as loopback."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:9", "https://rivya.ai"]
)
def test_key_allowed_over_https_or_loopback(url: str) -> None:
    """A key may go over https anywhere, and over plain http to loopback only."""
    assert str(check_base_url(url, "rvya_sk_x")).startswith(url.rstrip("/"))


@pytest.mark.parametrize(
    "url",
    ["http://rivya.ai", "http://10.0.0.1:80", "ftp://rivya.ai", "rivya.ai", "https://u:p@rivya.ai"],
)
def test_unsafe_base_urls_are_refused(url: str) -> None:
    """A key over plain http to a non-loopback host, or a malformed base URL, is a ConfigError."""
    with pytest.raises(ConfigError):
        RivyaClient(url, "rvya_sk_secret_value")


def test_plain_http_without_a_key_is_allowed() -> None:
    """Without a key nothing secret travels, so plain http is accepted (public endpoints)."""
    assert RivyaClient("http://rivya.example", None).base_url == "http://rivya.example"


@pytest.mark.parametrize("key", ["", "rvya_sk_a b", "rvya_sk_a\nInjected: 1", "rvya_sk_\x00"])
def test_malformed_keys_are_refused_without_echoing(key: str) -> None:
    """A key that cannot be a header value is refused, and the message does not contain it."""
    with pytest.raises(ConfigError) as info:
        RivyaClient("https://rivya.ai", key)
    assert not key or key not in str(info.value)


def test_repr_hides_the_key() -> None:
    """The client's repr says whether a key is set, never what it is."""
    client = RivyaClient("https://rivya.ai", "rvya_sk_very_secret")
    assert "rvya_sk_very_secret" not in repr(client) and "<set>" in repr(client)
    assert "very_secret" not in str(vars(client).get("stats"))


# ------------------------------------------------------------------ Retry-After, read once here


@given(st.integers(0, 10**6))
def test_retry_after_seconds(seconds: int) -> None:
    """Retry-After in delta-seconds parses to that many seconds."""
    assert parse_retry_after(str(seconds)) == seconds
    assert parse_retry_after(f" {seconds} ") == seconds


@given(st.integers(0, 86_400))
def test_retry_after_http_date(seconds: int) -> None:
    """Retry-After as an HTTP date parses to the seconds between 'now' and that date."""
    now = datetime(2026, 5, 11, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=seconds), usegmt=True)
    assert parse_retry_after(header, now) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf", "Mon, 99 Foo 2026 xx:yy:zz GMT"])
def test_retry_after_unreadable(value: str | None) -> None:
    """A missing or unreadable Retry-After yields None, so the caller backs off on its own."""
    assert parse_retry_after(value) is None


def test_retry_after_never_negative() -> None:
    """A negative delta or a date in the past means 'retry now', never a negative wait."""
    now = datetime(2026, 5, 11, tzinfo=UTC)
    assert parse_retry_after("-5") == 0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
