"""Result files on disk: checked against the record at every run, leftovers of a killed run
removed, written with the umask."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import anyio
import pytest

from batchgen import EmulatorChoice, RunSettings, run_manifest
from batchgen.client import RivyaClient
from batchgen.downloads import Downloader
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.errors import LocalJobError
from batchgen.events import EventBus
from batchgen.manifest import load_manifest
from batchgen.models import JobStatus, job_key
from batchgen.store import StateStore

from .helpers import TIME_SCALE, write_manifest


def test_a_run_removes_its_batchs_leftover_part_files_only(tmp_path: Path) -> None:
    """`.hero.mp4.<random>.part` (and a second result's) go; another program's file stays."""
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    ours = [out / ".hero.mp4.k1x_9f.part", out / ".sneaker-16x9~2.mp4.q7.part"]
    theirs = [out / ".other-job.mp4.q7.part", out / "notes.part"]
    for path in ours + theirs:
        path.write_bytes(b"\0" * 1000)
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=2, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        settings = RunSettings(state_path=tmp_path / "s.db", time_scale=float(TIME_SCALE), env=env)
        assert run_manifest(manifest, settings).exit_code == 0
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs)
    assert (out / "hero.mp4").stat().st_size > 0


def test_videos_are_written_with_the_umask(tmp_path: Path) -> None:
    """A downloaded video gets the mode any new file of this process gets (0644 under the
    usual umask 022), not the 0600 of a temp file."""
    manifest = write_manifest(tmp_path, products=("a",))
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=2, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        settings = RunSettings(state_path=tmp_path / "s.db", time_scale=float(TIME_SCALE), env=env)
        assert run_manifest(manifest, settings).exit_code == 0
    umask = os.umask(0o022)
    os.umask(umask)
    probe = tmp_path / "probe"
    probe.touch()
    expected = stat.S_IMODE(probe.stat().st_mode)
    assert expected == 0o666 & ~umask
    for video in (tmp_path / "out").glob("*.mp4"):
        assert stat.S_IMODE(video.stat().st_mode) == expected, video


def test_a_deleted_or_truncated_video_is_downloaded_again_with_nothing_submitted(
    tmp_path: Path,
) -> None:
    """The record is checked against the disk: a video deleted and one cut short since the
    last run are fetched again from their paid tasks; no task is created, all succeed."""
    manifest = write_manifest(tmp_path)
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=2, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        settings = RunSettings(state_path=tmp_path / "s.db", time_scale=float(TIME_SCALE), env=env)
        assert run_manifest(manifest, settings).exit_code == 0
        out = tmp_path / "out"
        sizes = {p.name: p.stat().st_size for p in out.glob("*.mp4")}
        (out / "hero.mp4").unlink()
        with open(out / "sneaker-16x9.mp4", "r+b") as video:
            video.truncate(1000)
        tasks_before = len(emu.ledger()["tasks"])
        again = run_manifest(manifest, settings)
        tasks_after = len(emu.ledger()["tasks"])
    assert again.exit_code == 0
    assert (again.outcome.submitted, again.outcome.replayed) == (0, 0)
    assert tasks_after == tasks_before
    assert {p.name: p.stat().st_size for p in out.glob("*.mp4")} == sizes
    with StateStore.open_readonly(tmp_path / "s.db") as store:
        kinds = [e.kind for e in store.recent_events(20)]
    assert kinds.count("download_again") == 2


def test_a_rehearsal_stopped_mid_download_finishes_on_the_next_emulator(tmp_path: Path) -> None:
    """The in-process emulator listens on a new port each run: a job left downloading by an
    interrupted rehearsal takes fresh result URLs from its task instead of calling the old
    port until the retries run out."""
    manifest = write_manifest(tmp_path, products=("a",))
    state = tmp_path / "s.db"
    settings = RunSettings(state_path=state, emulator=EmulatorChoice(time_scale=0.002))
    assert run_manifest(manifest, settings).exit_code == 0
    out = tmp_path / "out.emulator"  # a rehearsal's own output folder
    (out / "hero.mp4").unlink()
    with sqlite3.connect(state) as db:  # as if the run had stopped before this download
        db.execute("UPDATE jobs SET status = 'downloading', outputs = '[]' WHERE job_id = 'hero'")
    again = run_manifest(manifest, settings)
    assert again.exit_code == 0 and again.outcome.submitted == 0
    assert (out / "hero.mp4").stat().st_size > 0


def test_fresh_result_urls_are_checked_not_trusted(tmp_path: Path) -> None:
    """Asked again for its results, a task that does not say it succeeded (here: still
    queued) fails that download with a clear code; no job is recorded succeeded with no file."""
    manifest = load_manifest(write_manifest(tmp_path, products=("a",)))
    spec = manifest.jobs[0]
    key = job_key(manifest.batch, spec.id, spec.request_hash)
    cfg = EmulatorConfig(time_scale=1.0, seed=2, rate_limit_per_s=1000.0)  # tasks take minutes

    async def refetch() -> str:
        with StateStore.open(tmp_path / "s.db", manifest.batch) as store:
            async with RivyaClient(emu.base_url, emu.api_key) as client:
                store.sync_jobs(manifest.jobs)
                row = store.begin_submit(key, {"model": spec.model, "prompt": spec.prompt})
                assert row.request_body is not None and row.idempotency_key is not None
                task = await client.create_generation(
                    row.request_body, idempotency_key=row.idempotency_key
                )
                store.record_task(key, task)
                with sqlite3.connect(store.path) as db:  # a record that says more than is true
                    db.execute("UPDATE jobs SET status = 'downloading' WHERE job_key = ?", [key])
                downloads = Downloader(tmp_path / "out", store, client, EventBus())
                with pytest.raises(LocalJobError) as info:
                    await downloads.fetch_all(store.job(key), spec, fresh=True)
                assert store.job(key).status is JobStatus.DOWNLOADING
                return info.value.code

    with EmulatorThread(cfg) as emu:
        assert anyio.run(refetch, backend="asyncio") == "result_unavailable"
