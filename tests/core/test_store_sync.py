"""``StateStore.sync_jobs`` writes only what changed, and a run reads pending rows in pages."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen.models import JobSpec, JobStatus, job_key
from batchgen.runner import WorkQueue
from batchgen.store import StateStore


def spec(job_id: str, version: int = 0) -> JobSpec:
    return JobSpec(id=job_id, prompt=f"a red fox, take {version}", params=(("duration", "5"),))


def key_of(s: JobSpec) -> str:
    return job_key("b", s.id, s.request_hash)


def test_an_unchanged_manifest_syncs_without_writing_a_row(tmp_path: Path) -> None:
    """A resumed batch whose manifest did not change writes nothing (no row rewritten, no
    WAL growth): SQLite's own count of changed rows stays where it was."""
    specs = [spec(f"j{i}") for i in range(50)]
    with StateStore.open(tmp_path / "s.db", "b") as store:
        store.sync_jobs(specs)
        assert store.db.conn.total_changes >= 50
        before = store.db.conn.total_changes
        store.sync_jobs(specs)
        store.sync_jobs(iter(specs))  # a stream of specs, as a run passes them
        assert store.db.conn.total_changes == before
        assert [r.job_id for r in store.jobs()] == [s.id for s in specs]


def test_an_edit_writes_the_new_version_and_two_flags(tmp_path: Path) -> None:
    specs = [spec(f"j{i}") for i in range(20)]
    with StateStore.open(tmp_path / "s.db", "b") as store:
        store.sync_jobs(specs)
        before = store.db.conn.total_changes
        edited = [*specs[:5], spec("j5", version=1), *specs[6:]]
        store.sync_jobs(edited)
        assert store.db.conn.total_changes - before == 2  # the new row, the old one's flag
        assert {r.job_key for r in store.jobs()} == {key_of(s) for s in edited}
        store.sync_jobs(specs)  # the edit reverted: the first version is named again
        assert {r.job_key for r in store.jobs()} == {key_of(s) for s in specs}
        assert len(store.jobs(current_only=False)) == 21


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 2), max_size=8),
        min_size=1,
        max_size=5,
    )
)
def test_after_any_sequence_of_manifests_the_flags_name_the_last_one(manifests) -> None:
    """Whatever manifests were synced before: every version ever named is stored (never
    deleted), and exactly the last manifest's versions are flagged as named."""
    with tempfile.TemporaryDirectory() as folder, StateStore.open(Path(folder) / "s.db", "b") as s:
        ever: set[str] = set()
        for jobs in manifests:
            specs = [spec(job_id, version) for job_id, version in jobs.items()]
            s.sync_jobs(specs)
            ever |= {key_of(x) for x in specs}
            assert {r.job_key for r in s.jobs()} == {key_of(x) for x in specs}
            assert {r.job_key for r in s.jobs(current_only=False)} == ever
            assert all(r.status is JobStatus.PENDING for r in s.jobs(current_only=False))


def test_pending_rows_come_in_pages_in_insertion_order(tmp_path: Path) -> None:
    specs = [spec(f"j{i:03d}") for i in range(25)]
    with StateStore.open(tmp_path / "s.db", "b") as store:
        store.sync_jobs(specs)
        store.begin_submit(key_of(specs[3]), {"model": "kling-3-0"})  # no longer pending
        seen, after = [], 0
        while page := store.pending_page(after, 10):
            after = page[-1][0]
            seen += [row.job_id for _, row in page]
        assert seen == [s.id for s in specs if s.id != "j003"]
        assert store.pending_params() == [(None, '{"duration": "5"}', 24)]
        assert len(store.pending_params(by_id=True)) == 24


def _pages(ids: list[str], size: int, keep: str = "") -> object:
    """A page function over ``ids`` (rowid = position + 1), keeping ids containing ``keep``."""
    from batchgen.rows import JobRow

    def row(job_id: str) -> JobRow:
        return JobRow(
            job_key=job_id, job_id=job_id, request_hash="h", status=JobStatus.PENDING,
            attempt=1, idempotency_key=None, request_body=None, task_id=None,
            remote_status=None, reserved_credits=None, final_credits=None, result_urls=(),
            outputs=(), error_code=None, error_message=None, request_id=None, polls=0,
            in_manifest=True, submitted_at=None, finished_at=None, created_at="",
            updated_at="",
        )  # fmt: skip

    def page(after: int) -> tuple[int, list[JobRow]]:
        chunk = ids[after : after + size]
        return after + len(chunk), [row(i) for i in chunk if keep in i]

    return page


@given(st.integers(0, 40), st.integers(1, 7), st.sampled_from(["", "1", "x"]))
def test_the_work_queue_hands_out_first_rows_then_every_pending_row_once(n, size, keep) -> None:
    """In-flight rows first, then the pending rows in order, each once, whatever the page size
    and however many pages a filter (``--only``) empties."""
    ids = [f"p{i}" for i in range(n)]
    first = _pages(["r0", "r1"], 2)(0)[1]  # type: ignore[operator]
    queue = WorkQueue(first, n, _pages(ids, size, keep))  # type: ignore[arg-type]
    assert len(queue) == n + 2
    taken = []
    while queue:
        taken.append(queue.popleft().job_id)
    assert taken == ["r0", "r1", *[i for i in ids if keep in i]]
    assert len(queue) == 0
