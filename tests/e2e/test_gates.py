"""A submission gate added from outside batchgen: the run holds jobs back and exits 4."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from batchgen import Hold, JobSpec, RunSettings, StopReason, run_manifest
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.models import JobStatus
from batchgen.store import StateStore

from .helpers import TIME_SCALE, job_count, tasks_per_job, write_manifest


class FirstN:
    """Lets the first ``n`` jobs it is asked about through, holds every other one."""

    name = "first-n"

    def __init__(self, n: int) -> None:
        self.n = n
        self.allowed: set[str] = set()

    def check(self, job: JobSpec) -> Hold | None:
        if job.id in self.allowed or len(self.allowed) < self.n:
            self.allowed.add(job.id)
            return None
        return Hold(self.name, StopReason.HELD, f"only {self.n} jobs in this run")


def test_a_gate_from_outside_holds_jobs_pending_and_the_run_exits_4(tmp_path: Path) -> None:
    """A gate that allows two submissions stops the rest: exit 4, two tasks, the other jobs
    still pending; a rerun without the gate finishes them with one task per job."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "s.db"
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=3, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        base = RunSettings(state_path=state, time_scale=float(TIME_SCALE), env=env)
        gate = FirstN(2)
        held = run_manifest(manifest, RunSettings(**{**base.__dict__, "gates": (gate,)}))
        after_gate = emu.ledger()
        with StateStore.open_readonly(state) as store:
            statuses = sorted(r.status for r in store.jobs())
        finished = run_manifest(manifest, base)
        ledger = emu.ledger()
    assert held.exit_code == 4
    assert held.outcome.stop_reasons == [StopReason.HELD] and held.outcome.submitted == 2
    assert len(after_gate["tasks"]) == 2
    assert statuses.count(JobStatus.SUCCEEDED) == 2
    assert statuses.count(JobStatus.PENDING) == job_count() - 2
    assert finished.exit_code == 0 and finished.outcome.submitted == job_count() - 2
    assert sorted(tasks_per_job(ledger).values()) == [1] * job_count()


class SignalOnFirstHold:
    """Holds every job; the first time it is asked, the process gets a SIGINT (as from Ctrl-C
    while the queue is full of jobs no gate lets through)."""

    name = "always-closed"

    def __init__(self) -> None:
        self.asked = 0

    def check(self, job: JobSpec) -> Hold | None:
        self.asked += 1
        if self.asked == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return Hold(self.name, StopReason.HELD, "closed")


def test_a_signal_lands_while_workers_run_through_held_jobs(tmp_path: Path) -> None:
    """Held jobs are decided without awaiting anything; a worker still gives the signal its
    turn after each one, so Ctrl-C stops the run after a few held jobs, not after the whole
    queue (a million jobs would take minutes)."""
    products = tuple(f"p{i:03d}" for i in range(300))  # 601 jobs
    manifest = write_manifest(tmp_path, products=products)
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=3, rate_limit_per_s=1000.0)
    gate = SignalOnFirstHold()
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        settings = RunSettings(
            state_path=tmp_path / "s.db",
            time_scale=float(TIME_SCALE),
            env=env,
            gates=(gate,),
            handle_signals=True,
        )
        result = run_manifest(manifest, settings)
        tasks = emu.ledger()["tasks"]
    assert StopReason.SIGINT in result.outcome.stop_reasons
    assert tasks == []
    assert gate.asked < 100, f"the gate was asked about {gate.asked} of 601 jobs after Ctrl-C"
