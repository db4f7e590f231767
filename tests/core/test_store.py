"""The state store: an explicit, enforced state machine that never loses or repeats a key."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.errors import StateError
from batchgen.models import (
    TERMINAL,
    TRANSITIONS,
    JobSpec,
    JobStatus,
    RemoteTask,
    can_transition,
    job_key,
    parse_timestamp,
)
from batchgen.store import SCHEMA_VERSION, StateStore


def spec(job_id: str, prompt: str = "a red fox") -> JobSpec:
    return JobSpec(id=job_id, prompt=prompt, params=(("duration", "5"), ("mode", "std")))


@pytest.fixture
def store(tmp_path: Path):
    with StateStore.open(tmp_path / "s.db", "b") as s:
        yield s


def key_of(s: JobSpec) -> str:
    return job_key("b", s.id, s.request_hash)


def test_sync_inserts_pending_and_never_deletes(store: StateStore) -> None:
    """Syncing a shorter manifest keeps the removed job's row but flags it as not current."""
    store.sync_jobs([spec("a"), spec("b")])
    store.sync_jobs([spec("a")])
    assert [r.job_id for r in store.jobs()] == ["a"]
    every = store.jobs(current_only=False)
    assert [(r.job_id, r.in_manifest, r.status) for r in every] == [
        ("a", True, JobStatus.PENDING),
        ("b", False, JobStatus.PENDING),
    ]


def test_edited_job_is_a_new_version_with_a_new_key(store: StateStore) -> None:
    """Editing a job's prompt makes a new row; the old version and its key stay untouched."""
    old, new = spec("a", "first"), spec("a", "second")
    store.sync_jobs([old])
    old_ikey = store.begin_submit(key_of(old), {"prompt": "first"}).idempotency_key
    store.sync_jobs([new])
    assert key_of(old) != key_of(new)
    new_ikey = store.begin_submit(key_of(new), {"prompt": "second"}).idempotency_key
    assert new_ikey != old_ikey
    assert store.job(key_of(old)).idempotency_key == old_ikey


def test_begin_submit_is_durable_and_stable(tmp_path: Path) -> None:
    """The key and body are committed before the request; reopening returns the same key."""
    path = tmp_path / "s.db"
    with StateStore.open(path, "b") as s:
        s.sync_jobs([spec("a")])
        ikey = s.begin_submit(key_of(spec("a")), {"prompt": "x"}).idempotency_key
    raw = sqlite3.connect(path).execute("SELECT idempotency_key, request_body FROM jobs").fetchone()
    assert raw == (ikey, '{"prompt": "x"}')
    with StateStore.open(path, "b") as s:
        assert s.begin_submit(key_of(spec("a")), {"prompt": "changed"}).idempotency_key == ikey
        assert s.job(key_of(spec("a"))).request_body == {"prompt": "x"}


def test_illegal_transition_is_refused(store: StateStore) -> None:
    """A pending job cannot jump to succeeded; the store raises and changes nothing."""
    store.sync_jobs([spec("a")])
    with pytest.raises(StateError, match="pending -> succeeded"):
        store.record_outputs(key_of(spec("a")), ["x.mp4"])
    assert store.job(key_of(spec("a"))).status is JobStatus.PENDING


def test_requeue_bumps_the_attempt_and_the_key(store: StateStore) -> None:
    """A blocked job goes back to pending with the next attempt number and a fresh key."""
    k = key_of(spec("a"))
    store.sync_jobs([spec("a")])
    first = store.begin_submit(k, {}).idempotency_key
    store.record_blocked(k, message="no credits")
    store.requeue(k)
    row = store.job(k)
    assert (row.status, row.attempt, row.idempotency_key) == (JobStatus.PENDING, 2, None)
    assert store.begin_submit(k, {}).idempotency_key == first.rsplit(".", 1)[0] + ".2"


def test_full_lifecycle_records_credits_and_outputs(store: StateStore) -> None:
    """submit -> running -> downloading -> succeeded keeps task id, credits and outputs."""
    k = key_of(spec("a"))
    store.sync_jobs([spec("a")])
    store.begin_submit(k, {})
    store.record_task(k, RemoteTask(id="task_1", status="queued", reserved_credits=90))
    store.record_poll(k, RemoteTask(id="task_1", status="processing", reserved_credits=90))
    done = RemoteTask(
        id="task_1",
        status="succeeded",
        reserved_credits=90,
        final_credits=90,
        result_urls=("http://x/1.mp4",),
    )
    store.record_succeeded_remote(k, done)
    store.record_succeeded_remote(k, done, polled=False)  # a URL refresh is not a status poll
    store.record_outputs(k, ["/out/a.mp4"])
    row = store.job(k)
    assert (row.status, row.task_id, row.final_credits, row.polls) == (
        JobStatus.SUCCEEDED,
        "task_1",
        90,
        2,
    )
    assert row.outputs == ("/out/a.mp4",)
    assert store.counts() == {
        "by_status": {"succeeded": 1},
        "reserved_credits": 90,
        "final_credits": 90,
    }


def test_second_runner_on_the_same_state_is_refused(tmp_path: Path) -> None:
    """Two runs on one state file would race, so the second open fails with a clear message."""
    with StateStore.open(tmp_path / "s.db", "b"), pytest.raises(StateError, match="in use"):
        StateStore.open(tmp_path / "s.db", "b")


def test_state_of_another_batch_is_refused(tmp_path: Path) -> None:
    """A state file remembers its batch and refuses to serve another one."""
    StateStore.open(tmp_path / "s.db", "one").close()
    with pytest.raises(StateError, match="belongs to batch 'one'"):
        StateStore.open(tmp_path / "s.db", "two")


def test_garbage_file_is_a_state_error(tmp_path: Path) -> None:
    """A file that is not SQLite gives a StateError that names the file, not a traceback."""
    bad = tmp_path / "s.db"
    bad.write_text("not a database at all" * 100)
    with pytest.raises(StateError, match=r"s\.db"):
        StateStore.open(bad, "b")


@given(st.sampled_from(list(JobStatus)), st.sampled_from(list(JobStatus)))
def test_transition_table_shape(old: JobStatus, new: JobStatus) -> None:
    """Succeeded only goes back to downloading (a file was lost; nothing is resubmitted); failed
    and blocked only go back to pending; nothing skips submitting."""
    allowed = can_transition(old, new)
    if old is JobStatus.SUCCEEDED and allowed:
        assert new is JobStatus.DOWNLOADING
    if old in (JobStatus.FAILED, JobStatus.BLOCKED) and allowed:
        assert new is JobStatus.PENDING
    if old is JobStatus.PENDING and new in (JobStatus.RUNNING, JobStatus.DOWNLOADING):
        assert not allowed


def test_every_state_is_reachable_and_every_job_can_finish() -> None:
    """From pending every status is reachable, and from every status a terminal one is."""

    def reachable(start: JobStatus) -> set[JobStatus]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(JobStatus.PENDING) == set(JobStatus)
    for status in JobStatus:
        assert reachable(status) & TERMINAL or status in TERMINAL, status


@given(st.datetimes(timezones=st.just(UTC)))
def test_parse_timestamp_round_trips(when: datetime) -> None:
    """Any UTC time written the way the API writes it parses back to the same instant."""
    stamp = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert parse_timestamp(stamp) == pytest.approx(when.timestamp(), abs=1e-6)
    assert parse_timestamp("not a time") is None and parse_timestamp(None) is None


def test_new_attempt_is_one_transaction_from_submitting(store: StateStore) -> None:
    """A refused stored body moves the job back to pending with the next attempt, forgets its
    uploads and records why, all at once; the next submit uses a new key."""
    from batchgen.models import UploadedFile

    k = key_of(spec("a"))
    store.sync_jobs([spec("a")])
    first = store.begin_submit(k, {"params": {"referenceMediaItems": [{}]}}).idempotency_key
    store.save_upload("sha256:x", UploadedFile("f1", "https://u", "image/png", 3, "x.png"))
    row = store.new_attempt(k, why="stored body refused", forget_uploads=["sha256:x"])
    assert (row.status, row.attempt, row.idempotency_key, row.request_body) == (
        JobStatus.PENDING,
        2,
        None,
        None,
    )
    assert store.upload_for("sha256:x") is None
    assert store.recent_events(1)[0].kind == "new_attempt"
    assert store.begin_submit(k, {}).idempotency_key != first


def test_finished_runs_come_from_the_services_timestamps(store: StateStore) -> None:
    """A succeeded task's run time and start are kept, so a resumed run can learn from them."""
    k = key_of(spec("a"))
    store.sync_jobs([spec("a")])
    store.begin_submit(k, {})
    t0 = "2026-12-01T10:00:00Z"
    store.record_task(k, RemoteTask("task_1", "queued", created_at=t0, updated_at=t0))
    store.record_poll(
        k, RemoteTask("task_1", "processing", created_at=t0, updated_at="2026-12-01T10:00:12Z")
    )
    store.record_succeeded_remote(
        k,
        RemoteTask(
            "task_1",
            "succeeded",
            result_urls=("https://x/v.mp4",),
            created_at=t0,
            updated_at="2026-12-01T10:01:40Z",
        ),
    )
    assert store.finished_runs() == [({"duration": "5", "mode": "std"}, 100.0, 12.0)]


def test_the_lock_follows_the_real_file_not_the_path_given(tmp_path: Path) -> None:
    """A state opened through a symlink is locked against a run through its real path."""
    real = tmp_path / "real" / "s.db"
    real.parent.mkdir()
    link = tmp_path / "link.db"
    with StateStore.open(real, "b"):
        link.symlink_to(real)
        with pytest.raises(StateError, match="in use by another batchgen run"):
            StateStore.open(link, "b")


def test_reading_another_batchs_state_is_refused(tmp_path: Path) -> None:
    """report, status and plan refuse the state of another batch, as run does."""
    path = tmp_path / "s.db"
    with StateStore.open(path, "first"):
        pass
    with pytest.raises(StateError, match="belongs to batch 'first', not 'second'"):
        StateStore.open_readonly(path, "second")
    with StateStore.open_readonly(path, "first") as store:
        assert store.batch == "first"


def test_a_full_disk_under_the_state_is_a_state_error_and_changes_nothing(tmp_path: Path) -> None:
    """SQLite's "database or disk is full" (here: a page limit) rolls the write back and says
    what happened and what to do; the row is as before; not "a bug in batchgen"."""
    path = tmp_path / "s.db"
    specs = [JobSpec(f"j{i}", "p" * 1500, (("duration", "5"),)) for i in range(3)]
    with StateStore.open(path, "b") as store:
        store.sync_jobs(specs[:1])
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StateError, match=r"cannot write the state database .*full") as caught:
            store.sync_jobs(specs * 200)
        assert "Free space" in (caught.value.hint or "")
        assert [r.job_id for r in store.jobs()] == ["j0"]


def test_a_state_in_a_folder_named_with_hash_and_question_mark_reads(tmp_path: Path) -> None:
    """open_readonly goes through an SQLite URI: '#' and '?' in a path are escaped, so the
    right file is read and no stray file is made."""
    folder = tmp_path / "my batch #1?"
    folder.mkdir()
    with StateStore.open(folder / "s.db", "b") as store:
        store.sync_jobs([JobSpec("a", "p", (("duration", "5"),))])
    with StateStore.open_readonly(folder / "s.db", "b") as store:
        assert [r.job_id for r in store.jobs()] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my batch #1?"]


_STATUS = st.sampled_from(list(JobStatus))
_CREDITS = st.none() | st.integers(min_value=0, max_value=500)


@given(
    st.lists(st.tuples(_STATUS, st.booleans(), _CREDITS, _CREDITS), max_size=12),
    st.integers(min_value=1, max_value=200),
)
def test_the_budget_rule_per_row_sums_to_what_the_store_sums(rows, price) -> None:
    """``JobRow.held_credits`` (what the runner keeps current) and the store's SQL sum
    (what a run starts from) are one rule: over any rows they agree."""
    import tempfile

    with (
        tempfile.TemporaryDirectory() as folder,
        StateStore.open(Path(folder) / "s.db", "b") as store,
    ):
        specs = [JobSpec(f"j{i}", "p", (("duration", "5"),)) for i in range(len(rows))]
        store.sync_jobs(specs)
        for spec, (status, has_task, reserved, final) in zip(specs, rows, strict=True):
            store.db.execute(
                "UPDATE jobs SET status = ?, task_id = ?, reserved_credits = ?, "
                "final_credits = ? WHERE job_id = ?",
                [status.value, "task_x" if has_task else None, reserved, final, spec.id],
            )
        expected = sum(r.held_credits(price) for r in store.jobs())
        assert store.committed_credits(price) == expected


def test_a_new_state_is_made_whole_beside_its_path_then_renamed_into_place(tmp_path: Path) -> None:
    """A run killed while creating its state must not leave an empty file at the state's path
    (the next run refuses one as a state that lost its contents): the new state is made
    beside it and renamed in whole, and a draft a killed run left behind is replaced."""
    path = tmp_path / "state" / "b.db"
    path.parent.mkdir()
    draft = path.with_name(".b.db.new")
    draft.write_bytes(b"")  # what a run killed between connect and schema leaves behind
    StateStore._create(path, "b")  # the moment before open() connects to it for the run
    assert not draft.exists()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT value FROM meta WHERE key='batch'").fetchone() == ("b",)
    finally:
        conn.close()
    assert not Path(f"{path}-wal").exists()  # whole in one file, no journal to replay
    with StateStore.open(path, "b") as store:
        assert store.jobs() == [] and store.meta()["batch"] == "b"
