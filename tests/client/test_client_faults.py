"""Rate limits, dropped connections and flaky answers from the real emulator: retried safely."""

from __future__ import annotations

import anyio
import pytest
from client_support import NO_RETRY, generation_body, requests_to

from batchgen.errors import RateLimitedError, RetryExhaustedError, TransportError
from batchgen.events import Event, EventBus, RateLimited
from batchgen.limits import RequestLimiter
from batchgen.retry import RetryPolicy

CREATE = ("POST", "/api/v1/generations")


async def first_429(c) -> RateLimitedError:
    """Spend the emulator's one-request window, then return the 429 the next request gets."""
    await c.get_credits()
    with pytest.raises(RetryExhaustedError) as info:
        await c.get_credits()
    assert isinstance(info.value.last, RateLimitedError)
    return info.value.last


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "low", "high"), [("seconds", 1, 1), ("http-date", 0, 3), ("none", None, None)]
)
async def test_retry_after_forms(make_emulator, make_client, mode, low, high):
    """A 429 becomes RateLimitedError whose retry_after_s comes from seconds, a date, or nothing."""
    switches = {"rate_limit_per_s": 1.0, "rate_limit_window_s": 1.0, "retry_after_mode": mode}
    async with make_emulator(**switches) as emu, make_client(emu, retry=NO_RETRY) as c:
        err = await first_429(c)
    assert err.status == 429 and err.code == "rate_limited"
    if low is None:
        assert err.retry_after_s is None
    else:
        assert err.retry_after_s is not None and low <= err.retry_after_s <= high
    assert c.stats.rate_limited == 1


@pytest.mark.anyio
async def test_rate_limited_requests_are_retried_and_slow_the_limiter(make_emulator, make_client):
    """429s are retried after Retry-After until every call succeeds, and the limiter slows down."""
    limiter = RequestLimiter(50, burst=10)
    switches = {"rate_limit_per_s": 4.0, "rate_limit_window_s": 0.5}
    limited: list[Event] = []
    bus = EventBus(lambda e: limited.append(e) if isinstance(e, RateLimited) else None)
    async with (
        make_emulator(**switches) as emu,
        make_client(emu, limiter=limiter, events=bus) as c,
    ):
        results: list[int] = []

        async def one() -> None:
            results.append(await c.get_credits())

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(one)
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert len(results) == 4 and counts[200] == 4 and counts[429] >= 1
    assert counts[429] == c.stats.rate_limited == len(limited)
    assert limiter.current_rate_per_s < 50


@pytest.mark.anyio
async def test_429_burst_longer_than_a_window_is_survived(make_emulator, make_client):
    """A burst of 429s lasting more than two windows is waited out, and the call then succeeds."""
    switches = {"rate_limit_burst_rate": 1.0, "rate_limit_burst_s": 2.2}
    patient = RetryPolicy(max_attempts=10, base_delay_s=0.05, max_delay_s=1, deadline_s=30)
    async with make_emulator(**switches) as emu:
        async with make_client(emu, retry=NO_RETRY) as starter:
            with pytest.raises(RetryExhaustedError):
                await starter.get_credits()  # this request starts the burst
        emu.set_switches(rate_limit_burst_rate=0.0)
        async with make_client(emu, retry=patient) as c:
            with anyio.fail_after(20):
                assert await c.get_credits() > 0
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert c.stats.rate_limited >= 2 and counts[429] == 1 + c.stats.rate_limited
    assert counts[200] == 1


@pytest.mark.anyio
async def test_dropped_create_is_retried_with_the_same_key(make_emulator, make_client):
    """A create whose connection drops after the task was made is retried with the same key,
    comes back as a replay, and the ledger shows exactly one task and one charge."""
    switches = {"drop_rate": 1.0, "drop_after_create_share": 1.0}
    async with make_emulator(**switches) as emu, make_client(emu) as c:
        task = await c.create_generation(generation_body(), idempotency_key="job.drop.1")
        ledger = emu.ledger()
    assert task.replayed
    assert [(t["id"], t["idempotency_key"]) for t in ledger["tasks"]] == [(task.id, "job.drop.1")]
    assert [ch["kind"] for ch in ledger["charges"] if ch["task_id"] == task.id] == ["charge"]
    assert requests_to(ledger, *CREATE) == {0: 1, 200: 1}
    assert c.stats.by_endpoint[("POST /api/v1/generations", None)] == 1


@pytest.mark.anyio
async def test_many_creates_under_faults_make_one_task_each(make_emulator, make_client):
    """Under 5xx answers and dropped connections (before and after creating), every job ends with
    exactly one task in the ledger, under the key it was sent with."""
    switches = {"fault_500_rate": 0.15, "fault_503_rate": 0.1, "drop_rate": 0.25, "seed": 11}
    policy = RetryPolicy(max_attempts=12, base_delay_s=0.001, max_delay_s=0.01, deadline_s=30)
    async with make_emulator(**switches) as emu, make_client(emu, retry=policy) as c:
        tasks = {}

        async def submit(i: int) -> None:
            tasks[f"job.{i}.1"] = await c.create_generation(
                generation_body(f"prompt {i}"), idempotency_key=f"job.{i}.1"
            )

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(submit, i)
        ledger = emu.ledger()
    by_key = {t["idempotency_key"]: t["id"] for t in ledger["tasks"]}
    assert len(ledger["tasks"]) == 30 and by_key == {k: t.id for k, t in tasks.items()}
    counts = requests_to(ledger, *CREATE)
    assert counts.get(0, 0) > 0 and counts.get(500, 0) > 0  # the faults really happened
    assert c.stats.retries == sum(counts.values()) - 30


@pytest.mark.anyio
async def test_drops_exhaust_into_retry_exhausted(make_emulator, make_client):
    """A connection that always drops ends in RetryExhaustedError wrapping a TransportError."""
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
    async with make_emulator(drop_rate=1.0) as emu, make_client(emu, retry=policy) as c:
        with pytest.raises(RetryExhaustedError) as info:
            await c.get_credits()
    assert isinstance(info.value.last, TransportError)
    assert isinstance(info.value.__cause__, TransportError)


@pytest.mark.anyio
async def test_slow_answer_times_out_as_transport_error(make_emulator, make_client):
    """An answer slower than timeout_s becomes a (retryable) TransportError naming the timeout."""
    switches = {"slow_rate": 1.0, "slow_delay_s": 0.5}
    async with (
        make_emulator(**switches) as emu,
        make_client(emu, retry=NO_RETRY, timeout_s=0.1) as c,
    ):
        with pytest.raises(RetryExhaustedError) as info:
            await c.get_credits()
    assert isinstance(info.value.last, TransportError) and "0.1s" in str(info.value.last)
