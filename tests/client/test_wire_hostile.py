"""The pure readers of untrusted answers: clean_text, safe_url, ids, uploads with little data."""

from __future__ import annotations

import pytest

from batchgen.errors import BadAnswerError
from batchgen.models import parse_timestamp
from batchgen.wire import (
    clamp_retry_after,
    clean_text,
    is_safe_id,
    json_or_none,
    parse_task,
    parse_uploaded_file,
    safe_url,
    upload_filename,
)


def test_clean_text_removes_escapes_and_controls() -> None:
    """ANSI escapes vanish, breaks become spaces, other controls '?', and length is capped."""
    assert clean_text("a\x1b[31mred\x1b[0m\nb\x07\x1b]0;t\x07c\u202e") == "ared b?c?"
    assert len(clean_text("x" * 10_000)) == 500


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://rvya_sk_k:pw@rivya.ai/api/v1?key=1#f", "https://rivya.ai/api/v1"),
        ("https://KEY@host", "https://host"),
        ("not a url?secret", "not a url"),
    ],
)
def test_safe_url(url: str, shown: str) -> None:
    """safe_url drops userinfo, query and fragment, even from text that is no URL."""
    assert safe_url(url) == shown


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "é", "x" * 129, "-a"])
def test_unsafe_ids(bad: str) -> None:
    """Ids that could escape a URL path or a terminal are not safe."""
    assert not is_safe_id(bad)
    with pytest.raises(BadAnswerError):
        parse_task({"id": bad or "..", "status": "queued"})


def test_bad_timestamps_are_dropped() -> None:
    """A timestamp that does not parse is None, never an error."""
    task = parse_task({"id": "t1", "status": "queued", "created_at": "yesterday-ish"})
    assert task.created_at is None


def test_upload_with_only_a_url() -> None:
    """Only url is required: the id is empty, the MIME type and size are ours, and the upload
    expires within the hour."""
    up = parse_uploaded_file(
        {"url": "https://x/f"}, name="f.png", size_bytes=7, mime_type="image/png", now=1000.0
    )
    assert (up.id, up.mime_type, up.size_bytes, up.name) == ("", "image/png", 7, "f.png")
    assert parse_timestamp(up.expires_at) == 4600.0


@pytest.mark.parametrize(
    ("name", "mime", "sent"),
    [
        ("hero.jpg", "image/png", "hero.png"),
        ("hero.jpeg", "image/jpeg", "hero.jpeg"),
        ("hero", "image/webp", "hero.webp"),
        ("hero.bin", "application/octet-stream", "hero.bin"),
    ],
)
def test_upload_filename(name: str, mime: str, sent: str) -> None:
    """The upload's name carries the extension of the detected type."""
    assert upload_filename(name, mime) == sent


def test_clamp_retry_after() -> None:
    """A Retry-After is honoured for at most an hour and at most the deadline."""
    assert clamp_retry_after(10**9, None) == 3600
    assert clamp_retry_after(10**9, 30) == 30
    assert clamp_retry_after(2, 30) == 2 and clamp_retry_after(None, 30) is None


def test_a_wallet_answer_is_range_checked() -> None:
    """A wallet that is negative, absurd or not a whole number is a bad answer, never a
    balance that would decide whether the credits ran out."""
    from batchgen.errors import TransportError
    from batchgen.wire import wallet_credits

    assert wallet_credits({"current_credits": 1_234_567}) == 1_234_567
    for bad in (-90, 2**63, "90", 1.5, None, True):
        with pytest.raises(TransportError, match="no usable 'current_credits'"):
            wallet_credits({"current_credits": bad})
    with pytest.raises(TransportError):
        wallet_credits([])


@pytest.mark.parametrize("depth", [10, 100_000])
def test_json_nested_past_the_parser_is_not_json(depth: int) -> None:
    """A hostile body nested deeper than Python's parser can go is "not JSON" (the caller's
    clear error), never a RecursionError out of the client."""
    body = b"[" * depth + b"]" * depth
    parsed = json_or_none(body)
    assert (parsed is not None) == (depth == 10)
