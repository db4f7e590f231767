"""Running out of credits pauses a batch resumably; Ctrl-C and SIGTERM stop it cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from batchgen.commands import RunSettings, run_manifest
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.outcome import StopReason
from batchgen.report import ReportStatus

from .helpers import (
    TIME_SCALE,
    batchgen_cmd,
    env_for,
    job_count,
    start_cli,
    tasks_per_job,
    write_manifest,
)


def settings_for(emu, state: Path) -> RunSettings:
    return RunSettings(
        state_path=state,
        time_scale=float(TIME_SCALE),
        env={"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key},
    )


def charged_tasks_per_job(ledger: dict) -> Counter[str]:
    refunded = {c["task_id"] for c in ledger["charges"] if c["kind"] == "refund"}
    return Counter(
        t["body"]["client_request_id"]
        for t in ledger["tasks"]
        if t["charged"] and t["id"] not in refunded
    )


@pytest.mark.parametrize("mode", ["402", "task"])
def test_out_of_credits_blocks_then_resumes_after_topup(tmp_path: Path, mode: str) -> None:
    """With credits for 3 of 5 jobs the run exits 4 with the rest blocked; after a top-up the
    same command finishes them, and no job is charged twice (either form of the error)."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE),
        seed=3,
        rate_limit_per_s=1000.0,
        starting_credits=270,
        insufficient_credits_mode=mode,
    )
    manifest = write_manifest(tmp_path)
    with EmulatorThread(cfg) as emu:
        first = run_manifest(manifest, settings_for(emu, tmp_path / "s.db"))
        by_status = dict(first.report.totals.by_status)
        assert first.exit_code == 4
        assert StopReason.CREDITS in first.outcome.stop_reasons
        assert by_status == {"succeeded": 3, "blocked": 2}
        blocked = [j for j in first.report.jobs if j.status is ReportStatus.BLOCKED]
        assert all(j.error is not None and j.error.code == "insufficient_credits" for j in blocked)
        emu.topup(1000)
        second = run_manifest(manifest, settings_for(emu, tmp_path / "s.db"))
        ledger = emu.ledger()
    assert second.exit_code == 0
    assert dict(second.report.totals.by_status) == {"succeeded": job_count()}
    assert set(charged_tasks_per_job(ledger).values()) == {1}
    assert len(charged_tasks_per_job(ledger)) == job_count()
    assert second.report.totals.final_credits == 90 * job_count()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 4)])
def test_signal_stops_cleanly_and_rerun_finishes(tmp_path: Path, signum: int, code: int) -> None:
    """SIGINT exits 130 and SIGTERM exits 4 with the state saved; the rerun finishes every job
    with exactly one task each."""
    cfg = EmulatorConfig(time_scale=0.02, seed=4, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, products=("a", "b", "c"))
    args = ("run", str(manifest), "--state", str(tmp_path / "s.db"), "--time-scale", "0.02")
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        proc = start_cli(*args, env=env)
        deadline = time.monotonic() + 30
        while not emu.ledger()["tasks"] and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        assert "Traceback" not in err
        assert "run the same command again" in out.lower()
        if signum == signal.SIGTERM:
            assert "stopped by SIGTERM" in out
        rerun = subprocess.run(
            batchgen_cmd(*args, "-q"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        ledger = emu.ledger()
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(tasks_per_job(ledger).values()) == [1] * (3 * 2 + 1)


def test_long_outage_ends_resumable_and_fails_nothing(tmp_path: Path) -> None:
    """A public_api_disabled outage that outlasts the retry deadline exits 4 with no job failed;
    once the service is back the same command finishes the batch."""
    from batchgen.retry import RetryPolicy

    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=6, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path)
    with EmulatorThread(cfg) as emu:
        settings = settings_for(emu, tmp_path / "s.db")
        quick = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, deadline_s=1.0)
        emu.set_switches(public_api_disabled=True)
        down = run_manifest(manifest, RunSettings(**{**settings.__dict__, "retry": quick}))
        assert down.exit_code == 4
        assert down.outcome.unfinished == job_count()
        assert down.report.totals.count(ReportStatus.FAILED) == 0
        emu.set_switches(public_api_disabled=False)
        back = run_manifest(manifest, settings)
        ledger = emu.ledger()
    assert back.exit_code == 0
    assert sorted(tasks_per_job(ledger).values()) == [1] * job_count()
