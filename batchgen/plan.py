"""``batchgen plan``: what a run of a manifest would do now, without sending anything. Pure.

The caller passes in what it knows from the outside world: ``state`` maps each job id stored in
the state database to ``(request_hash, status)`` of its latest version, and ``base_credits`` is
the models endpoint's price when online. Then each job of the manifest is one of:

* **new**: not in the state, or stored but nothing sent yet (``pending``);
* **changed**: stored with a different request hash (edited since): a new version, a new task;
* **in flight**: ``submitting``, ``running`` or ``downloading``: a run resumes it;
* **done** (``succeeded``), **failed** (kept; only ``--retry-failed`` resends), **blocked** (out
  of credits last time: the next run resubmits it).

Ids in the state that the manifest no longer has are **removed**: reported, never deleted.
Credits to reserve = price x (new + changed + blocked + submitting): an upper bound, because a
``submitting`` job's create request may or may not have reached the API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from batchgen.contract import BASE_CREDITS
from batchgen.models import JobSpec, JobStatus, Manifest

FIRST_JOBS = 10
PROMPT_EXCERPT_CHARS = 60
IN_FLIGHT = frozenset({JobStatus.SUBMITTING, JobStatus.RUNNING, JobStatus.DOWNLOADING})
CATEGORIES = ("new", "changed", "in flight", "done", "failed", "blocked")


@dataclass(frozen=True)
class PlanJob:
    """One row of the plan's job table."""

    id: str
    prompt: str  # an excerpt
    params: tuple[tuple[str, str], ...]
    references: tuple[str, ...]  # file names or URLs
    status: str | None = None  # one of CATEGORIES when a state was given


@dataclass(frozen=True)
class PlanChanges:
    """What a run would do now, given the state database."""

    new: int
    changed: int
    in_flight: int
    done: int
    failed: int
    blocked: int
    removed: int
    removed_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The plan of a manifest: size, cost, references, first jobs and (with state) changes."""

    batch: str
    manifest: str
    output_dir: str
    job_count: int
    jobs_to_submit: int
    base_credits: int
    credits: int
    credits_is_estimate: bool
    reference_files: int
    reference_bytes: int
    reference_urls: int
    first_jobs: tuple[PlanJob, ...]
    changes: PlanChanges | None = None


def make_plan(
    manifest: Manifest,
    *,
    state: Mapping[str, tuple[str, str]] | None = None,
    base_credits: int | None = None,
    first: int = FIRST_JOBS,
) -> Plan:
    """The plan of ``manifest``; see the module docstring for how jobs are classified."""
    price = BASE_CREDITS if base_credits is None else base_credits
    statuses = _classify(manifest.jobs, state) if state is not None else None
    to_submit = len(manifest.jobs) if statuses is None else _to_submit(statuses)
    files, total_bytes, urls = _reference_totals(manifest.jobs)
    return Plan(
        batch=manifest.batch,
        manifest=str(manifest.path),
        output_dir=str(manifest.output_dir),
        job_count=len(manifest.jobs),
        jobs_to_submit=to_submit,
        base_credits=price,
        credits=price * to_submit,
        credits_is_estimate=base_credits is None,
        reference_files=files,
        reference_bytes=total_bytes,
        reference_urls=urls,
        first_jobs=_first_jobs(manifest.jobs[:first], statuses),
        changes=_changes(manifest.jobs, state, statuses) if state is not None else None,
    )


def _classify(jobs: Iterable[JobSpec], state: Mapping[str, tuple[str, str]]) -> list[str]:
    """Per job, its category, or the raw status for ``submitting`` (counted for credits)."""
    out = []
    for job in jobs:
        stored = state.get(job.id)
        out.append("new" if stored is None else _category(job, *stored))
    return out


def _category(job: JobSpec, stored_hash: str, stored_status: str) -> str:
    if stored_hash != job.request_hash:
        return "changed"
    status = JobStatus(stored_status)
    if status is JobStatus.PENDING:
        return "new"
    if status is JobStatus.SUBMITTING:
        return "submitting"
    if status in IN_FLIGHT:
        return "in flight"
    return {"succeeded": "done", "failed": "failed", "blocked": "blocked"}[status.value]


def _to_submit(statuses: list[str]) -> int:
    counts = Counter(statuses)
    return counts["new"] + counts["changed"] + counts["blocked"] + counts["submitting"]


def _shown_status(status: str) -> str:
    return "in flight" if status == "submitting" else status


def _changes(
    jobs: tuple[JobSpec, ...], state: Mapping[str, tuple[str, str]], statuses: list[str] | None
) -> PlanChanges:
    counts = Counter(_shown_status(s) for s in statuses or ())
    ids = {job.id for job in jobs}
    removed = tuple(sorted(job_id for job_id in state if job_id not in ids))
    return PlanChanges(
        new=counts["new"],
        changed=counts["changed"],
        in_flight=counts["in flight"],
        done=counts["done"],
        failed=counts["failed"],
        blocked=counts["blocked"],
        removed=len(removed),
        removed_ids=removed,
    )


def _reference_totals(jobs: Iterable[JobSpec]) -> tuple[int, int, int]:
    """Distinct local files (by content), their total bytes, and distinct URLs."""
    sizes: dict[str, int] = {}
    urls: set[str] = set()
    for job in jobs:
        for ref in job.references:
            if ref.sha256 is not None:
                sizes[ref.sha256] = ref.size_bytes or 0
            else:
                urls.add(ref.source)
    return len(sizes), sum(sizes.values()), len(urls)


def _first_jobs(jobs: tuple[JobSpec, ...], statuses: list[str] | None) -> tuple[PlanJob, ...]:
    return tuple(
        PlanJob(
            id=job.id,
            prompt=excerpt(job.prompt),
            params=job.params,
            references=tuple(ref.name for ref in job.references),
            status=_shown_status(statuses[i]) if statuses is not None else None,
        )
        for i, job in enumerate(jobs)
    )


def excerpt(text: str, limit: int = PROMPT_EXCERPT_CHARS) -> str:
    """The text on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def plan_to_dict(plan: Plan) -> dict[str, object]:
    """The plan as JSON-ready data (``batchgen plan --json``)."""
    data = asdict(plan)
    data["first_jobs"] = [
        {**asdict(job), "params": dict(job.params), "references": list(job.references)}
        for job in plan.first_jobs
    ]
    if plan.changes is not None:
        data["changes"] = {**asdict(plan.changes), "removed_ids": list(plan.changes.removed_ids)}
    return data


# -- text rendering -------------------------------------------------------------------------

_COLUMNS = (
    ("MODE", "mode"),
    ("DUR", "duration"),
    ("RATIO", "aspect_ratio"),
    ("SOUND", "sound"),
    ("SHOTS", "multi_shots"),
)


def render_plan(plan: Plan) -> str:
    """The plan as plain text: a summary, the state changes, then the first jobs as a table."""
    lines = _summary_lines(plan)
    if plan.changes is not None:
        lines += ["", _changes_line(plan.changes)]
    if plan.first_jobs:
        shown = len(plan.first_jobs)
        title = "all jobs" if shown == plan.job_count else f"first {shown} of {plan.job_count} jobs"
        lines += ["", f"{title}:", *_table(plan.first_jobs)]
    return "\n".join(lines) + "\n"


def _summary_lines(plan: Plan) -> list[str]:
    how = (
        f"estimate: {plan.base_credits} per job, the contract's base price"
        if plan.credits_is_estimate
        else f"{plan.base_credits} per job, from the models endpoint"
    )
    refs = f"{plan.reference_files} file{'s' if plan.reference_files != 1 else ''}"
    refs += f", {format_bytes(plan.reference_bytes)}"
    if plan.reference_urls:
        refs += f"; {plan.reference_urls} URL{'s' if plan.reference_urls != 1 else ''}"
    return [
        f"batch       {plan.batch}  ({plan.manifest})",
        f"jobs        {plan.job_count:,} ({plan.jobs_to_submit:,} to submit)",
        f"credits     {plan.credits:,} ({how})",
        f"references  {refs}",
        f"output      {plan.output_dir}",
    ]


def _changes_line(changes: PlanChanges) -> str:
    line = (
        f"state       new {changes.new:,}, changed {changes.changed:,}, "
        f"in flight {changes.in_flight:,}, done {changes.done:,}, failed {changes.failed:,}, "
        f"blocked {changes.blocked:,}, removed {changes.removed:,}"
    )
    if changes.removed:
        ids = ", ".join(changes.removed_ids[:5]) + (", ..." if changes.removed > 5 else "")
        line += f"\n            removed from the manifest (kept in the state): {ids}"
    return line


def _table(jobs: tuple[PlanJob, ...]) -> list[str]:
    with_status = any(job.status is not None for job in jobs)
    header = ["ID", *(["STATUS"] if with_status else []), *(c for c, _ in _COLUMNS)]
    header += ["REFS", "PROMPT"]
    rows = [header]
    for job in jobs:
        params = dict(job.params)
        row = [job.id, *([job.status or ""] if with_status else [])]
        row += [params.get(name, "") for _, name in _COLUMNS]
        row += [", ".join(job.references) or "-", job.prompt]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    ]


def format_bytes(size: int) -> str:
    """``12.5 KB`` style sizes (1 KB = 1024 bytes)."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
