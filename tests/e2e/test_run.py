"""A real batch, end to end, on the embedded emulator: manifest -> emulator -> SQLite -> videos."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest

from batchgen.client import RivyaClient
from batchgen.commands import RunSettings, run_manifest
from batchgen.config import RunConfig
from batchgen.limits import RequestLimiter
from batchgen.manifest import load_manifest
from batchgen.polling import PollPolicy
from batchgen.report import ReportStatus
from batchgen.runner import run_batch
from batchgen.store import StateStore

from .helpers import (
    TIME_SCALE,
    env_for,
    job_count,
    request_count,
    run_cli,
    tasks_per_job,
    tasks_per_key,
    write_manifest,
)

MP4_SIGNATURE = b"ftyp"


def settings_for(emu, state: Path) -> RunSettings:
    return RunSettings(
        state_path=state,
        time_scale=float(TIME_SCALE),
        env={"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key},
    )


def test_full_run_downloads_every_video_and_records_credits(emulator_thread, tmp_path) -> None:
    """Every job succeeds once, its video lands as <job id>.mp4 and its credits are recorded."""
    manifest = write_manifest(tmp_path)
    result = run_manifest(manifest, settings_for(emulator_thread, tmp_path / "s.db"))
    assert result.exit_code == 0
    jobs = result.report.jobs
    assert len(jobs) == job_count()
    for job in jobs:
        assert job.status is ReportStatus.SUCCEEDED
        assert job.final_credits == job.reserved_credits == 90
        out = Path(job.outputs[0])
        assert out == tmp_path / "out" / f"{job.id}.mp4"
        assert MP4_SIGNATURE in out.read_bytes()[:16]
    assert {j.id for j in jobs} >= {"sneaker-16x9", "watch-9x16", "hero"}
    ledger = emulator_thread.ledger()
    assert set(tasks_per_job(ledger).values()) == {1}
    assert len(ledger["tasks"]) == job_count()
    assert result.report.totals.final_credits == 90 * job_count()
    assert not list((tmp_path / "out").glob("*.part")), "no temporary files left behind"


def test_second_run_submits_nothing(emulator_thread, tmp_path) -> None:
    """Running a finished batch again sends no create request and keeps every result."""
    manifest = write_manifest(tmp_path)
    settings = settings_for(emulator_thread, tmp_path / "s.db")
    assert run_manifest(manifest, settings).exit_code == 0
    creates = request_count(emulator_thread.ledger(), "POST", "/api/v1/generations")
    again = run_manifest(manifest, settings)
    assert again.exit_code == 0
    assert again.outcome.submitted == again.outcome.replayed == 0
    assert request_count(emulator_thread.ledger(), "POST", "/api/v1/generations") == creates


def test_reference_is_uploaded_once_and_sent_as_media_item(emulator_thread, tmp_path) -> None:
    """The hero's reference is uploaded through the Files API once and referenced by its URL."""
    extra = (
        '  - id: hero-2\n    prompt: "Same product, other light"\n    references: [refs/hero.png]\n'
    )
    manifest = write_manifest(tmp_path, extra_jobs=extra)
    assert run_manifest(manifest, settings_for(emulator_thread, tmp_path / "s.db")).exit_code == 0
    ledger = emulator_thread.ledger()
    assert request_count(ledger, "POST", "/api/v1/files") == 1
    bodies = {t["body"]["client_request_id"]: t["body"] for t in ledger["tasks"]}
    items = bodies["t/hero"]["params"]["referenceMediaItems"]
    assert items == bodies["t/hero-2"]["params"]["referenceMediaItems"]
    assert items[0]["kind"] == "image" and items[0]["mimeType"] == "image/png"
    assert bodies["t/hero"]["params"]["duration"] == "10"  # documented string form


@pytest.mark.anyio
async def test_cancelled_run_resumes_without_a_second_task(tmp_path) -> None:
    """A run cancelled midway and started again finishes with exactly one task per job."""
    from batchgen.emulator import EmulatorConfig, running_emulator

    manifest = load_manifest(write_manifest(tmp_path, products=("a", "b", "c", "d")))
    options = RunConfig(
        batch=manifest.batch,
        state_path=tmp_path / "s.db",
        connection=None,
        poll=PollPolicy(time_scale=0.01),
    )
    cfg = EmulatorConfig(time_scale=0.01, seed=5, rate_limit_per_s=1000.0)
    async with running_emulator(cfg, host="127.0.0.1", port=0) as emu:
        with StateStore.open(tmp_path / "s.db", manifest.batch) as store:
            async with RivyaClient(
                emu.base_url, emu.api_key, limiter=RequestLimiter(rate_per_s=200, burst=20)
            ) as client:
                with anyio.move_on_after(0.4) as scope:
                    await run_batch(manifest, store, client, options)
                assert scope.cancelled_caught, "the first run should still have been working"
                unfinished = [r for r in store.jobs() if r.status.value != "succeeded"]
                assert unfinished, "cancel landed too late to prove anything"
                await run_batch(manifest, store, client, options)
            statuses = {r.status.value for r in store.jobs()}
        ledger = emu.ledger()
    assert statuses == {"succeeded"}
    assert sorted(tasks_per_job(ledger).values()) == [1] * len(manifest.jobs)
    assert set(tasks_per_key(ledger).values()) == {1}


@pytest.mark.slow
def test_cli_run_prints_summary_and_report_json(emulator_thread, tmp_path) -> None:
    """`batchgen run` exits 0 with a summary; `report --format json` has the documented shape."""
    manifest = write_manifest(tmp_path)
    env = env_for(emulator_thread)
    state = str(tmp_path / "s.db")
    done = run_cli("run", str(manifest), "--state", state, "--time-scale", TIME_SCALE, env=env)
    assert done.returncode == 0, done.stderr
    assert f"All {job_count()} jobs succeeded." in done.stdout
    rep = run_cli("report", str(manifest), "--state", state, "--format", "json", env=env)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert data["batch"] == "t"
    assert set(data["jobs"][0]) >= {
        "id",
        "status",
        "task_id",
        "reserved_credits",
        "final_credits",
        "result_urls",
        "outputs",
        "error",
    }
    assert data["totals"]["jobs"] == job_count()


def test_invalid_manifest_exits_2_and_sends_nothing(emulator_thread, tmp_path) -> None:
    """`duration: 20` exits 2 naming file, line and allowed values; the ledger shows no request."""
    manifest = write_manifest(tmp_path)
    text = manifest.read_text().replace(
        "params: {mode: pro, duration: 10}", "params: {mode: pro, duration: 20}"
    )
    manifest.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "duration: 20" in t)
    done = run_cli(
        "run", str(manifest), "--state", str(tmp_path / "s.db"), env=env_for(emulator_thread)
    )
    assert done.returncode == 2
    assert f"manifest.yaml:{line}:" in done.stderr
    assert "15" in done.stderr and "3" in done.stderr
    assert "Traceback" not in done.stderr
    assert request_count(emulator_thread.ledger()) == 0
    assert not (tmp_path / "s.db").exists(), "nothing was recorded either"


def test_bad_key_stops_the_run_and_marks_no_job_failed(emulator_thread, tmp_path) -> None:
    """An invalid key exits 1 with a clear message, fails no job, and never echoes the key."""
    manifest = write_manifest(tmp_path)
    bogus = "rvya_sk_this_key_does_not_exist_123"
    env = env_for(emulator_thread)
    env["RIVYA_API_KEY"] = bogus
    done = run_cli("run", str(manifest), "--state", str(tmp_path / "s.db"), env=env)
    assert done.returncode == 1
    assert "Error:" in done.stderr and "Traceback" not in done.stderr
    assert bogus not in done.stdout + done.stderr
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT status FROM jobs").fetchall()
    assert "failed" not in {r[0] for r in rows}


def test_missing_key_is_a_clear_error(tmp_path) -> None:
    """Without RIVYA_API_KEY the run exits 1 before sending anything and says what to do."""
    import os

    manifest = write_manifest(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("RIVYA_API_KEY", "RIVYA_BASE_URL")}
    done = run_cli("run", str(manifest), "--state", str(tmp_path / "s.db"), env=env)
    assert done.returncode == 1
    assert "RIVYA_API_KEY" in done.stderr and "--emulator" in done.stderr


@pytest.mark.slow
def test_api_key_never_reaches_state_logs_or_reports(emulator_thread, tmp_path) -> None:
    """With -vv logging, the key appears in no output, no state database and no report."""
    manifest = write_manifest(tmp_path)
    env = env_for(emulator_thread)
    state = tmp_path / "s.db"
    done = run_cli(
        "-vv", "run", str(manifest), "--state", str(state), "--time-scale", TIME_SCALE, env=env
    )
    assert done.returncode == 0, done.stderr
    rep = run_cli("report", str(manifest), "--state", str(state), "--format", "json", env=env)
    key = emulator_thread.api_key.encode()
    assert key not in (done.stdout + done.stderr + rep.stdout).encode()
    for f in tmp_path.iterdir():
        if f.is_file():
            assert key not in f.read_bytes(), f


def test_plan_online_takes_the_price_from_the_models_endpoint(tmp_path) -> None:
    """`plan --online` prices the batch from the service's models endpoint, not the estimate."""
    from batchgen.commands import plan_batch
    from batchgen.emulator import EmulatorConfig, EmulatorThread

    manifest = write_manifest(tmp_path)
    with EmulatorThread(EmulatorConfig(prices={"kling-3-0": 120})) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url}
        online = plan_batch(manifest, tmp_path / "s.db", online=True, env=env)
        requests = request_count(emu.ledger())
    offline = plan_batch(manifest, tmp_path / "s.db")
    assert (online.base_credits, online.credits_is_estimate) == (120, False)
    assert online.credits == 120 * job_count()
    assert (offline.base_credits, offline.credits_is_estimate) == (90, True)
    assert requests == 1, "only the public models endpoint was asked"
