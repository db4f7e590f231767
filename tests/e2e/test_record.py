"""The state is the record: every version's video kept under the name the report gives, the
sums equal to the service's ledger, a report that reads without a valid manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from batchgen import RunSettings, run_manifest
from batchgen.commands import report_batch
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.report import Report, ReportStatus

from .helpers import (
    TIME_SCALE,
    env_for,
    run_cli,
    start_cli,
    tasks_per_job,
    wait_until,
    write_manifest,
)


def _clip(prompt: str) -> str:
    return f'  - id: clip\n    prompt: "{prompt}"\n'


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _served_sha(emu: Any, task_id: str) -> str:
    """The sha256 of the video the emulator serves for ``task_id`` (fetched as a client)."""
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    ask = urllib.request.Request(f"{emu.base_url}/api/v1/generations/{task_id}", headers=auth)
    with urllib.request.urlopen(ask, timeout=10) as answer:
        url = json.load(answer)["result"]["urls"][0]
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as video:
        return hashlib.sha256(video.read()).hexdigest()


def _net_charges(ledger: dict[str, Any]) -> int:
    """What the service's ledger holds against the account: charges minus refunds."""
    sign = {"charge": 1, "refund": -1}
    return sum(sign[e["kind"]] * e["amount"] for e in ledger["charges"])


def _emulator(**extra: Any) -> EmulatorThread:
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=3, rate_limit_per_s=1000.0, **extra)
    return EmulatorThread(cfg)


def _settings(emu: Any, state: Path, **extra: Any) -> RunSettings:
    env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
    return RunSettings(state_path=state, time_scale=float(TIME_SCALE), env=env, **extra)


def test_edit_and_revert_keep_each_versions_video_under_the_name_the_report_gives(
    tmp_path: Path,
) -> None:
    """Edit a prompt, run, revert it, run: both paid videos exist, each under the file the
    report names for its task, with the bytes the service serves for that task; the revert
    submits nothing and brings the first version back to ``clip.mp4``."""
    state = tmp_path / "s.db"
    with _emulator() as emu:
        settings = _settings(emu, state)
        first = write_manifest(tmp_path, products=("a",), extra_jobs=_clip("one"))
        assert run_manifest(first, settings).exit_code == 0
        write_manifest(tmp_path, products=("a",), extra_jobs=_clip("two"))
        edited = run_manifest(first, settings)
        assert (edited.exit_code, edited.outcome.submitted) == (0, 1)
        _assert_versions(emu, edited.report, current="two")
        write_manifest(tmp_path, products=("a",), extra_jobs=_clip("one"))
        reverted = run_manifest(first, settings)
        assert (reverted.exit_code, reverted.outcome.submitted) == (0, 0)
        _assert_versions(emu, reverted.report, current="one")
        ledger = emu.ledger()
    assert reverted.report.totals.final_credits == _net_charges(ledger) == 5 * 90
    assert reverted.report.totals.superseded_final_credits == 90


def _assert_versions(emu: Any, report: Report, *, current: str) -> None:
    clip = next(j for j in report.jobs if j.id == "clip")
    (old,) = [j for j in report.superseded if j.id == "clip"]
    assert clip.prompt == current and old.prompt != current
    assert Path(clip.outputs[0]).name == "clip.mp4"
    assert Path(old.outputs[0]).name == f"clip~v{old.version}.mp4"
    for job in (clip, old):
        assert job.task_id is not None
        assert _sha(job.outputs[0]) == job.output_sha256[0] == _served_sha(emu, job.task_id)
    assert clip.task_id != old.task_id


def test_totals_equal_the_ledger_after_failures_retries_and_an_edit(tmp_path: Path) -> None:
    """Failed tasks (refunded), their retries (earlier attempts kept) and an edited job (a
    superseded version): report and status total exactly what the ledger charged."""
    state = tmp_path / "s.db"
    products = tuple(f"p{i}" for i in range(6))
    with _emulator(failure_rate=0.4) as emu:
        manifest = write_manifest(tmp_path, products=products, extra_jobs=_clip("one"))
        first = run_manifest(manifest, _settings(emu, state))
        failed = first.report.totals.count(ReportStatus.FAILED)
        assert failed > 0, "the seed should make some tasks fail"
        retried = run_manifest(manifest, _settings(emu, state, retry_failed=True))
        assert retried.outcome.submitted == failed
        write_manifest(tmp_path, products=products, extra_jobs=_clip("two"))
        run_manifest(manifest, _settings(emu, state))
        ledger = emu.ledger()
        report = report_batch(manifest, state)
        status = run_cli("status", str(manifest), "--state", str(state), env={})
        shown = run_cli("report", str(manifest), "--state", str(state), "--format", "json", env={})
    t = report.totals
    assert t.in_flight_credits == 0
    assert t.final_credits == _net_charges(ledger)
    assert t.tasks == len(ledger["tasks"])
    assert t.earlier_attempts == failed and t.superseded_versions == 1
    assert t.refunded_credits == 90 * sum(1 for x in ledger["tasks"] if x["status"] == "failed")
    assert f"credits charged {t.final_credits:,} over {t.tasks} tasks" in status.stdout
    assert json.loads(shown.stdout)["totals"]["final_credits"] == _net_charges(ledger)


def test_a_file_found_under_its_other_name_is_recorded_not_downloaded(tmp_path: Path) -> None:
    """A run stopped between moving a file and recording the move leaves the record naming
    the old place: the next run finds the file by size at the job's other name, records it
    and puts it back, downloading nothing."""
    state = tmp_path / "s.db"
    with _emulator() as emu:
        settings = _settings(emu, state)
        manifest = write_manifest(tmp_path, products=("a",), extra_jobs=_clip("one"))
        done = run_manifest(manifest, settings)
        clip = next(j for j in done.report.jobs if j.id == "clip")
        moved = Path(clip.outputs[0]).with_name(f"clip~v{clip.version}.mp4")
        Path(clip.outputs[0]).rename(moved)
        downloads = _count_downloads(emu)
        again = run_manifest(manifest, settings)
        assert _count_downloads(emu) == downloads
    assert again.exit_code == 0 and not moved.exists()
    assert _sha(clip.outputs[0]) == clip.output_sha256[0]


def _count_downloads(emu: Any) -> int:
    return sum(
        r["count"] for r in emu.ledger()["requests"] if r["endpoint"].startswith("/results/")
    )


def test_verify_finds_a_video_altered_in_place(tmp_path: Path) -> None:
    """A video changed without changing its size passes the size check; ``--verify`` finds
    it by its hash and downloads it again, submitting nothing."""
    state = tmp_path / "s.db"
    with _emulator() as emu:
        manifest = write_manifest(tmp_path, products=("a",))
        done = run_manifest(manifest, _settings(emu, state))
        video = Path(done.report.jobs[0].outputs[0])
        good = _sha(video)
        data = bytearray(video.read_bytes())
        data[-1] ^= 0xFF
        video.write_bytes(bytes(data))
        plain = run_manifest(manifest, _settings(emu, state))
        assert _sha(video) != good and plain.outcome.submitted == 0
        verified = run_manifest(manifest, _settings(emu, state, verify=True))
    assert verified.exit_code == 0 and verified.outcome.submitted == 0
    assert _sha(video) == good


def test_report_reads_the_state_when_the_manifest_no_longer_validates(tmp_path: Path) -> None:
    """A finished batch whose reference moved still reports (with a warning), JSON included;
    ``--state`` alone needs no manifest; another batch's state is refused."""
    state = tmp_path / "s.db"
    with _emulator() as emu:
        manifest = write_manifest(tmp_path, products=("a",))
        assert run_manifest(manifest, _settings(emu, state)).exit_code == 0
    shutil.move(tmp_path / "refs", tmp_path / "moved-refs")
    validate = run_cli("validate", str(manifest), env={})
    assert validate.returncode == 2
    shown = run_cli("report", str(manifest), "--state", str(state), "--format", "json", env={})
    assert shown.returncode == 0, shown.stderr
    assert "does not validate now" in shown.stderr and "Traceback" not in shown.stderr
    data = json.loads(shown.stdout)
    hero = next(j for j in data["jobs"] if j["id"] == "hero")
    assert hero["status"] == "succeeded" and hero["references"] == [str(tmp_path / "refs/hero.png")]
    assert hero["prompt"].startswith("The product in the photo") and hero["params"]["mode"] == "pro"
    assert hero["task_created_at"] and hero["finished_at"]
    alone = run_cli("status", "--state", str(state), env={})
    assert alone.returncode == 0 and "3 jobs (3 succeeded)" in alone.stdout
    shutil.move(tmp_path / "moved-refs", tmp_path / "refs")
    other = write_manifest(tmp_path / "other", products=("a",), batch="other")
    refused = run_cli("report", str(other), "--state", str(state), env={})
    assert refused.returncode != 0
    assert "belongs to batch 't', not 'other'" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_a_version_edited_while_its_task_ran_is_finished_and_kept(tmp_path: Path) -> None:
    """A run killed while ``clip``'s task runs; the prompt is edited; the next run sends the
    new version and also follows the old, paid task to the end: its video lands under its
    versioned name, and the sums settle with the ledger (nothing left "in flight")."""
    state = tmp_path / "s.db"
    cfg = EmulatorConfig(time_scale=0.03, seed=5, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        manifest = write_manifest(tmp_path, products=("a",), extra_jobs=_clip("one"))
        env = {**env_for(emu), "PYTHONUNBUFFERED": "1"}
        child = start_cli("run", str(manifest), "--state", str(state), "-q", env=env)
        try:
            assert wait_until(lambda: tasks_per_job(emu.ledger())["t/clip"] == 1, 60)
        finally:
            child.kill()
            child.communicate(timeout=30)
        write_manifest(tmp_path, products=("a",), extra_jobs=_clip("two"))
        again = run_manifest(manifest, _settings(emu, state))
        ledger = emu.ledger()
    assert again.exit_code == 0
    (old,) = [j for j in again.report.superseded if j.id == "clip"]
    assert old.status is ReportStatus.SUCCEEDED and old.prompt == "one"
    assert Path(old.outputs[0]).name == f"clip~v{old.version}.mp4"
    assert _sha(old.outputs[0]) == old.output_sha256[0]
    t = again.report.totals
    assert (t.in_flight_credits, t.final_credits) == (0, _net_charges(ledger))
    assert tasks_per_job(ledger)["t/clip"] == 2
