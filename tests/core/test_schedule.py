"""A task's poll schedule on its own clock: origin, inherited tasks, the stuck rule, the ETA."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from batchgen.models import RemoteTask
from batchgen.polling import Forecast, PollPolicy, PollTrack, TaskKind
from batchgen.schedule import QUEUED_DEADLINE_S, TaskSchedule, eta_s, schedule_for, task_origin

T0 = 1_800_000_000.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


FORECAST = Forecast(queue_s=10.0, run_s=100.0)


def test_origin_is_the_service_creation_time_within_what_the_client_saw() -> None:
    """The clock starts at created_at, clamped between the first send and the id's record."""
    assert task_origin(iso(T0 + 5), iso(T0), iso(T0 + 9)) == T0 + 5
    assert task_origin(iso(T0 - 3600), iso(T0), iso(T0 + 9)) == T0  # a server clock behind
    assert task_origin(iso(T0 + 3600), iso(T0), iso(T0 + 9)) == T0 + 9  # a server clock ahead
    assert task_origin(None, iso(T0), iso(T0 + 9)) == T0 + 9  # no stamp: when it was recorded


def test_an_earlier_failed_attempt_does_not_age_the_task() -> None:
    """A create first tried an hour before it got through: the task is seconds old, not an
    hour, so it is not judged stuck after its first poll."""
    policy = PollPolicy(time_scale=0.01)
    s = schedule_for(
        kind=TaskKind(),
        policy=policy,
        created_at=iso(T0 + 3600),
        submitted_at=iso(T0),
        recorded_at=iso(T0 + 3601),
        started_at=None,
        polls=0,
        inherited=False,
        now=T0 + 3602,
    )
    assert s.elapsed(T0 + 3602) == 2.0
    s.seen(RemoteTask("t", "queued"), T0 + 3603)
    assert not s.stuck(T0 + 3603, FORECAST)


@given(st.floats(min_value=0, max_value=10 * QUEUED_DEADLINE_S))
def test_no_task_is_stuck_before_this_run_polled_it(age_s: float) -> None:
    """However old a task is, the run looks at it before giving up on it."""
    s = TaskSchedule(TaskKind(), T0, PollPolicy(), PollTrack(polls=5), inherited=True)
    assert not s.stuck(T0 + age_s, FORECAST)


def test_inherited_tasks_are_polled_at_once_then_on_schedule() -> None:
    """A task in flight when the run started gets its first poll now; the next follows the
    schedule."""
    policy = PollPolicy()
    s = TaskSchedule(TaskKind(), T0, policy, PollTrack(polls=3), inherited=True, followed_since=T0)
    assert s.delay(T0 + 1, FORECAST) == 0.0
    s.seen(RemoteTask("t", "processing"), T0 + 1)
    assert s.delay(T0 + 1, FORECAST) >= policy.min_interval_s


def test_queued_deadline_counts_from_when_this_run_began_to_follow() -> None:
    """A rerun long after the submit follows a still-queued task for a whole deadline."""
    policy = PollPolicy(time_scale=0.001)  # deadline 43.2 s
    s = TaskSchedule(TaskKind(), T0, policy, PollTrack(), followed_since=T0 + 1000)
    s.seen(RemoteTask("t", "queued"), T0 + 1001)
    assert not s.stuck(T0 + 1040, FORECAST)
    assert s.stuck(T0 + 1044, FORECAST)


@given(
    st.lists(st.floats(min_value=0, max_value=1e4), max_size=20),
    st.lists(st.tuples(st.floats(min_value=1, max_value=1e4), st.integers(1, 1000)), max_size=5),
    st.integers(1, 100),
)
def test_eta_is_at_least_the_longest_task_and_the_work_over_the_slots(
    remaining: list[float], pending: list[tuple[float, int]], slots: int
) -> None:
    """The ETA never promises less than the longest task left or the total work per slot."""
    eta = eta_s(remaining, pending, slots=slots, rate_per_s=5.0)
    work = sum(remaining) + sum(e * n for e, n in pending)
    assert eta >= max(remaining, default=0.0)
    assert eta >= work / slots - 1e-6
    assert eta_s([], [], slots=slots, rate_per_s=5.0) == 0.0
