"""``make_plan``: job counts, credits, references and what a run would do given a state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.manifest import load_manifest
from batchgen.models import JobSpec, JobStatus, Location, Manifest, Reference
from batchgen.plan import Category, format_bytes, make_plan, plan_to_dict, render_plan

REPO = Path(__file__).resolve().parents[2]
PARAMS = (
    ("aspect_ratio", "16:9"),
    ("duration", "5"),
    ("mode", "pro"),
    ("multi_shots", "false"),
    ("sound", "false"),
)


def _job(job_id: str, refs: tuple[Reference, ...] = ()) -> JobSpec:
    return JobSpec(job_id, f"prompt of {job_id}", PARAMS, refs, Location("m.yaml", 1, 1))


def _manifest(*jobs: JobSpec) -> Manifest:
    return Manifest(Path("/m.yaml"), "b", tuple(jobs), Path("/out"))


def test_plan_without_state_estimates_credits() -> None:
    """Offline, every job is to be submitted at the contract's 90 credits, marked an estimate."""
    plan = make_plan(load_manifest(REPO / "jobs" / "demo.yaml"))
    assert (plan.job_count, plan.jobs_to_submit, plan.credits) == (7, 7, 630)
    assert plan.credits_is_estimate and plan.base_credits == 90
    assert (plan.reference_files, plan.reference_bytes, plan.reference_urls) == (1, 12777, 0)
    assert plan.changes is None
    assert [job.id for job in plan.first_jobs][:2] == ["sneaker-16x9", "sneaker-9x16"]


def test_distinct_references_are_counted_by_content() -> None:
    """Two paths with the same bytes are one file to upload; URLs are counted apart."""
    a = Reference("/a.png", None, "h1", 100, "image/png")
    a_copy = Reference("/copy-of-a.png", None, "h1", 100, "image/png")
    b = Reference("/b.jpg", None, "h2", 50, "image/jpeg")
    url = Reference("https://example.com/c.png")
    plan = make_plan(_manifest(_job("x", (a, b)), _job("y", (a_copy, url)), _job("z", (url,))))
    assert (plan.reference_files, plan.reference_bytes, plan.reference_urls) == (2, 150, 1)


def test_plan_with_state_classifies_every_job() -> None:
    """With a state every job gets its category, and ids gone from the manifest are removed."""
    jobs = [_job(name) for name in ("n", "p", "c", "s", "r", "d", "ok", "f", "bl")]
    h = {job.id: job.request_hash for job in jobs}
    state = {
        "p": (h["p"], "pending"),
        "c": ("old-hash", "succeeded"),
        "s": (h["s"], "submitting"),
        "r": (h["r"], "running"),
        "d": (h["d"], "downloading"),
        "ok": (h["ok"], "succeeded"),
        "f": (h["f"], "failed"),
        "bl": (h["bl"], "blocked"),
        "gone": ("x", "succeeded"),
    }
    plan = make_plan(_manifest(*jobs), state=state, base_credits=100)
    changes = plan.changes
    assert changes is not None
    assert (changes.new, changes.changed, changes.in_flight) == (2, 1, 3)
    assert (changes.done, changes.failed, changes.blocked) == (1, 1, 1)
    assert (changes.removed, changes.removed_ids) == (1, ("gone",))
    # new 2 + changed 1 + blocked 1 + submitting 1 (may not have reached the API)
    assert (plan.jobs_to_submit, plan.credits, plan.credits_is_estimate) == (5, 500, False)
    assert [j.status for j in plan.first_jobs] == [
        "new", "new", "changed", "in flight", "in flight", "in flight", "done", "failed",
        "blocked",
    ]  # fmt: skip


def test_unknown_stored_status_is_refused() -> None:
    """A status that is not a JobStatus value is a programming error, raised as ValueError."""
    job = _job("a")
    with pytest.raises(ValueError):
        make_plan(_manifest(job), state={"a": (job.request_hash, "exploded")})


def test_plan_to_dict_is_json_ready() -> None:
    """The ``--json`` form serialises and carries params as an object."""
    plan = make_plan(load_manifest(REPO / "jobs" / "demo.yaml"), state={}, base_credits=90)
    data = json.loads(json.dumps(plan_to_dict(plan)))
    assert data["job_count"] == 7 and data["credits"] == 630
    assert data["first_jobs"][-1]["params"]["duration"] == "10"
    assert data["first_jobs"][-1]["references"] == ["hero.png"]
    assert data["changes"]["new"] == 7 and data["changes"]["removed_ids"] == []


def test_render_plan_shows_summary_and_table() -> None:
    """The text form has the totals and one table row per shown job."""
    manifest = load_manifest(REPO / "jobs" / "demo.yaml")
    text = render_plan(make_plan(manifest, first=3))
    assert "jobs        7 (7 to submit)" in text
    assert "credits     630 (estimate: 90 per job, the contract's base price)" in text
    assert "references  1 file, 12.5 KB" in text
    assert "first 3 of 7 jobs:" in text
    table = text.split("first 3 of 7 jobs:\n", 1)[1].splitlines()
    assert table[0].split() == ["ID", "MODE", "DUR", "RATIO", "SOUND", "SHOTS", "REFS", "PROMPT"]
    assert [row.split()[0] for row in table[1:]] == [
        "sneaker-16x9",
        "sneaker-9x16",
        "wristwatch-16x9",
    ]


def test_format_bytes() -> None:
    """Sizes read as bytes, KB or MB."""
    assert [format_bytes(n) for n in (5, 2048, 3 * 1024 * 1024)] == ["5 bytes", "2.0 KB", "3.0 MB"]


@pytest.mark.parametrize("status", list(JobStatus))
def test_every_stored_status_has_a_category(status: JobStatus) -> None:
    """An unchanged stored job of any status gets a category; only submitting ones among the
    in-flight jobs count toward the credits to reserve."""
    job = _job("a")
    plan = make_plan(_manifest(job), state={"a": (job.request_hash, status)}, base_credits=1)
    category = plan.first_jobs[0].status
    assert isinstance(category, Category)
    submits = category in (Category.NEW, Category.BLOCKED) or status is JobStatus.SUBMITTING
    assert plan.jobs_to_submit == int(submits)


def test_plan_shows_the_budget_against_the_estimate() -> None:
    """``limits.max_credits`` appears beside the estimate, with the shortfall when it is too
    small; no budget, no line."""
    from dataclasses import replace

    from batchgen.models import Limits

    jobs = [_job(f"j{i}") for i in range(3)]
    tight = replace(_manifest(*jobs), limits=Limits(max_credits=200))
    assert "budget      200 credits (70 short: the run stops there, exit 4)" in render_plan(
        make_plan(tight)
    )
    roomy = replace(_manifest(*jobs), limits=Limits(max_credits=270))
    assert "budget      270 credits (covers it)" in render_plan(make_plan(roomy))
    assert "budget" not in render_plan(make_plan(_manifest(*jobs)))
    assert plan_to_dict(make_plan(tight))["budget"] == 200
