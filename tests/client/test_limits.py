"""The request budget: token-bucket and AIMD maths (pure), and the limiter in virtual time."""

from __future__ import annotations

import math
from collections import deque

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen.limits import (
    Aimd,
    Bucket,
    RateState,
    RequestLimiter,
    decreased,
    increased,
    refill,
    wait_for_token,
)

rates = st.floats(0.1, 1000, allow_nan=False)
bursts = st.integers(1, 100)


@given(st.floats(-5, 100), st.floats(0, 1000), st.floats(0, 1000), rates, bursts)
def test_refill_grows_with_time_and_stops_at_burst(
    tokens: float, at: float, later: float, rate: float, burst: int
) -> None:
    """Refilling never loses tokens, never passes the burst, and only moves time forward."""
    start = Bucket(tokens=min(tokens, burst), at=at)
    after = refill(start, at + later, rate, burst)
    assert after.tokens >= start.tokens
    assert after.tokens <= max(burst, start.tokens)
    assert after.at >= start.at
    assert refill(start, at - 1, rate, burst) == start


@given(st.floats(-5, 1, allow_nan=False), rates)
def test_wait_for_token_is_exactly_the_refill_time(tokens: float, rate: float) -> None:
    """The computed wait is what the bucket needs to hold one whole token, and 0 when it does."""
    wait = wait_for_token(Bucket(tokens, 0.0), rate)
    assert wait >= 0
    if tokens >= 1:
        assert wait == 0
    else:
        assert refill(Bucket(tokens, 0.0), wait, rate, 10).tokens == pytest.approx(1.0)


events = st.lists(st.one_of(st.none(), st.floats(0, 2000, allow_nan=False)), max_size=300)


@given(rates, events)
def test_aimd_rate_stays_within_floor_and_ceiling(ceiling: float, history: list[float | None]):
    """Whatever mix of successes (None) and 429s (with the measured send rate) arrives, the rate
    stays in [floor, configured rate]; a success never lowers it and a 429 never raises it."""
    aimd = Aimd.for_rate(ceiling)
    state = RateState(rate_per_s=ceiling)
    for measured in history:
        before = state.rate_per_s
        if measured is None:
            state = increased(state, aimd)
            assert state.rate_per_s >= before
        else:
            state = decreased(state, aimd, measured)
            assert state.rate_per_s <= before
        assert aimd.floor_per_s <= state.rate_per_s <= ceiling


@given(rates, st.one_of(st.none(), st.floats(0, 2000, allow_nan=False)))
def test_decrease_halves_from_what_was_really_sent(ceiling: float, measured: float | None):
    """A 429 halves the lower of the granted and the measured rate (down to the floor) and
    remembers that lower rate as the one the server refused."""
    aimd = Aimd.for_rate(ceiling)
    state = decreased(RateState(rate_per_s=ceiling), aimd, measured)
    sent = ceiling if measured is None else min(ceiling, max(measured, aimd.floor_per_s))
    assert state.refused_per_s == pytest.approx(sent)
    assert state.rate_per_s == pytest.approx(max(aimd.floor_per_s, sent / 2))


@given(rates, st.floats(0.01, 0.9))
def test_refused_rate_is_forgotten_once_well_past_it(ceiling: float, share: float):
    """Once the rate is well past the last refused rate with no 429, the limit has moved:
    the refused rate is forgotten and growth is fast again."""
    aimd = Aimd.for_rate(ceiling)
    refused = share * ceiling
    state = increased(
        RateState(rate_per_s=aimd.forget_share * refused, refused_per_s=refused), aimd
    )
    assert state.refused_per_s is None


@settings(max_examples=40)
@given(st.floats(1, 200, allow_nan=False))
def test_recovery_is_fast_then_probing_is_slow(ceiling: float) -> None:
    """After a 429, successes bring the rate back near the refused rate quickly (in seconds of
    traffic), without overshooting, then probe past it at least five times more slowly."""
    aimd = Aimd.for_rate(ceiling)
    state = decreased(RateState(rate_per_s=ceiling), aimd)
    fast_s = 0.0
    while state.rate_per_s < aimd.recovery_share * ceiling - 1e-9:
        fast_s += 1 / state.rate_per_s  # one success is 1/rate seconds of traffic
        state = increased(state, aimd)
    assert state.rate_per_s <= aimd.recovery_share * ceiling + 1e-9
    slow_s = 0.0
    while state.rate_per_s < ceiling:
        slow_s += 1 / state.rate_per_s
        state = increased(state, aimd)
    assert fast_s <= 3.0
    assert slow_s > 5 * fast_s


def test_limiter_rejects_nonsense() -> None:
    """A zero rate or an empty burst is refused when the limiter is built."""
    with pytest.raises(ValueError):
        RequestLimiter(0)
    with pytest.raises(ValueError):
        RequestLimiter(1, burst=0)


class VirtualTime:
    """A clock that moves only when the limiter sleeps, so timing is exact and instant."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


class SlidingWindowServer:
    """The contract's rate limit: at most ``limit`` requests in any ``window_s`` (429 beyond)."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit, self.window_s = limit, window_s
        self.accepted: deque[float] = deque()
        self.refused = 0
        self.served = 0

    def answer(self, now: float) -> float | None:
        """None when served, else the Retry-After in whole seconds (at least 1)."""
        while self.accepted and self.accepted[0] <= now - self.window_s:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit:
            self.refused += 1
            return float(max(1, math.ceil(self.accepted[0] + self.window_s - now)))
        self.accepted.append(now)
        self.served += 1
        return None


@pytest.mark.anyio
async def test_burst_then_rate() -> None:
    """A fresh limiter grants `burst` requests at once, then one every 1/rate seconds."""
    vt = VirtualTime()
    limiter = RequestLimiter(4, burst=3, clock=vt.clock, sleep=vt.sleep)
    grants = [await limiter.acquire() for _ in range(7)]
    assert grants[:3] == [0, 0, 0]
    assert grants[3:] == pytest.approx([0.25, 0.5, 0.75, 1.0])


@pytest.mark.anyio
async def test_rate_limited_pauses_every_caller_and_halves_the_rate() -> None:
    """A 429 with Retry-After holds every waiting caller until it has passed, at half the rate."""
    vt = VirtualTime()
    limiter = RequestLimiter(10, burst=5, clock=vt.clock, sleep=vt.sleep)
    sent = [await limiter.acquire() for _ in range(10)]  # 10 in the last second: at full rate
    limiter.on_rate_limited(2.0, sent_at=sent[-1])
    assert limiter.current_rate_per_s == 5
    assert limiter.paused_for_s == 2.0
    start = vt.now
    grants: list[float] = []

    async def worker() -> None:
        grants.append(await limiter.acquire())

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    offsets = sorted(g - start for g in grants)
    assert offsets == pytest.approx([2.2, 2.4, 2.6, 2.8])  # nobody in the pause, no burst after


@pytest.mark.anyio
async def test_first_429_cuts_from_the_measured_rate() -> None:
    """A limiter configured far above what it really sends cuts from what it sent, not from its
    configured rate, so it does not halve its way down one 429 at a time."""
    vt = VirtualTime()
    limiter = RequestLimiter(100, burst=1, clock=vt.clock, sleep=vt.sleep)
    sent_at = 0.0
    for _ in range(10):  # ten requests, one every 0.1 s: 10 per second, far below 100
        sent_at = await limiter.acquire()
        vt.now += 0.1
    limiter.on_rate_limited(None, sent_at=sent_at)
    assert limiter.current_rate_per_s == pytest.approx(5)


@pytest.mark.anyio
async def test_stale_429s_cut_the_rate_once() -> None:
    """429s for requests sent before the last cut extend the pause but do not cut the rate again."""
    vt = VirtualTime()
    limiter = RequestLimiter(8, burst=8, clock=vt.clock, sleep=vt.sleep)
    in_flight = [await limiter.acquire() for _ in range(8)]
    vt.now += 0.01
    for sent_at in in_flight:
        limiter.on_rate_limited(1.0, sent_at=sent_at)
    assert limiter.current_rate_per_s == 4
    assert limiter.rate_limited_count == 8
    fresh = await limiter.acquire()
    limiter.on_rate_limited(None, sent_at=fresh)
    assert limiter.current_rate_per_s < 4


@pytest.mark.anyio
async def test_success_recovers_toward_the_configured_rate() -> None:
    """Successes after a 429 raise the rate again, never above the configured rate."""
    limiter = RequestLimiter(6, burst=6)
    for _ in range(6):
        await limiter.acquire()
    limiter.on_rate_limited(None)
    assert limiter.current_rate_per_s == 3
    for _ in range(10_000):
        limiter.on_success()
    assert limiter.current_rate_per_s == 6
    assert "6" in repr(limiter)


async def simulate(limiter: RequestLimiter, vt: VirtualTime, server, until_s: float) -> None:
    """One worker sending back to back through the limiter to the server, in virtual time."""
    while vt.now < until_s:
        sent_at = await limiter.acquire()
        retry_after = server.answer(vt.now)
        if retry_after is None:
            limiter.on_success()
        else:
            limiter.on_rate_limited(retry_after, sent_at=sent_at)


@pytest.mark.anyio
@pytest.mark.parametrize("server_rate", [5, 10, 40])
async def test_client_at_twice_the_server_rate_settles_with_few_429s(server_rate: int) -> None:
    """Configured at 2R against a server allowing R per second, the limiter settles near R:
    under 5% of requests refused and at least 0.8R served (virtual time, 10 minutes)."""
    vt = VirtualTime()
    server = SlidingWindowServer(server_rate)
    limiter = RequestLimiter(2 * server_rate, burst=5, clock=vt.clock, sleep=vt.sleep)
    await simulate(limiter, vt, server, 600)
    total = server.served + server.refused
    assert server.refused / total < 0.05
    assert server.served / 600 >= 0.8 * server_rate
    assert 0.5 * server_rate <= limiter.current_rate_per_s <= 1.2 * server_rate


@pytest.mark.anyio
async def test_a_raised_server_limit_is_found_again() -> None:
    """When the server's limit doubles, the limiter climbs to the new limit within minutes."""
    vt = VirtualTime()
    server = SlidingWindowServer(10)
    limiter = RequestLimiter(40, burst=5, clock=vt.clock, sleep=vt.sleep)
    await simulate(limiter, vt, server, 300)
    server.limit = 20
    await simulate(limiter, vt, server, 600)
    served_before = server.served
    await simulate(limiter, vt, server, 900)
    assert (server.served - served_before) / 300 >= 0.8 * 20
