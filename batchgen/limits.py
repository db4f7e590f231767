"""The one request budget shared by every API request (after florimondmanca/aiometer).

``RequestLimiter(rate_per_s, burst)`` is a token bucket whose *rate adapts* (AIMD). The client
spends a token on every request to the API's own endpoints (``/api/v1``: uploads, submits,
polls, task refreshes), the ones the service's per-key limit counts; result and file URLs that
the API host serves beside them spend none.

* ``acquire()`` waits for a token (and for any global pause), in FIFO order.
* ``on_success()`` adds back a little rate (additive increase) toward the configured rate.
* ``on_rate_limited(retry_after_s)`` halves the rate (multiplicative decrease, with a floor),
  empties the bucket so no burst follows, and pauses *every* caller until ``Retry-After`` has
  passed, so all workers back off together.

A 429 that answers a request sent *before* the last decrease says nothing new about the current
rate (a burst of 429s from requests already in flight is one congestion signal, not many), so
it extends the pause but does not cut the rate again. ``acquire()`` returns the grant time so the
caller can hand it back as ``sent_at``.

The cut starts from the rate the client really sent at over the last second (``measured``), when
that is below the granted rate: a client that starts at twice the server's limit learns the limit
from its first 429 instead of halving its way down. After a cut the rate climbs back quickly to
just below the rate that was refused (``recovery_per_s``), then probes slowly around it
(``probe_per_s``), slower the nearer it is (down to ``crawl_share`` of that pace right at it),
and forgets it once well past it without a 429 (the limit moved). Each 429 costs a whole
``Retry-After`` pause, so the limiter spends its time just under the refused rate, where it is
served, rather than cycling through it.

While a refused rate is remembered the bucket holds one token, whatever ``burst`` says
(``effective_burst``): a sliding-window server counts every second, and a burst on top of a rate
just under its limit is exactly what it refuses. The configured burst is back once the refused
rate is forgotten. So a client configured at twice the server's limit settles just under it and
meets few 429s.

Why not ``aiolimiter.AsyncLimiter``: it can express rate and burst separately
(``AsyncLimiter(burst, burst / rate)``), but its rate lives in private slots
(``_rate_per_sec``) that are read by already-armed wake-up timers, so changing it at runtime is
not supported API; it also has no way to pause all waiters until a deadline. The bucket below is
small, and its maths are pure functions that are property-tested.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import anyio

_EPSILON = 1e-9


@dataclass(frozen=True)
class Bucket:
    """Token-bucket state: ``tokens`` available (at most the burst) as of time ``at``."""

    tokens: float
    at: float


def refill(bucket: Bucket, now: float, rate_per_s: float, burst: int) -> Bucket:
    """The bucket at ``now``: tokens grown at ``rate_per_s``, never above ``burst`` (pure)."""
    if now <= bucket.at:
        return bucket
    grown = bucket.tokens + (now - bucket.at) * rate_per_s
    return Bucket(tokens=min(float(burst), grown), at=now)


def wait_for_token(bucket: Bucket, rate_per_s: float) -> float:
    """Seconds until the (already refilled) bucket holds one whole token (pure)."""
    missing = 1.0 - bucket.tokens
    if missing <= _EPSILON:  # float dust must not turn into a sleep too short to move a clock
        return 0.0
    return missing / rate_per_s


@dataclass(frozen=True)
class Aimd:
    """Additive-increase / multiplicative-decrease settings for the request rate.

    ``ceiling_per_s`` is the configured rate; the rate never goes above it nor below
    ``floor_per_s``. ``decrease`` multiplies the rate on a 429. Below ``recovery_share`` of the
    last refused rate, the rate grows by ``recovery_per_s`` per second of successful traffic;
    above it, by at most ``probe_per_s``, in proportion to its distance from the refused rate
    but never below ``crawl_share`` of ``probe_per_s`` (``probe_step_per_s``); past
    ``forget_share`` of it the refused rate is forgotten.
    """

    ceiling_per_s: float
    floor_per_s: float
    decrease: float = 0.5
    recovery_share: float = 0.9
    forget_share: float = 1.1
    recovery_per_s: float = 1.0
    probe_per_s: float = 0.1
    crawl_share: float = 0.1

    @classmethod
    def for_rate(cls, rate_per_s: float) -> Aimd:
        """Defaults scaled to a configured rate: quick recovery, slow probing past the limit.

        Tuned against a sliding-window server (tests/client/test_limits.py and
        bench/bench_ratelimit.py): each 429 costs a whole Retry-After pause, so probing is slow
        (configured/400 per second, a tenth of that at the refused rate) and cycles are long;
        at 2x the server's rate R this serves 0.93-0.95R with under 0.5% 429s in virtual time,
        and about 0.9R with 0.05% 429s in the real-runner benchmark.
        """
        return cls(
            ceiling_per_s=rate_per_s,
            floor_per_s=rate_per_s / 64.0,
            recovery_per_s=rate_per_s / 2.0,
            probe_per_s=rate_per_s / 400.0,
        )


@dataclass(frozen=True)
class RateState:
    """The adaptive part of the limiter: the current rate and the rate last refused by a 429."""

    rate_per_s: float
    refused_per_s: float | None = None


def probe_step_per_s(rate_per_s: float, refused_per_s: float, aimd: Aimd) -> float:
    """How fast the rate grows near the refused rate, per second of traffic (pure).

    ``probe_per_s`` at the edges of the probing zone, less the nearer the rate is to the refused
    one, and ``crawl_share`` of it right there: the rate lingers where it was last served and
    passes the refused rate (to find a limit that was raised) slowly, so 429s stay rare.
    """
    span = max(aimd.forget_share - 1.0, 1.0 - aimd.recovery_share) * refused_per_s
    nearness = abs(rate_per_s - refused_per_s) / span if span > 0 else 1.0
    return aimd.probe_per_s * min(1.0, max(aimd.crawl_share, nearness))


def increased(state: RateState, aimd: Aimd) -> RateState:
    """The rate after one success: one success is 1/rate seconds of traffic (pure).

    Three zones around the rate last refused: below ``recovery_share`` of it, recover fast;
    up to ``forget_share`` of it, probe slowly (slowest at the refused rate itself); past that
    with no 429, the server's limit has moved, so the refused rate is forgotten and growth is
    fast again.
    """
    refused = state.refused_per_s
    if refused is not None and state.rate_per_s >= aimd.forget_share * refused:
        refused = None
    near_limit = refused is not None and state.rate_per_s >= aimd.recovery_share * refused
    step_per_s = aimd.recovery_per_s
    if refused is not None and near_limit:
        step_per_s = probe_step_per_s(state.rate_per_s, refused, aimd)
    rate = state.rate_per_s + step_per_s / state.rate_per_s
    if refused is not None and not near_limit:
        # Recover fast, but never jump past the start of the probing zone in one step.
        rate = min(rate, max(state.rate_per_s, aimd.recovery_share * refused))
    return RateState(rate_per_s=min(aimd.ceiling_per_s, rate), refused_per_s=refused)


def decreased(state: RateState, aimd: Aimd, measured_per_s: float | None = None) -> RateState:
    """The rate after a 429 (pure).

    ``measured_per_s`` is the rate the client really sent at just before the 429 (it may be far
    below the granted rate when few workers are busy, or just after a start at full burst).
    The lower of the two is what the server refused: the cut and the recovery target start there.
    """
    refused = state.rate_per_s
    if measured_per_s is not None:
        refused = min(refused, max(measured_per_s, aimd.floor_per_s))
    rate = max(aimd.floor_per_s, refused * aimd.decrease)
    return RateState(rate_per_s=min(rate, aimd.ceiling_per_s), refused_per_s=refused)


def effective_burst(state: RateState, burst: int) -> int:
    """The bucket's size now: the configured burst, but one token while a 429's refused rate is
    remembered (a sliding-window server refuses a burst on top of a rate near its limit). A
    rate refused near the configured one is never forgotten: requests stay evenly spaced."""
    return 1 if state.refused_per_s is not None else burst


class RequestLimiter:
    """Shared request budget: ``rate_per_s`` sustained, up to ``burst`` at once, AIMD on 429.

    One instance is shared by every API request a run makes (uploads, submits, polls, task
    refreshes). Safe for many concurrent tasks on one event loop.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        *,
        aimd: Aimd | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
        measure_window_s: float = 1.0,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.configured_rate_per_s = float(rate_per_s)
        self.burst = burst
        self._aimd = aimd or Aimd.for_rate(rate_per_s)
        self._clock = clock
        self._sleep = sleep  # clock and sleep are injectable for virtual-time tests
        self._state = RateState(rate_per_s=float(rate_per_s))
        self._bucket = Bucket(tokens=float(burst), at=clock())
        self._paused_until = 0.0
        self._last_decrease_at = float("-inf")
        self._lock = anyio.Lock()
        self._grants: deque[float] = deque()  # grant times within the last measure_window_s
        self.measure_window_s = measure_window_s
        self.rate_limited_count = 0

    @property
    def current_rate_per_s(self) -> float:
        """The rate the limiter grants now (for progress display and benchmarks)."""
        return self._state.rate_per_s

    @property
    def paused_for_s(self) -> float:
        """Seconds left in the global pause a ``Retry-After`` imposed (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def __repr__(self) -> str:
        return (
            f"RequestLimiter(rate_per_s={self.configured_rate_per_s:g}, burst={self.burst}, "
            f"current_rate_per_s={self.current_rate_per_s:.3g})"
        )

    async def acquire(self) -> float:
        """Wait for a token (FIFO) and any global pause; return the grant time (``sent_at``)."""
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_s(now)
                if wait <= 0:
                    self._bucket = replace(self._bucket, tokens=self._bucket.tokens - 1.0)
                    self._grants.append(now)
                    self._measured_per_s(now)  # prunes the log: it holds one window at most
                    return now
                # Recomputed after every sleep: a 429 or a rate change meanwhile applies at once.
                await self._sleep(wait)

    def _wait_s(self, now: float) -> float:
        self._bucket = refill(self._bucket, now, self._state.rate_per_s, self._burst_now)
        paused = self._paused_until - now
        return max(paused, wait_for_token(self._bucket, self._state.rate_per_s))

    @property
    def _burst_now(self) -> int:
        return effective_burst(self._state, self.burst)

    def on_success(self) -> None:
        """A request got a non-429 answer: creep back toward the configured rate."""
        self._settle()
        self._state = increased(self._state, self._aimd)

    def on_rate_limited(
        self, retry_after_s: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """A request got 429: pause everyone until Retry-After; cut the rate once per episode."""
        now = self._clock()
        self.rate_limited_count += 1
        if retry_after_s is not None and retry_after_s > 0:
            self._paused_until = max(self._paused_until, now + retry_after_s)
        stale = sent_at is not None and sent_at < self._last_decrease_at
        if stale:
            return
        self._settle()
        self._state = decreased(self._state, self._aimd, self._measured_per_s(now))
        # Empty the bucket, and let it refill only once the pause is over: no burst follows.
        self._bucket = Bucket(tokens=min(0.0, self._bucket.tokens), at=max(now, self._paused_until))
        self._last_decrease_at = now

    def _measured_per_s(self, now: float) -> float:
        """Requests granted per second over the last ``measure_window_s``."""
        while self._grants and self._grants[0] <= now - self.measure_window_s:
            self._grants.popleft()
        return len(self._grants) / self.measure_window_s

    def _settle(self) -> None:
        # Bring the bucket up to date at the old rate before the rate changes.
        self._bucket = refill(self._bucket, self._clock(), self._state.rate_per_s, self._burst_now)
