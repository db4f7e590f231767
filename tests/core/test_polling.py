"""The poll schedule stays within the service's guidance whatever the inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchgen.polling import (
    PollPolicy,
    RuntimeModel,
    is_stuck,
    next_poll_delay,
    prior_runtime_s,
)

scales = st.sampled_from([1.0, 0.1, 0.01, 0.002])
times = st.floats(min_value=0, max_value=10_000, allow_nan=False)


@given(polls=st.integers(0, 50), elapsed=times, expected=st.floats(1, 5000), scale=scales)
def test_never_a_tight_loop(polls: int, elapsed: float, expected: float, scale: float) -> None:
    """After the first poll, the gap is at least the (scaled) 5 s minimum and at most the cap."""
    p = PollPolicy(time_scale=scale)
    delay = next_poll_delay(polls, elapsed, expected * scale, p)
    assert delay >= 0
    if polls > 0:
        assert delay >= p.min_interval_s * scale - 1e-9
        assert delay <= max(expected * scale, p.max_interval_s * scale) + 1e-9


@given(elapsed=st.floats(0, 2), scale=scales)
def test_first_poll_lands_at_two_to_three_seconds(elapsed: float, scale: float) -> None:
    """The first poll happens 2.5 s (scaled) after submit, never later."""
    p = PollPolicy(time_scale=scale)
    assert elapsed * scale + next_poll_delay(0, elapsed * scale, 100.0, p) <= 2.5 * scale + 1e-9


def test_second_poll_aims_at_the_expected_finish() -> None:
    """With a learned run time of 100 s, the poll after the first lands at 100 s."""
    p = PollPolicy()
    assert next_poll_delay(1, 3.0, 100.0, p) == 97.0


def test_runtime_model_learns_and_transfers() -> None:
    """Observed run times replace the prior, and rescale the prior of unseen kinds."""
    p = PollPolicy()
    m = RuntimeModel()
    assert m.expected_s("std", 5, p) == prior_runtime_s("std", 5)
    for t in (40.0, 50.0, 60.0):
        m.observe("std", 5, t)
    assert m.expected_s("std", 5, p) == 50.0
    ratio = 50.0 / prior_runtime_s("std", 5)
    assert m.expected_s("pro", 10, p) == ratio * prior_runtime_s("pro", 10)


def test_stuck_only_after_long_overrun() -> None:
    """A task is reported stuck only far past its expected time and the absolute minimum."""
    p = PollPolicy()
    assert not is_stuck(500, 90, p)
    assert is_stuck(2000, 90, p)
