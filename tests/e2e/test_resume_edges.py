"""Resume edge cases: a job killed mid-submit whose reference upload expired before the rerun."""

from __future__ import annotations

import time
from pathlib import Path

import anyio

from batchgen.client import RivyaClient
from batchgen.commands import RunSettings, run_manifest
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.manifest import load_manifest
from batchgen.models import JobStatus, job_key
from batchgen.runner import Runner, RunOptions
from batchgen.store import StateStore

from .helpers import TIME_SCALE, tasks_per_job, write_manifest


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
                    runner = Runner(manifest, store, client, RunOptions())
                    store.sync_jobs(manifest.jobs)
                    store.begin_submit(key, await runner._build_body(hero))

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
