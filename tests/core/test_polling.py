"""The poll schedule stays within the service's guidance, and learns run times soundly."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.models import RemoteTask
from batchgen.polling import (
    Forecast,
    PollPolicy,
    PollTrack,
    RuntimeModel,
    TaskKind,
    anchor_s,
    is_stuck,
    next_poll_delay,
    prior_runtime_s,
    task_kind,
)

EPOCH = 1_800_000_000.0
STD5 = TaskKind("std", 5)
scales = st.sampled_from([1.0, 0.1, 0.01, 0.002])
times = st.floats(min_value=0, max_value=10_000, allow_nan=False)
spreads = st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=30).map(lambda v: tuple(sorted(v)))
forecasts = st.builds(Forecast, queue_s=st.floats(0, 600), run_s=st.floats(1, 5000), shape=spreads)
tracks = st.builds(
    PollTrack,
    polls=st.integers(1, 50),
    queued_s=st.none() | times,
    processing_seen_s=st.none() | times,
    started_s=st.none() | times,
)


def stamp(offset_s: float) -> str:
    """The service's ISO timestamp ``offset_s`` seconds after the task was created."""
    when = datetime.fromtimestamp(EPOCH + offset_s, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def answer(at_s: float, queue_s: float, processing_s: float) -> RemoteTask:
    """What a poll ``at_s`` after creation sees of a task with this timeline."""
    if at_s < queue_s:
        status, changed = "queued", 0.0
    elif at_s < queue_s + processing_s:
        status, changed = "processing", queue_s
    else:
        status, changed = "succeeded", queue_s + processing_s
    return RemoteTask("task_1", status, created_at=stamp(0.0), updated_at=stamp(changed))


def simulate(
    queue_s: float, processing_s: float, forecast: Forecast, p: PollPolicy
) -> tuple[int, float, PollTrack]:
    """Poll one task on the schedule: (polls, when its finish was noticed, final track)."""
    track, now = PollTrack(), 0.0
    for _ in range(1000):
        now += next_poll_delay(track, now, forecast, p)
        track = track.seen(answer(now, queue_s, processing_s), now)
        if track.finished_s is not None:
            return track.polls, now, track
    raise AssertionError("the schedule never reached the finish")


def learned(kind: TaskKind = STD5, queue_s: float = 10.0, n: int = 40) -> RuntimeModel:
    """A model that saw ``n`` tasks of ``kind`` with exact timestamps, 60-80 s processing."""
    model = RuntimeModel()
    for i in range(n):
        run = 60.0 + 20.0 * i / (n - 1)
        track = PollTrack(polls=3, started_s=queue_s, finished_s=queue_s + run)
        model.observe(kind, track, queue_s + run + 0.5)
    return model


@given(track=tracks, elapsed=times, forecast=forecasts, scale=scales)
def test_never_a_tight_loop(
    track: PollTrack, elapsed: float, forecast: Forecast, scale: float
) -> None:
    """After the first poll every gap is at least the (scaled) 5 s minimum, and at most the cap
    unless it waits for the aim."""
    p = PollPolicy(time_scale=scale)
    delay = next_poll_delay(track, elapsed, forecast, p)
    assert delay >= p.scaled(p.min_interval_s) - 1e-9
    to_aim = anchor_s(track, forecast) + forecast.processing_s(p.aim_quantile) - elapsed
    assert delay <= max(p.scaled(p.max_interval_s), p.scaled(p.min_interval_s), to_aim) + 1e-9


@given(elapsed=st.floats(0, 2), forecast=forecasts, scale=scales)
def test_first_poll_lands_at_two_to_three_seconds(
    elapsed: float, forecast: Forecast, scale: float
) -> None:
    """The first poll happens 2.5 s (scaled) after submit, whatever the forecast."""
    p = PollPolicy(time_scale=scale)
    first = elapsed * scale + next_poll_delay(PollTrack(), elapsed * scale, forecast, p)
    assert first == pytest.approx(2.5 * scale)


@given(track=tracks, elapsed=times, forecast=forecasts, scale=scales)
def test_fixed_poller_keeps_its_period(
    track: PollTrack, elapsed: float, forecast: Forecast, scale: float
) -> None:
    """With ``fixed_interval_s`` every gap after the first is that period, scaled."""
    p = PollPolicy(fixed_interval_s=5.0, time_scale=scale)
    assert next_poll_delay(track, elapsed, forecast, p) == pytest.approx(5.0 * scale)


def test_second_poll_aims_at_the_learned_quantile() -> None:
    """After the first poll, the next lands when ``aim_quantile`` of the kind would be done."""
    p = PollPolicy()
    forecast = learned().forecast(STD5, p)
    track = PollTrack(polls=1, queued_s=2.5)
    aim = forecast.queue_s + forecast.processing_s(p.aim_quantile)
    assert 2.5 + next_poll_delay(track, 2.5, forecast, p) == pytest.approx(aim)
    assert forecast.queue_s == pytest.approx(10.0)
    assert 60.0 < forecast.processing_s(p.aim_quantile) < 80.0


@given(queued=st.floats(10, 5000))
def test_a_task_still_queued_is_not_expected_before_it_could_finish(queued: float) -> None:
    """A poll that still sees the task queued moves its anchor: the next poll waits the aim's
    processing time, since the task cannot finish sooner than that after it starts."""
    p = PollPolicy()
    forecast = learned().forecast(STD5, p)
    track = PollTrack(polls=2, queued_s=queued)
    delay = next_poll_delay(track, queued, forecast, p)
    assert delay == pytest.approx(forecast.processing_s(p.aim_quantile))


@given(finish=st.floats(0.0, 0.999), queue=st.floats(5, 20))
def test_a_task_done_by_the_aim_costs_two_polls(finish: float, queue: float) -> None:
    """A task that finishes before the aim poll is noticed there: two polls in all."""
    p = PollPolicy()
    forecast = learned().forecast(STD5, p)
    aim = forecast.queue_s + forecast.processing_s(p.aim_quantile)
    done = 5.1 + finish * (aim - 5.1)
    start = min(queue, done - 0.1)
    polls, noticed, _ = simulate(start, done - start, forecast, p)
    assert (polls, noticed) == (2, pytest.approx(aim))


@given(queue=st.floats(5, 20), quantile=st.floats(0.6, 0.89))
def test_a_task_done_in_the_watch_is_noticed_promptly(queue: float, quantile: float) -> None:
    """A task finishing in the watch window is noticed within ``watch_fraction`` of its run."""
    p = PollPolicy()
    forecast = learned().forecast(STD5, p)
    processing = forecast.processing_s(quantile) + 0.01
    _, noticed, track = simulate(queue, processing, forecast, p)
    run = queue + processing
    if track.polls > 2:  # polled past the aim: anchored at the exact start
        assert track.started_s == pytest.approx(queue, abs=1e-3)
    assert noticed - run <= p.watch_fraction * run + 1e-3


@given(
    runs=st.lists(st.floats(10, 1000), min_size=1, max_size=50),
    low=st.floats(10, 1000),
    more=st.floats(0, 1000),
)
def test_a_longer_run_never_lowers_the_forecast(runs: list[float], low: float, more: float) -> None:
    """Learning is monotonic: the same history plus a longer run forecasts no less."""
    p = PollPolicy()

    def expected_after(last: float) -> float:
        model = RuntimeModel()
        for run in [*runs, last]:
            model.observe(STD5, PollTrack(polls=2, finished_s=run), run)
        return model.expected_s(STD5, p)

    assert expected_after(low + more) >= expected_after(low) - 1e-9


@given(queue=st.floats(1, 100), run=st.floats(1, 1000), n=st.integers(1, 30))
def test_exact_observations_are_learned_exactly(queue: float, run: float, n: int) -> None:
    """Tasks that all queue ``queue`` s and run ``run`` s teach exactly that timeline."""
    p, model = PollPolicy(), RuntimeModel()
    for _ in range(n):
        track = PollTrack(polls=3, started_s=queue, finished_s=queue + run)
        model.observe(STD5, track, queue + run + 1.0)
    forecast = model.forecast(STD5, p)
    assert forecast.queue_s == pytest.approx(queue)
    assert forecast.expected_s == pytest.approx(queue + run)
    assert forecast.processing_s(0.5) == pytest.approx(max(run, (queue + run) / 2))


def test_runtime_model_starts_from_the_prior_and_transfers() -> None:
    """Before any finish the prior holds; observed kinds rescale the prior of unseen ones."""
    p = PollPolicy()
    model = RuntimeModel()
    assert model.expected_s(STD5, p) == pytest.approx(prior_runtime_s("std", 5))
    for run in (40.0, 50.0, 60.0):
        model.observe(STD5, PollTrack(polls=2, started_s=10.0, finished_s=10.0 + run), 0.0)
    typical = statistics.geometric_mean([50.0, 60.0, 70.0])
    assert model.expected_s(STD5, p) == pytest.approx(typical)
    ratio = typical / prior_runtime_s("std", 5)
    assert model.expected_s(TaskKind("pro", 10), p) == pytest.approx(
        ratio * prior_runtime_s("pro", 10)
    )


def test_a_first_sample_is_blended_with_the_batch() -> None:
    """One run of a new kind moves its forecast only part of the way from the batch's guess."""
    p = PollPolicy()
    model = learned()
    pro5 = TaskKind("pro", 5)
    borrowed = model.expected_s(pro5, p)
    model.observe(pro5, PollTrack(polls=2, finished_s=1.3 * borrowed), 0.0)
    assert borrowed < model.expected_s(pro5, p) < 1.3 * borrowed


def test_the_pooled_spread_replaces_the_prior() -> None:
    """With enough observations, the kind's spread is its own, not the prior's."""
    p = PollPolicy()
    forecast = learned().forecast(STD5, p)
    assert forecast.processing_s(0.0) == pytest.approx(60.0)
    assert forecast.processing_s(1.0) == pytest.approx(80.0)


def test_polls_read_the_service_timestamps() -> None:
    """A poll that sees processing learns the exact start; the terminal one the exact finish."""
    track = PollTrack(polls=1, queued_s=2.5)
    track = track.seen(answer(40.0, 12.0, 50.0), 40.0)
    assert (track.polls, track.started_s, track.processing_seen_s) == (2, 12.0, 40.0)
    later = RemoteTask("task_1", "processing", created_at=stamp(0.0), updated_at=stamp(30.0))
    assert track.seen(later, 50.0).started_s == 12.0  # the first sighting's start holds
    track = track.seen(answer(70.0, 12.0, 50.0), 70.0)
    assert (track.polls, track.finished_s) == (3, 62.0)


def test_task_kind_reads_the_params() -> None:
    """The kind comes from mode, duration, sound and multi-shots, with the contract defaults."""
    assert task_kind({}) == TaskKind("pro", 5, False, False)
    params = {"mode": "std", "duration": "10", "sound": "true", "multi_shots": "true"}
    assert task_kind(params) == TaskKind("std", 10, True, True)


def test_stuck_only_after_long_overrun() -> None:
    """A task is reported stuck only far past its expected time and the absolute minimum."""
    p = PollPolicy()
    assert not is_stuck(500, 90, p)
    assert is_stuck(2000, 90, p)


def test_processing_time_counts_from_the_service_start_else_first_sighting() -> None:
    """Processing time is 0 until a poll sees the task processing; then it counts from the
    service's own start stamp when known, else from that first sighting."""
    from batchgen.models import RemoteTask
    from batchgen.polling import PollTrack

    queued = RemoteTask(id="t", status="queued")
    track = PollTrack().seen(queued, 3.0)
    assert track.processing_s(50.0) == 0.0
    seen = track.seen(RemoteTask(id="t", status="processing"), 10.0)  # no timestamps
    assert seen.processing_s(50.0) == 40.0
    stamped = RemoteTask(
        id="t",
        status="processing",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:07Z",
    )
    assert track.seen(stamped, 10.0).processing_s(50.0) == 43.0
