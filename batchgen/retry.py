"""Retry with exponential backoff, jitter, an attempt cap and a deadline (after hynek/stamina).

Two layers, kept apart so the maths can be property-tested without a clock:

* Pure: ``RetryPolicy.backoff_cap(attempt)`` (the exponential, capped ceiling) and
  ``RetryPolicy.delay_for(attempt, error, rng)`` (the jittered delay, with the server's
  ``Retry-After`` as a floor). The header itself is read once, by ``batchgen.wire``, into
  ``RateLimitedError.retry_after_s``; this module only reads that typed value.
* I/O: ``call_with_retry(fn, policy)`` runs ``fn`` until it returns, raises a non-retryable
  error, or the policy gives up.

Each failure is waited for once. When something else already holds the next attempt back for
that error (``waited_elsewhere``: for a 429 the client waits its ``Retry-After`` itself,
overlapping any pause of the shared request budget), the loop does not sleep on top of it;
otherwise it sleeps ``delay_for``.

What is retried is decided by *type* only: ``batchgen.errors.RETRYABLE``. Everything else
(validation, auth, conflicts, credits, ...) propagates unchanged on the first raise.

When the policy gives up (attempt cap reached, or the next sleep would end past the deadline)
``call_with_retry`` raises ``RetryExhaustedError`` *from* the last error, with ``.last`` set to
it. We wrap rather than re-raise so a caller can tell "the service kept failing while we
retried" (run-level decision: stop, resume later) from a first-time error, and still read
the last typed error (``.last``) for its code and ``requestId``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import anyio

from batchgen.errors import RETRYABLE, RateLimitedError, RetryExhaustedError

log = logging.getLogger("batchgen.retry")

T = TypeVar("T")

Jitter = Literal["full", "decorrelated", "none"]


class Rng(Protocol):
    """What ``delay_for`` needs from a random source (``random.Random`` fits)."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How a transient failure is retried.

    ``max_attempts`` counts every try, the first included (1 means never retry).
    ``deadline_s`` bounds the whole call, sleeps included, measured from the first try; None
    means only the attempt cap applies. Delay before retry ``n`` (``n`` = the attempt that just
    failed, from 1):

    * ``full``: uniform(0, cap(n)) with cap(n) = min(max_delay_s, base_delay_s * multiplier**(n-1))
      (AWS "full jitter": spreads retries of many workers the most).
    * ``decorrelated``: uniform(base_delay_s, 3 * previous delay), capped at max_delay_s
      (needs ``previous_s``; falls back to ``base_delay_s`` for the first retry).
    * ``none``: exactly cap(n) (deterministic, for tests and demos).

    A ``RateLimitedError`` with ``retry_after_s`` never sleeps less than the server asked, even
    above ``max_delay_s``: the server's word wins over our cap (the deadline still applies).
    """

    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    deadline_s: float | None = 300.0
    multiplier: float = 2.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.base_delay_s <= self.max_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError("deadline_s must be positive (or None)")
        if self.jitter not in ("full", "decorrelated", "none"):
            raise ValueError(f"unknown jitter {self.jitter!r}")

    def backoff_cap(self, attempt: int) -> float:
        """The ceiling of the delay after failed attempt ``attempt`` (1-based): non-decreasing,
        at most ``max_delay_s``."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        if self.base_delay_s == 0:
            return 0.0
        # Compare in logs so huge attempt numbers cannot overflow a float.
        log_cap = math.log(self.base_delay_s) + (attempt - 1) * math.log(self.multiplier)
        if log_cap >= math.log(self.max_delay_s):
            return self.max_delay_s
        try:
            return min(self.max_delay_s, self.base_delay_s * self.multiplier ** (attempt - 1))
        except OverflowError:  # a tiny base with a huge power: still under the cap
            return min(self.max_delay_s, math.exp(log_cap))

    def delay_for(
        self,
        attempt: int,
        error: BaseException,
        rng: Rng,
        *,
        previous_s: float | None = None,
    ) -> float:
        """Seconds to sleep after failed attempt ``attempt`` before the next try (pure)."""
        delay = self._jittered(attempt, rng, previous_s)
        floor = retry_after_of(error)
        if floor is not None:
            delay = max(delay, floor)
        return delay

    def _jittered(self, attempt: int, rng: Rng, previous_s: float | None) -> float:
        cap = self.backoff_cap(attempt)
        if self.jitter == "none":
            return cap
        if self.jitter == "full":
            return min(cap, max(0.0, rng.uniform(0.0, cap)))
        previous = self.base_delay_s if previous_s is None else previous_s
        upper = max(self.base_delay_s, 3.0 * previous)
        return min(self.max_delay_s, max(self.base_delay_s, rng.uniform(self.base_delay_s, upper)))


def retry_after_of(error: BaseException) -> float | None:
    """The server's requested wait carried by ``error``, if any (only ``RateLimitedError``)."""
    if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
        return max(0.0, error.retry_after_s)
    return None


OnRetry = Callable[[int, BaseException, float], object]
"""``on_retry(attempt_that_failed, error, delay_s)``, called before each wait."""

WaitedElsewhere = Callable[[BaseException], float | None]
"""``waited_elsewhere(error)``: the seconds something else (a shared pause) already makes the
next attempt wait for ``error``, or None when the retry loop must wait for it itself."""


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: OnRetry | None = None,
    waited_elsewhere: WaitedElsewhere | None = None,
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    rng: Rng | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Await ``fn()`` and retry it while it raises a ``RETRYABLE`` error, per ``policy``.

    ``fn`` is called afresh for every attempt, so it must rebuild anything single-use (a
    multipart body) and reuse anything that must stay the same (the idempotency key).
    Raises ``RetryExhaustedError(last=...)`` from the last error when the attempt cap is reached
    or the next wait would end past the deadline; any non-retryable error propagates as is.
    When ``waited_elsewhere(error)`` gives a wait, that wait counts toward the deadline but the
    loop does not sleep it: the next ``fn()`` call waits it out (see the module docstring).
    """
    source: Rng = rng if rng is not None else random.Random()
    started = clock()
    previous: float | None = None
    attempt = 1
    while True:
        try:
            return await fn()
        except RETRYABLE as exc:
            shared = waited_elsewhere(exc) if waited_elsewhere is not None else None
            delay = policy.delay_for(attempt, exc, source, previous_s=previous)
            delay = shared if shared is not None else delay
            _give_up_if_spent(policy, attempt, delay, clock() - started, exc)
            if on_retry is not None:
                on_retry(attempt, exc, delay)  # the caller logs with its own context
            else:
                log.debug(
                    "attempt %d failed (%s); retry in %.3fs", attempt, type(exc).__name__, delay
                )
        if shared is None:
            await sleep(delay)
        previous = delay
        attempt += 1


def _give_up_if_spent(
    policy: RetryPolicy, attempt: int, delay: float, elapsed: float, exc: BaseException
) -> None:
    if attempt >= policy.max_attempts:
        why = f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
    elif policy.deadline_s is not None and elapsed + delay > policy.deadline_s:
        why = f"gave up after {attempt} attempts: the {policy.deadline_s:g}s deadline would pass"
    else:
        return
    raise RetryExhaustedError(f"{why}; last error: {type(exc).__name__}: {exc}", last=exc) from exc
