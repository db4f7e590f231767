"""Backoff maths and the retry loop (pure; virtual time, no real sleeps)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.errors import (
    AuthError,
    RateLimitedError,
    RetryExhaustedError,
    ServerError,
    TransportError,
    ValidationFailedError,
)
from batchgen.retry import RetryPolicy, call_with_retry

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    base_delay_s=st.floats(0, 5, allow_nan=False),
    max_delay_s=st.floats(5, 120, allow_nan=False),
    deadline_s=st.one_of(st.none(), st.floats(1, 1000, allow_nan=False)),
    multiplier=st.floats(1, 4, allow_nan=False),
    jitter=st.sampled_from(["full", "decorrelated", "none"]),
)
attempts = st.integers(1, 10_000)
retry_afters = st.one_of(st.none(), st.floats(0, 3600, allow_nan=False))


def rate_limited(retry_after_s: float | None) -> RateLimitedError:
    return RateLimitedError("429", retry_after_s=retry_after_s, code="rate_limited", status=429)


@given(policies, st.integers(1, 200))
def test_backoff_cap_is_monotone_and_capped(policy: RetryPolicy, attempt: int) -> None:
    """The backoff ceiling never shrinks from one attempt to the next nor passes max_delay_s."""
    assert policy.backoff_cap(attempt) <= policy.backoff_cap(attempt + 1) <= policy.max_delay_s
    assert policy.backoff_cap(attempt) >= min(policy.base_delay_s, policy.max_delay_s)


@given(policies, attempts, st.integers(0, 2**32), st.floats(0, 200, allow_nan=False))
def test_delay_within_bounds(policy: RetryPolicy, attempt: int, seed: int, prev: float) -> None:
    """Without Retry-After a delay lies within [0, max_delay_s] and full/none stay under the cap."""
    delay = policy.delay_for(
        attempt, ServerError("x", code="c", status=500), random.Random(seed), previous_s=prev
    )
    assert 0 <= delay <= policy.max_delay_s
    if policy.jitter != "decorrelated":
        assert delay <= policy.backoff_cap(attempt)
    if policy.jitter == "decorrelated":
        assert delay >= policy.base_delay_s


@given(policies, attempts, st.integers(0, 2**32), retry_afters)
def test_retry_after_is_a_floor(
    policy: RetryPolicy, attempt: int, seed: int, after: float | None
) -> None:
    """A 429's Retry-After is never undercut, and otherwise the delay stays within the policy."""
    delay = policy.delay_for(attempt, rate_limited(after), random.Random(seed))
    assert delay >= (after or 0.0)
    assert delay <= max(policy.max_delay_s, after or 0.0)


def test_none_jitter_is_plain_exponential() -> None:
    """With jitter 'none' the delays are base * multiplier**(n-1), capped."""
    policy = RetryPolicy(base_delay_s=1, max_delay_s=10, multiplier=2, jitter="none")
    rng = random.Random(0)
    err = TransportError("reset")
    assert [policy.delay_for(n, err, rng) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay_s": 5, "max_delay_s": 1},
        {"multiplier": 0.5},
        {"deadline_s": 0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    """A policy that could never work is refused when it is built."""
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


class VirtualTime:
    """A clock and a sleep that only advance when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*errors: BaseException, result: str = "ok"):
    """An async callable that raises ``errors`` one per call, then returns ``result``."""
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


@pytest.mark.anyio
async def test_transient_errors_are_retried_until_success() -> None:
    """Transient API and transport errors are retried and the eventual result is returned."""
    vt = VirtualTime()
    seen: list[tuple[int, str]] = []
    fn, calls = failing(ServerError("boom", code="x", status=502), TransportError("reset"))
    result = await call_with_retry(
        fn,
        RetryPolicy(jitter="none"),
        on_retry=lambda n, e, d: seen.append((n, type(e).__name__)),
        sleep=vt.sleep,
        clock=vt.clock,
    )
    assert result == "ok" and len(calls) == 3
    assert seen == [(1, "ServerError"), (2, "TransportError")]
    assert vt.sleeps == [0.5, 1.0]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [
        ValidationFailedError("bad", code="validation_failed", status=400),
        AuthError("no", code="api_key_invalid", status=401),
        ValueError("a bug"),
    ],
)
async def test_non_retryable_errors_propagate_at_once(error: BaseException) -> None:
    """Anything outside RETRYABLE propagates unchanged on the first raise, with no sleep."""
    vt = VirtualTime()
    fn, calls = failing(error)
    with pytest.raises(type(error)) as info:
        await call_with_retry(fn, RetryPolicy(), sleep=vt.sleep, clock=vt.clock)
    assert info.value is error and len(calls) == 1 and vt.sleeps == []


@pytest.mark.anyio
async def test_attempt_cap_raises_retry_exhausted() -> None:
    """After max_attempts tries the last error comes back wrapped in RetryExhaustedError."""
    vt = VirtualTime()
    errors = [TransportError(f"reset {i}") for i in range(10)]
    fn, calls = failing(*errors)
    with pytest.raises(RetryExhaustedError) as info:
        await call_with_retry(fn, RetryPolicy(max_attempts=3), sleep=vt.sleep, clock=vt.clock)
    assert len(calls) == 3 and len(vt.sleeps) == 2
    assert info.value.last is errors[2] and info.value.__cause__ is errors[2]
    assert "3 attempts" in str(info.value)


@pytest.mark.anyio
async def test_deadline_stops_before_sleeping_past_it() -> None:
    """The loop gives up instead of starting a sleep that would end past the deadline."""
    vt = VirtualTime()
    fn, _ = failing(*[ServerError("x", code="c", status=500) for _ in range(50)])
    policy = RetryPolicy(
        max_attempts=50, base_delay_s=1, max_delay_s=8, deadline_s=10, jitter="none"
    )
    with pytest.raises(RetryExhaustedError, match="deadline"):
        await call_with_retry(fn, policy, sleep=vt.sleep, clock=vt.clock)
    assert vt.now <= 10 and vt.sleeps == [1, 2, 4]


@pytest.mark.anyio
async def test_rate_limited_sleeps_at_least_retry_after() -> None:
    """A 429 with Retry-After sleeps at least that long before the next try."""
    vt = VirtualTime()
    fn, _ = failing(rate_limited(7.0), rate_limited(None))
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=1, jitter="full")
    assert await call_with_retry(fn, policy, sleep=vt.sleep, clock=vt.clock) == "ok"
    assert vt.sleeps[0] >= 7.0 and vt.sleeps[1] <= 0.2


@pytest.mark.anyio
async def test_a_wait_made_elsewhere_is_not_slept_again() -> None:
    """An error whose wait something else already makes (the limiter's shared pause) is retried
    without a sleep of its own; other errors still sleep their backoff."""
    vt = VirtualTime()
    delays: list[float] = []
    fn, calls = failing(rate_limited(1.0), ServerError("x", code="c", status=500))
    result = await call_with_retry(
        fn,
        RetryPolicy(base_delay_s=0.25, jitter="none"),
        on_retry=lambda n, e, d: delays.append(d),
        waited_elsewhere=lambda e: 1.0 if isinstance(e, RateLimitedError) else None,
        sleep=vt.sleep,
        clock=vt.clock,
    )
    assert result == "ok" and len(calls) == 3
    assert delays == [1.0, 0.5] and vt.sleeps == [0.5]


@pytest.mark.anyio
async def test_a_wait_made_elsewhere_still_counts_toward_the_deadline() -> None:
    """A shared pause that would end past the deadline ends the retries, as a sleep would."""
    vt = VirtualTime()
    fn, calls = failing(rate_limited(60.0))
    with pytest.raises(RetryExhaustedError, match="deadline"):
        await call_with_retry(
            fn,
            RetryPolicy(deadline_s=10),
            waited_elsewhere=lambda e: 60.0,
            sleep=vt.sleep,
            clock=vt.clock,
        )
    assert len(calls) == 1 and vt.sleeps == []
