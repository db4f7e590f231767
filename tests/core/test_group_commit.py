"""Group commit (``StateStore.grouped``): many workers' changes share one fsynced commit, and
``durable()`` returns only once a change is on disk, which a second connection (another
process's view) proves."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from batchgen.errors import StateError
from batchgen.models import JobSpec, JobStatus, RemoteStatus, RemoteTask, job_key
from batchgen.store import StateStore

pytestmark = pytest.mark.anyio


def specs(n: int) -> list[JobSpec]:
    return [JobSpec(id=f"j{i}", prompt="a red fox", params=(("duration", "5"),)) for i in range(n)]


def key(s: JobSpec) -> str:
    return job_key("b", s.id, s.request_hash)


def on_disk(path: Path) -> dict[str, str]:
    """job id -> status as another connection sees it: what is committed."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return dict(conn.execute("SELECT job_id, status FROM jobs").fetchall())


def task(task_id: str) -> RemoteTask:
    return RemoteTask(id=task_id, status=RemoteStatus.QUEUED, reserved_credits=90)


def count_commits(store: StateStore) -> list[str]:
    seen: list[str] = []
    store.db.conn.set_trace_callback(
        lambda sql: seen.append(sql) if sql.split(None, 1)[0].upper() == "COMMIT" else None
    )
    return seen


async def test_workers_asking_at_once_share_one_commit(tmp_path: Path) -> None:
    """Twenty workers write their keys in the same turn of the loop, each awaits durable():
    one COMMIT makes all twenty durable, and none returns before it."""
    path = tmp_path / "s.db"
    jobs = specs(20)
    with StateStore.open(path, "b") as store:
        store.sync_jobs(jobs)
        commits = count_commits(store)
        seen_after: list[str] = []
        with store.grouped():

            async def worker(s: JobSpec) -> None:
                store.begin_submit(key(s), {"prompt": s.prompt})
                await store.durable()
                seen_after.append(on_disk(path)[s.id])

            async with anyio.create_task_group() as tg:
                for s in jobs:
                    tg.start_soon(worker, s)
        assert len(commits) == 1
        assert seen_after == ["submitting"] * 20


async def test_a_change_nobody_awaits_is_committed_soon_and_on_the_way_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    a, b = specs(2)
    with StateStore.open(path, "b") as store:
        store.sync_jobs([a, b])
        with store.grouped(delay_s=0.05):
            store.begin_submit(key(a), {})
            assert on_disk(path)[a.id] == "pending"  # not committed yet: one open transaction
            await anyio.sleep(0.3)
            assert on_disk(path)[a.id] == "submitting"  # the timer committed it
            store.begin_submit(key(b), {})
        assert on_disk(path)[b.id] == "submitting"  # leaving the group commits the rest


async def test_a_refused_unit_is_undone_alone(tmp_path: Path) -> None:
    """An illegal transition inside the group rolls back its own unit, not its neighbours'."""
    path = tmp_path / "s.db"
    a, b = specs(2)
    with StateStore.open(path, "b") as store:
        store.sync_jobs([a, b])
        with store.grouped():
            store.begin_submit(key(a), {})
            with pytest.raises(StateError, match="illegal state change"):
                store.record_outputs(key(b), ["x.mp4"])  # pending -> succeeded: refused
            store.record_task(key(a), task("task_1"))
            await store.durable()
        assert on_disk(path) == {a.id: "running", b.id: "pending"}
        assert store.job(key(a)).task_id == "task_1"


async def test_a_commit_the_disk_refuses_breaks_the_store(tmp_path: Path) -> None:
    """A group commit that fails rolls the group back; the waiter, every later write and the
    end of the group say so, and the disk holds the state as of the last commit."""
    path = tmp_path / "s.db"
    jobs = [JobSpec(f"j{i}", "p" * 1500, (("duration", "5"),)) for i in range(40)]
    with StateStore.open(path, "b") as store:
        store.sync_jobs(jobs)
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        group_ends = pytest.raises(StateError, match="cannot write the state database")
        with group_ends, store.grouped():
            store.db.execute(f"PRAGMA max_page_count = {pages}")
            with pytest.raises(StateError, match="cannot write"):
                for s in jobs:  # big bodies: the disk (page cap) fills
                    store.begin_submit(key(s), {"prompt": "q" * 20_000})
                await store.durable()
            with pytest.raises(StateError, match="cannot write"):
                store.log_event(None, "note")
        assert set(on_disk(path).values()) == {JobStatus.PENDING.value}


async def test_outside_a_group_every_write_is_its_own_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    (a,) = specs(1)
    with StateStore.open(path, "b") as store:
        store.sync_jobs([a])
        commits = count_commits(store)
        store.begin_submit(key(a), {})
        assert on_disk(path)[a.id] == "submitting"
        await store.durable()  # nothing to wait for
        assert len(commits) == 1


async def test_a_cancelled_waiter_still_sees_its_commit_land(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    (a,) = specs(1)
    with StateStore.open(path, "b") as store:
        store.sync_jobs([a])
        with store.grouped():
            with anyio.CancelScope() as scope:
                store.begin_submit(key(a), {})
                scope.cancel()
                await store.durable()  # shielded: returns once committed, despite the cancel
                assert on_disk(path)[a.id] == "submitting"
