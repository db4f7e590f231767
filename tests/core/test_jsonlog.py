"""The JSON log subscriber: generic event serialization, appending, size rotation, redaction;
and the --on-finish command's environment, timeout and failure handling."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from batchgen.events import Event, JobChanged, NeedsDecision, RunFinished
from batchgen.jsonlog import JsonLog, event_record, rotate, snake_case
from batchgen.models import JobStatus
from batchgen.onfinish import command_env, run_on_finish
from batchgen.outcome import StopReason
from batchgen.redact import install_redaction

SECRET = "rvya_sk_jsonlog_test_0123456789abcdef"


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_event_becomes_one_object_with_at_event_and_its_fields() -> None:
    """Enums become their values, tuples lists, ``at`` ISO 8601 UTC with milliseconds, and
    ``event`` the class name in snake_case."""
    event = JobChanged(
        job_id="a",
        status=JobStatus.RUNNING,
        previous=JobStatus.SUBMITTING,
        task_id="t1",
        credits=(90, None),
        at=0.5,
    )
    record = event_record(event)
    assert list(record)[:2] == ["at", "event"]
    assert record["at"] == "1970-01-01T00:00:00.500Z"
    assert record["event"] == "job_changed"
    assert record["status"] == "running" and record["previous"] == "submitting"
    assert record["credits"] == [90, None] and record["task_id"] == "t1"
    finished = event_record(
        RunFinished(stop_reasons=(StopReason.CREDITS,), submitted=1, replayed=0, exit_code=4)
    )
    assert finished["stop_reasons"] == ["credits"] and finished["exit_code"] == 4


def test_a_new_event_type_needs_no_code_and_infinity_is_null() -> None:
    """Any dataclass event serializes; a non-finite number (an unknown age) is null, so every
    line stays strict JSON."""

    @dataclass(frozen=True, slots=True)
    class SomethingNewHappened(Event):
        where: tuple[str, ...]

    assert event_record(SomethingNewHappened(where=("x",)))["where"] == ["x"]
    assert snake_case("SomethingNewHappened") == "something_new_happened"
    decision = NeedsDecision(
        job_id="a", idempotency_key="k", submitted_at=None, age_s=float("inf"), why="w"
    )
    assert event_record(decision)["age_s"] is None


def test_lines_are_appended_flushed_and_redacted(tmp_path: Path) -> None:
    """A second log on the same file appends; each line is on disk before close; a key a
    server echoed never reaches the file."""
    install_redaction(SECRET)
    path = tmp_path / "run.jsonl"
    path.write_text('{"at": "earlier", "event": "x"}\n')
    with JsonLog(path) as jlog:
        jlog(JobChanged(job_id="a", status=JobStatus.FAILED, message=f"bad key {SECRET}"))
        assert len(path.read_text().splitlines()) == 2  # flushed per line
    records = lines_of(path)
    assert records[0]["event"] == "x"
    assert SECRET not in path.read_text() and "<redacted>" in str(records[1]["message"])


def test_rotation_keeps_three_files_of_whole_lines(tmp_path: Path) -> None:
    """Past max_bytes the file becomes FILE.1 (older ones shift up to FILE.3) and a new file
    starts; no file passes the limit and every line of every file parses."""
    path = tmp_path / "run.jsonl"
    with JsonLog(path, max_bytes=600) as jlog:
        for n in range(60):
            jlog(JobChanged(job_id=f"job-{n}", status=JobStatus.PENDING))
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["run.jsonl", "run.jsonl.1", "run.jsonl.2", "run.jsonl.3"]
    for f in files:
        assert f.stat().st_size <= 600
        assert all(r["event"] == "job_changed" for r in lines_of(f))
    newest = lines_of(path)[-1]["job_id"]
    oldest_kept = lines_of(tmp_path / "run.jsonl.3")[0]["job_id"]
    assert newest == "job-59" and oldest_kept != "job-0"


def test_rotate_shifts_files_up(tmp_path: Path) -> None:
    """rotate(): FILE -> .1, .1 -> .2, .2 -> .3, and the old .3 is dropped."""
    path = tmp_path / "log"
    for name, text in [("log", "0"), ("log.1", "1"), ("log.2", "2"), ("log.3", "3")]:
        (tmp_path / name).write_text(text)
    rotate(path, keep=3)
    assert not path.exists()
    assert [(tmp_path / f"log.{n}").read_text() for n in (1, 2, 3)] == ["0", "1", "2"]


def test_on_finish_environment_has_no_key() -> None:
    """The command's environment drops RIVYA_API_KEY and any variable holding the key."""
    install_redaction(SECRET)
    env = command_env({"RIVYA_API_KEY": SECRET, "OTHER": f"x{SECRET}", "PATH": "/bin"})
    assert env == {"PATH": "/bin"}


def test_on_finish_reads_the_summary_and_its_failure_is_only_reported(tmp_path: Path) -> None:
    """The command gets the summary as JSON on stdin; a failing command's status is returned,
    one that cannot finish in time is stopped (None), neither raises."""
    out = tmp_path / "out.json"
    assert run_on_finish(f"cat > {out}", {"exit_code": 4}) == 0
    assert json.loads(out.read_text()) == {"exit_code": 4}
    assert run_on_finish("exit 7", {"exit_code": 0}) == 7
    slow = f"{sys.executable} -c 'import time; time.sleep(30)'"
    assert run_on_finish(slow, {}, timeout_s=0.3) is None


def test_at_is_iso_utc_with_milliseconds() -> None:
    """The ``at`` of a fresh event has the documented shape."""
    at = event_record(RunFinished(stop_reasons=(), submitted=0, replayed=0, exit_code=0))["at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(at))
