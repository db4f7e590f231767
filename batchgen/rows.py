"""The rows of the state database as frozen dataclasses: what ``StateStore`` returns.

Pure: built from a row dict (``JobRow.from_db``), no database access here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from batchgen.models import JobStatus

# statuses whose task's charge is final (its reservation was charged or given back)
_SETTLED = frozenset(
    {JobStatus.DOWNLOADING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.BLOCKED}
)


@dataclass(frozen=True, slots=True)
class JobRow:
    """One version of one job as stored. (Slotted: a run holds one or two per job in flight,
    and a row read back after every change is a large share of the hot path.)"""

    job_key: str
    job_id: str
    request_hash: str
    status: JobStatus
    attempt: int
    idempotency_key: str | None
    request_body: dict[str, Any] | None
    task_id: str | None
    remote_status: str | None
    reserved_credits: int | None
    final_credits: int | None
    result_urls: tuple[str, ...]
    outputs: tuple[str, ...]
    error_code: str | None
    error_message: str | None
    request_id: str | None
    polls: int
    in_manifest: bool
    submitted_at: str | None
    finished_at: str | None
    created_at: str
    updated_at: str
    task_created_at: str | None = None  # the service's creation time of the task
    task_recorded_at: str | None = None  # when this client recorded the task id
    task_started_at: str | None = None  # the service's time processing began (if seen)
    task_finished_at: str | None = None  # the service's time the task finished
    output_sizes: tuple[int, ...] | None = None  # bytes of each output, as written
    output_sha256: tuple[str, ...] | None = None  # hex sha256 of each output, as written
    prompt: str | None = None
    params: dict[str, str] | None = None  # the kling-3-0 params as sent (string form)
    reference_files: tuple[str, ...] = ()  # each reference as the manifest named it

    def held_credits(self, price: int) -> int:
        """What this row holds against the wallet (``StateStore.committed_credits`` sums the
        same rule in SQL): a finished task's final charge, a running task's reservation, and
        ``price`` for a job mid-submit whose task is not recorded yet."""
        if self.task_id is None:
            return price if self.status is JobStatus.SUBMITTING else 0
        final = self.final_credits or 0
        if self.status in _SETTLED:
            return final
        return max(self.reserved_credits or 0, final)

    @classmethod
    def from_db(cls, r: dict[str, Any]) -> JobRow:
        get = r.get
        sizes, digests = get("output_sizes"), get("output_sha256")
        return cls(
            job_key=r["job_key"],
            job_id=r["job_id"],
            request_hash=r["request_hash"],
            status=JobStatus(r["status"]),
            attempt=r["attempt"],
            idempotency_key=r["idempotency_key"],
            request_body=_json_object(r["request_body"]),
            task_id=r["task_id"],
            remote_status=r["remote_status"],
            reserved_credits=r["reserved_credits"],
            final_credits=r["final_credits"],
            result_urls=_json_tuple(r["result_urls"]),
            outputs=_json_tuple(r["outputs"]),
            error_code=r["error_code"],
            error_message=r["error_message"],
            request_id=r["request_id"],
            polls=r["polls"],
            in_manifest=bool(r["in_manifest"]),
            submitted_at=r["submitted_at"],
            finished_at=r["finished_at"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            task_created_at=get("task_created_at"),
            task_recorded_at=get("task_recorded_at"),
            task_started_at=get("task_started_at"),
            task_finished_at=get("task_finished_at"),
            output_sizes=_json_tuple(sizes) if sizes else None,
            output_sha256=_json_tuple(digests) if digests else None,
            prompt=get("prompt"),
            params=_json_object(get("params")),
            reference_files=_json_tuple(get("reference_files")),
        )


def _json_tuple(text: str | None) -> tuple[Any, ...]:
    """A stored JSON list as a tuple; most are empty, and those are not parsed."""
    if not text or text == "[]":
        return ()
    return tuple(json.loads(text))


@functools.lru_cache(maxsize=2048)
def _json_object(text: str | None) -> Any:
    """A stored JSON object (a request body, params), parsed once while recent: a job's row is
    read back after each of its changes, with the same body each time. The rows that share
    it only read it."""
    return json.loads(text) if text else None


@dataclass(frozen=True)
class RecordedOutputs:
    """A succeeded job's files as recorded: what a run checks against the disk."""

    job_key: str
    job_id: str
    request_hash: str
    outputs: tuple[str, ...]
    sizes: tuple[int, ...] | None
    sha256: tuple[str, ...] | None


@dataclass(frozen=True)
class AttemptRow:
    """A task an earlier attempt of a job created, kept when the job got a new attempt."""

    job_key: str
    job_id: str
    attempt: int
    task_id: str
    remote_status: str | None
    reserved_credits: int | None
    final_credits: int | None
    error_code: str | None
    error_message: str | None
    task_created_at: str | None
    task_finished_at: str | None
    ended_at: str
    why: str

    @classmethod
    def from_db(cls, r: dict[str, Any]) -> AttemptRow:
        return cls(**{name: r[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class StoredEvent:
    """A row of the ``events`` table: when, what kind, and what happened."""

    at: str
    kind: str
    detail: str


@dataclass(frozen=True)
class UploadRow:
    """A reference already uploaded in this batch, reusable until ``expires_at``."""

    source_key: str
    file_id: str
    url: str
    mime_type: str
    size_bytes: int
    name: str
    expires_at: str | None
    uploaded_at: str | None = None
