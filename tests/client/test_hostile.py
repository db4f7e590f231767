"""The real RivyaClient against a hostile server: bounded downloads, checked answers, a key
that stays home, and messages safe for a terminal."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from client_support import NO_RETRY
from hostile_server import VIDEO, Hostile, running_hostile

from batchgen.client import RivyaClient
from batchgen.errors import (
    BadAnswerError,
    BatchgenError,
    ClientRequestError,
    DownloadTimeoutError,
    ResultExpiredError,
    ResultRefusedError,
    RetryExhaustedError,
    ServiceDisabledError,
    TransportError,
)
from batchgen.limits import RequestLimiter
from batchgen.retry import RetryPolicy

SECRET = "rvya_sk_HOSTILE_0123456789abcdef"
CAP = 100_000
DEADLINE_S = 1.0
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
TWO_TRIES = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.01, deadline_s=10)


@contextlib.asynccontextmanager
async def hostile_pair(**settings: Any) -> AsyncIterator[tuple[Hostile, Hostile, RivyaClient]]:
    """The API's server, another origin (a CDN) it redirects to, and a client for the first."""
    settings.setdefault("retry", NO_RETRY)
    settings.setdefault("max_result_bytes", CAP)
    settings.setdefault("download_deadline_s", DEADLINE_S)
    settings.setdefault("download_idle_s", DEADLINE_S)
    async with running_hostile() as api, running_hostile() as cdn:
        api.redirect_to = cdn.base_url
        async with RivyaClient(api.base_url, SECRET, **settings) as client:
            yield api, cdn, client
    assert cdn.auth_paths() == [], "the key reached another origin"
    assert all(p.startswith("/api/v1/") for p in api.auth_paths())
    assert not any(p.startswith(("/r/", "/api/v1/results/")) for p in api.auth_paths())


def assert_clean(exc: BaseException) -> None:
    for text in (str(exc), getattr(exc, "message", "")):
        assert SECRET not in text and not CONTROL.search(text.replace("\n  ", " ")), text


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["big-declared", "endless"])
async def test_oversized_results_are_refused(kind: str, tmp_path: Path):
    """A result over max_result_bytes (declared or not) is refused as result_too_large,
    quickly, and nothing is left on disk."""
    async with hostile_pair(download_deadline_s=30) as (api, _, c):
        started = time.monotonic()
        with pytest.raises(ResultRefusedError) as info:
            await c.download(f"{api.base_url}/r/{kind}", tmp_path / "v.mp4")
    assert info.value.code == "result_too_large" and time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []
    assert_clean(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["endless", "trickle"])
async def test_download_deadline_holds(kind: str, tmp_path: Path):
    """An endless (under a huge cap) or trickling result fails with DownloadTimeoutError
    within a few deadlines, and leaves no temp file."""
    async with hostile_pair(max_result_bytes=10**12, retry=TWO_TRIES) as (api, _, c):
        started = time.monotonic()
        with pytest.raises(RetryExhaustedError) as info:
            await c.download(f"{api.base_url}/r/{kind}", tmp_path / "v.mp4")
    elapsed = time.monotonic() - started
    assert isinstance(info.value.last, DownloadTimeoutError) and elapsed < 2 * DEADLINE_S * 3
    assert info.value.last.code == "download_timeout"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_truncated_result_is_a_retried_transport_error(tmp_path: Path):
    """A body that ends before its Content-Length is a transport error, retried, and no
    partial file remains."""
    async with hostile_pair(retry=TWO_TRIES) as (api, _, c):
        with pytest.raises(RetryExhaustedError) as info:
            await c.download(f"{api.base_url}/r/truncated", tmp_path / "v.mp4")
        assert api.hits["/r/truncated"] == 2
    assert isinstance(info.value.last, TransportError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_non_video_result_is_refused(tmp_path: Path):
    """A result whose first bytes are no video container is refused as result_not_video."""
    async with hostile_pair() as (api, _, c):
        with pytest.raises(ResultRefusedError) as info:
            await c.download(f"{api.base_url}/r/not-video", tmp_path / "v.mp4")
        assert await c.download(f"{api.base_url}/r/ok", tmp_path / "ok.mp4") == len(VIDEO)
    assert info.value.code == "result_not_video"
    assert [p.name for p in tmp_path.iterdir()] == ["ok.mp4"]


@pytest.mark.anyio
@pytest.mark.parametrize("credits", [2**63, -5, "90", float("nan"), True, 1.5])
async def test_absurd_credits_are_a_bad_answer(credits: Any):
    """Credits that are not whole numbers in 0..1,000,000 make a BadAnswerError naming the
    field, never an OverflowError."""
    async with hostile_pair() as (api, _, c):
        api.task = {"id": "task_1", "status": "queued", "reserved_credits": credits}
        with pytest.raises(BadAnswerError) as info:
            await c.get_generation("task_1")
    assert info.value.code == "bad_answer" and "reserved_credits" in info.value.message
    assert_clean(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("bad", ["..", ".", "a/b", "\x1b[31mred", "a\nb", "x" * 200, ""])
async def test_unsafe_task_ids_are_a_bad_answer(bad: str):
    """A task id unsafe in a URL or a terminal is a bad answer (or, empty, no task at all)."""
    async with hostile_pair() as (api, _, c):
        api.task = {"id": bad, "status": "queued"}
        with pytest.raises((BadAnswerError, TransportError)) as info:
            await c.create_generation({"model": "kling-3-0"}, idempotency_key="k1")
        with pytest.raises(BadAnswerError):
            await c.get_generation(bad or "..")
    assert_clean(info.value)


@pytest.mark.anyio
async def test_echoed_key_and_escapes_never_reach_messages():
    """A task whose error or result URL echoes the key, with terminal escapes, is scrubbed and
    cleaned; a URL to fetch that carries the key is a bad answer, never requested."""
    async with hostile_pair() as (api, _, c):
        api.task = {
            "id": "task_1",
            "status": "failed\x1b[2J",
            "error": {"code": "x\x07", "message": "key $KEY \x1b]0;pwned\x07\n\rmore"},
        }
        task = await c.get_generation("task_1")
        api.task = {"id": "task_2", "status": "succeeded", "result": {"urls": ["$URL"]}}
        api.task["result"]["urls"] = [f"{api.base_url}/r/ok?sig=$KEY"]
        echoed = await c.get_generation("task_2")
        with pytest.raises(BadAnswerError) as info:
            await c.download(f"{api.base_url}/r/ok?sig={SECRET}", Path("never.mp4"))
    for text in (task.error_message or "", task.error_code or "", task.raw_status or ""):
        assert SECRET not in text and not CONTROL.search(text), text
    assert "key <redacted>" in (task.error_message or "")
    assert echoed.result_urls == (f"{api.base_url}/r/ok?sig=<redacted>",)
    assert_clean(info.value)
    assert "/r/ok" not in [s.path for s in api.seen]


@pytest.mark.anyio
async def test_503_retry_after_is_honoured():
    """A 503 public_api_disabled with Retry-After: 1 makes the next attempt wait about that."""
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=5, deadline_s=20)
    async with hostile_pair(retry=policy) as (api, _, c):
        api.credits_mode = "503-once"
        started = time.monotonic()
        assert await c.get_credits() == 5
    assert 0.9 <= time.monotonic() - started < 5


@pytest.mark.anyio
async def test_503_retry_after_is_capped_by_max_delay():
    """A 503's Retry-After never makes a retry wait longer than the policy's max_delay_s."""
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.05, deadline_s=20)
    async with hostile_pair(retry=policy) as (api, _, c):
        api.credits_mode = "503"
        started = time.monotonic()
        with pytest.raises(RetryExhaustedError) as info:
            await c.get_credits()
    assert isinstance(info.value.last, ServiceDisabledError)
    assert info.value.last.retry_after_s == 1 and time.monotonic() - started < 0.9


@pytest.mark.anyio
async def test_huge_retry_after_gives_up_without_pausing_forever():
    """A 429 with Retry-After 10**9 is clamped to the deadline: the call gives up at once as a
    transient error and the shared limiter pauses no longer than the deadline."""
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.001, max_delay_s=0.01, deadline_s=3)
    limiter = RequestLimiter(50, burst=5)
    async with hostile_pair(retry=policy, limiter=limiter) as (api, _, c):
        api.credits_mode = "429-huge"
        started = time.monotonic()
        with pytest.raises(RetryExhaustedError):
            await c.get_credits()
        assert limiter.paused_for_s <= 3
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_redirect_on_an_api_call_is_an_error():
    """An API call answered 302 to another origin is a clear error; nothing is followed and
    the message shows no query string."""
    async with hostile_pair() as (api, cdn, c):
        api.credits_mode = "redirect"
        with pytest.raises(ClientRequestError) as info:
            await c.get_credits()
    assert info.value.code == "http_302" and "redirect" in info.value.message
    assert "token" not in str(info.value) and cdn.seen == []
    assert_clean(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/r/redirect", "/api/v1/results/redirect"])
async def test_result_redirect_is_followed_without_the_key(path: str, tmp_path: Path):
    """A result URL (even one under /api/v1/) that redirects to another origin is followed
    there without the key."""
    async with hostile_pair() as (api, cdn, c):
        assert await c.download(f"{api.base_url}{path}", tmp_path / "v.mp4") == len(VIDEO)
    assert [(s.path, s.authorized) for s in cdn.seen] == [("/r/ok", False)]


@pytest.mark.anyio
@pytest.mark.parametrize("status", ["401", "403"])
async def test_result_401_403_on_the_api_origin_is_expired(status: str, tmp_path: Path):
    """401/403 on a result URL, even on the API's own origin, is ResultExpiredError, never a
    run-stopping AuthError."""
    async with hostile_pair() as (api, _, c):
        with pytest.raises(ResultExpiredError) as info:
            await c.download(f"{api.base_url}/r/{status}", tmp_path / "v.mp4")
    assert status in info.value.message and isinstance(info.value, BatchgenError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_a_key_echoed_in_json_escapes_is_scrubbed_too():
    """The key echoed as JSON escapes (every character as \\uXXXX) is not the key's bytes, but
    it parses to the key: it is scrubbed from the parsed answer all the same."""
    async with hostile_pair() as (api, _, c):
        api.task = {
            "id": "task_1",
            "status": "failed",
            "error": {"code": "x", "message": "key $EKEY"},
            "result": {"urls": ["$URL"]},
        }
        api.task["result"]["urls"] = [f"{api.base_url}/r/ok?sig=$EKEY"]
        task = await c.get_generation("task_1")
    assert task.error_message is not None and "key <redacted>" in task.error_message
    assert SECRET not in repr(task)


@pytest.mark.anyio
async def test_deeply_nested_json_with_escapes_is_an_error_not_a_crash():
    """A body the parser can just manage, nested as deep as it goes and with escapes in it
    (so the key scrub walks it), is a transport error, never a RecursionError."""
    async with hostile_pair() as (api, _, c):
        api.task = {"id": "task_1", "status": "queued", "deep": "$DEEP"}
        with pytest.raises(RetryExhaustedError) as info:
            await c.get_generation("task_1")
    assert isinstance(info.value.last, TransportError)
    assert "nested too deeply" in info.value.last.message
    assert_clean(info.value)
