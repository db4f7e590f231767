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
from enum import StrEnum

from batchgen.contract import BASE_CREDITS
from batchgen.models import JobSpec, JobStatus, Manifest

FIRST_JOBS = 10
PROMPT_EXCERPT_CHARS = 60


class Category(StrEnum):
    """What a run would do with a job now (the module docstring says when each applies)."""

    NEW = "new"  # not stored, or stored and nothing sent yet: submitted
    CHANGED = "changed"  # stored with another request hash: a new version, submitted
    IN_FLIGHT = "in flight"  # submitting, running or downloading: resumed
    DONE = "done"  # succeeded: kept
    FAILED = "failed"  # kept; only --retry-failed resends it
    BLOCKED = "blocked"  # out of credits last time: resubmitted


CATEGORIES = tuple(Category)
# The category of an unchanged stored job, by its status.
_BY_STATUS: Mapping[JobStatus, Category] = {
    JobStatus.PENDING: Category.NEW,
    JobStatus.SUBMITTING: Category.IN_FLIGHT,
    JobStatus.RUNNING: Category.IN_FLIGHT,
    JobStatus.DOWNLOADING: Category.IN_FLIGHT,
    JobStatus.SUCCEEDED: Category.DONE,
    JobStatus.FAILED: Category.FAILED,
    JobStatus.BLOCKED: Category.BLOCKED,
}
TO_SUBMIT = frozenset({Category.NEW, Category.CHANGED, Category.BLOCKED})


@dataclass(frozen=True)
class _Verdict:
    """A job's category, and whether a run may send it (and reserve credits for it)."""

    category: Category
    submits: bool


@dataclass(frozen=True)
class PlanJob:
    """One row of the plan's job table."""

    id: str
    prompt: str  # an excerpt
    params: tuple[tuple[str, str], ...]
    references: tuple[str, ...]  # file names or URLs
    status: Category | None = None  # when a state was given


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
    wallet: int | None = None  # the wallet's credits (``plan --online`` with a key)
    wallet_note: str = ""  # why the wallet is unknown online ("no key"); "" offline
    budget: int | None = None  # ``limits.max_credits``: the batch's budget, if it has one


def make_plan(
    manifest: Manifest,
    *,
    state: Mapping[str, tuple[str, str]] | None = None,
    base_credits: int | None = None,
    first: int = FIRST_JOBS,
) -> Plan:
    """The plan of ``manifest``; see the module docstring for how jobs are classified."""
    price = BASE_CREDITS if base_credits is None else base_credits
    verdicts = changes = None
    to_submit = len(manifest.jobs)
    if state is not None:
        verdicts = _classify(manifest.jobs, state)
        to_submit = sum(v.submits for v in verdicts)
        changes = _changes(manifest.jobs, state, verdicts)
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
        budget=manifest.limits.max_credits,
        reference_files=files,
        reference_bytes=total_bytes,
        reference_urls=urls,
        first_jobs=_first_jobs(manifest.jobs[:first], verdicts),
        changes=changes,
    )


def _classify(jobs: Iterable[JobSpec], state: Mapping[str, tuple[str, str]]) -> list[_Verdict]:
    """Per job, its category and whether a run would submit it."""
    out = []
    for job in jobs:
        stored = state.get(job.id)
        out.append(_Verdict(Category.NEW, True) if stored is None else _verdict(job, *stored))
    return out


def _verdict(job: JobSpec, stored_hash: str, stored_status: str) -> _Verdict:
    """A ``submitting`` job shows as in flight but counts as submitted: its create request may
    not have reached the API, so its credits are part of the upper bound."""
    if stored_hash != job.request_hash:
        return _Verdict(Category.CHANGED, True)
    status = JobStatus(stored_status)  # ValueError for a status batchgen does not know
    category = _BY_STATUS[status]
    return _Verdict(category, category in TO_SUBMIT or status is JobStatus.SUBMITTING)


def _changes(
    jobs: tuple[JobSpec, ...], state: Mapping[str, tuple[str, str]], verdicts: list[_Verdict]
) -> PlanChanges:
    counts = Counter(v.category for v in verdicts)
    ids = {job.id for job in jobs}
    removed = tuple(sorted(job_id for job_id in state if job_id not in ids))
    return PlanChanges(
        new=counts[Category.NEW],
        changed=counts[Category.CHANGED],
        in_flight=counts[Category.IN_FLIGHT],
        done=counts[Category.DONE],
        failed=counts[Category.FAILED],
        blocked=counts[Category.BLOCKED],
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


def _first_jobs(jobs: tuple[JobSpec, ...], verdicts: list[_Verdict] | None) -> tuple[PlanJob, ...]:
    return tuple(
        PlanJob(
            id=job.id,
            prompt=excerpt(job.prompt),
            params=job.params,
            references=tuple(ref.name for ref in job.references),
            status=verdicts[i].category if verdicts is not None else None,
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
        *_wallet_line(plan),
        *_budget_line(plan),
        f"references  {refs}",
        f"output      {plan.output_dir}",
    ]


def _wallet_line(plan: Plan) -> list[str]:
    """``wallet      1,000 credits (covers it)`` online; nothing offline."""
    if plan.wallet is None:
        return [f"wallet      unknown ({plan.wallet_note})"] if plan.wallet_note else []
    short = plan.credits - plan.wallet
    verdict = "covers it" if short <= 0 else f"{short:,} short"
    return [f"wallet      {plan.wallet:,} credits ({verdict})"]


def _budget_line(plan: Plan) -> list[str]:
    """``budget      9,000 credits (covers it)`` when the manifest sets ``limits.max_credits``.
    The budget counts the whole batch (what earlier runs spent too); the plan compares it with
    what this run would reserve, so "covers it" is an upper bound on what is left to spend."""
    if plan.budget is None:
        return []
    short = plan.credits - plan.budget
    verdict = "covers it" if short <= 0 else f"{short:,} short: the run stops there, exit 4"
    return [f"budget      {plan.budget:,} credits ({verdict})"]


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
