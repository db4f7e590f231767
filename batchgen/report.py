"""What happened to a batch, from its state database: JSON, a table, a short summary, the exit code.

The JSON shape is an interface other tools rely on::

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

from collections import Counter
from pathlib import Path
from typing import Any

from batchgen.models import JobStatus, Manifest, job_key
from batchgen.store import JobRow, StateStore

NEW = "new"

EXIT_OK = 0
EXIT_RUN_ERROR = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_RESUMABLE = 4
EXIT_INTERRUPTED = 130


def _job_entry(job_id: str, row: JobRow | None) -> dict[str, Any]:
    if row is None:
        return {
            "id": job_id,
            "status": NEW,
            "task_id": None,
            "reserved_credits": None,
            "final_credits": None,
            "result_urls": [],
            "outputs": [],
            "error": None,
            "attempt": 0,
            "polls": 0,
        }
    error = None
    if row.error_code or row.error_message:
        error = {"code": row.error_code, "message": row.error_message, "request_id": row.request_id}
    return {
        "id": job_id,
        "status": row.status.value,
        "task_id": row.task_id,
        "reserved_credits": row.reserved_credits,
        "final_credits": row.final_credits,
        "result_urls": list(row.result_urls),
        "outputs": list(row.outputs),
        "error": error,
        "attempt": row.attempt,
        "polls": row.polls,
    }


def build_report(manifest: Manifest, store: StateStore) -> dict[str, Any]:
    """The report of the manifest's current jobs as the state database knows them."""
    rows = {r.job_key: r for r in store.jobs(current_only=False)}
    jobs = []
    for spec in manifest.jobs:
        row = rows.get(job_key(manifest.batch, spec.id, spec.request_hash))
        jobs.append(_job_entry(spec.id, row))
    named = {s.id for s in manifest.jobs}
    removed = sorted({r.job_id for r in rows.values()} - named)
    return {
        "batch": manifest.batch,
        "state_file": str(store.path),
        "jobs": jobs,
        "totals": totals(jobs),
        "removed": removed,
    }


def totals(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    by_status = Counter(j["status"] for j in jobs)
    return {
        "jobs": len(jobs),
        "by_status": dict(sorted(by_status.items())),
        "reserved_credits": sum(j["reserved_credits"] or 0 for j in jobs),
        "final_credits": sum(j["final_credits"] or 0 for j in jobs),
        "outputs": sum(len(j["outputs"]) for j in jobs),
    }


def exit_code(report: dict[str, Any], *, resumable_stop: bool = False) -> int:
    """0 all succeeded; 3 all finished but some failed; 4 anything left to do (resumable)."""
    by_status = report["totals"]["by_status"]
    unfinished = sum(
        n for s, n in by_status.items() if s not in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    )
    if resumable_stop or unfinished:
        return EXIT_RESUMABLE
    if by_status.get(JobStatus.FAILED.value):
        return EXIT_SOME_FAILED
    return EXIT_OK


def _cell(job: dict[str, Any]) -> str:
    if job["outputs"]:
        return ", ".join(_shown_path(p) for p in job["outputs"])
    if job["error"]:
        code = job["error"]["code"] or "error"
        return f"{code}: {job['error']['message'] or ''}"
    return ""


def render_table(report: dict[str, Any], *, limit: int | None = None) -> str:
    """A plain-text table of the jobs, then the totals."""
    jobs = report["jobs"] if limit is None else report["jobs"][:limit]
    header = ("JOB", "STATUS", "TASK", "CREDITS", "OUTPUT / ERROR")
    lines = [(j["id"], j["status"], j["task_id"] or "-", _credits(j), _cell(j)) for j in jobs]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    widths[-1] = 0
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip()] + [fmt.format(*line).rstrip() for line in lines]
    if limit is not None and len(report["jobs"]) > limit:
        out.append(f"... and {len(report['jobs']) - limit} more (batchgen report MANIFEST)")
    out.append("")
    out.append(render_totals(report))
    return "\n".join(out)


def _credits(job: dict[str, Any]) -> str:
    if job["final_credits"] is None and job["reserved_credits"] is None:
        return "-"
    if job["status"] in (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value):
        return str(job["final_credits"] or 0)
    return f"{job['reserved_credits'] or 0} reserved"


def _shown_path(path: str) -> str:
    """A path relative to the current folder when it lies below it (tables only; JSON keeps
    the stored absolute path)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def render_totals(report: dict[str, Any]) -> str:
    t = report["totals"]
    counts = ", ".join(f"{n} {s}" for s, n in t["by_status"].items())
    text = (
        f"batch {report['batch']}: {t['jobs']} jobs ({counts}); "
        f"credits charged {t['final_credits']}, reserved {t['reserved_credits']}; "
        f"{t['outputs']} files"
    )
    if report["removed"]:
        text += (
            f"\n{len(report['removed'])} job(s) in the state are no longer in the manifest: "
            + (", ".join(report["removed"][:10]) + (" ..." if len(report["removed"]) > 10 else ""))
        )
    return text
