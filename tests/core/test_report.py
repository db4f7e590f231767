"""The typed report: built by a pure function from stored rows, rendered at the edge."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batchgen.models import JobSpec, JobStatus, Manifest, job_key
from batchgen.outcome import ExitCode, RunOutcome, StopReason, jobs_exit_code, run_exit_code
from batchgen.report import (
    JobReport,
    RecordedError,
    Report,
    ReportStatus,
    build_report,
    render_json,
    render_table,
    render_totals,
    report_from_store,
    to_dict,
    totals,
)
from batchgen.store import JobRow, StateStore

JOB_KEYS = {"id", "status", "task_id", "reserved_credits", "final_credits", "result_urls"}
JOB_KEYS |= {"outputs", "error", "attempt", "polls"}
JOB_KEYS |= {"version", "prompt", "params", "references", "output_sizes", "output_sha256"}
JOB_KEYS |= {"submitted_at", "task_created_at", "task_finished_at", "finished_at"}
JOB_KEYS |= {"earlier_attempts"}
TOTALS_KEYS = {"jobs", "by_status", "reserved_credits", "final_credits", "outputs", "tasks"}
TOTALS_KEYS |= {"in_flight_credits", "refunded_credits", "current_final_credits"}
TOTALS_KEYS |= {"superseded_final_credits", "earlier_attempts_final_credits"}
TOTALS_KEYS |= {"superseded_versions", "earlier_attempts"}


BASE_ROW = JobRow(
    job_key="",
    job_id="",
    request_hash="h",
    status=JobStatus.SUCCEEDED,
    attempt=1,
    idempotency_key=None,
    request_body=None,
    task_id=None,
    remote_status=None,
    reserved_credits=None,
    final_credits=None,
    result_urls=(),
    outputs=(),
    error_code=None,
    error_message=None,
    request_id=None,
    polls=0,
    in_manifest=True,
    submitted_at=None,
    finished_at=None,
    created_at="2025-01-01T00:00:00Z",
    updated_at="2025-01-01T00:00:00Z",
)


def row(job_id: str, key: str, status: JobStatus = JobStatus.SUCCEEDED, **fields: Any) -> JobRow:
    return replace(BASE_ROW, job_id=job_id, job_key=key, status=status, **fields)


credits = st.none() | st.integers(min_value=0, max_value=500)
names = st.text("abcdefgh-", min_size=1, max_size=6)


@st.composite
def stored_row(draw: st.DrawFn, job_id: str, key: str) -> JobRow:
    return row(
        job_id,
        key,
        draw(st.sampled_from(JobStatus)),
        task_id=draw(st.none() | st.just(f"task_{job_id}")),
        reserved_credits=draw(credits),
        final_credits=draw(credits),
        result_urls=tuple(draw(st.lists(st.just("https://r/x.mp4"), max_size=2))),
        outputs=tuple(draw(st.lists(st.just(f"/out/{job_id}.mp4"), max_size=2))),
        error_code=draw(st.none() | st.just("insufficient_credits")),
        error_message=draw(st.none() | st.just("no credits")),
        attempt=draw(st.integers(min_value=1, max_value=4)),
        polls=draw(st.integers(min_value=0, max_value=30)),
    )


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[JobRow]]:
    """Current jobs ``(id, key)`` and stored rows: some current versions, some older versions
    of current jobs, some jobs the manifest no longer names; stored in a random order."""
    ids = draw(st.lists(names, unique=True, max_size=12))
    current = [(job_id, f"key-{job_id}") for job_id in ids]
    rows = []
    for job_id, key in current:
        if draw(st.booleans()):
            rows.append(draw(stored_row(job_id, key)))
        if draw(st.booleans()):
            rows.append(draw(stored_row(job_id, f"old-{job_id}")))
    for gone in draw(st.lists(names.map(lambda n: "gone-" + n), unique=True, max_size=5)):
        rows.append(draw(stored_row(gone, f"key-{gone}")))
    return current, draw(st.permutations(rows))


def report_of(batch: tuple[list[tuple[str, str]], list[JobRow]]) -> Report:
    current, rows = batch
    return build_report("b", "/state/b.db", current, rows)


@given(batches())
def test_totals_are_the_sums_over_the_jobs(batch) -> None:
    """Totals count and sum exactly the report's jobs; by_status is sorted and sums to jobs."""
    report = report_of(batch)
    jobs, t = report.jobs, report.totals
    assert t == totals(jobs, report.superseded)
    assert t.jobs == len(jobs) == sum(n for _, n in t.by_status)
    assert dict(t.by_status) == Counter(j.status for j in jobs)
    assert [s for s, _ in t.by_status] == sorted(s.value for s, _ in t.by_status)
    assert all(n > 0 for _, n in t.by_status)
    with_task = [j for j in (*jobs, *report.superseded) if j.task_id is not None]
    assert t.tasks == len(with_task)
    assert t.reserved_credits == sum(j.reserved_credits or 0 for j in with_task)
    assert t.final_credits == sum(j.final_credits or 0 for j in with_task)
    assert t.final_credits == (
        t.current_final_credits + t.superseded_final_credits + t.earlier_attempts_final_credits
    )
    assert t.in_flight_credits == sum(
        j.reserved_credits or 0 for j in with_task if j.status is ReportStatus.RUNNING
    )
    assert t.outputs == sum(len(j.outputs) for j in jobs)


@given(batches())
def test_jobs_follow_the_manifest_and_unstored_ones_are_new(batch) -> None:
    """One entry per current job in manifest order; a job without a row for its key is new."""
    current, rows = batch
    report = report_of(batch)
    stored_keys = {r.job_key for r in rows}
    assert [j.id for j in report.jobs] == [job_id for job_id, _ in current]
    for (_, key), job in zip(current, report.jobs, strict=True):
        if key not in stored_keys:
            assert job == JobReport(job.id, ReportStatus.NEW)
        else:
            assert job.status is not ReportStatus.NEW


@given(batches())
def test_removed_are_the_stored_ids_the_manifest_does_not_name(batch) -> None:
    """Removed lists, sorted and once each, every stored job id not in the manifest."""
    current, rows = batch
    named = {job_id for job_id, _ in current}
    assert report_of(batch).removed == tuple(sorted({r.job_id for r in rows} - named))


@given(batches())
def test_to_dict_has_the_documented_shape(batch) -> None:
    """The JSON form has exactly the documented keys and survives a JSON round trip."""
    report = report_of(batch)
    data = json.loads(render_json(report))
    assert data == to_dict(report)
    assert set(data) == {
        "batch",
        "state_file",
        "jobs",
        "totals",
        "removed",
        "superseded",
        "service",
    }
    assert [e["version"] for e in data["superseded"]] == [j.version for j in report.superseded]
    assert set(data["totals"]) == TOTALS_KEYS
    assert data["totals"]["by_status"] == {s.value: n for s, n in report.totals.by_status}
    assert data["removed"] == list(report.removed)
    for entry, job in zip(data["jobs"], report.jobs, strict=True):
        assert set(entry) == JOB_KEYS
        assert entry["status"] == job.status.value
        assert entry["outputs"] == list(job.outputs)
        if job.error is None:
            assert entry["error"] is None
        else:
            assert set(entry["error"]) == {"code", "message", "request_id"}


@given(batches())
def test_exit_code_follows_the_statuses(batch) -> None:
    """4 while any job is unfinished, else 3 if any failed, else 0; a resumable stop is 4."""
    report = report_of(batch)
    statuses = {j.status for j in report.jobs}
    if statuses - {ReportStatus.SUCCEEDED, ReportStatus.FAILED}:
        expected = ExitCode.RESUMABLE
    elif ReportStatus.FAILED in statuses:
        expected = ExitCode.SOME_FAILED
    else:
        expected = ExitCode.OK
    by_status = dict(report.totals.by_status)
    assert jobs_exit_code(by_status) == expected
    stopped = RunOutcome(stop_reasons=[StopReason.STUCK])
    assert run_exit_code(stopped, by_status) == ExitCode.RESUMABLE
    interrupted = RunOutcome(stop_reasons=[StopReason.SIGINT])
    assert run_exit_code(interrupted, by_status) == ExitCode.INTERRUPTED


def test_report_status_is_job_status_plus_new() -> None:
    """Every stored status has a report status of the same name, and only ``new`` is added."""
    assert {s.value for s in ReportStatus} == {s.value for s in JobStatus} | {"new"}
    assert all(ReportStatus.of(s).value == s.value for s in JobStatus)
    terminal = {s for s in ReportStatus if s.is_terminal}
    assert terminal == {ReportStatus.SUCCEEDED, ReportStatus.FAILED}


# Keys added after the first version of the interface, in order, with their empty values.
NEW_JOB_KEYS: dict[str, Any] = {
    "version": None,
    "prompt": None,
    "params": {},
    "references": [],
    "output_sizes": [],
    "output_sha256": [],
    "submitted_at": None,
    "task_created_at": None,
    "task_finished_at": None,
    "finished_at": None,
    "earlier_attempts": [],
}


def test_json_is_byte_for_byte_the_documented_interface() -> None:
    """``report --format json`` keeps its key order, indentation and null/list spelling."""
    rows = [
        row(
            "a",
            "ka",
            task_id="task_1",
            reserved_credits=90,
            final_credits=90,
            result_urls=("https://r/a.mp4",),
            outputs=("/out/a.mp4",),
            polls=3,
        ),
        row(
            "c",
            "kc",
            JobStatus.BLOCKED,
            error_code="insufficient_credits",
            error_message="top up",
            request_id="req_9",
        ),
    ]
    report = build_report("demo", "state/demo.db", [("a", "ka"), ("b", "kb"), ("c", "kc")], rows)
    expected = {
        "batch": "demo",
        "state_file": "state/demo.db",
        "jobs": [
            {
                "id": "a",
                "status": "succeeded",
                "task_id": "task_1",
                "reserved_credits": 90,
                "final_credits": 90,
                "result_urls": ["https://r/a.mp4"],
                "outputs": ["/out/a.mp4"],
                "error": None,
                "attempt": 1,
                "polls": 3,
                **NEW_JOB_KEYS,
                "version": "h",
            },
            {
                "id": "b",
                "status": "new",
                "task_id": None,
                "reserved_credits": None,
                "final_credits": None,
                "result_urls": [],
                "outputs": [],
                "error": None,
                "attempt": 0,
                "polls": 0,
                **NEW_JOB_KEYS,
            },
            {
                "id": "c",
                "status": "blocked",
                "task_id": None,
                "reserved_credits": None,
                "final_credits": None,
                "result_urls": [],
                "outputs": [],
                "error": {
                    "code": "insufficient_credits",
                    "message": "top up",
                    "request_id": "req_9",
                },
                "attempt": 1,
                "polls": 0,
                **NEW_JOB_KEYS,
                "version": "h",
            },
        ],
        "totals": {
            "jobs": 3,
            "by_status": {"blocked": 1, "new": 1, "succeeded": 1},
            "reserved_credits": 90,
            "final_credits": 90,
            "outputs": 1,
            "tasks": 1,
            "in_flight_credits": 0,
            "refunded_credits": 0,
            "current_final_credits": 90,
            "superseded_final_credits": 0,
            "earlier_attempts_final_credits": 0,
            "superseded_versions": 0,
            "earlier_attempts": 0,
        },
        "removed": [],
        "superseded": [],
        "service": None,
    }
    assert render_json(report) == json.dumps(expected, indent=2)


def test_table_shows_outputs_errors_and_a_limit() -> None:
    """The table names each job's output or error, cuts at ``limit`` and ends with the totals."""
    jobs = (
        JobReport("a", ReportStatus.SUCCEEDED, "task_1", 90, 90, outputs=("/out/a.mp4",)),
        JobReport("b", ReportStatus.FAILED, error=RecordedError("bad_prompt", "too long", None)),
        JobReport("c", ReportStatus.RUNNING, "task_3", 90),
        JobReport("d", ReportStatus.NEW),
    )
    report = Report("b", "/s.db", jobs, totals(jobs), removed=())
    lines = render_table(report).splitlines()
    assert lines[0].split() == ["JOB", "STATUS", "TASK", "CREDITS", "OUTPUT", "/", "ERROR"]
    assert lines[1].split() == ["a", "succeeded", "task_1", "90", "/out/a.mp4"]
    assert lines[2].split() == ["b", "failed", "-", "-", "bad_prompt:", "too", "long"]
    assert lines[3].split() == ["c", "running", "task_3", "90", "reserved"]
    assert lines[4].split() == ["d", "new", "-", "-"]
    assert lines[-1] == render_totals(report)
    short = render_table(report, limit=2).splitlines()
    assert short[3] == "... and 2 more (batchgen report MANIFEST)"


def test_totals_line_names_removed_jobs_up_to_ten() -> None:
    """The summary counts statuses and credits, and names at most ten removed job ids."""
    jobs = (JobReport("a", ReportStatus.SUCCEEDED, "task_1", 90, 90),)
    removed = tuple(f"gone-{i:02}" for i in range(12))
    text = render_totals(Report("b", "/s.db", jobs, totals(jobs), removed))
    first, second = text.splitlines()
    assert first == "batch b: 1 jobs (1 succeeded); credits charged 90 over 1 tasks; 0 files"
    assert second.startswith("12 job(s) in the state are no longer in the manifest: gone-00, ")
    assert second.endswith("gone-09 ...")


def test_report_from_store_reads_the_current_versions(tmp_path: Path) -> None:
    """Against a real state: an edited job reports its new (unsent) version, a dropped one is
    removed, and an unsynced one is new."""
    params = (("duration", "5"),)
    a, b, gone = JobSpec("a", "one", params), JobSpec("b", "two", params), JobSpec("z", "", params)
    with StateStore.open(tmp_path / "s.db", "b") as store:
        store.sync_jobs([a, b, gone])
        store.begin_submit(job_key("b", "a", a.request_hash), {"prompt": "one"})
        edited = JobSpec("a", "one, edited", params)
        manifest = Manifest(tmp_path / "m.yaml", "b", (edited, b), tmp_path / "out")
        report = report_from_store(manifest, store)
    assert report.state_file == str(tmp_path / "s.db")
    assert [(j.id, j.status) for j in report.jobs] == [("a", "new"), ("b", "pending")]
    assert report.removed == ("z",)
