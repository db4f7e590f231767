"""What a batch looks like: a typed ``Report`` built by a pure function from the stored rows,
then rendered at the edge as JSON, a table, CSV or a short summary (and the exit code it
implies); the HTML gallery is ``batchgen.gallery``.

``build_report`` takes the current jobs, the stored rows and the earlier attempts' tasks and
touches nothing else; ``report_from_store`` reads them for a manifest, ``report_from_state``
for the state alone (the jobs of its latest run: a report needs no manifest). The renderers
only read a ``Report``, so a CSV or HTML report is one more function here.

The sums cover every task the batch ever created: the current versions' tasks, superseded
versions' (a job edited since) and earlier attempts' (a retried or requeued job), so that
``totals.final_credits + totals.in_flight_credits`` equals the service's net charges to the
credit (``final_credits`` alone once no task is in flight).

The JSON shape (``to_dict``, ``render_json``) is an interface other tools rely on; keys are
only ever added::

    {"batch": str, "state_file": str,
     "jobs": [{"id", "status", "task_id", "reserved_credits", "final_credits",
               "result_urls": [...], "outputs": [local file paths],
               "error": {"code", "message", "request_id"} | null, "attempt", "polls",
               "version", "prompt", "params": {...}, "references": [...],
               "output_sizes": [...], "output_sha256": [...],
               "submitted_at", "task_created_at", "task_finished_at", "finished_at",
               "earlier_attempts": [{"attempt", "task_id", "status", "reserved_credits",
                                     "final_credits", "error", "created_at", "finished_at",
                                     "why"}]}],
     "totals": {"jobs", "by_status": {status: count}, "reserved_credits", "final_credits",
                "outputs", "tasks", "in_flight_credits", "refunded_credits",
                "current_final_credits", "superseded_final_credits",
                "earlier_attempts_final_credits", "superseded_versions", "earlier_attempts"},
     "removed": [job ids stored in the state but no longer in the manifest],
     "superseded": [job entries (as above) of versions the manifest no longer names],
     "service": the API origin the state belongs to (null until its first run records it)}

A job the manifest names that the state has never seen has status ``new``. Timestamps are the
service's (``task_*``) or this client's (``submitted_at``, ``finished_at``), ISO 8601 UTC.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.binding import service_of
from batchgen.models import TERMINAL, JobStatus, Manifest, job_key, job_selected, version_of

if TYPE_CHECKING:
    from batchgen.store import AttemptRow, JobRow, StateStore


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
class TaskReport:
    """A task an earlier attempt of a job created (the job was retried or requeued since)."""

    attempt: int
    task_id: str
    status: str | None
    reserved_credits: int | None
    final_credits: int | None
    error: RecordedError | None
    created_at: str | None
    finished_at: str | None
    why: str


@dataclass(frozen=True)
class JobReport:
    """One version of one job as the state database knows it."""

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
    version: str | None = None  # the first hex digits of the request hash
    prompt: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    references: tuple[str, ...] = ()
    output_sizes: tuple[int, ...] = ()
    output_sha256: tuple[str, ...] = ()
    submitted_at: str | None = None
    task_created_at: str | None = None
    task_finished_at: str | None = None
    finished_at: str | None = None
    earlier_attempts: tuple[TaskReport, ...] = ()

    @property
    def tasks(self) -> tuple[tuple[int | None, int | None, bool], ...]:
        """(reserved, final, still in flight) of every task of this version: its earlier
        attempts' and its current one."""
        earlier = tuple((t.reserved_credits, t.final_credits, False) for t in self.earlier_attempts)
        if self.task_id is None:
            return earlier
        return (*earlier, (self.reserved_credits, self.final_credits, self.in_flight))

    @property
    def in_flight(self) -> bool:
        """The current task is created and not finished: its reservation is held."""
        return self.task_id is not None and self.status is ReportStatus.RUNNING


@dataclass(frozen=True)
class Totals:
    """Sums over a report. ``by_status``, ``jobs`` and ``outputs`` count the current jobs (by
    status name); the credits and ``tasks`` cover every task the batch created."""

    jobs: int
    by_status: tuple[tuple[ReportStatus, int], ...]
    reserved_credits: int
    final_credits: int
    outputs: int
    tasks: int = 0
    in_flight_credits: int = 0  # reserved by tasks not finished yet (taken from the wallet)
    refunded_credits: int = 0  # reserved by finished tasks and given back (failed ones)
    current_final_credits: int = 0
    superseded_final_credits: int = 0
    earlier_attempts_final_credits: int = 0
    superseded_versions: int = 0
    earlier_attempts: int = 0

    def count(self, status: ReportStatus) -> int:
        """How many jobs have ``status`` (0 when none)."""
        return dict(self.by_status).get(status, 0)

    @property
    def charged_credits(self) -> int:
        """What the service's ledger holds against the batch now: final charges plus the
        reservations of tasks in flight."""
        return self.final_credits + self.in_flight_credits


@dataclass(frozen=True)
class Report:
    """A batch: its current jobs in manifest order, their totals, the ids it dropped, and the
    superseded versions of its jobs (kept, with their tasks and files)."""

    batch: str
    state_file: str
    jobs: tuple[JobReport, ...]
    totals: Totals
    removed: tuple[str, ...]  # ids stored in the state that the manifest no longer names
    superseded: tuple[JobReport, ...] = ()
    service: str | None = None  # the service the state belongs to (None: not recorded yet)


# -- building --------------------------------------------------------------------------------


def build_report(
    batch: str,
    state_file: str,
    current: Sequence[tuple[str, str]],
    rows: Iterable[JobRow],
    attempts: Iterable[AttemptRow] = (),
) -> Report:
    """The report of the ``current`` jobs, ``(job id, job key)`` in manifest order, from every
    stored row (all versions) and the earlier attempts' tasks. Pure: reads nothing but its
    arguments."""
    by_key = {row.job_key: row for row in rows}
    earlier: dict[str, list[AttemptRow]] = {}
    for attempt in attempts:
        earlier.setdefault(attempt.job_key, []).append(attempt)
    jobs = tuple(
        job_report(job_id, by_key.get(key), earlier.get(key, ())) for job_id, key in current
    )
    current_keys = {key for _, key in current}
    superseded = tuple(
        job_report(row.job_id, row, earlier.get(key, ()))
        for key, row in by_key.items()
        if key not in current_keys
    )
    named = {job_id for job_id, _ in current}
    removed = tuple(sorted({row.job_id for row in by_key.values()} - named))
    return Report(batch, state_file, jobs, totals(jobs, superseded), removed, superseded)


def report_from_store(manifest: Manifest, store: StateStore) -> Report:
    """The report of ``manifest``'s current jobs as ``store`` knows them."""
    current = [
        (spec.id, job_key(manifest.batch, spec.id, spec.request_hash)) for spec in manifest.jobs
    ]
    report = build_report(
        manifest.batch,
        str(store.path),
        current,
        store.jobs(current_only=False),
        store.earlier_attempts(),
    )
    return replace(report, service=service_of(store.meta()))


def report_from_state(store: StateStore) -> Report:
    """The report from the state alone: the current jobs are the ones its latest run named
    (the manifest may be gone, or no longer validate)."""
    rows = store.jobs(current_only=False)
    current = [(row.job_id, row.job_key) for row in rows if row.in_manifest]
    report = build_report(store.batch, str(store.path), current, rows, store.earlier_attempts())
    return replace(report, service=service_of(store.meta()))


def select_jobs(report: Report, only: Sequence[str]) -> Report:
    """The report of the jobs ``--only`` patterns choose (ids or globs), totals recomputed
    over them; the whole report when there are no patterns."""
    if not only:
        return report
    jobs = tuple(j for j in report.jobs if job_selected(j.id, only))
    superseded = tuple(j for j in report.superseded if job_selected(j.id, only))
    return replace(report, jobs=jobs, superseded=superseded, totals=totals(jobs, superseded))


def job_report(job_id: str, row: JobRow | None, attempts: Sequence[AttemptRow] = ()) -> JobReport:
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
        version=version_of(row.request_hash),
        prompt=row.prompt,
        params=tuple(sorted((row.params or {}).items())),
        references=row.reference_files,
        output_sizes=row.output_sizes or (),
        output_sha256=row.output_sha256 or (),
        submitted_at=row.submitted_at,
        task_created_at=row.task_created_at,
        task_finished_at=row.task_finished_at,
        finished_at=row.finished_at,
        earlier_attempts=tuple(_task_report(a) for a in attempts),
    )


def _task_report(a: AttemptRow) -> TaskReport:
    error = RecordedError(a.error_code, a.error_message, None) if a.error_code else None
    return TaskReport(
        attempt=a.attempt,
        task_id=a.task_id,
        status=a.remote_status,
        reserved_credits=a.reserved_credits,
        final_credits=a.final_credits,
        error=error,
        created_at=a.task_created_at,
        finished_at=a.task_finished_at,
        why=a.why,
    )


def totals(jobs: Sequence[JobReport], superseded: Sequence[JobReport] = ()) -> Totals:
    """Counts per status (sorted by name) and output files of the current ``jobs``; credits
    over every task of them and of the ``superseded`` versions."""
    by_status = Counter(job.status for job in jobs)
    everything = [*jobs, *superseded]
    tasks = [t for job in everything for t in job.tasks]

    def final(group: Iterable[JobReport], *, earlier: bool) -> int:
        if earlier:
            return sum(t.final_credits or 0 for job in group for t in job.earlier_attempts)
        return sum(job.final_credits or 0 for job in group if job.task_id is not None)

    return Totals(
        jobs=len(jobs),
        by_status=tuple(sorted(by_status.items())),
        reserved_credits=sum(reserved or 0 for reserved, _, _ in tasks),
        final_credits=sum(fin or 0 for _, fin, _ in tasks),
        outputs=sum(len(job.outputs) for job in jobs),
        tasks=len(tasks),
        in_flight_credits=sum(reserved or 0 for reserved, _, flying in tasks if flying),
        refunded_credits=sum(
            max((reserved or 0) - (fin or 0), 0)
            for reserved, fin, flying in tasks
            if not flying and fin is not None
        ),
        current_final_credits=final(jobs, earlier=False),
        superseded_final_credits=final(superseded, earlier=False),
        earlier_attempts_final_credits=final(everything, earlier=True),
        superseded_versions=len(superseded),
        earlier_attempts=sum(len(job.earlier_attempts) for job in everything),
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
            "tasks": t.tasks,
            "in_flight_credits": t.in_flight_credits,
            "refunded_credits": t.refunded_credits,
            "current_final_credits": t.current_final_credits,
            "superseded_final_credits": t.superseded_final_credits,
            "earlier_attempts_final_credits": t.earlier_attempts_final_credits,
            "superseded_versions": t.superseded_versions,
            "earlier_attempts": t.earlier_attempts,
        },
        "removed": list(report.removed),
        "superseded": [_job_dict(job) for job in report.superseded],
        "service": report.service,
    }


def _error_dict(error: RecordedError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "request_id": error.request_id}


def _job_dict(job: JobReport) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status.value,
        "task_id": job.task_id,
        "reserved_credits": job.reserved_credits,
        "final_credits": job.final_credits,
        "result_urls": list(job.result_urls),
        "outputs": list(job.outputs),
        "error": _error_dict(job.error),
        "attempt": job.attempt,
        "polls": job.polls,
        "version": job.version,
        "prompt": job.prompt,
        "params": dict(job.params),
        "references": list(job.references),
        "output_sizes": list(job.output_sizes),
        "output_sha256": list(job.output_sha256),
        "submitted_at": job.submitted_at,
        "task_created_at": job.task_created_at,
        "task_finished_at": job.task_finished_at,
        "finished_at": job.finished_at,
        "earlier_attempts": [
            {
                "attempt": t.attempt,
                "task_id": t.task_id,
                "status": t.status,
                "reserved_credits": t.reserved_credits,
                "final_credits": t.final_credits,
                "error": _error_dict(t.error),
                "created_at": t.created_at,
                "finished_at": t.finished_at,
                "why": t.why,
            }
            for t in job.earlier_attempts
        ],
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
    if report.superseded and limit is None:
        out += ["", "Superseded versions (edited since; their tasks and files are kept):"]
        out += [
            f"  {j.id} v{j.version}  {j.status.value}  {j.task_id or '-'}  {_credits(j)}  "
            f"{_cell(j)}".rstrip()
            for j in report.superseded
        ]
    retried = [j for j in (*report.jobs, *report.superseded) if j.earlier_attempts]
    if retried and limit is None:
        out += ["", "Earlier attempts (their tasks are in the sums):"]
        out += [
            f"  {j.id} attempt {t.attempt}  {t.status or '-'}  {t.task_id}  "
            f"{t.final_credits or 0}  {t.why}"
            for j in retried
            for t in j.earlier_attempts
        ]
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
    """The summary (``batchgen status``): counts, every credit the batch's tasks hold, files,
    then any removed job ids."""
    t = report.totals
    counts = ", ".join(f"{n} {status.value}" for status, n in t.by_status)
    text = (
        f"batch {report.batch}: {t.jobs} jobs ({counts}); "
        f"credits charged {t.final_credits:,} over {t.tasks:,} tasks"
    )
    others = t.superseded_final_credits + t.earlier_attempts_final_credits
    if t.superseded_versions or t.earlier_attempts:
        parts = []
        if t.superseded_versions:
            parts.append(f"{t.superseded_versions} superseded version(s)")
        if t.earlier_attempts:
            parts.append(f"{t.earlier_attempts} earlier attempt(s)")
        text += f" ({others:,} of them for {' and '.join(parts)})"
    if t.in_flight_credits:
        text += f", {t.in_flight_credits:,} held by tasks in flight"
    if t.refunded_credits:
        text += f", {t.refunded_credits:,} refunded"
    text += f"; {t.outputs} files"
    if report.removed:
        shown = ", ".join(report.removed[:REMOVED_SHOWN])
        more = " ..." if len(report.removed) > REMOVED_SHOWN else ""
        text += (
            f"\n{len(report.removed)} job(s) in the state are no longer in the manifest: "
            f"{shown}{more}"
        )
    return text


# -- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "status",
    "version",
    "prompt",
    "params",
    "references",
    "task_id",
    "reserved_credits",
    "final_credits",
    "attempt",
    "error_code",
    "error_message",
    "submitted_at",
    "task_created_at",
    "task_finished_at",
    "finished_at",
    "outputs",
)
# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...) in a prompt
# would run when the file is opened); such a cell gets a leading ' so it stays text. Tab and
# carriage return are on OWASP's list too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: Report) -> str:
    """``batchgen report --format csv``: a header, then one row per current job (columns
    ``CSV_COLUMNS``; lists ``;``-joined, params as compact JSON, missing values empty). Quoted
    by the csv module (RFC 4180, CRLF line ends); a cell that a spreadsheet would read as a
    formula starts with ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for job in report.jobs:
        writer.writerow([_csv_safe(cell) for cell in _csv_row(job)])
    return buffer.getvalue()


def _csv_row(job: JobReport) -> tuple[object, ...]:
    error = job.error or RecordedError(None, None, None)
    params = json.dumps(dict(job.params), separators=(",", ":"), ensure_ascii=False)
    return (
        job.id,
        job.status.value,
        job.version,
        job.prompt,
        params if job.params else "",
        ";".join(job.references),
        job.task_id,
        job.reserved_credits,
        job.final_credits,
        job.attempt,
        error.code,
        error.message,
        job.submitted_at,
        job.task_created_at,
        job.task_finished_at,
        job.finished_at,
        ";".join(job.outputs),
    )


def _csv_safe(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
