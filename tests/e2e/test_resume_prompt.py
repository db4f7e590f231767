"""A rerun finishes the tasks it inherited promptly, however long ago they were submitted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, EmulatorThread

from .helpers import (
    env_for,
    job_count,
    job_rows,
    run_cli_timed,
    start_cli,
    tasks_per_job,
    wait_until,
    write_manifest,
)

PRO_10 = '{mode: pro, duration: 10, sound: false, aspect_ratio: "16:9"}'
PROMPT_RERUN_S = 15.0  # "within seconds" (loose: the work itself takes about two)
RERUN_LIMIT_S = 30.0  # a rerun still busy after this is stopped and reported


def _jobs_in_state(state: Path) -> dict[str, tuple[str, int]]:
    return {job_id: (status, polls) for job_id, status, polls in job_rows(state)}


def _every_job_polled(state: Path) -> bool:
    """Every job is past its submit, and each still running has been polled at least once."""
    jobs = _jobs_in_state(state).values()
    return len(jobs) == job_count() and all(
        (status == "running" and polls >= 1) or status in ("downloading", "succeeded")
        for status, polls in jobs
    )


def _every_task_ended(emu: EmulatorThread, status: str = "succeeded") -> bool:
    tasks = emu.ledger()["tasks"]
    return len(tasks) == job_count() and all(t["status"] == status for t in tasks)


@pytest.mark.slow
def test_rerun_finishes_tasks_that_finished_while_it_was_dead(tmp_path: Path) -> None:
    """A batch killed while tasks are in flight, whose tasks finish while it is dead, is finished
    by the rerun within seconds against the emulator at a time scale of 1 with short tasks."""
    # The client polls on the real service's clock (no --time-scale: first poll 2.5 s after
    # submit, then it aims at a 1-4 minute prior); the emulator's tasks take about 3-5 s.
    cfg = EmulatorConfig(time_scale=0.02, seed=21, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, params=PRO_10)
    state = tmp_path / "s.db"
    args = ("run", str(manifest), "--state", str(state), "-q")
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        first = start_cli(*args, env=env)
        polled = wait_until(lambda: _every_job_polled(state), timeout_s=30)
        first.kill()
        first.communicate(timeout=10)
        jobs = _jobs_in_state(state)
        assert polled, f"the first run should have polled every job before the kill: {jobs}"
        in_flight = [job_id for job_id, (status, _) in jobs.items() if status == "running"]
        assert in_flight, f"the kill should land while tasks are in flight: {jobs}"
        assert wait_until(lambda: _every_task_ended(emu), timeout_s=30), emu.ledger()["tasks"]
        rerun, elapsed = run_cli_timed(*args, env=env, limit_s=RERUN_LIMIT_S)
        ledger = emu.ledger()
    assert rerun.returncode is not None, (
        f"the rerun was still running after {RERUN_LIMIT_S:.0f}s although the "
        f"{len(in_flight)} tasks it inherited had finished: {_jobs_in_state(state)}"
    )
    assert rerun.returncode == 0, rerun.stderr
    assert elapsed < PROMPT_RERUN_S, f"the rerun took {elapsed:.1f}s"
    assert sorted(tasks_per_job(ledger).values()) == [1] * job_count()


@pytest.mark.slow
def test_rerun_long_after_submit_polls_inherited_tasks(tmp_path: Path) -> None:
    """A rerun long after the submit (past the queued deadline, at a small time scale) polls the
    tasks it inherited and finishes them."""
    # At --time-scale 0.0002 the runner's 12 h queued deadline is about 8.6 s; the emulator's
    # tasks take 1-5 s, so they have long finished when the rerun comes 10 s later.
    time_scale = 0.0002
    deadline_s = 12 * 3600 * time_scale
    cfg = EmulatorConfig(time_scale=0.02, seed=22, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path)
    state = tmp_path / "s.db"
    args = ("run", str(manifest), "--state", str(state), "--time-scale", str(time_scale), "-q")
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        first = start_cli(*args, env=env)
        submitted = wait_until(
            lambda: len(emu.ledger()["tasks"]) == job_count() and first.poll() is None,
            timeout_s=30,
            interval_s=0.005,
        )
        first.kill()
        first.communicate(timeout=10)
        killed_at = time.monotonic()
        assert submitted, "the kill should land after every job was submitted"
        assert not _every_task_ended(emu), "the kill should land while tasks are in flight"
        assert wait_until(lambda: _every_task_ended(emu), timeout_s=30), emu.ledger()["tasks"]
        time.sleep(max(deadline_s + 1.5 - (time.monotonic() - killed_at), 0))
        rerun, _ = run_cli_timed(*args, env=env, limit_s=RERUN_LIMIT_S)
        ledger = emu.ledger()
    assert rerun.returncode == 0, rerun.stderr
    statuses = {job_id: status for job_id, (status, _) in _jobs_in_state(state).items()}
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert sorted(tasks_per_job(ledger).values()) == [1] * job_count()
