"""What a batch looks like: a typed ``Report`` built by a pure function from the stored rows,
then rendered at the edge as JSON, a table or a short summary (and the exit code it implies).

``build_report`` takes the manifest's current jobs and the stored rows and touches nothing else;
``report_from_store`` is the convenience that reads both. The renderers only read a ``Report``,
so a CSV or HTML report is one more function here.

The JSON shape (``to_dict``, ``render_json``) is an interface other tools rely on::

    {"batch": str, "state_file": str,
     "jobs": [{"id", "status", "task_id", "reserved_credits", "final_credits", "result_urls": [...],
               "outputs": [local file paths], "error": {"code", "message", "request_id"} | null,
               "attempt", "polls"}],
     "totals": {"jobs", "by_status": {status: count}, "reserved_credits", "final_credits",
                "outputs"},
     "removed": [job ids stored in the state but no longer in the manifest]}

A job the manifest names that the state has never seen has status ``new``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.models import TERMINAL, JobStatus, Manifest, job_key

if TYPE_CHECKING:
    from batchgen.store import JobRow, StateStore


REMOVED_SHOWN = 10  # removed job ids named in the summary line


class ReportStatus(StrEnum):
    """A job's status in a report: a stored ``JobStatus``, or ``new`` when nothing is stored.

    The values are ``JobStatus``'s (a test keeps the two in step) plus ``new``.
    """

    NEW = "new"  # the manifest names it; the state has never seen this version
    PENDING = JobStatus.PENDING.value
    SUBMITTING = JobStatus.SUBMITTING.value
    RUNNING = JobStatus.RUNNING.value
    DOWNLOADING = JobStatus.DOWNLOADING.value
    SUCCEEDED = JobStatus.SUCCEEDED.value
    FAILED = JobStatus.FAILED.value
    BLOCKED = JobStatus.BLOCKED.value

    @classmethod
    def of(cls, status: JobStatus) -> ReportStatus:
        return cls(status.value)

    @property
    def is_terminal(self) -> bool:
        return self is not ReportStatus.NEW and JobStatus(self.value) in TERMINAL


@dataclass(frozen=True)
class RecordedError:
    """The error stored on a failed or blocked job's row."""

    code: str | None
    message: str | None
    request_id: str | None


@dataclass(frozen=True)
class JobReport:
    """One job of the manifest as the state database knows it."""

    id: str
    status: ReportStatus
    task_id: str | None = None
    reserved_credits: int | None = None
    final_credits: int | None = None
    result_urls: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # local file paths, as stored (absolute)
    error: RecordedError | None = None
    attempt: int = 0
    polls: int = 0


@dataclass(frozen=True)
class Totals:
    """Sums over a report's jobs. ``by_status`` holds only statuses that occur, by name."""

    jobs: int
    by_status: tuple[tuple[ReportStatus, int], ...]
    reserved_credits: int
    final_credits: int
    outputs: int

    def count(self, status: ReportStatus) -> int:
        """How many jobs have ``status`` (0 when none)."""
        return dict(self.by_status).get(status, 0)


@dataclass(frozen=True)
class Report:
    """A batch: its current jobs in manifest order, their totals, and the ids it dropped."""

    batch: str
    state_file: str
    jobs: tuple[JobReport, ...]
    totals: Totals
    removed: tuple[str, ...]  # ids stored in the state that the manifest no longer names


# -- building --------------------------------------------------------------------------------


def build_report(
    batch: str, state_file: str, current: Sequence[tuple[str, str]], rows: Iterable[JobRow]
) -> Report:
    """The report of the manifest's ``current`` jobs, ``(job id, job key)`` in manifest order,
    from every stored row (all versions). Pure: reads nothing but its arguments."""
    by_key = {row.job_key: row for row in rows}
    jobs = tuple(job_report(job_id, by_key.get(key)) for job_id, key in current)
    named = {job_id for job_id, _ in current}
    removed = tuple(sorted({row.job_id for row in by_key.values()} - named))
    return Report(batch, state_file, jobs, totals(jobs), removed)


def report_from_store(manifest: Manifest, store: StateStore) -> Report:
    """The report of ``manifest``'s current jobs as ``store`` knows them."""
    current = [
        (spec.id, job_key(manifest.batch, spec.id, spec.request_hash)) for spec in manifest.jobs
    ]
    return build_report(manifest.batch, str(store.path), current, store.jobs(current_only=False))


def job_report(job_id: str, row: JobRow | None) -> JobReport:
    """One job's entry; ``new`` when the state has no row for its current version."""
    if row is None:
        return JobReport(job_id, ReportStatus.NEW)
    error = None
    if row.error_code or row.error_message:
        error = RecordedError(row.error_code, row.error_message, row.request_id)
    return JobReport(
        id=job_id,
        status=ReportStatus.of(row.status),
        task_id=row.task_id,
        reserved_credits=row.reserved_credits,
        final_credits=row.final_credits,
        result_urls=tuple(row.result_urls),
        outputs=tuple(row.outputs),
        error=error,
        attempt=row.attempt,
        polls=row.polls,
    )


def totals(jobs: Sequence[JobReport]) -> Totals:
    """Counts per status (sorted by name) and sums of credits and output files."""
    by_status = Counter(job.status for job in jobs)
    return Totals(
        jobs=len(jobs),
        by_status=tuple(sorted(by_status.items())),
        reserved_credits=sum(job.reserved_credits or 0 for job in jobs),
        final_credits=sum(job.final_credits or 0 for job in jobs),
        outputs=sum(len(job.outputs) for job in jobs),
    )


# -- JSON ------------------------------------------------------------------------------------


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data, in the documented shape (see the module docstring)."""
    t = report.totals
    return {
        "batch": report.batch,
        "state_file": report.state_file,
        "jobs": [_job_dict(job) for job in report.jobs],
        "totals": {
            "jobs": t.jobs,
            "by_status": {status.value: n for status, n in t.by_status},
            "reserved_credits": t.reserved_credits,
            "final_credits": t.final_credits,
            "outputs": t.outputs,
        },
        "removed": list(report.removed),
    }


def _job_dict(job: JobReport) -> dict[str, Any]:
    error = None
    if job.error is not None:
        error = {
            "code": job.error.code,
            "message": job.error.message,
            "request_id": job.error.request_id,
        }
    return {
        "id": job.id,
        "status": job.status.value,
        "task_id": job.task_id,
        "reserved_credits": job.reserved_credits,
        "final_credits": job.final_credits,
        "result_urls": list(job.result_urls),
        "outputs": list(job.outputs),
        "error": error,
        "attempt": job.attempt,
        "polls": job.polls,
    }


def render_json(report: Report) -> str:
    """``batchgen report --format json``."""
    return json.dumps(to_dict(report), indent=2)


# -- text ------------------------------------------------------------------------------------


def render_table(report: Report, *, limit: int | None = None) -> str:
    """A plain-text table of the jobs (the first ``limit`` of them), then the totals."""
    jobs = report.jobs if limit is None else report.jobs[:limit]
    header = ("JOB", "STATUS", "TASK", "CREDITS", "OUTPUT / ERROR")
    lines = [(j.id, j.status.value, j.task_id or "-", _credits(j), _cell(j)) for j in jobs]
    widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
    widths[-1] = 0
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip()] + [fmt.format(*line).rstrip() for line in lines]
    if limit is not None and len(report.jobs) > limit:
        out.append(f"... and {len(report.jobs) - limit} more (batchgen report MANIFEST)")
    out.append("")
    out.append(render_totals(report))
    return "\n".join(out)


def _cell(job: JobReport) -> str:
    if job.outputs:
        return ", ".join(_shown_path(p) for p in job.outputs)
    if job.error is not None:
        return f"{job.error.code or 'error'}: {job.error.message or ''}"
    return ""


def _credits(job: JobReport) -> str:
    if job.final_credits is None and job.reserved_credits is None:
        return "-"
    if job.status.is_terminal:
        return str(job.final_credits or 0)
    return f"{job.reserved_credits or 0} reserved"


def _shown_path(path: str) -> str:
    """A path relative to the current folder when it lies below it (tables only; JSON keeps
    the stored absolute path)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def render_totals(report: Report) -> str:
    """One line of counts and credits (``batchgen status``), then any removed job ids."""
    t = report.totals
    counts = ", ".join(f"{n} {status.value}" for status, n in t.by_status)
    text = (
        f"batch {report.batch}: {t.jobs} jobs ({counts}); "
        f"credits charged {t.final_credits}, reserved {t.reserved_credits}; "
        f"{t.outputs} files"
    )
    if report.removed:
        shown = ", ".join(report.removed[:REMOVED_SHOWN])
        more = " ..." if len(report.removed) > REMOVED_SHOWN else ""
        text += (
            f"\n{len(report.removed)} job(s) in the state are no longer in the manifest: "
            f"{shown}{more}"
        )
    return text
