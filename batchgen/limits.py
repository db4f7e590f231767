"""The one request budget shared by every API request (after florimondmanca/aiometer).

``RequestLimiter(rate_per_s, burst)`` paces requests with ``aiolimiter.AsyncLimiter`` (a leaky
bucket: ``AsyncLimiter(burst, burst / rate_per_s)`` allows ``burst`` at once and ``rate_per_s``
sustained) and wraps around it what aiolimiter does not do: it *learns the server's window*, it
*adapts* its rate (AIMD) and it holds callers in a *shared pause*. The client spends a token on
every request to the API's own endpoints (``/api/v1``: uploads, submits, polls, task refreshes),
the ones the service's per-key limit counts; result and file URLs that the API host serves
beside them spend none.

* ``acquire()`` waits out any shared pause, then for the pacer's token, then (window known) for
  room in the mirrored window, in FIFO order; it returns the grant time (the ``sent_at``).
* ``on_success(hint)`` learns from the answer's ``X-RateLimit-*`` headers (``WindowHint``, read
  by ``wire.window_hint``) and adds back a little rate (additive increase).
* ``on_rate_limited(retry_after_s, sent_at=, hint=)`` eases off, as below. The request that was
  refused waits its own ``Retry-After`` (the client does that, overlapping any shared pause);
  the other callers wait only the shared pause set here, never a second one in the retry loop.

**The window.** The contract's server counts at most ``X-RateLimit-Limit`` requests in a sliding
window, and says so on every answer. ``learned`` turns those headers into a ``ServerWindow``
(limit, length: the longest ``X-RateLimit-Reset`` of a success seen, at least 1 s; a 429's
Reset may be a penalty's length, not the window's). While it is known the
pacer runs ``margin`` under its rate (``paced_rate``; the margin starts at 3%), and every grant
also waits until the *mirrored* window (the same limit over a window longer by the margin) has
room by the limiter's own log of grants (``room_at``): no burst can overfill the server's
window, and a request that leaves a gap of the margin after the one ``limit`` before it meets
the server's window with that much slack for timing jitter between the two clocks. A 429
then means jitter outgrew the margin: an *isolated* one widens the margin by a step
(``Margin``: half a point a 429, back by as much per quiet 20 s, 3-10%) and holds callers
only until the server's window has room by our log (``room_at``, usually no wait at all)
instead of a global ``Retry-After`` pause and a halved rate. Only when 429s keep coming
although the client keeps to the window
(``strikes_to_escalate``, 4 fresh 429s each within ``episode_s`` of the last: a burst of 429s
that outlasts a window, or other clients on the same key) does every caller pause for
``Retry-After`` and the rate drop as below, then climb back quickly to the window's cap (the
window, not a remembered refused rate, bounds it). Servers may send none of these headers, a
Limit that is not a number, or an epoch time as Reset: ``learned`` keeps what it can use.

**Without a window** (no headers) a 429 pauses every caller until ``Retry-After`` has passed
(when given), and cuts the rate: an isolated 429 to ``margin`` (``Aimd.margin``, 3%) under the
rate it refused, a second one in the same episode by half (``Aimd.decrease``, with a floor).
The bucket is emptied so no burst follows. A 429 that answers a request sent *before* the
last reaction says nothing new about the current rate (a burst of 429s from requests already in
flight is one congestion signal, not many), so it does not cut again (in an escalated episode
it extends the pause). The cut starts from the rate the client really sent at over the last
second (``measured``), when that is below the granted rate: a client that starts at twice the
server's limit learns it from its first 429. After a cut the rate climbs back quickly to just
below the rate that was refused (``recovery_per_s``), then probes slowly around it
(``probe_per_s``), slower the nearer it is (down to ``crawl_share`` of that pace right at it),
and forgets it once well past it without a 429 (the limit moved). While a refused rate is
remembered (and no window is known) the bucket holds one token, whatever ``burst`` says
(``effective_burst``): a burst on top of a rate just under a sliding window's limit is exactly
what it refuses.

Changing the rate of an ``AsyncLimiter`` is not public API (the rate lives in private slots that
armed wake-up timers read), so a new rate is a new ``AsyncLimiter``, swapped in by the next
``acquire()``: at once after a 429, and otherwise once the rate has moved by more than
``retune_share`` (1%: the pacer lags the rate by no more than that, and between changes
aiolimiter paces many requests on its own). The new pacer starts as full as the old one can be
shown to be (``refill`` of an empty bucket since the last grant, or since the end of a 429's
pause): exact under load, where the bucket is empty after every grant, and on the safe side
otherwise, so a swap never hands out a free token. Only public aiolimiter API is used: the
constructor and ``acquire(amount)`` (to start a new pacer part full).

Time is the running event loop's clock (``loop.time()``), the one aiolimiter's timers use, so
the pause, the measured rate, the mirrored window and the pacing agree; tests run the limiter on
an event loop with a virtual clock. The window, margin, AIMD and bucket maths are pure
functions, property-tested.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import anyio
from aiolimiter import AsyncLimiter

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
    """Seconds until the (already refilled) bucket holds one whole token (pure): what the pacer
    makes the next caller wait (the tests hold aiolimiter to it)."""
    missing = 1.0 - bucket.tokens
    if missing <= _EPSILON:  # float dust must not turn into a sleep too short to move a clock
        return 0.0
    return missing / rate_per_s


@dataclass(frozen=True)
class Aimd:
    """Additive-increase / multiplicative-decrease settings for the request rate.

    ``ceiling_per_s`` is the configured rate; the rate never goes above it nor below
    ``floor_per_s``. An isolated 429 leaves the rate ``margin`` under the rate it refused;
    ``decrease`` multiplies the rate on a 429 that follows another in one episode. Below
    ``recovery_share`` of the last refused rate, the rate grows by ``recovery_per_s`` per second
    of successful traffic;
    above it, by at most ``probe_per_s``, in proportion to its distance from the refused rate
    but never below ``crawl_share`` of ``probe_per_s`` (``probe_step_per_s``); past
    ``forget_share`` of it the refused rate is forgotten.
    """

    ceiling_per_s: float
    floor_per_s: float
    decrease: float = 0.5
    margin: float = 0.03
    recovery_share: float = 0.9
    forget_share: float = 1.1
    recovery_per_s: float = 1.0
    probe_per_s: float = 0.1
    crawl_share: float = 0.1

    @classmethod
    def for_rate(cls, rate_per_s: float) -> Aimd:
        """Defaults scaled to a configured rate: quick recovery, slow probing past the limit.

        These govern a server that sends no ``X-RateLimit-*`` headers (with them, the learned
        window caps the rate; see the module docstring). Tuned against a sliding-window server
        (tests/client/test_limits.py): each 429 then costs a whole Retry-After pause, so probing
        is slow (configured/400 per second, a tenth of that at the refused rate) and cycles are
        long.
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


def decreased(
    state: RateState,
    aimd: Aimd,
    measured_per_s: float | None = None,
    *,
    isolated: bool = False,
) -> RateState:
    """The rate after a 429 (pure).

    ``measured_per_s`` is the rate the client really sent at just before the 429 (it may be far
    below the granted rate when few workers are busy, or just after a start at full burst).
    The lower of the two is what the server refused: the cut and the recovery target start there.
    An ``isolated`` 429 (none other in the same episode) keeps ``aimd.margin`` under the refused
    rate; 429s that follow each other multiply it by ``aimd.decrease``.
    """
    refused = state.rate_per_s
    if measured_per_s is not None:
        refused = min(refused, max(measured_per_s, aimd.floor_per_s))
    factor = (1.0 - aimd.margin) if isolated else aimd.decrease
    rate = max(aimd.floor_per_s, refused * factor)
    return RateState(rate_per_s=min(rate, aimd.ceiling_per_s), refused_per_s=refused)


def effective_burst(state: RateState, burst: int, window: ServerWindow | None = None) -> int:
    """The bucket's size now (pure). With the server's window known, the configured burst: the
    window itself is mirrored (``room_at``), so a burst can never overfill it, and the bucket
    lets a caller that woke late catch up instead of losing that time for good. Without it, one
    token while a 429's refused rate is remembered (a sliding-window server refuses a burst on
    top of a rate near its limit), else the configured burst."""
    if window is not None:
        return burst
    return 1 if state.refused_per_s is not None else burst


# -- the server's window, as its X-RateLimit-* headers tell it (pure) ---------------------------

MAX_WINDOW_S = 3600.0  # a Reset longer than this is not "seconds from now" (an epoch time?)


@dataclass(frozen=True, slots=True)
class WindowHint:
    """What one answer's ``X-RateLimit-*`` headers said; each None when absent or unreadable
    (``wire.window_hint`` reads them). ``reset_s``: seconds until a slot frees up."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class ServerWindow:
    """The service's limit as learned: at most ``limit`` requests in any ``window_s`` seconds."""

    limit: int
    window_s: float

    @property
    def rate_per_s(self) -> float:
        return self.limit / self.window_s


def learned(
    window: ServerWindow | None, hint: WindowHint | None, floor_per_s: float = 0.0
) -> ServerWindow | None:
    """The server's window after one more answer (pure).

    ``limit`` is the latest ``X-RateLimit-Limit`` (a server may change it). The window's length
    is not sent, so it is taken as the longest ``X-RateLimit-Reset`` seen, and at least 1 s: a
    slot frees up at most one window after it was taken, and Reset is that wait rounded up to
    whole seconds, so this is the true window rounded up (exact for the contract's 1 s window;
    on the safe, slower side otherwise). A Reset over an hour is not a wait (some servers send
    an epoch time there) and is ignored; with no usable Limit, nothing is learned. Headers
    that would make the window slower than ``floor_per_s`` (say a Limit of 1 and a Reset of
    an hour) are not believed either: the limiter would follow them below its own floor, to
    a request an hour; the previous window stands, and real refusals are met by 429 handling.
    """
    if hint is None or hint.limit is None or hint.limit < 1:
        return window
    window_s = 1.0 if window is None else window.window_s
    if hint.reset_s is not None and window_s < hint.reset_s <= MAX_WINDOW_S:
        window_s = float(hint.reset_s)
    if window is not None and window.limit == hint.limit and window.window_s == window_s:
        return window
    candidate = ServerWindow(limit=hint.limit, window_s=window_s)
    return window if candidate.rate_per_s < floor_per_s else candidate


@dataclass(frozen=True)
class Margin:
    """How far under a known window's rate the client paces: ``least`` to start with, ``step``
    more after each isolated 429 (scheduling jitter bunched requests past the limit: a wider
    margin absorbs more of it), at most ``most``, and one ``step`` given back per ``heal_s``
    without a 429."""

    least: float = 0.03
    step: float = 0.005
    most: float = 0.10
    heal_s: float = 20.0


def margin_now(after_last_429: float, quiet_s: float, m: Margin) -> float:
    """The margin ``quiet_s`` seconds after the last 429 left it at ``after_last_429`` (pure)."""
    healed = after_last_429 - m.step * max(0.0, quiet_s) / m.heal_s
    return min(m.most, max(m.least, healed))


def widened(margin: float, m: Margin) -> float:
    """The margin after an isolated 429 (pure)."""
    return min(m.most, max(m.least, margin + m.step))


def paced_rate(
    state: RateState, window: ServerWindow | None, margin: float, floor_per_s: float
) -> float:
    """The rate the pacer grants (pure): the AIMD rate, and, when the server's window is known,
    no more than ``margin`` under the window's rate; never below the floor."""
    rate = state.rate_per_s
    if window is not None:
        rate = min(rate, window.rate_per_s * (1.0 - margin))
    return max(floor_per_s, rate)


def mirrored(window: ServerWindow, margin: float) -> ServerWindow:
    """The window the client holds itself to (pure): the server's limit in a window longer by
    ``margin``, so that the request after ``limit`` more leaves a gap of ``margin`` of a window
    to absorb timing jitter between the client's clock and the server's."""
    return ServerWindow(limit=window.limit, window_s=window.window_s / (1.0 - margin))


def room_at(grants: Sequence[float], now: float, window: ServerWindow) -> float:
    """When ``window`` has room again by the client's own log of grants, oldest first (pure):
    ``now`` when its last ``window_s`` holds fewer than ``limit`` of them, else one window after
    the ``limit``-th most recent."""
    if len(grants) < window.limit:
        return now
    oldest = grants[-window.limit]
    return oldest + window.window_s if oldest > now - window.window_s else now


def loop_time() -> float:
    """The running event loop's clock (aiolimiter's); ``time.monotonic`` outside a loop, which is
    what asyncio's own loops use."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


async def new_pacer(rate_per_s: float, burst: int, tokens: float) -> AsyncLimiter:
    """An ``AsyncLimiter`` granting ``burst`` at once and ``rate_per_s`` sustained, holding
    ``tokens`` now (a fresh one holds ``burst``; aiolimiter counts used capacity, not tokens)."""
    pacer = AsyncLimiter(burst, burst / rate_per_s)
    used = burst - min(float(burst), max(0.0, tokens))
    if used > 0:
        await pacer.acquire(used)  # a fresh limiter has all its capacity: this never waits
    return pacer


class RequestLimiter:
    """Shared request budget: ``rate_per_s`` sustained, up to ``burst`` at once, learning the
    server's window from its headers and easing off on 429 (see the module docstring).

    One instance is shared by every API request a run makes (uploads, submits, polls, task
    refreshes). Safe for many concurrent tasks on one event loop.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        *,
        aimd: Aimd | None = None,
        margin: Margin | None = None,
        measure_window_s: float = 1.0,
        episode_s: float = 2.0,
        strikes_to_escalate: int = 4,
        retune_share: float = 0.01,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.configured_rate_per_s = float(rate_per_s)
        self.burst = burst
        self.measure_window_s = measure_window_s
        self.episode_s = episode_s
        self.strikes_to_escalate = strikes_to_escalate
        self.retune_share = retune_share
        self._aimd = aimd or Aimd.for_rate(rate_per_s)
        self._margins = margin or Margin()
        self._state = RateState(rate_per_s=float(rate_per_s))
        self._window: ServerWindow | None = None  # learned from X-RateLimit-* headers
        self._margin = self._margins.least  # under the window's rate, as the last 429 left it
        self._pacer = AsyncLimiter(burst, burst / rate_per_s)  # starts full: the whole burst
        self._paced = (float(rate_per_s), burst)  # the (rate, burst) the pacer was built with
        self._must_swap = False  # a 429 cut the rate: the next acquire() builds an empty pacer
        self._refill_from = float("-inf")  # tokens accrue from here: a 429's pause end
        self._last_grant = float("-inf")
        self._paused_until = float("-inf")
        self._last_decrease_at = float("-inf")
        self._strikes = 0  # fresh 429s in the current episode
        self._escalated = False  # the last reaction was to a second 429 in one episode
        self._decreases = 0
        self._lock = anyio.Lock()
        self._grants: deque[float] = deque()  # grant times within the last window (or second)

    @property
    def current_rate_per_s(self) -> float:
        """The rate the limiter grants now (for progress display and benchmarks)."""
        return self._rate(loop_time())

    @property
    def window(self) -> ServerWindow | None:
        """The server's window as learned from its ``X-RateLimit-*`` headers (None: not sent)."""
        return self._window

    @property
    def paused_for_s(self) -> float:
        """Seconds left in the pause every caller waits out after a 429 (0 when not paused)."""
        return max(0.0, self._paused_until - loop_time())

    def __repr__(self) -> str:
        return (
            f"RequestLimiter(rate_per_s={self.configured_rate_per_s:g}, burst={self.burst}, "
            f"current_rate_per_s={self.current_rate_per_s:.3g})"
        )

    def _margin_at(self, now: float) -> float:
        return margin_now(self._margin, now - self._last_decrease_at, self._margins)

    def _rate(self, now: float) -> float:
        return paced_rate(self._state, self._window, self._margin_at(now), self._aimd.floor_per_s)

    async def acquire(self) -> float:
        """Wait out any pause, then for a token (FIFO); return the grant time (``sent_at``)."""
        async with self._lock:
            while True:
                while (left := self._paused_until - loop_time()) > 0:
                    await anyio.sleep(left)  # re-read: another 429 may extend the pause
                await self._retune(loop_time())
                decreases = self._decreases
                await self._pacer.acquire()
                now = loop_time()
                if self._window is not None:  # never more than the window holds, by our log
                    mirror = mirrored(self._window, self._margin_at(now))
                    while (free := room_at(self._grants, now, mirror)) > now:
                        await anyio.sleep(free - now)
                        now = loop_time()
                if decreases == self._decreases and now >= self._paused_until:
                    self._last_grant = now
                    self._grants.append(now)
                    self._prune(now)  # the log holds one window at most
                    return now
                # A 429 came while this caller waited: its pause and its cut apply here too.

    async def _retune(self, now: float) -> None:
        """Swap in a pacer at the current rate and burst, if they moved enough to matter."""
        rate = self._rate(now)
        burst = effective_burst(self._state, self.burst, self._window)
        paced_rate_, paced_burst = self._paced
        moved = abs(rate - paced_rate_) > self.retune_share * paced_rate_
        if not (self._must_swap or moved or burst != paced_burst):
            return
        # The tokens the bucket can be shown to hold: refilled, at the slower of the two rates,
        # from empty since the last grant (or since a 429's pause ended, whichever is later).
        since = max(self._last_grant, self._refill_from)
        empty = Bucket(tokens=0.0, at=min(since, now))
        held = refill(empty, now, min(rate, paced_rate_), burst).tokens
        self._pacer = await new_pacer(rate, burst, held)
        self._paced = (rate, burst)
        self._must_swap = False

    def on_success(self, hint: WindowHint | None = None) -> None:
        """A request got a non-429 answer: learn from its headers, creep back toward the
        configured rate."""
        if hint is not None:
            self._window = learned(self._window, hint, self._aimd.floor_per_s)
        self._state = increased(self._state, self._aimd)

    def on_rate_limited(
        self,
        retry_after_s: float | None = None,
        *,
        sent_at: float | None = None,
        hint: WindowHint | None = None,
    ) -> None:
        """A request got 429: ease off (see the module docstring). The refused request itself
        waits its ``Retry-After`` (the client does that); every caller waits the pause set here.
        """
        now = loop_time()
        if hint is not None:  # its Limit, not its Reset: a refusal's may be a penalty's length
            self._window = learned(
                self._window, replace(hint, reset_s=None), self._aimd.floor_per_s
            )
        if sent_at is not None and sent_at < self._last_decrease_at:
            # Stale: sent before the last reaction, so it says nothing about the new rate. In
            # an escalated episode (429s keep coming) it extends the pause, as before.
            if self._escalated:
                self._pause_until(now, retry_after_s)
            return
        episode = now - self._last_decrease_at < self.episode_s
        self._strikes = self._strikes + 1 if episode else 1
        measured = self._measured_per_s(now)
        if self._window is not None and self._strikes < self.strikes_to_escalate:
            # A 429 under a known window is timing jitter until it repeats: keep a wider margin
            # under the window's rate, and hold everyone only until the window has room again
            # by our own log (the refused request waits its Retry-After, in the client).
            self._margin = widened(self._margin_at(now), self._margins)
            self._paused_until = max(self._paused_until, room_at(self._grants, now, self._window))
            self._escalated = False
        else:
            # No window to go by, or 429s keep coming although we keep to it (a burst, or
            # other clients on the key): pause everyone for Retry-After and cut the rate.
            self._state = decreased(self._state, self._aimd, measured, isolated=not episode)
            if self._window is not None:  # the window caps the rate: recover to it quickly
                self._state = RateState(rate_per_s=self._state.rate_per_s)
            self._pause_until(now, retry_after_s)
            self._escalated = episode
        # Empty the bucket, and let it refill only once the pause is over: no burst follows.
        self._refill_from = max(now, self._paused_until)
        self._must_swap = True
        self._last_decrease_at = now
        self._decreases += 1

    def _pause_until(self, now: float, retry_after_s: float | None) -> None:
        if retry_after_s is not None and retry_after_s > 0:
            self._paused_until = max(self._paused_until, now + retry_after_s)

    def _prune(self, now: float) -> None:
        keep_s = self.measure_window_s
        if self._window is not None:  # the mirrored window, at the widest margin
            keep_s = max(keep_s, self._window.window_s / (1.0 - self._margins.most))
        while self._grants and self._grants[0] <= now - keep_s:
            self._grants.popleft()

    def _measured_per_s(self, now: float) -> float:
        """Requests granted per second over the last ``measure_window_s``."""
        self._prune(now)
        horizon = now - self.measure_window_s
        return sum(1 for at in self._grants if at > horizon) / self.measure_window_s
