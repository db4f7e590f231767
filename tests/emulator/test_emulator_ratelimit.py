"""Per-key sliding-window rate limiting and its variants."""

from __future__ import annotations

import email.utils
import time

import anyio
import pytest

from batchgen.emulator import ApiKey


async def burst(api, n, key=None, path="/api/v1/credits"):
    """Send ``n`` requests back to back; return the replies."""
    kwargs = {} if key is None else {"key": key}
    return [await api.call("GET", path, **kwargs) for _ in range(n)]


@pytest.mark.anyio
async def test_over_the_limit_gets_429_with_headers(open_api):
    """The request after the limit gets 429 rate_limited with Retry-After and X-RateLimit-*."""
    async with open_api(rate_limit_per_s=5.0) as api:
        replies = await burst(api, 6)
    assert [r.status for r in replies] == [200] * 5 + [429]
    last = replies[-1]
    assert last.code == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["X-RateLimit-Limit"] == "5"
    assert last.headers["X-RateLimit-Remaining"] == "0"
    assert int(last.headers["X-RateLimit-Reset"]) >= 1
    assert replies[0].headers["X-RateLimit-Remaining"] == "4"


@pytest.mark.anyio
async def test_window_slides_and_requests_pass_again(open_api):
    """Once the oldest requests leave the window, requests are accepted again."""
    async with open_api(rate_limit_per_s=2.0) as api:
        first = await burst(api, 3)
        assert first[-1].status == 429
        await anyio.sleep(1.05)
        again = await api.call("GET", "/api/v1/credits")
    assert again.status == 200


@pytest.mark.anyio
async def test_limit_is_per_key_and_covers_public_models(open_api):
    """Each key has its own window, and the public models endpoint counts too."""
    keys = (ApiKey("rvya_sk_a"), ApiKey("rvya_sk_b"))
    async with open_api(keys=keys, rate_limit_per_s=2.0) as api:
        a = await burst(api, 3, key="rvya_sk_a", path="/api/v1/models")
        b = await burst(api, 2, key="rvya_sk_b")
    assert [r.status for r in a] == [200, 200, 429]
    assert [r.status for r in b] == [200, 200]


@pytest.mark.anyio
async def test_retry_after_can_be_left_out(open_api):
    """With retry_after_mode 'none' a 429 carries no Retry-After header."""
    async with open_api(rate_limit_per_s=1.0, retry_after_mode="none") as api:
        replies = await burst(api, 2)
    assert replies[-1].status == 429
    assert "Retry-After" not in replies[-1].headers


@pytest.mark.anyio
async def test_retry_after_can_be_an_http_date(open_api):
    """With retry_after_mode 'http-date' Retry-After is an HTTP date at least a second ahead."""
    async with open_api(rate_limit_per_s=1.0, retry_after_mode="http-date") as api:
        replies = await burst(api, 2)
    when = email.utils.parsedate_to_datetime(replies[-1].headers["Retry-After"])
    assert when.timestamp() >= time.time() + 0.5


@pytest.mark.anyio
async def test_429_burst_outlasts_the_window(open_api):
    """A seeded 429 burst keeps refusing the key for longer than one window, then ends."""
    async with open_api(rate_limit_window_s=0.1, rate_limit_burst_s=1.0) as api:
        api.emu.set_switches(rate_limit_burst_rate=1.0)
        started = await api.call("GET", "/api/v1/credits")
        api.emu.set_switches(rate_limit_burst_rate=0.0)
        await anyio.sleep(0.3)  # three windows later: still refused
        during = await api.call("GET", "/api/v1/credits")
        await anyio.sleep(0.9)
        after = await api.call("GET", "/api/v1/credits")
    assert (started.status, during.status, after.status) == (429, 429, 200)
    assert int(during.headers["Retry-After"]) >= 1
