"""Resume edge cases: a job killed mid-submit whose reference upload expired before the rerun."""

from __future__ import annotations

import time
from pathlib import Path

import anyio

from batchgen.client import RivyaClient
from batchgen.commands import RunSettings, run_manifest
from batchgen.config import RunConfig
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.manifest import load_manifest
from batchgen.models import JobStatus, job_key
from batchgen.report import ReportStatus
from batchgen.runner import Runner
from batchgen.store import StateStore

from .helpers import TIME_SCALE, tasks_per_job, write_manifest


def config_for(manifest, state: Path) -> RunConfig:
    return RunConfig(batch=manifest.batch, state_path=state, connection=None)


def test_mid_submit_job_with_expired_upload_gets_a_fresh_attempt(tmp_path: Path) -> None:
    """A stored body whose upload expired is refused; the job is retried with a new key and a
    fresh upload instead of failing, and it still gets exactly one task."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE), seed=8, rate_limit_per_s=1000.0, file_ttl_s=1.0
    )
    manifest = load_manifest(write_manifest(tmp_path, products=("a",)))
    hero = next(s for s in manifest.jobs if s.id == "hero")
    key = job_key(manifest.batch, hero.id, hero.request_hash)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:

        async def crash_mid_submit() -> None:
            """Do what a run does up to the create request, then 'crash' before sending it."""
            with StateStore.open(state, manifest.batch) as store:
                async with RivyaClient(emu.base_url, emu.api_key) as client:
                    runner = Runner(manifest, store, client, config_for(manifest, state))
                    store.sync_jobs(manifest.jobs)
                    store.begin_submit(key, await runner.uploads.body_for(hero))

        anyio.run(crash_mid_submit, backend="asyncio")
        time.sleep(1.2)  # the upload expires
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        result = run_manifest(
            manifest.path, RunSettings(state_path=state, time_scale=float(TIME_SCALE), env=env)
        )
        ledger = emu.ledger()
    assert result.exit_code == 0, result.report
    with StateStore.open_readonly(state) as store:
        row = store.job(key)
    assert (row.status, row.attempt) == (JobStatus.SUCCEEDED, 2)
    assert len([f for f in ledger["files"]]) == 2, "the reference was uploaded again"
    assert set(tasks_per_job(ledger).values()) == {1}


def test_expired_result_urls_are_refreshed_on_resume(tmp_path: Path) -> None:
    """A job stopped after its task succeeded but before the download finds its stored result
    URL expired (410) on the rerun; it fetches the task again for a fresh URL and downloads."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE), seed=9, rate_limit_per_s=1000.0, result_url_ttl_s=0.5
    )
    manifest = load_manifest(write_manifest(tmp_path, products=("a",)))
    spec = manifest.jobs[0]
    key = job_key(manifest.batch, spec.id, spec.request_hash)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:

        async def stop_before_download() -> None:
            """Submit and wait for success, record it, then 'crash' before downloading."""
            with StateStore.open(state, manifest.batch) as store:
                async with RivyaClient(emu.base_url, emu.api_key) as client:
                    runner = Runner(manifest, store, client, config_for(manifest, state))
                    store.sync_jobs(manifest.jobs)
                    row = store.begin_submit(key, await runner.uploads.body_for(spec))
                    assert row.request_body is not None and row.idempotency_key is not None
                    task = await client.create_generation(
                        row.request_body, idempotency_key=row.idempotency_key
                    )
                    store.record_task(key, task)
                    while not task.is_terminal:
                        await anyio.sleep(0.05)
                        task = await client.get_generation(task.id)
                    store.record_succeeded_remote(key, task)

        anyio.run(stop_before_download, backend="asyncio")
        with StateStore.open_readonly(state) as store:
            stale = store.job(key).result_urls
        time.sleep(0.8)  # the stored result URL expires
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        result = run_manifest(
            manifest.path, RunSettings(state_path=state, time_scale=float(TIME_SCALE), env=env)
        )
        ledger = emu.ledger()
    assert result.exit_code == 0, result.report
    job = next(j for j in result.report.jobs if j.id == spec.id)
    assert job.status is ReportStatus.SUCCEEDED and Path(job.outputs[0]).stat().st_size > 0
    assert job.result_urls != tuple(stale), "a fresh URL replaced the expired one"
    gone = [r for r in ledger["requests"] if r["status"] == 410]
    assert gone, "the stale URL really answered 410"
    assert set(tasks_per_job(ledger).values()) == {1}
