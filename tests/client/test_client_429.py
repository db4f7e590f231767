"""One path for a 429 and one note per exchange: waited for once, counted once, told as events."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest
from client_support import NO_RETRY, generation_body, requests_to, wait_terminal

from batchgen.errors import RateLimitedError, RetryExhaustedError
from batchgen.events import Event, EventBus, RateLimited, RequestAnswered, RequestRetried
from batchgen.limits import RequestLimiter
from batchgen.retry import RetryPolicy

ONE_PER_SECOND = {
    "rate_limit_per_s": 1.0,
    "rate_limit_window_s": 1.0,
    "retry_after_mode": "seconds",
}
CREDITS = "GET /api/v1/credits"


def of(kind: type[Event], events: list[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_429_is_waited_for_once(make_emulator, make_client) -> None:
    """With a limiter, a 429 with Retry-After 1 s holds its retry back about 1 s (its own
    Retry-After, overlapping the limiter's pause), not that and then the retry policy's 3 s
    backoff on top."""
    slow_backoff = RetryPolicy(max_attempts=3, base_delay_s=3, max_delay_s=3, jitter="none")
    limiter = RequestLimiter(1000, burst=2)  # two at once: the server allows one per second
    seen: list[Event] = []
    async with (
        make_emulator(**ONE_PER_SECOND) as emu,
        make_client(emu, limiter=limiter, retry=slow_backoff, events=EventBus(seen.append)) as c,
    ):
        started = time.monotonic()
        async with anyio.create_task_group() as tg:  # one 200, one 429 (Retry-After: 1) then 200
            tg.start_soon(c.get_credits)
            tg.start_soon(c.get_credits)
        waited_s = time.monotonic() - started
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert counts == {200: 2, 429: 1}
    assert 0.95 <= waited_s < 1.8
    [retried] = of(RequestRetried, seen)
    assert retried.attempt == 1 and 0.9 <= retried.delay_s <= 1.0
    assert retried.error.startswith("RateLimitedError: ")


@pytest.mark.anyio
async def test_a_429_is_counted_once(make_emulator, make_client) -> None:
    """One 429 is one RateLimited event, one count in client.stats, one rate cut and one pause,
    with the Retry-After that wire read into the error, the event and the limiter alike."""
    limiter = RequestLimiter(1000, burst=2)
    seen: list[Event] = []
    async with (
        make_emulator(**ONE_PER_SECOND) as emu,
        make_client(emu, limiter=limiter, retry=NO_RETRY, events=EventBus(seen.append)) as c,
    ):
        both = await asyncio.gather(c.get_credits(), c.get_credits(), return_exceptions=True)
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    [failed] = [outcome for outcome in both if isinstance(outcome, BaseException)]
    assert isinstance(failed, RetryExhaustedError)
    err = failed.last
    assert isinstance(err, RateLimitedError) and err.retry_after_s == 1
    assert counts[429] == c.stats.rate_limited == 1
    [limited] = of(RateLimited, seen)
    assert limited == RateLimited(CREDITS, 1.0, limiter.current_rate_per_s, at=limited.at)
    assert limiter.current_rate_per_s < 1000 and 0.9 <= limiter.paused_for_s <= 1.0
    assert c.stats.by_endpoint[(CREDITS, 429)] == 1 and c.stats.retries == 0


@pytest.mark.anyio
async def test_every_exchange_is_one_event(make_emulator, make_client, tmp_path) -> None:
    """Each HTTP exchange emits exactly one RequestAnswered (status None when nothing answered)
    and each retry one RequestRetried; client.stats and the emulator's ledger say the same."""
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
    seen: list[Event] = []
    async with (
        make_emulator() as emu,
        make_client(emu, retry=policy, events=EventBus(seen.append)) as c,
    ):
        task = await c.create_generation(generation_body(), idempotency_key="k.events")
        done = await wait_terminal(c, task.id)
        await c.download(done.result_urls[0], tmp_path / "job.mp4")
        emu.set_switches(drop_rate=1.0)
        with pytest.raises(RetryExhaustedError):
            await c.get_credits()
        ledger = emu.ledger()
    answered = of(RequestAnswered, seen)
    statuses = [(e.endpoint, e.status) for e in answered]
    served = sum(row["count"] for row in ledger["requests"] if row["status"])
    assert len([s for s in statuses if s[1] is not None]) == served
    assert statuses[0] == ("POST /api/v1/generations", 201) and ("GET result", 200) in statuses
    # Three attempts, three exchanges with no answer (aiohttp itself may resend an idempotent
    # GET once on a reused connection, so the emulator can see more drops than that).
    assert [s for s in statuses if s[0] == CREDITS] == [(CREDITS, None)] * 3
    assert requests_to(ledger, "GET", "/api/v1/credits").keys() == {0}
    retried = [(e.endpoint, e.attempt) for e in of(RequestRetried, seen)]
    assert retried == [(CREDITS, 1), (CREDITS, 2)] and of(RateLimited, seen) == []
    assert c.stats.requests == len(answered) and c.stats.retries == 2
    assert c.stats.by_endpoint[("GET result", 200)] == 1
