"""When to poll a task next, and what the batch has learned about run times.

Pure: the runner sleeps, this only decides how long. The service's guidance is: first poll 2-3 s
after submit, then every 5-10 s, slower for long video jobs, never a tight loop; a client may
adapt the schedule to the job's expected run time. A task is ``queued`` (waiting for a slot),
then ``processing`` (rendering), then terminal, and its ``updated_at`` says when the status last
changed: a poll that sees ``processing`` tells exactly when rendering began, and the terminal
answer exactly when the task finished. The schedule of one task (every figure times
``time_scale``):

1. **first** poll at ``first_poll_s`` (catches a task that fails at once);
2. **aim**: the poll when ``aim_quantile`` of the tasks of its kind would have finished: from
   submit while its start is unknown, or from its *anchor*, the start of processing, once a poll
   has seen it (or has still seen it queued later than a typical queue wait);
3. **watch**: then every ``watch_fraction`` of its expected run time, until
   ``watch_until_quantile`` of its kind would have finished;
4. **tail**: past that, every ``tail_fraction`` of its expected run time.

Every gap after the first is at least ``min_interval_s``; watch and tail gaps are at most
``max_interval_s``. ``fixed_interval_s`` replaces 2-4 by a plain period (the guidance's 5 s
poller, kept for comparison in ``bench/bench_polling.py``).

Why this shape: a task that finishes before the aim costs two polls and is noticed at the aim
(promptly if it finished shortly before); one that finishes in the watch window is noticed
within ``watch_fraction`` of its run time; the slow tail costs little. ``aim_quantile`` is the
one trade-off: later means fewer polls for everyone but later notice of the tasks that finish
before the aim; 0.55 balances "about 3 polls a task" against "noticed within 10% of the run time
for most tasks" (``bench/bench_polling.py`` records where it lands). Anchoring at the start of
processing removes the queue wait from the forecast, which matters when a big batch waits for
the account's processing slots.

``RuntimeModel`` learns, per ``TaskKind`` (mode, duration, sound, multi-shots), the exact run
times (service timestamps, creation to finish) of the batch's succeeded tasks, and batch-wide the
queue waits of those whose start a poll saw; a kind's centre is its own (blended with the
batch's guess while it has few runs), its spread (the shape of the distribution) is pooled over
kinds, and kinds not seen yet borrow from those seen.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from batchgen.models import RemoteStatus, RemoteTask, parse_timestamp

WINDOW = 200  # observations kept per kind, and queue waits kept for the batch (most recent)
KIND_PRIOR_WEIGHT = 3.0  # a kind's own centre outweighs the batch's guess from this many runs
MIN_KIND_SAMPLES = 5  # a kind contributes to the pooled spread from this many observations ...
MIN_SHAPE_SAMPLES = 20  # ... and the pooled spread replaces the prior from this many in all
PRIOR_QUEUE_S = 10.0  # typical wait before processing, before the batch has seen one
PRIOR_SPREAD_SIGMA = 0.3  # log-normal spread assumed for a kind before the batch has seen enough
MIN_PROCESSING_SHARE = 0.5  # a forecast processing time is at least this share of the run time
_PRIOR_POINTS = 41


@dataclass(frozen=True)
class PollPolicy:
    """How a run polls. Seconds are the real service's; ``time_scale`` multiplies them all."""

    first_poll_s: float = 2.5
    min_interval_s: float = 5.0
    max_interval_s: float = 60.0
    aim_quantile: float = 0.55
    watch_fraction: float = 0.1
    watch_until_quantile: float = 0.9
    tail_fraction: float = 0.25
    fixed_interval_s: float | None = None  # poll every this many seconds instead (comparison)
    stuck_factor: float = 8.0  # give up polling after this many expected run times ...
    stuck_min_s: float = 1800.0  # ... but never before this long
    time_scale: float = 1.0

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale


@dataclass(frozen=True, order=True)
class TaskKind:
    """The params that set how long a kling-3-0 task takes; tasks of one kind are alike."""

    mode: str = "pro"
    duration_s: int = 5
    sound: bool = False
    multi_shots: bool = False


def task_kind(params: Mapping[str, str]) -> TaskKind:
    """The kind of a job from its params (documented string form, contract defaults)."""
    duration = params.get("duration", "5")
    return TaskKind(
        mode=params.get("mode", "pro"),
        duration_s=int(duration) if str(duration).isdigit() else 5,
        sound=params.get("sound") == "true",
        multi_shots=params.get("multi_shots") == "true",
    )


def prior_runtime_s(mode: str, duration_s: int) -> float:
    """What a task is expected to take, submit to finish, before the batch has seen any finish
    (unscaled). A 5 s std clip is expected at about 90 s (the service takes roughly 1-4
    minutes); longer clips and ``pro`` take longer."""
    base = 30.0 + 12.0 * duration_s
    return base * (1.6 if mode == "pro" else 1.0)


def _prior_s(kind: TaskKind, p: PollPolicy) -> float:
    return p.scaled(prior_runtime_s(kind.mode, kind.duration_s))


def _prior_shape() -> tuple[float, ...]:
    normal = statistics.NormalDist(0.0, PRIOR_SPREAD_SIGMA)
    return tuple(normal.inv_cdf((i + 0.5) / _PRIOR_POINTS) for i in range(_PRIOR_POINTS))


PRIOR_SHAPE = _prior_shape()


def _quantile(ordered: tuple[float, ...], q: float) -> float:
    """Linear-interpolated quantile of a sorted, non-empty tuple."""
    pos = min(max(q, 0.0), 1.0) * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Forecast:
    """A kind's expected timeline, in scaled seconds since submit."""

    queue_s: float  # typical wait before processing starts
    run_s: float  # typical run time (geometric mean), submit to finish
    shape: tuple[float, ...] = PRIOR_SHAPE  # sorted log(run time / run_s); never empty

    def run_quantile_s(self, q: float) -> float:
        """The run time that a share ``q`` of this kind's tasks finish within."""
        return self.run_s * math.exp(_quantile(self.shape, q))

    def processing_s(self, q: float) -> float:
        """The same, counted from the start of processing: the run time less the queue wait."""
        run = self.run_quantile_s(q)
        return max(run - self.queue_s, MIN_PROCESSING_SHARE * run)

    @property
    def expected_s(self) -> float:
        """The typical run time, submit to finish."""
        return self.run_s


@dataclass(frozen=True)
class PollTrack:
    """What the polls have seen of one task, in seconds since it was submitted."""

    polls: int = 0
    queued_s: float | None = None  # the last poll that still saw it queued
    processing_seen_s: float | None = None  # the first poll that saw it processing
    started_s: float | None = None  # processing began (exact, from the service's timestamps)
    finished_s: float | None = None  # it finished (exact, from the service's timestamps)

    def processing_s(self, elapsed_s: float) -> float:
        """How long the task has been processing at ``elapsed_s`` (0 while not yet seen so)."""
        began = self.started_s if self.started_s is not None else self.processing_seen_s
        return 0.0 if began is None else max(elapsed_s - began, 0.0)

    def seen(self, task: RemoteTask, elapsed_s: float) -> PollTrack:
        """This track after a poll, ``elapsed_s`` after submit, answered ``task``."""
        changed = _stamp_offset(task)
        track = replace(self, polls=self.polls + 1)
        if task.status is RemoteStatus.QUEUED:
            return replace(track, queued_s=elapsed_s)
        if task.is_terminal:
            return replace(track, finished_s=changed)
        if task.status in (RemoteStatus.PROCESSING, RemoteStatus.UNKNOWN):  # unknown: running
            if self.processing_seen_s is not None:  # the first sighting's start holds
                return track
            return replace(track, processing_seen_s=elapsed_s, started_s=changed)
        return track


def _stamp_offset(task: RemoteTask) -> float | None:
    """Seconds from the task's creation to its last status change, by the service's clock."""
    created, updated = parse_timestamp(task.created_at), parse_timestamp(task.updated_at)
    if created is None or updated is None:
        return None
    return max(updated - created, 0.0)


def anchor_s(track: PollTrack, forecast: Forecast) -> float:
    """When the task began (or will begin) processing, in seconds since submit."""
    if track.started_s is not None:
        return track.started_s
    anchor = max(forecast.queue_s, track.queued_s or 0.0)
    if track.processing_seen_s is not None:
        anchor = min(anchor, track.processing_seen_s)
    return anchor


def next_poll_delay(track: PollTrack, elapsed_s: float, forecast: Forecast, p: PollPolicy) -> float:
    """Seconds to wait before the next status poll of a task submitted ``elapsed_s`` ago."""
    if track.polls == 0:
        return max(p.scaled(p.first_poll_s) - elapsed_s, 0.0)
    min_gap = p.scaled(p.min_interval_s)
    if p.fixed_interval_s is not None:
        return max(p.scaled(p.fixed_interval_s), min_gap)
    anchor = anchor_s(track, forecast)
    aim = anchor + forecast.processing_s(p.aim_quantile)
    if aim - elapsed_s >= min_gap:
        return aim - elapsed_s
    expected = anchor + forecast.processing_s(0.5)
    watching = elapsed_s < anchor + forecast.processing_s(p.watch_until_quantile)
    gap = (p.watch_fraction if watching else p.tail_fraction) * expected
    return min(max(gap, min_gap), max(p.scaled(p.max_interval_s), min_gap))


def is_stuck(elapsed_s: float, expected_s: float, p: PollPolicy) -> bool:
    """True once a task has run far longer than expected: report it, stop polling it."""
    return elapsed_s > max(p.stuck_factor * expected_s, p.scaled(p.stuck_min_s))


@dataclass
class RuntimeModel:
    """Learns run times per kind, and queue waits, from the batch's finished tasks.

    Every finished task teaches its exact run time (the service's creation and finish
    timestamps), so the run times of a kind are an unbiased sample whichever poll noticed them.
    Queue waits are known only for tasks a poll saw processing; they serve only to re-anchor a
    task whose own start is known.
    """

    runs: dict[TaskKind, deque[float]] = field(default_factory=dict)
    queue: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _cache: dict[tuple[TaskKind, PollPolicy], Forecast] = field(default_factory=dict, repr=False)

    def observe(self, kind: TaskKind, track: PollTrack, run_s: float) -> None:
        """Learn from a task of ``kind`` that succeeded ``run_s`` after submit; the service's
        timestamps in ``track`` win over ``run_s`` (the client's own, coarser measure)."""
        run = track.finished_s if track.finished_s is not None else run_s
        if run <= 0:
            return
        if track.started_s is not None and track.started_s < run:
            self.queue.append(track.started_s)
        self.runs.setdefault(kind, deque(maxlen=WINDOW)).append(run)
        self._cache.clear()

    def forecast(self, kind: TaskKind, p: PollPolicy) -> Forecast:
        """The kind's forecast: its own centre, else others' rescaled through the prior."""
        cached = self._cache.get((kind, p))
        if cached is None:
            cached = self._cache[(kind, p)] = Forecast(
                queue_s=statistics.median(self.queue) if self.queue else p.scaled(PRIOR_QUEUE_S),
                run_s=self._typical_s(kind, p),
                shape=self._shape(),
            )
        return cached

    def expected_s(self, kind: TaskKind, p: PollPolicy) -> float:
        """The kind's typical run time, submit to finish (scaled seconds)."""
        return self.forecast(kind, p).expected_s

    def _typical_s(self, kind: TaskKind, p: PollPolicy) -> float:
        """The kind's own centre, blended (in log space) with the batch-wide estimate while it
        has few observations: one unlucky first sample must not set the aim of the next."""
        ratios = [_typical(v) / _prior_s(k, p) for k, v in self.runs.items()]
        borrowed = (statistics.median(ratios) if ratios else 1.0) * _prior_s(kind, p)
        own = self.runs.get(kind)
        if not own:
            return borrowed
        weight = len(own) / (len(own) + KIND_PRIOR_WEIGHT)
        return math.exp(weight * math.log(_typical(own)) + (1 - weight) * math.log(borrowed))

    def _shape(self) -> tuple[float, ...]:
        """Sorted log-residuals around each kind's centre, pooled; the prior until enough."""
        pooled: list[float] = []
        for samples in self.runs.values():
            if len(samples) >= MIN_KIND_SAMPLES:
                typical = _typical(samples)
                pooled.extend(math.log(s / typical) for s in samples)
        if len(pooled) < MIN_SHAPE_SAMPLES:
            return PRIOR_SHAPE
        return tuple(sorted(pooled))


def _typical(samples: deque[float]) -> float:
    """The geometric mean: the centre of log-normal-like run times, steadier than the median."""
    return statistics.geometric_mean(samples)
