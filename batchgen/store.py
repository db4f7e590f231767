"""StateStore: the batch's state in SQLite, through sqlite-utils.

The ``jobs`` table is the job state machine (``models.JobStatus`` and ``models.TRANSITIONS``).
Every status change is one conditional ``UPDATE ... WHERE status IN (<allowed from>)`` in its own
transaction, so the store refuses an illegal transition and a crash leaves either the old row or
the new one, never half of each. During a run (``grouped``) the changes of many jobs share one
transaction and one fsync (group commit); each change stays whole or absent.

Durability rules the runner relies on (issue "never a second charge"):

* ``begin_submit`` commits the idempotency key *and the exact request body* before the create
  request is sent; a rerun resends that same body with that same key, so the service replays
  the original task instead of creating a second one.
* ``record_task`` commits the task id the moment the create answer arrives.

In a group, "commits" means: written at once, and on disk before the runner goes on (it awaits
``durable()``, whose commit the workers asking at the same moment share).

The database uses WAL with ``synchronous=FULL``: a commit survives a SIGKILL and a power cut.
The API key is never written here. Rows are plain columns so ``sqlite3 state/demo.db`` and
``sqlite-utils rows state/demo.db jobs`` read them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import sqlite_utils

from batchgen.errors import StateError
from batchgen.files import fsync_dir
from batchgen.models import (
    TRANSITIONS,
    JobSpec,
    JobStatus,
    RemoteStatus,
    RemoteTask,
    UploadedFile,
    idempotency_key,
    job_key,
    parse_timestamp,
)
from batchgen.redact import redact
from batchgen.rows import AttemptRow, JobRow, RecordedOutputs, StoredEvent, UploadRow

__all__ = [
    "AttemptRow",
    "JobRow",
    "RecordedOutputs",
    "StateStore",
    "StoredEvent",
    "UploadRow",
]

SCHEMA_VERSION = 3
GROUP_DELAY_S = 0.1  # in a group (``grouped``), a change nobody awaits is committed this soon
TASK_TIME_COLUMNS = ("task_created_at", "task_recorded_at", "task_started_at", "task_finished_at")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_JOB_COLUMNS: dict[str, Any] = {
    "job_key": str,
    "job_id": str,
    "request_hash": str,
    "status": str,
    "attempt": int,
    "idempotency_key": str,
    "request_body": str,
    "task_id": str,
    "remote_status": str,
    "reserved_credits": int,
    "final_credits": int,
    "result_urls": str,
    "outputs": str,
    "error_code": str,
    "error_message": str,
    "request_id": str,
    "polls": int,
    "in_manifest": int,
    "prompt": str,
    "params": str,
    "submitted_at": str,
    "finished_at": str,
    "created_at": str,
    "updated_at": str,
}
# Schema version 2 adds the task's timestamps and ``output_sizes`` (``_migrate_to_2``); version 3
# adds ``output_sha256``, ``reference_files`` and the ``attempts`` table (``_migrate_to_3``).


class StateStore:
    """The state of one batch. Open with ``StateStore.open(path, batch)``; close when done."""

    def __init__(self, db: sqlite_utils.Database, path: Path, batch: str, lock: Any) -> None:
        self.db = db
        self.path = path
        self.batch = batch
        self._lock = lock
        self._group: _Group | None = None  # group commit (``grouped``), while a run is on
        self._broken: StateError | None = None  # a group commit the disk refused

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, batch: str, *, lock: bool = True) -> StateStore:
        """Open (or create) the state database for ``batch``; take the run lock if ``lock``."""
        _check_state_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = _take_lock(path) if lock else None
        except OSError as exc:
            raise _unusable_folder(path, exc) from exc
        conn = None
        try:
            if not path.exists():
                cls._create(path, batch)
            conn = sqlite3.connect(str(path), timeout=10, isolation_level=None)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            store = cls(db, path, batch, lock_file)
            store._migrate()
            store._check_batch()
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if lock_file:
                lock_file.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _unusable_database(path, exc) from exc
            raise
        return store

    @classmethod
    def _create(cls, path: Path, batch: str) -> None:
        """Make a new state whole beside ``path`` (schema and batch, in a single file), then
        rename it into place: a run killed while creating its state leaves no empty file at
        ``path`` (which the next run would rightly refuse as a state that lost its contents),
        only a leftover beside it, replaced here next time. Called with the run lock held."""
        draft = path.with_name(f".{path.name}.new")
        for leftover in (draft, Path(f"{draft}-journal")):
            leftover.unlink(missing_ok=True)
        conn = sqlite3.connect(str(draft), timeout=10, isolation_level=None)
        try:
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA synchronous=FULL")  # a rollback journal: one file when closed
            draft_store = cls(db, draft, batch, None)
            draft_store._migrate()
            draft_store._check_batch()
        finally:
            conn.close()
        os.replace(draft, path)
        fsync_dir(path.parent)

    @classmethod
    def open_readonly(cls, path: Path, batch: str | None = None) -> StateStore:
        """Open an existing state database for reading (reports), without the run lock;
        given ``batch``, refuse the state of another batch as a run would."""
        if not path.exists():
            raise StateError(
                f"no state database at {path}",
                hint="Run the batch first (batchgen run MANIFEST), or pass --state FILE.",
            )
        _check_state_path(path)
        try:
            uri = f"file:{quote(str(path.absolute()))}?mode=ro"  # '#' or '?' in a folder name
            conn = sqlite3.connect(uri, uri=True, timeout=10)
            db = sqlite_utils.Database(conn)
            stored = _meta(db).get("batch", "")
            if "jobs" not in db.table_names():
                conn.close()
                raise StateError(
                    f"{path} is an SQLite database but not a batchgen state database "
                    "(it has no jobs table)",
                    hint="Pass the state file of this batch with --state FILE.",
                )
        except sqlite3.DatabaseError as exc:
            raise _unusable_database(path, exc) from exc
        store = cls(db, path, stored, None)
        if batch is not None and stored and stored != batch:
            store.close()
            raise StateError(
                f"{path} belongs to batch {stored!r}, not {batch!r}",
                hint="Pass the state file of this batch with --state FILE.",
            )
        return store

    def close(self) -> None:
        if self._group is not None:
            self._end_group(raise_broken=False)
        self.db.conn.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} was written by a newer batchgen (schema {version}, "
                f"this one knows {SCHEMA_VERSION})",
                hint="Upgrade batchgen, or start a new state file with --state FILE.",
            )
        if version < 1:
            self._migrate_to_1()
        if version < 2:
            self._migrate_to_2()
        if version < 3:
            self._migrate_to_3()
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _migrate_to_1(self) -> None:
        with self._tx():
            self.db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            self.db.table("jobs").create(
                _JOB_COLUMNS,
                pk="job_key",
                not_null={"job_id", "request_hash", "status", "attempt", "polls"},
                defaults={"attempt": 1, "polls": 0, "in_manifest": 1},
                if_not_exists=True,
            )
            self.db.table("jobs").create_index(["job_id"], if_not_exists=True)
            self.db.table("jobs").create_index(["status"], if_not_exists=True)
            self.db.table("uploads").create(
                {
                    "source_key": str,
                    "file_id": str,
                    "url": str,
                    "mime_type": str,
                    "size_bytes": int,
                    "name": str,
                    "expires_at": str,
                    "uploaded_at": str,
                },
                pk="source_key",
                if_not_exists=True,
            )
            self.db.table("events").create(
                {"id": int, "at": str, "job_key": str, "kind": str, "detail": str},
                pk="id",
                if_not_exists=True,
            )

    def _migrate_to_2(self) -> None:
        """Version 2: the service's timestamps of each task (when it was created, started
        processing and finished) and when its id was recorded, so a resumed run knows each
        task's age and what the batch's tasks took; and the size of each output file, so a
        run can tell that a video was deleted or damaged."""
        with self._tx():
            have = {c.name for c in self.db.table("jobs").columns}
            for column in (*TASK_TIME_COLUMNS, "output_sizes"):
                if column not in have:
                    self.db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")

    def _migrate_to_3(self) -> None:
        """Version 3: each output's sha256 (``--verify`` checks it; a moved file is found by
        it), each job's local reference files (a report reads without the manifest), and the
        ``attempts`` table: a task an earlier attempt paid for, kept when the job gets a new
        attempt, so the sums reconcile with the service's ledger."""
        with self._tx():
            have = {c.name for c in self.db.table("jobs").columns}
            for column in ("output_sha256", "reference_files"):
                if column not in have:
                    self.db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
            self.db.table("attempts").create(
                {
                    "id": int,
                    "job_key": str,
                    "attempt": int,
                    "task_id": str,
                    "remote_status": str,
                    "reserved_credits": int,
                    "final_credits": int,
                    "error_code": str,
                    "error_message": str,
                    "task_created_at": str,
                    "task_finished_at": str,
                    "ended_at": str,
                    "why": str,
                },
                pk="id",
                if_not_exists=True,
            )
            self.db.table("attempts").create_index(["job_key"], if_not_exists=True)

    # -- meta ----------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """The ``meta`` table: what the state knows about itself (batch, service, ...)."""
        return _meta(self.db)

    def set_meta(self, **values: str) -> None:
        """Write ``meta`` entries in one transaction."""
        with self._tx():
            for key, value in values.items():
                self.db.table("meta").insert({"key": key, "value": value}, replace=True)

    def _check_batch(self) -> None:
        stored = _meta(self.db).get("batch")
        if stored is None:
            with self._tx():
                self.db.table("meta").insert({"key": "batch", "value": self.batch}, replace=True)
        elif stored != self.batch:
            raise StateError(
                f"{self.path} belongs to batch {stored!r}, not {self.batch!r}",
                hint="Pass the state file of this batch with --state FILE, or rename the batch.",
            )

    @contextlib.contextmanager
    def _tx(self, *, one_statement: bool = False) -> Iterator[None]:
        """One transaction (one unit of change: all of it or none of it). A write the disk
        refuses (full, read-only, I/O error) rolls back and becomes a ``StateError`` that says
        so: the state stays as it was before it.

        Inside ``grouped()`` the unit is a savepoint of the group's open transaction instead,
        committed together with its neighbours (see ``grouped``): still all of it or none.
        ``one_statement``: the unit writes with a single statement (atomic by itself)."""
        if self._group is not None:
            with self._unit(savepoint=not one_statement):
                yield
            return
        try:
            with self._disk_errors():
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
        except StateError:
            if self.db.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """An ``sqlite3.OperationalError`` that is the disk's doing becomes a ``StateError``."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "").split("_")[:2] not in _DISK_ERRORS:
                raise  # not the disk's doing: a bug to see as such
            raise StateError(
                f"cannot write the state database {self.path}: {exc}",
                hint="Free space on its disk (or make it writable), then run the same command "
                "again: the state holds everything up to its last complete write.",
            ) from exc

    # -- group commit --------------------------------------------------------------------------
    #
    # A run changes many jobs at once (200 workers), and each change used to be a transaction
    # of its own, fsynced on the event loop's thread: about five per job, so creates queued
    # behind fsyncs. Inside ``grouped()`` every unit of change is a savepoint of one open
    # transaction, and that transaction is committed (one fsync) for all of them together:
    #
    # * ``await durable()`` commits on the loop's next turn and returns once the commit is on
    #   disk; every worker that asks in the same turn shares that one commit. The runner awaits
    #   it where the rules of ``store``'s docstring demand durability: after ``begin_submit``
    #   (the key and body are on disk before the create request leaves) and after
    #   ``record_task`` (the task id, written the moment the answer arrived, is on disk before
    #   the job goes on). The wait is shielded: a cancelled worker still sees its commit land.
    # * any other change (a poll, a finished task's URLs, a job's outputs, an event row) rides
    #   along with the next commit, at most ``GROUP_DELAY_S`` later. A SIGKILL or power cut in
    #   that window loses only such changes, each of which a rerun redoes without paying: the
    #   job polls again, or downloads its paid result again. Never a key or a task id.
    # * ``synchronous=FULL`` stays: every commit is durable when it returns.
    #
    # A commit the disk refuses rolls the whole group back and breaks the store: every later
    # write and every ``durable()`` raises that ``StateError``, so the run stops with the state
    # as of its last complete commit (the rule of ``_tx``, for a group).

    @contextlib.contextmanager
    def grouped(self, delay_s: float = GROUP_DELAY_S) -> Iterator[None]:
        """Group commit while inside (on the running event loop's thread): see above. On the
        way out everything written is committed."""
        if self._group is not None:
            yield
            return
        self._group = _Group(delay_s)
        try:
            yield
        except BaseException:
            self._end_group(raise_broken=False)  # the complete units are kept, even now
            raise
        self._end_group(raise_broken=True)

    async def durable(self) -> None:
        """Return once every change written so far is committed (at once outside a group)."""
        if self._broken is not None:
            raise self._broken
        group = self._group
        if group is None or not self.db.conn.in_transaction:
            return
        loop = asyncio.get_running_loop()
        if group.future is None:
            group.future = loop.create_future()
        if group.soon is None:
            group.soon = loop.call_soon(self._commit_group)
        with anyio.CancelScope(shield=True):
            await asyncio.shield(group.future)

    @contextlib.contextmanager
    def _unit(self, *, savepoint: bool = True) -> Iterator[None]:
        """One unit of change inside the group: a savepoint of its open transaction (none for
        a unit of one statement: SQLite undoes a failed statement whole by itself)."""
        if self._broken is not None:
            raise self._broken
        with self._breaking_on_disk_errors(), self._disk_errors():
            if not self.db.conn.in_transaction:
                self.db.execute("BEGIN IMMEDIATE")
            if not savepoint:
                yield
            else:
                self.db.execute("SAVEPOINT unit")
                try:
                    yield
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK TO unit")
                        self.db.execute("RELEASE unit")
                    raise
                self.db.execute("RELEASE unit")
        self._commit_later()

    @contextlib.contextmanager
    def _breaking_on_disk_errors(self) -> Iterator[None]:
        """A unit the disk refused may have taken the group's transaction with it: roll the
        group back and break the store (its other units are no longer certain)."""
        try:
            yield
        except StateError as exc:
            if isinstance(exc.__cause__, sqlite3.OperationalError):
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                self._broken = exc
            raise

    def _commit_later(self) -> None:
        group = self._group
        if group is None or group.timer is not None or group.soon is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): commit now
            self._commit_group()
            return
        group.timer = loop.call_later(group.delay_s, self._commit_group)

    def _commit_group(self) -> None:
        """Commit the group's open transaction (one fsync) and wake whoever awaits it. Called
        by the loop; a refusal breaks the store and is raised to the waiters, not here."""
        group = self._group
        if group is None:
            return
        future, group.future = group.future, None
        group.cancel()
        try:
            if self.db.conn.in_transaction:
                with self._disk_errors():
                    self.db.execute("COMMIT")
        except StateError as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            self._broken = exc
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(None)

    def _end_group(self, *, raise_broken: bool) -> None:
        self._commit_group()
        group, self._group = self._group, None
        if group is not None and group.future is not None and not group.future.done():
            group.future.set_result(None)
        if raise_broken and self._broken is not None:
            raise self._broken

    # -- the manifest's jobs -------------------------------------------------------------------

    def sync_jobs(self, specs: Iterable[JobSpec]) -> None:
        """Insert every job version of the manifest not stored yet (as pending) and flag which
        stored rows the manifest still names. Never deletes a row.

        Only what changed is written, in one transaction: a resumed batch whose manifest is
        unchanged writes nothing; a new one is inserted as the specs stream in (never a list
        of a million rows). Each stored key is read once, with its flag."""
        stored: dict[str, int] = dict(
            self.db.execute("SELECT job_key, in_manifest FROM jobs").fetchall()
        )
        back: list[tuple[str]] = []  # stored, flagged as not in the manifest, named again
        now = _now()
        params_json: dict[tuple[tuple[str, str], ...], str] = {}
        files_json: dict[tuple[Any, ...], str] = {}

        def new_rows() -> Iterator[tuple[Any, ...]]:
            for s in specs:
                req_hash = s.request_hash
                key = job_key(self.batch, s.id, req_hash)
                flag = stored.pop(key, None)
                if flag is not None:
                    if not flag:
                        back.append((key,))
                    continue
                params = params_json.get(s.params)
                if params is None:
                    params = params_json[s.params] = json.dumps(dict(s.params), sort_keys=True)
                files = files_json.get(s.references)
                if files is None:
                    files = files_json[s.references] = json.dumps([r.source for r in s.references])
                yield (key, s.id, req_hash, s.prompt, params, files, now, now)

        # a million new rows insert into an index of random keys: a larger page cache for
        # the sync keeps those pages in memory instead of re-reading them (SQLite's default
        # is 2 MB; this is at most 64 MB, and only while the sync runs)
        cache = self.db.execute("PRAGMA cache_size").fetchone()[0]
        self.db.execute("PRAGMA cache_size = -65536")
        try:
            self._insert_new(new_rows(), stored, back)
        finally:
            self.db.execute(f"PRAGMA cache_size = {int(cache)}")

    def _insert_new(
        self, new_rows: Iterator[tuple[Any, ...]], stored: dict[str, int], back: list[tuple[str]]
    ) -> None:
        """``sync_jobs``' writes, in one transaction: the new rows, then the changed flags."""
        with self._tx():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO jobs (job_key, job_id, request_hash, status, attempt, "
                "polls, in_manifest, prompt, params, reference_files, created_at, updated_at) "
                f"VALUES (?, ?, ?, '{JobStatus.PENDING.value}', 1, 0, 1, ?, ?, ?, ?, ?)",
                new_rows,
            )
            gone = [(key,) for key, flag in stored.items() if flag]  # no longer in the manifest
            self.db.conn.executemany("UPDATE jobs SET in_manifest = 1 WHERE job_key = ?", back)
            self.db.conn.executemany("UPDATE jobs SET in_manifest = 0 WHERE job_key = ?", gone)

    def job(self, key: str) -> JobRow:
        rows = list(self.db.query("SELECT * FROM jobs WHERE job_key = ?", [key]))
        if not rows:
            raise StateError(f"no job {key} in {self.path}")
        return JobRow.from_db(rows[0])

    def jobs(
        self, *, statuses: Iterable[JobStatus] | None = None, current_only: bool = True
    ) -> list[JobRow]:
        """Job rows in insertion order; by default only the versions the manifest names."""
        where, args = [], []
        if current_only:
            where.append("in_manifest = 1")
        if statuses is not None:
            wanted = [s.value for s in statuses]
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            args.extend(wanted)
        sql = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [JobRow.from_db(r) for r in self.db.query(sql + " ORDER BY rowid", args)]

    def pending_page(self, after: int, limit: int) -> list[tuple[int, JobRow]]:
        """Up to ``limit`` pending rows the manifest names, after rowid ``after``, in insertion
        order, each with its rowid: a run reads its new jobs a page at a time."""
        sql = (
            "SELECT rowid AS _rowid, * FROM jobs WHERE status = ? AND in_manifest = 1 "
            "AND rowid > ? ORDER BY rowid LIMIT ?"
        )
        rows = self.db.query(sql, [JobStatus.PENDING.value, after, limit])
        return [(r.pop("_rowid"), JobRow.from_db(r)) for r in rows]

    def pending_params(self, *, by_id: bool = False) -> list[tuple[str | None, str | None, int]]:
        """(job id, params as stored, how many) of the pending jobs the manifest names; the
        job id is None and rows are grouped by params alone unless ``by_id``."""
        pending = [JobStatus.PENDING.value]
        if by_id:
            sql = "SELECT job_id, params, 1 FROM jobs WHERE status = ? AND in_manifest = 1"
        else:
            sql = (
                "SELECT NULL, params, COUNT(*) FROM jobs WHERE status = ? AND in_manifest = 1 "
                "GROUP BY params"
            )
        return [(r[0], r[1], r[2]) for r in self.db.execute(sql, pending).fetchall()]

    def latest_versions(self) -> list[JobRow]:
        """The newest stored version of every job id (what ``report``/``status`` show)."""
        sql = (
            "SELECT * FROM jobs WHERE rowid IN (SELECT MAX(rowid) FROM jobs GROUP BY job_id) "
            "ORDER BY rowid"
        )
        return [JobRow.from_db(r) for r in self.db.query(sql)]

    def counts(self) -> dict[str, Any]:
        """Counts per status and credit sums over the manifest's current jobs (for progress)."""
        sql = (
            "SELECT status, COUNT(*), COALESCE(SUM(reserved_credits), 0), "
            "COALESCE(SUM(final_credits), 0) FROM jobs WHERE in_manifest = 1 GROUP BY status"
        )
        by_status: dict[str, int] = {}
        reserved = final = 0
        for status, count, res, fin in self.db.execute(sql).fetchall():
            by_status[status] = count
            reserved += res
            final += fin
        return {"by_status": by_status, "reserved_credits": reserved, "final_credits": final}

    def committed_credits(self, price: int) -> int:
        """The credits this batch holds against the wallet now: every task's final charge once
        it finished (refunds counted), its reservation while it runs, earlier attempts' final
        charges, and ``price`` for each job mid-submit without a recorded task (its create
        may be on its way). What a budget is checked against."""
        settled = [s.value for s in (JobStatus.DOWNLOADING, JobStatus.SUCCEEDED)]
        settled += [JobStatus.FAILED.value, JobStatus.BLOCKED.value]
        marks = ", ".join("?" * len(settled))
        sql = (
            "SELECT COALESCE(SUM(CASE "
            f"WHEN task_id IS NULL THEN (CASE WHEN status = ? THEN ? ELSE 0 END) "
            f"WHEN status IN ({marks}) THEN COALESCE(final_credits, 0) "
            "ELSE MAX(COALESCE(reserved_credits, 0), COALESCE(final_credits, 0)) END), 0) "
            "FROM jobs"
        )
        args: list[Any] = [JobStatus.SUBMITTING.value, price, *settled]
        jobs = self.db.execute(sql, args).fetchone()[0]
        earlier = self.db.execute("SELECT COALESCE(SUM(final_credits), 0) FROM attempts")
        return int(jobs) + int(earlier.fetchone()[0])

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """job id -> (request hash, status) of the newest version: what ``plan`` compares."""
        sql = (
            "SELECT job_id, request_hash, status FROM jobs WHERE rowid IN "
            "(SELECT MAX(rowid) FROM jobs GROUP BY job_id)"
        )  # ``latest_versions``' rows, three columns of them (no JobRow per job)
        return {job_id: (h, status) for job_id, h, status in self.db.execute(sql).fetchall()}

    # -- transitions ---------------------------------------------------------------------------

    def _transition(self, key: str, new: JobStatus, **kw: Any) -> JobRow:
        """``_update`` in a transaction of its own (in a group: one statement, which SQLite
        applies whole or not at all, so it needs no savepoint of its own)."""
        with self._tx(one_statement=True):
            return self._update(key, new, **kw)

    def _update(
        self,
        key: str,
        new: JobStatus,
        *,
        count_poll: bool = False,
        first_only: Sequence[str] = (),
        **fields: Any,
    ) -> JobRow:
        """One conditional UPDATE, refused unless the row is in a state allowed to move to
        ``new``; returns the new row. ``count_poll`` adds one to ``polls`` in the same
        statement; fields named in ``first_only`` keep a value already stored. The caller
        holds the transaction."""
        allowed_from = _ALLOWED_FROM[new]
        values = {k: _encode(v) for k, v in fields.items()}
        values.update(status=new.value, updated_at=_now())
        sql = _update_sql(tuple(values), tuple(first_only), count_poll, len(allowed_from))
        cursor = self.db.conn.execute(sql, [*values.values(), key, *allowed_from])
        found = cursor.fetchone()
        if found is None:
            current = self.db.execute("SELECT status FROM jobs WHERE job_key = ?", [key]).fetchone()
            raise StateError(
                f"illegal state change for job {key}: {current[0] if current else 'missing'}"
                f" -> {new.value}"
            )
        names = [d[0] for d in cursor.description]
        cursor.fetchall()  # finish the statement before the transaction commits
        return JobRow.from_db(dict(zip(names, found, strict=True)))

    def begin_submit(self, key: str, body: dict[str, Any]) -> JobRow:
        """Make the idempotency key and the exact body durable; return the row to send from.

        A job already ``submitting`` keeps its stored key and body (the caller must resend the
        stored body): the first request may have reached the service.
        """
        row = self.job(key)
        if row.status is JobStatus.SUBMITTING and row.idempotency_key:
            return row
        return self._transition(
            key,
            JobStatus.SUBMITTING,
            idempotency_key=idempotency_key(key, row.attempt),
            request_body=json.dumps(body, sort_keys=True),
            submitted_at=_now(),
            error_code=None,
            error_message=None,
            request_id=None,
        )

    def record_task(self, key: str, task: RemoteTask) -> JobRow:
        """The create answer arrived: the task id is durable from here on, with the service's
        creation time (the task's clock starts there) and the moment it was recorded."""
        return self._transition(
            key,
            JobStatus.RUNNING,
            task_id=task.id,
            remote_status=_remote_status(task),
            reserved_credits=task.reserved_credits,
            final_credits=task.final_credits,
            task_created_at=task.created_at,
            task_recorded_at=_now(),
            task_started_at=_started_at(task),
            task_finished_at=None,
        )

    def record_poll(self, key: str, task: RemoteTask) -> JobRow:
        """A status poll answered and the task is not finished yet."""
        return self._transition(
            key,
            JobStatus.RUNNING,
            count_poll=True,
            first_only=("task_started_at", "task_created_at"),
            remote_status=_remote_status(task),
            reserved_credits=task.reserved_credits,
            task_started_at=_started_at(task),
            task_created_at=task.created_at,
        )

    def record_succeeded_remote(self, key: str, task: RemoteTask, *, polled: bool = True) -> JobRow:
        """The remote task succeeded: keep its result URLs, credits and finish time, start
        downloading. ``polled`` is False when the task was fetched again only for fresh URLs."""
        return self._transition(
            key,
            JobStatus.DOWNLOADING,
            count_poll=polled,
            first_only=("task_created_at", "task_finished_at"),
            remote_status=_remote_status(task),
            reserved_credits=task.reserved_credits,
            final_credits=task.final_credits,
            result_urls=list(task.result_urls),
            task_created_at=task.created_at,
            task_finished_at=task.updated_at,
        )

    def record_outputs(
        self,
        key: str,
        outputs: Sequence[str],
        sizes: Sequence[int] | None = None,
        sha256: Sequence[str] | None = None,
    ) -> JobRow:
        """Every result file is on disk (with these sizes in bytes and hashes): the job is
        done."""
        return self._transition(
            key,
            JobStatus.SUCCEEDED,
            outputs=list(outputs),
            output_sizes=list(sizes) if sizes is not None else None,
            output_sha256=list(sha256) if sha256 is not None else None,
            finished_at=_now(),
        )

    def relocate_outputs(self, key: str, outputs: Sequence[str]) -> None:
        """A job's files were moved (to or from a superseded version's name): record where
        they are now. Not a status change; the sizes and hashes stay what they were."""
        with self._tx():
            self.db.execute(
                "UPDATE jobs SET outputs = ?, updated_at = ? WHERE job_key = ?",
                [json.dumps(list(outputs)), _now(), key],
            )

    def versions_of(self, job_id: str) -> list[JobRow]:
        """Every stored version of one job id, oldest first."""
        sql = "SELECT * FROM jobs WHERE job_id = ? ORDER BY rowid"
        return [JobRow.from_db(r) for r in self.db.query(sql, [job_id])]

    def versions_with_outputs(self, job_id: str, *, besides: str) -> list[JobRow]:
        """The other stored versions of ``job_id`` that have files recorded, oldest first
        (asked before every download: usually none, and then no row is built)."""
        sql = (
            "SELECT * FROM jobs WHERE job_id = ? AND job_key != ? AND outputs IS NOT NULL "
            "AND outputs != '[]' ORDER BY rowid"
        )
        return [JobRow.from_db(r) for r in self.db.query(sql, [job_id, besides])]

    def download_again(self, key: str, *, why: str) -> JobRow:
        """A succeeded job's file is missing or damaged: back to ``downloading`` (its task is
        paid for and its results are fetched again; nothing is submitted), with why in
        ``events``, in one transaction."""
        with self._tx():
            row = self._update(key, JobStatus.DOWNLOADING, finished_at=None)
            self._insert_event(key, "download_again", why)
        return row

    def record_failed(
        self,
        key: str,
        *,
        code: str | None,
        message: str,
        request_id: str | None = None,
        task: RemoteTask | None = None,
    ) -> JobRow:
        """The job failed for good (API refusal or remote failure); keep why."""
        extra: dict[str, Any] = {}
        if task is not None:
            extra = {
                "remote_status": _remote_status(task),
                "reserved_credits": task.reserved_credits,
                "final_credits": task.final_credits,
                "task_finished_at": task.updated_at,
            }
        return self._transition(
            key,
            JobStatus.FAILED,
            error_code=code,
            error_message=message,
            request_id=request_id,
            finished_at=_now(),
            **extra,
        )

    def record_blocked(self, key: str, *, message: str, task: RemoteTask | None = None) -> JobRow:
        """Out of credits: this job waits for a later run (which uses the next attempt)."""
        extra: dict[str, Any] = {}
        if task is not None:
            extra = {"remote_status": _remote_status(task), "final_credits": task.final_credits}
        return self._transition(
            key,
            JobStatus.BLOCKED,
            error_code="insufficient_credits",
            error_message=message,
            **extra,
        )

    def new_attempt(self, key: str, *, why: str, forget_uploads: Sequence[str] = ()) -> JobRow:
        """Back to ``pending`` with the next attempt number, in ONE transaction: the job never
        reuses its previous attempt's idempotency key, the uploads named in
        ``forget_uploads`` are dropped (the next submit uploads them again), and why is
        written to the ``events`` table. Allowed from ``blocked``, ``failed`` (on request) and
        ``submitting`` (the service refused the stored body, so no task exists for its key).
        A crash leaves either the old row or the new one."""
        with self._tx():
            before = self.job(key)
            if before.task_id is not None:  # a task this attempt created stays in the record
                self._keep_attempt(before, why)
            row = self._update(
                key,
                JobStatus.PENDING,
                attempt=before.attempt + 1,
                idempotency_key=None,
                request_body=None,
                task_id=None,
                remote_status=None,
                reserved_credits=None,
                final_credits=None,
                result_urls=[],
                finished_at=None,
                task_created_at=None,
                task_recorded_at=None,
                task_started_at=None,
                task_finished_at=None,
            )
            for source_key in forget_uploads:
                self.db.execute("DELETE FROM uploads WHERE source_key = ?", [source_key])
            self._insert_event(key, "new_attempt", f"attempt {row.attempt}: {why}")
        return row

    def _keep_attempt(self, row: JobRow, why: str) -> None:
        self.db.execute(
            "INSERT INTO attempts (job_key, attempt, task_id, remote_status, reserved_credits, "
            "final_credits, error_code, error_message, task_created_at, task_finished_at, "
            "ended_at, why) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                _encode(value)
                for value in (
                    row.job_key,
                    row.attempt,
                    row.task_id,
                    row.remote_status,
                    row.reserved_credits,
                    row.final_credits,
                    row.error_code,
                    row.error_message,
                    row.task_created_at,
                    row.task_finished_at,
                    _now(),
                    why[:2000],
                )
            ],
        )

    def earlier_attempts(self) -> list[AttemptRow]:
        """Every task an earlier attempt of a job created (kept by ``new_attempt``), oldest
        first: the record of what the batch paid for besides each job's current task."""
        sql = (
            "SELECT a.*, j.job_id FROM attempts a JOIN jobs j ON j.job_key = a.job_key "
            "ORDER BY a.id"
        )
        return [AttemptRow.from_db(r) for r in self.db.query(sql)]

    def requeue(self, key: str) -> JobRow:
        """A blocked (or, on request, failed) job gets a new attempt (see ``new_attempt``)."""
        return self.new_attempt(key, why="requeued")

    def recorded_outputs(self) -> list[RecordedOutputs]:
        """The recorded files of every succeeded job the manifest names: what a run checks
        against the disk. Only these columns are read."""
        sql = (
            "SELECT job_key, job_id, request_hash, outputs, output_sizes, output_sha256 "
            "FROM jobs WHERE status = ? AND in_manifest = 1"
        )
        rows = self.db.execute(sql, [JobStatus.SUCCEEDED.value]).fetchall()
        return [
            RecordedOutputs(
                job_key=key,
                job_id=job_id,
                request_hash=request_hash,
                outputs=tuple(json.loads(outputs or "[]")),
                sizes=tuple(json.loads(sizes)) if sizes else None,
                sha256=tuple(json.loads(digests)) if digests else None,
            )
            for key, job_id, request_hash, outputs, sizes, digests in rows
        ]

    def finished_runs(self, limit: int = 5000) -> list[tuple[dict[str, str], float, float | None]]:
        """(params, run seconds, seconds to the start of processing or None) of the batch's
        ``limit`` latest succeeded tasks, oldest first, by the service's own timestamps: what a
        resumed run's run-time model starts from (it keeps only the latest few hundred per kind
        anyway, so a million-job state is not read whole)."""
        sql = (
            "SELECT params, task_created_at, task_started_at, task_finished_at FROM jobs "
            "WHERE status IN (?, ?) AND task_created_at IS NOT NULL "
            "AND task_finished_at IS NOT NULL ORDER BY rowid DESC LIMIT ?"
        )
        found = self.db.execute(
            sql, [JobStatus.DOWNLOADING.value, JobStatus.SUCCEEDED.value, limit]
        ).fetchall()
        out = []
        for params, created, started, finished in reversed(found):  # oldest first
            t0, t1 = parse_timestamp(created), parse_timestamp(finished)
            if t0 is None or t1 is None or t1 <= t0:
                continue
            t_start = parse_timestamp(started)
            start_s = t_start - t0 if t_start is not None and t0 <= t_start <= t1 else None
            out.append((json.loads(params or "{}"), t1 - t0, start_s))
        return out

    # -- uploads -------------------------------------------------------------------------------

    def upload_for(self, source_key: str) -> UploadRow | None:
        rows = list(self.db.query("SELECT * FROM uploads WHERE source_key = ?", [source_key]))
        if not rows:
            return None
        r = rows[0]
        return UploadRow(
            source_key=r["source_key"],
            file_id=r["file_id"],
            url=r["url"],
            mime_type=r["mime_type"],
            size_bytes=r["size_bytes"],
            name=r["name"],
            expires_at=r["expires_at"],
            uploaded_at=r["uploaded_at"],
        )

    def save_upload(self, source_key: str, up: UploadedFile) -> None:
        with self._tx():
            self.db.table("uploads").insert(
                {
                    "source_key": source_key,
                    "file_id": up.id,
                    "url": up.url,
                    "mime_type": up.mime_type,
                    "size_bytes": up.size_bytes,
                    "name": up.name,
                    "expires_at": up.expires_at,
                    "uploaded_at": _now(),
                },
                replace=True,
            )

    # -- events --------------------------------------------------------------------------------

    def log_event(self, key: str | None, kind: str, detail: str = "") -> None:
        with self._tx():
            self._insert_event(key, kind, detail)

    def log_job_event(self, job_id: str, kind: str, detail: str = "") -> None:
        """``log_event`` for the version of ``job_id`` that the manifest names now."""
        with self._tx():
            self.db.execute(
                "INSERT INTO events (at, job_key, kind, detail) VALUES (?, (SELECT job_key FROM "
                "jobs WHERE job_id = ? AND in_manifest = 1 LIMIT 1), ?, ?)",
                [_now(), job_id, kind, redact(detail)[:2000]],
            )

    def _insert_event(self, key: str | None, kind: str, detail: str) -> None:
        self.db.execute(
            "INSERT INTO events (at, job_key, kind, detail) VALUES (?, ?, ?, ?)",
            [_now(), key, kind, redact(detail)[:2000]],
        )

    def recent_events(self, limit: int = 5) -> tuple[StoredEvent, ...]:
        """The latest rows of the ``events`` table, newest first, with the job's id."""
        sql = (
            "SELECT e.at, e.kind, e.detail, j.job_id FROM events e "
            "LEFT JOIN jobs j ON j.job_key = e.job_key ORDER BY e.id DESC LIMIT ?"
        )
        return tuple(
            StoredEvent(at=at, kind=kind, detail=(f"{job_id}: " if job_id else "") + detail)
            for at, kind, detail, job_id in self.db.execute(sql, [limit]).fetchall()
        )


class _Group:
    """The group commit's bookkeeping: the commit scheduled for the loop's next turn (and the
    future its waiters share), or the later one for changes nobody awaits."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.future: asyncio.Future[None] | None = None
        self.soon: asyncio.Handle | None = None
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        for handle in (self.soon, self.timer):
            if handle is not None:
                handle.cancel()
        self.soon = self.timer = None


# SQLite's primary result codes that mean "the disk or another process said no", not "bad SQL".
_DISK_ERRORS = [["SQLITE", code] for code in ("FULL", "READONLY", "IOERR", "BUSY", "CANTOPEN")]

_ALLOWED_FROM: dict[JobStatus, list[str]] = {
    new: [old.value for old, nexts in TRANSITIONS.items() if new in nexts] for new in JobStatus
}


@functools.lru_cache(maxsize=256)
def _update_sql(
    columns: tuple[str, ...], first_only: tuple[str, ...], count_poll: bool, n: int
) -> str:
    """The conditional UPDATE of ``_update`` for these columns (a handful of shapes, each
    built once)."""
    sets = [f"{k} = COALESCE({k}, ?)" if k in first_only else f"{k} = ?" for k in columns]
    sets += ["polls = polls + 1"] if count_poll else []
    marks = ", ".join("?" * n)
    return (
        f"UPDATE jobs SET {', '.join(sets)} WHERE job_key = ? AND status IN ({marks}) RETURNING *"
    )


def _remote_status(task: RemoteTask) -> str:
    """The status as the service sent it (an unknown one too), for the ``remote_status`` column."""
    return task.raw_status or task.status.value


def _started_at(task: RemoteTask) -> str | None:
    """When processing began, if this answer tells (a processing task's last change)."""
    running = (RemoteStatus.PROCESSING, RemoteStatus.UNKNOWN)  # an unknown name: still running
    return task.updated_at if task.status in running else None


def _encode(value: Any) -> Any:
    """A column value as stored: lists and dicts as JSON; every text passed through
    ``redact`` (a server may echo the API key in a message, a status or a URL: it is never
    written here)."""
    if isinstance(value, list | tuple | dict):
        return redact(json.dumps(value))
    if isinstance(value, str):
        return redact(value)
    return value


def _meta(db: sqlite_utils.Database) -> dict[str, str]:
    if "meta" not in db.table_names():
        return {}
    return {r["key"]: r["value"] for r in db.query("SELECT key, value FROM meta")}


def _check_state_path(path: Path) -> None:
    """Refuse a state path that cannot be a state database before SQLite is asked: a folder,
    or an empty file (SQLite would quietly make a new, empty state of it)."""
    if path.is_dir():
        raise StateError(
            f"the state path {path} is a folder, not a state database file",
            hint=f"Pass a file name with --state FILE (for example {path / 'state.db'}).",
        )
    if path.is_file() and path.stat().st_size == 0 and not _has_wal(path):
        raise StateError(
            f"the state file {path} is empty: it holds no batch (it lost its contents, or was "
            "made by hand)",
            hint="If it held this batch's state, restore it from a backup: the tasks it "
            "recorded are paid for. If the batch never ran with it, delete it and run again.",
        )


def _has_wal(path: Path) -> bool:
    """A write-ahead log with content beside ``path``: its data is there, not yet in the file."""
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except OSError:
        return False


def _unusable_folder(path: Path, exc: OSError) -> StateError:
    """The state's folder cannot hold it: missing rights, read-only, a file in the way."""
    why = exc.strerror or str(exc)
    if path.parent.exists() and not path.parent.is_dir():
        why = f"{path.parent} is a file, not a folder"
    return StateError(
        f"cannot create the state database {path} in {path.parent}: {why}",
        hint="batchgen writes the state file, a lock file and SQLite's -wal/-shm files beside "
        "it: make that folder writable, or pass a state file in another folder with --state "
        "FILE.",
    )


def _unusable_database(path: Path, exc: sqlite3.DatabaseError) -> StateError:
    """What an SQLite error on opening says about the state file, and what to do."""
    text = str(exc)
    if "not a database" in text:
        return StateError(
            f"the state file {path} is not an SQLite database (or is damaged): {text}",
            hint="Pass this batch's state file with --state FILE; if it was damaged, restore it "
            "from a backup (the tasks it recorded are paid for).",
        )
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return StateError(
            f"cannot open the state database {path}: {text}",
            hint="The file and its folder must be readable and writable (SQLite keeps -wal and "
            "-shm files beside it); fix the permissions, or pass another file with --state "
            "FILE.",
        )
    return StateError(
        f"cannot use the state database {path}: {text}",
        hint="Is it a batchgen state file? Pass another with --state FILE.",
    )


def _take_lock(path: Path) -> Any:
    """One run per state file at a time: two runners would race for the same jobs. The lock
    sits beside the resolved file, so a symlink or another spelling of the path shares it."""
    real = path.resolve()
    lock_path = real.with_name(real.name + ".lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the store's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StateError(
            f"{path} is in use by another batchgen run ({holder})",
            hint="Wait for it to finish, or stop it; two runs on one state file would race.",
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
