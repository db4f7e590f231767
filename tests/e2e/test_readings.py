"""The whole client against the emulator with every reading the contract lists switched on at
once (the real service may take any of them where its documentation is silent), plus faults."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from batchgen import RunSettings, run_manifest
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.report import ReportStatus

from .helpers import tasks_per_job, write_manifest

PRODUCTS = tuple(f"p{i:02}" for i in range(15))  # 15 x 2 ratios = 30 jobs, + hero with a ref


def _settings(emu: EmulatorThread, state: Path, **extra: object) -> RunSettings:
    env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
    return RunSettings(state_path=state, time_scale=0.01, env=env, **extra)  # type: ignore[arg-type]


@pytest.mark.slow
def test_every_reading_at_once_with_faults_pays_once_and_keeps_the_key_home(
    tmp_path: Path,
) -> None:
    """All readings on, 8% dropped connections (half of the dropped creates after the task was
    made), 10% failing tasks: every job ends terminal (reruns allowed, as a user would), one
    charged task per job, every succeeded video on disk, no request with the key to a result
    URL."""
    cfg = EmulatorConfig.with_all_readings(
        time_scale=0.01, seed=11, rate_limit_per_s=1000.0, drop_rate=0.08, failure_rate=0.10
    )
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        for _ in range(4):  # a drop can outlast the retry policy: the same command again
            result = run_manifest(manifest, _settings(emu, state))
            if result.exit_code in (0, 3):
                break
        ledger = emu.ledger()
    assert result.exit_code in (0, 3), result.outcome
    statuses = Counter(j.status for j in result.report.jobs)
    assert set(statuses) <= {ReportStatus.SUCCEEDED, ReportStatus.FAILED}, statuses
    assert statuses[ReportStatus.SUCCEEDED] >= 20
    charged = Counter(c["task_id"] for c in ledger["charges"] if c["kind"] == "charge")
    assert set(tasks_per_job(ledger).values()) == {1}, "one task per job"
    assert all(n == 1 for n in charged.values())
    for job in result.report.jobs:
        if job.status is ReportStatus.SUCCEEDED:
            sizes = zip(job.outputs, job.output_sizes, strict=True)
            assert all(Path(p).stat().st_size == size for p, size in sizes)
    fetched = ledger["result_requests"]
    assert fetched and any(r["origin"] == "other" for r in fetched)
    assert not any(r["authorization"] for r in fetched), "the key went to a result URL"
    assert result.report.totals.final_credits == sum(
        c["amount"] * (1 if c["kind"] == "charge" else -1) for c in ledger["charges"]
    )


def test_out_of_credits_as_a_generic_failure_blocks_and_a_top_up_finishes(
    tmp_path: Path,
) -> None:
    """The wallet holds enough for 8 of 20 jobs and the service says so only by failing tasks
    (``generation_failed`` or ``error: null``, nothing reserved): the run exits 4 with no job
    failed; after a top-up the same command finishes with exit 0, each job paid once."""
    cfg = EmulatorConfig(
        time_scale=0.01,
        seed=4,
        rate_limit_per_s=1000.0,
        insufficient_credits_mode="generic",
        starting_credits=8 * 90,
    )
    products = tuple(f"p{i}" for i in range(10))  # 20 jobs, no reference (hero is extra)
    manifest = write_manifest(tmp_path, products=products)
    text = manifest.read_text()
    manifest.write_text(text[: text.index("  - id: hero")] + text[text.index("output:") :])
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        first = run_manifest(manifest, _settings(emu, state, max_in_flight=4))
        assert first.exit_code == 4, first.outcome
        assert first.report.totals.count(ReportStatus.FAILED) == 0
        assert first.report.totals.count(ReportStatus.SUCCEEDED) == 8
        emu.topup(20 * 90)
        second = run_manifest(manifest, _settings(emu, state, max_in_flight=4))
        ledger = emu.ledger()
    assert second.exit_code == 0, second.outcome
    assert second.report.totals.count(ReportStatus.SUCCEEDED) == 20
    charges = Counter(c["task_id"] for c in ledger["charges"] if c["kind"] == "charge")
    paid_jobs = Counter(
        next(t for t in ledger["tasks"] if t["id"] == task_id)["body"]["client_request_id"]
        for task_id in charges
    )
    assert set(paid_jobs.values()) == {1} and len(paid_jobs) == 20


def test_an_upload_of_unknown_expiry_refused_later_is_uploaded_again_once(tmp_path: Path) -> None:
    """The Files API answers only a url (no expiry): batchgen reuses the upload for a while;
    when the service has forgotten it, the create is refused naming the reference, and the
    job (still pending, never sent with that upload before) gets one new attempt with a fresh
    upload, in one transaction. Both jobs succeed; no job is failed or paid twice."""
    cfg = EmulatorConfig(
        time_scale=0.01, seed=2, rate_limit_per_s=1000.0, files_answer="minimal", file_ttl_s=0.3
    )
    second = '  - id: hero-again\n    prompt: "Again, slower"\n    references: [refs/hero.png]\n'
    manifest = write_manifest(tmp_path, products=(), extra_jobs=second)
    text = manifest.read_text()
    manifest.write_text(text[: text.index("matrix:")] + text[text.index("jobs:") :])
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        result = run_manifest(manifest, _settings(emu, state, max_in_flight=1))
        ledger = emu.ledger()
    assert result.exit_code == 0, result.report
    assert len(ledger["files"]) == 2, "the forgotten upload was made again, once"
    assert set(tasks_per_job(ledger).values()) == {1}
    again = next(j for j in result.report.jobs if j.id == "hero-again")
    assert again.attempt == 2 and not again.earlier_attempts  # the refused attempt made no task


def test_extra_params_reach_a_service_that_knows_them(tmp_path: Path) -> None:
    """A param batchgen does not know yet, passed through ``extra_params``: sent in string
    form to a service that accepts it (the job succeeds), refused for that job only by one
    that does not."""
    extra = '  - id: seeded\n    prompt: "A lake"\n    extra_params: {seed: 7}\n'
    for accepted, expected in (("seed", ReportStatus.SUCCEEDED), ("", ReportStatus.FAILED)):
        folder = tmp_path / (accepted or "none")
        manifest = write_manifest(folder, products=("a",), extra_jobs=extra)
        cfg = EmulatorConfig(time_scale=0.01, rate_limit_per_s=1000.0, extra_params=accepted)
        state = folder / "s.db"
        with EmulatorThread(cfg) as emu:
            result = run_manifest(manifest, _settings(emu, state))
            ledger = emu.ledger()
        seeded = next(j for j in result.report.jobs if j.id == "seeded")
        assert seeded.status is expected, seeded
        others = [j for j in result.report.jobs if j.id != "seeded"]
        assert all(j.status is ReportStatus.SUCCEEDED for j in others)
        if accepted:
            (task,) = [t for t in ledger["tasks"] if t["body"]["client_request_id"] == "t/seeded"]
            assert task["body"]["params"]["seed"] == "7"
        else:
            assert seeded.error is not None and seeded.error.code == "validation_failed"
