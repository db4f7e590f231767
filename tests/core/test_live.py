"""The pieces of ``status --json``/``--watch`` and the live display that need no run."""

from __future__ import annotations

import fcntl
import io
import logging
import re
from dataclasses import replace
from pathlib import Path

from rich.console import Console as RichTerminal

from batchgen.commands import BatchStatus, oldest_in_flight, run_holds_lock
from batchgen.console import ConsoleHandler, IsoFormatter
from batchgen.events import (
    Estimate,
    JobChanged,
    NeedsDecision,
    RateLimited,
    RequestAnswered,
    RunStarted,
)
from batchgen.live import CLEAR, failures_by_code, finished, status_to_dict, watch_status
from batchgen.models import JobStatus
from batchgen.progress import LiveDisplay, RichConsole
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


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _busy_display(console: RichConsole) -> LiveDisplay:
    display = LiveDisplay(console, total=1234)
    display(RunStarted(batch="b", jobs=1234, to_do=1234, workers=8,
                       by_status=(("pending", 1200), ("succeeded", 34))))  # fmt: skip
    for i in range(50):
        display(JobChanged(job_id=f"j{i}", status=JobStatus.RUNNING, previous=JobStatus.PENDING,
                           credits=(90, None)))  # fmt: skip
        display(RequestAnswered(endpoint="POST /api/v1/generations", status=201))
    display(RateLimited(endpoint="GET /api/v1/generations/{id}", retry_after_s=1.0))
    display(NeedsDecision(job_id="x", idempotency_key="k", submitted_at=None, age_s=1e9, why="w"))
    display(Estimate(eta_s=3725.0))
    return display


def test_the_live_view_fits_80_columns_and_shows_rate_and_eta() -> None:
    """Rendered at 80 columns, every line fits, with per-phase counts, the bar's done/total,
    credits, the request rate with its 429s, and the ETA."""
    display = _busy_display(RichConsole(io.StringIO()))
    screen = RichTerminal(width=80, record=True, file=io.StringIO())
    screen.print(display.renderable())
    text = screen.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for shown in ("34/1234 done", "pending 1150", "running 50", "succeeded 34", "failed 0",
                  "credits 0 charged, 4,500 reserved", "(1 429)", "/s", "ETA 1:02:05",
                  "need a decision"):  # fmt: skip
        assert shown in text, (shown, text)


def test_a_log_line_prints_above_the_live_view_never_onto_it() -> None:
    """On a terminal, a log line written while the view is live is a line of its own, and
    the view is drawn again below it."""
    out = _Tty()
    console = RichConsole(out)
    display = _busy_display(console)
    logger = logging.getLogger("batchgen.test-live")
    handler = ConsoleHandler()
    handler.setFormatter(IsoFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with console.active():
            display.draw()
            logger.warning("sneaker: failed")
            display.finish()
    finally:
        logger.removeHandler(handler)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # drop cursor moves
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    logged = [line for line in lines if "sneaker: failed" in line]
    assert logged and all(line.endswith("batchgen: sneaker: failed") for line in logged)
    assert re.match(r"^\d{4}-", logged[0]), logged
    after = lines[lines.index(logged[0]) + 1 :]
    assert any("done" in line for line in after)  # the view again, below the log line


def test_watch_redraws_in_place_on_a_terminal_and_dates_blocks_elsewhere() -> None:
    """On a terminal each refresh clears the screen; elsewhere each is a block headed by an
    ISO timestamp; with until_done the watch ends at the first finished status."""
    busy = BatchStatus(_report(JobReport("a", ReportStatus.RUNNING, task_id="t")), (), None, True)
    done = BatchStatus(_report(JobReport("a", ReportStatus.SUCCEEDED)), (), None, False)
    for out, mark in ((_Tty(), CLEAR), (io.StringIO(), "-- 2")):
        reads = iter([busy, busy, done])
        last = watch_status(
            reads.__next__,
            lambda s: f"running={s.running}",
            interval_s=0.5,
            until_done=True,
            out=out,
            sleep=lambda _: None,
        )
        assert last is done
        assert out.getvalue().count(mark) == 3
        assert out.getvalue().rstrip().endswith("running=False")
