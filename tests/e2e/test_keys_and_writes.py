"""What the state alone cannot settle is not guessed: a key older than the service's memory is
not resent blindly, an idempotency conflict fails no job, and a paid result that cannot be
written to disk is neither a failure nor the network's fault."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from batchgen.commands import RunSettings, run_manifest
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.events import Event, Submitted
from batchgen.models import JobStatus
from batchgen.outcome import StopReason, describe_stops
from batchgen.report import ReportStatus
from batchgen.retry import RetryPolicy
from batchgen.store import StateStore

from .helpers import TIME_SCALE, env_for, request_count, run_cli, tasks_per_job, write_manifest

LIFETIME_S = 2.0


def settings_for(emu, state: Path, **kw) -> RunSettings:
    return RunSettings(
        state_path=state,
        time_scale=float(TIME_SCALE),
        env={"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key},
        **kw,
    )


def write_one_job(folder: Path) -> Path:
    """One text-to-video job: its only requests are the create and the polls."""
    path = folder / "one.yaml"
    path.write_text(
        """version: 1
batch: keys
model: kling-3-0
prompt: "A slow dolly shot of a lighthouse at dusk"
jobs:
  - id: only
output:
  dir: out
"""
    )
    return path


def statuses(state: Path) -> dict[str, JobStatus]:
    with StateStore.open_readonly(state) as store:
        return {r.job_id: r.status for r in store.jobs()}


def test_job_mid_submit_past_the_key_lifetime_is_not_resent(tmp_path: Path) -> None:
    """A job left mid-submit (its create answered by a dropped connection after the task was
    made) and rerun after the service forgot its key is not resent: exit 4, a message that
    offers the choice, one task; with --resend-expired it is resent (and, the key being
    forgotten, paid a second time: the risk the flag's help names)."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE),
        seed=5,
        rate_limit_per_s=1000.0,
        idempotency_ttl_s=LIFETIME_S,
        drop_rate=1.0,
        drop_after_create_share=1.0,
    )
    manifest = write_one_job(tmp_path)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        first = run_manifest(
            manifest,
            settings_for(emu, state, retry=RetryPolicy(max_attempts=1), key_lifetime_s=LIFETIME_S),
        )
        assert first.exit_code == 4 and StopReason.UNFINISHED in first.outcome.stop_reasons
        assert statuses(state) == {"only": JobStatus.SUBMITTING}
        assert tasks_per_job(emu.ledger()) == {"keys/only": 1}, "the task was created"
        emu.set_switches(drop_rate=0.0)
        time.sleep(LIFETIME_S + 0.5)  # the service forgets the key
        creates = request_count(emu.ledger(), "POST", "/api/v1/generations")
        env = env_for(emu)
        args = ("run", str(manifest), "--state", str(state), "--key-lifetime", str(LIFETIME_S))
        held = run_cli(*args, "--time-scale", TIME_SCALE, env=env)
        assert held.returncode == 4, held.stderr
        ledger = emu.ledger()
        assert request_count(ledger, "POST", "/api/v1/generations") == creates, "nothing sent"
        assert tasks_per_job(ledger) == {"keys/only": 1}
        assert statuses(state) == {"only": JobStatus.SUBMITTING}
        assert "needs you" in held.stdout and "--resend-expired" in held.stdout
        assert "check the account's task list" in held.stdout.lower()
        assert "second charge" in held.stdout
        assert "only: not sent again" in held.stderr, "the log says it as it happens"
        status = run_cli("status", str(manifest), "--state", str(state), env=env)
        assert "needs_decision" in status.stdout
        resent = run_cli(*args, "--resend-expired", "--time-scale", TIME_SCALE, env=env)
        ledger = emu.ledger()
    assert resent.returncode == 0, resent.stdout + resent.stderr
    assert request_count(ledger, "POST", "/api/v1/generations") == creates + 1
    assert tasks_per_job(ledger) == {"keys/only": 2}, "the forgotten key made a second task"
    assert statuses(state) == {"only": JobStatus.SUCCEEDED}


def test_resend_within_the_key_lifetime_replays(tmp_path: Path) -> None:
    """The same job mid-submit, rerun within the key lifetime, is resent and replayed: one
    task, no question asked."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE),
        seed=5,
        rate_limit_per_s=1000.0,
        drop_rate=1.0,
        drop_after_create_share=1.0,
    )
    manifest = write_one_job(tmp_path)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        run_manifest(manifest, settings_for(emu, state, retry=RetryPolicy(max_attempts=1)))
        emu.set_switches(drop_rate=0.0)
        again = run_manifest(manifest, settings_for(emu, state))
        ledger = emu.ledger()
    assert again.exit_code == 0 and again.outcome.replayed == 1
    assert tasks_per_job(ledger) == {"keys/only": 1}


def test_idempotency_conflict_after_the_state_was_lost_fails_no_job(tmp_path: Path) -> None:
    """The state of a finished batch with a reference job is deleted and the batch rerun into a
    fresh output folder: the re-uploaded reference makes another body for the same key, the
    service answers 409 idempotency_conflict; the job stays mid-submit (not failed), nothing
    more is submitted, no second task is made, exit 4 with a message that says to restore the
    state and not to use --retry-failed."""
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=6, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path, products=("a",))
    again = write_manifest(tmp_path / "again", products=("a",))  # same batch, another output
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        first = run_manifest(manifest, settings_for(emu, state))
        assert first.exit_code == 0
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        second = run_manifest(again, settings_for(emu, state))
        ledger = emu.ledger()
    assert second.exit_code == 4
    assert StopReason.KEY_CONFLICT in second.outcome.stop_reasons
    by_job = {j.id: j for j in second.report.jobs}
    assert by_job["hero"].status is ReportStatus.SUBMITTING
    assert not [j for j in second.report.jobs if j.status is ReportStatus.FAILED]
    assert set(tasks_per_job(ledger).values()) == {1}, "no job got a second task"
    why = describe_stops(second.outcome)
    assert "hero" in why and "another request body" in why
    assert "Restore that state file" in why and "do not use --retry-failed" in why


def test_unwritable_output_folder_keeps_paid_jobs_downloading(tmp_path: Path) -> None:
    """The output folder becomes unwritable once jobs are submitted: no job is failed, the
    paid ones stay downloading, nothing more is submitted, the message names the task, the
    path and the OS error, exit 4; once the folder is fixed a rerun downloads every video
    without paying again."""
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=7, rate_limit_per_s=1000.0)
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    root = os.geteuid() == 0  # root ignores folder modes: put a file where the folder goes

    broken: list[bool] = []

    def break_output(event: Event) -> None:
        if not isinstance(event, Submitted) or broken:
            return
        broken.append(True)
        shutil.rmtree(out, ignore_errors=True)  # the run's marker file made the folder
        if root:
            out.write_text("a file where the output folder should be")
        else:
            out.mkdir()
            out.chmod(0o500)

    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        first = run_manifest(manifest, settings_for(emu, state, subscribers=(break_output,)))
        assert first.exit_code == 4, first.report
        assert StopReason.OUTPUT_UNWRITABLE in first.outcome.stop_reasons
        assert StopReason.UNFINISHED not in first.outcome.stop_reasons, "not the network"
        by_status = dict(first.report.totals.by_status)
        assert by_status.get("failed", 0) == 0 and by_status.get("downloading", 0) >= 1
        why = describe_stops(first.outcome)
        for row in (j for j in first.report.jobs if j.status is ReportStatus.DOWNLOADING):
            path = str(out / f"{row.id}.mp4")
            assert any(f"task {row.task_id}: {path}" in e for e in first.outcome.write_errors), (
                first.outcome.write_errors
            )
        assert first.outcome.write_errors[0] in why
        assert ("is a file, not a folder" if root else "Permission denied") in why
        assert "without paying" in why
        if root:
            out.unlink()
        else:
            out.chmod(0o700)
        shutil.rmtree(out, ignore_errors=True)
        second = run_manifest(manifest, settings_for(emu, state))
        ledger = emu.ledger()
    assert second.exit_code == 0, second.report
    assert set(tasks_per_job(ledger).values()) == {1}, "nothing was paid twice"
