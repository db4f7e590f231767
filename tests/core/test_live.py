"""The pieces of ``status --json``/``--watch`` and the live display that need no run."""

from __future__ import annotations

import fcntl
from dataclasses import replace
from pathlib import Path

from batchgen.commands import BatchStatus, oldest_in_flight, run_holds_lock
from batchgen.live import failures_by_code, finished, status_to_dict
from batchgen.models import JobStatus
from batchgen.report import JobReport, RecordedError, Report, ReportStatus, totals
from batchgen.rows import JobRow


def _report(*jobs: JobReport) -> Report:
    return Report("b", "s.db", jobs, totals(jobs), ())


def _failed(job_id: str, code: str | None) -> JobReport:
    return JobReport(job_id, ReportStatus.FAILED, error=RecordedError(code, "no", None))


def _row(job_id: str, created: str | None, status: JobStatus = JobStatus.RUNNING) -> JobRow:
    return JobRow(
        job_key=job_id, job_id=job_id, request_hash="h", status=status, attempt=1,
        idempotency_key="k", request_body=None, task_id=f"task-{job_id}", remote_status="queued",
        reserved_credits=90, final_credits=None, result_urls=(), outputs=(), error_code=None,
        error_message=None, request_id=None, polls=0, in_manifest=True, submitted_at=None,
        finished_at=None, created_at="", updated_at="", task_created_at=created,
    )  # fmt: skip


def test_failures_are_grouped_by_code() -> None:
    """Failed jobs are counted per error code, most frequent first, unknown when none."""
    report = _report(_failed("a", "moderation"), _failed("b", "timeout"), _failed("c", None),
                     _failed("d", "timeout"), JobReport("e", ReportStatus.SUCCEEDED))  # fmt: skip
    assert failures_by_code(report) == {"timeout": 2, "moderation": 1, "unknown": 1}
    assert list(failures_by_code(report)) == ["timeout", "moderation", "unknown"]


def test_oldest_in_flight_is_the_earliest_created_running_task() -> None:
    """The running task created first is the oldest; age counts from its creation time."""
    rows = [
        _row("new", "2026-12-01T10:00:50+00:00"),
        _row("old", "2026-12-01T10:00:00+00:00"),
        _row("unknown", None),
        _row("done", "2026-12-01T09:00:00+00:00", JobStatus.SUCCEEDED),
    ]
    now = 1_796_119_260.0  # 2026-12-01T10:01:00+00:00
    oldest = oldest_in_flight(rows, now=now)
    assert oldest is not None
    assert (oldest.job_id, oldest.task_id, oldest.remote_status) == ("old", "task-old", "queued")
    assert oldest.age_s == 60.0
    assert oldest_in_flight([_row("x", None, JobStatus.PENDING)], now=now) is None


def test_run_holds_lock_tries_a_shared_lock_and_never_creates_the_file(tmp_path: Path) -> None:
    """No lock file: no run (and none is created); an exclusive holder: a run; free: none."""
    state = tmp_path / "b.db"
    lock = tmp_path / "b.db.lock"
    assert run_holds_lock(state) is False
    assert not lock.exists()
    with open(lock, "a+") as held:
        assert run_holds_lock(state) is False
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert run_holds_lock(state) is True
        assert run_holds_lock(state) is True  # the try left nothing behind
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        assert run_holds_lock(state) is False


def test_status_dict_and_finished() -> None:
    """The JSON shape carries totals, by_status and failures; a watch ends only when no run
    holds the state and nothing is in flight."""
    report = _report(_failed("a", "timeout"), JobReport("b", ReportStatus.RUNNING, task_id="t"))
    status = BatchStatus(report, (), None, running=False)
    doc = status_to_dict(status)
    assert doc["by_status"] == {"running": 1, "failed": 1}
    assert doc["failures"] == {"timeout": 1} and doc["running"] is False
    assert not finished(status)
    done = replace(status, report=_report(_failed("a", "timeout")))
    assert finished(done)
    assert not finished(replace(done, running=True))
