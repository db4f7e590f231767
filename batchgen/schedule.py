"""One task's poll schedule on its own clock, the stuck rule, and the run's ETA.

``polling`` decides the shape of a schedule (pure maths over a ``PollTrack``); this module
applies it to one task of one run:

* **The task's clock** starts when the service created it (``created_at``), clamped to what
  this client saw: never before the create request that made it was first sent, never after
  its id was recorded (so a skewed server clock cannot push it around). A failed earlier
  attempt or an outage before the create does not age the task.
* **Inherited tasks** (in flight when the run started) are polled once at once: they may have
  finished while no run was watching. The run's shared request budget spreads those polls.
* **Stuck**: a task is given up on for this run (reported; a rerun resumes it) when it has
  been processing far longer than its kind's forecast, or has been followed past
  ``QUEUED_DEADLINE_S`` (scaled) without finishing. Never before this run has polled it once:
  a rerun long after the submit must look before it judges.
* **ETA**: the work left (in-flight tasks' expected remaining time, pending jobs' expected run
  time) spread over the in-flight slots and the request budget; from the same forecasts that
  schedule the polls.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from batchgen.models import RemoteTask, parse_timestamp
from batchgen.polling import (
    Forecast,
    PollPolicy,
    PollTrack,
    TaskKind,
    is_stuck,
    next_poll_delay,
)

QUEUED_DEADLINE_S = 12 * 3600.0  # follow an unfinished task at most this long per run (scaled)
REQUESTS_PER_JOB = 4.0  # a submit and about three polls (bench_polling): for the ETA


def task_origin(
    created_at: str | None,
    submitted_at: str | None,
    recorded_at: str | None,
    *,
    now: float | None = None,
) -> float:
    """Seconds since the epoch when the task's clock starts (see the module docstring)."""
    recorded = parse_timestamp(recorded_at)
    upper = recorded if recorded is not None else (now if now is not None else time.time())
    created = parse_timestamp(created_at)
    if created is None:
        submitted = parse_timestamp(submitted_at)
        return min(submitted, upper) if recorded is None and submitted is not None else upper
    lower = parse_timestamp(submitted_at)
    if lower is not None and lower <= upper:
        created = max(created, lower)
    return min(created, upper)


@dataclass
class TaskSchedule:
    """When to poll one task next and whether to give up on it, for one run."""

    kind: TaskKind
    origin: float  # seconds since the epoch: the task's clock starts here
    policy: PollPolicy
    track: PollTrack
    inherited: bool = False  # in flight when this run started: look at once
    followed_since: float = 0.0  # when this run began to follow it (epoch seconds)
    polls_this_run: int = 0

    def elapsed(self, now: float) -> float:
        return max(now - self.origin, 0.0)

    def delay(self, now: float, forecast: Forecast) -> float:
        """Seconds to wait before the next poll."""
        if self.inherited and self.polls_this_run == 0:
            return 0.0
        return next_poll_delay(self.track, self.elapsed(now), forecast, self.policy)

    def seen(self, task: RemoteTask, now: float) -> None:
        """A poll at ``now`` answered ``task``."""
        self.track = self.track.seen(task, self.elapsed(now))
        self.polls_this_run += 1

    def stuck(self, now: float, forecast: Forecast) -> bool:
        """Give up on the task for this run? Never before this run has polled it."""
        if self.polls_this_run == 0:
            return False
        processing = self.track.processing_s(self.elapsed(now))
        followed = now - max(self.origin, self.followed_since)
        return is_stuck(processing, forecast.expected_s, self.policy) or followed > (
            self.policy.scaled(QUEUED_DEADLINE_S)
        )

    def remaining_s(self, now: float, forecast: Forecast) -> float:
        """Expected seconds until the task finishes (0 once it is overdue)."""
        return max(forecast.expected_s - self.elapsed(now), 0.0)


def schedule_for(
    *,
    kind: TaskKind,
    policy: PollPolicy,
    created_at: str | None,
    submitted_at: str | None,
    recorded_at: str | None,
    started_at: str | None,
    polls: int,
    inherited: bool,
    now: float | None = None,
) -> TaskSchedule:
    """The schedule of a task as its stored row describes it."""
    now = time.time() if now is None else now
    origin = task_origin(created_at, submitted_at, recorded_at, now=now)
    track = PollTrack(polls=polls)
    started, created = parse_timestamp(started_at), parse_timestamp(created_at)
    if started is not None and created is not None and started >= created:
        track = replace(track, started_s=started - created, processing_seen_s=started - created)
    return TaskSchedule(kind, origin, policy, track, inherited=inherited, followed_since=now)


def eta_s(
    in_flight_remaining: Iterable[float],
    pending_expected: Iterable[tuple[float, int]],
    *,
    slots: int,
    rate_per_s: float,
) -> float:
    """Seconds until the work left is done: the longest task left, the total work over the
    in-flight slots, or the requests left over the request rate, whichever is longest."""
    remaining = list(in_flight_remaining)
    pending = list(pending_expected)  # (expected run time of a kind, jobs of that kind)
    work = sum(remaining) + sum(expected * count for expected, count in pending)
    requests = sum(count for _, count in pending) * REQUESTS_PER_JOB + len(remaining)
    return max(max(remaining, default=0.0), work / max(slots, 1), requests / rate_per_s)
