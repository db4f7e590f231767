"""Unattended runs stay inside what the user allowed: a credit budget (exact to one job, refunds
counted), a pilot's limit on new jobs, and a submission deadline; each ends resumable (exit 4)
and a later run continues."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from batchgen import RunSettings, run_manifest
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.events import Event, JobChanged
from batchgen.models import JobStatus
from batchgen.outcome import StopReason
from batchgen.report import ReportStatus

from .helpers import run_cli, tasks_per_job, write_manifest

PRODUCTS = tuple(f"p{i}" for i in range(5))  # 10 jobs + hero = 11


def _settings(emu: EmulatorThread, state: Path, **extra: object) -> RunSettings:
    env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
    extra.setdefault("time_scale", 0.01)
    return RunSettings(state_path=state, env=env, **extra)  # type: ignore[arg-type]


def _net(ledger: dict) -> int:  # type: ignore[type-arg]
    return sum(c["amount"] * (1 if c["kind"] == "charge" else -1) for c in ledger["charges"])


def test_a_budget_is_never_exceeded_exact_to_one_job_and_a_larger_one_continues(
    tmp_path: Path,
) -> None:
    """--max-credits 450 at 90 a task: exactly 5 tasks, the rest wait (exit 4, the reason
    named); a larger budget finishes the batch without paying any job twice."""
    cfg = EmulatorConfig(time_scale=0.01, seed=1, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        first = run_manifest(manifest, _settings(emu, state, max_credits=450))
        assert first.exit_code == 4
        assert StopReason.HELD in first.outcome.stop_reasons
        assert "waiting for budget" in first.outcome.holds["budget"]
        assert len(emu.ledger()["tasks"]) == 5
        assert first.report.totals.charged_credits == 450
        assert first.report.totals.count(ReportStatus.PENDING) == 6
        second = run_manifest(manifest, _settings(emu, state, max_credits=2000))
        ledger = emu.ledger()
    assert second.exit_code == 0
    assert set(tasks_per_job(ledger).values()) == {1} and len(ledger["tasks"]) == 11
    assert _net(ledger) == second.report.totals.final_credits == 990


def test_refunds_free_the_budget_for_more_jobs(tmp_path: Path) -> None:
    """With a third of the tasks failing (refunded), a 450-credit budget pays for more than
    5 tasks, and the charge never passes 450."""
    cfg = EmulatorConfig(time_scale=0.01, seed=3, rate_limit_per_s=1000.0, failure_rate=0.35)
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        result = run_manifest(manifest, _settings(emu, state, max_credits=450, max_in_flight=2))
        ledger = emu.ledger()
    assert _net(ledger) <= 450
    assert len(ledger["tasks"]) > 5, "refunded tasks gave their credits back to the budget"
    statuses = Counter(j.status for j in result.report.jobs)
    assert statuses[ReportStatus.FAILED] > 0


def test_limit_submits_a_pilot_then_the_same_command_continues(tmp_path: Path) -> None:
    """--limit 3 submits exactly three new jobs (exit 4); without it the rest follow."""
    cfg = EmulatorConfig(time_scale=0.01, seed=1, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        args = ("run", str(manifest), "--state", str(state), "--time-scale", "0.01", "-q")
        pilot = run_cli(*args, "--limit", "3", env=env)
        assert pilot.returncode == 4, pilot.stderr
        assert len(emu.ledger()["tasks"]) == 3
        rest = run_cli(*args, env=env)
        ledger = emu.ledger()
    assert rest.returncode == 0, rest.stderr
    assert set(tasks_per_job(ledger).values()) == {1} and len(ledger["tasks"]) == 11


@pytest.mark.slow
def test_a_deadline_that_passes_mid_run_stops_submitting_but_finishes_what_flies(
    tmp_path: Path,
) -> None:
    """The submission deadline passes while tasks run: nothing is created after it, the tasks
    created before it are followed and downloaded, exit 4; the next run continues."""
    cfg = EmulatorConfig(time_scale=0.05, seed=1, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = tmp_path / "s.db"
    began: list[float] = []

    def note(event: Event) -> None:
        if isinstance(event, JobChanged) and event.status is JobStatus.SUBMITTING:
            began.append(time.time())

    with EmulatorThread(cfg) as emu:
        until = time.time() + 1.0
        settings = _settings(
            emu, state, until=until, max_in_flight=2, time_scale=0.05, subscribers=(note,)
        )
        first = run_manifest(manifest, settings)
        ledger = emu.ledger()
        assert first.exit_code == 4
        assert "deadline" in first.outcome.holds
        assert 0 < len(ledger["tasks"]) < 11
        assert began and max(began) <= until, "nothing was submitted after the deadline"
        done = first.report.totals.count(ReportStatus.SUCCEEDED)
        assert done == len(ledger["tasks"]), "every task created before it was finished"
        second = run_manifest(manifest, _settings(emu, state, max_in_flight=4))
    assert second.exit_code == 0


def test_a_schedule_window_holds_new_jobs_outside_it_and_runs_inside(tmp_path: Path) -> None:
    """``schedule.window`` closed now: nothing is submitted, exit 4, the message says when it
    opens; a window that holds now runs the batch."""
    cfg = EmulatorConfig(time_scale=0.01, seed=1, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, products=("a",))
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    closed = f"{(now + timedelta(hours=2)):%H:%M}-{(now + timedelta(hours=3)):%H:%M}"
    open_ = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    text = manifest.read_text()
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        args = ("run", str(manifest), "--state", str(state), "--time-scale", "0.01", "-q")
        manifest.write_text(text + f'schedule:\n  window: "{closed}"\n  timezone: Asia/Tokyo\n')
        held = run_cli(*args, env=env)
        assert held.returncode == 4, held.stderr
        assert "only inside" in held.stderr and "Asia/Tokyo" in held.stderr
        assert emu.ledger()["tasks"] == []
        manifest.write_text(text + f'schedule:\n  window: "{open_}"\n  timezone: Asia/Tokyo\n')
        ran = run_cli(*args, env=env)
        assert ran.returncode == 0, ran.stderr
        assert len(emu.ledger()["tasks"]) == 3
