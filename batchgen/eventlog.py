"""The text log: one subscriber that turns a run's events into ``logging`` records.

Levels: warnings for what a person should act on (failures, stuck tasks, a stop); info (``-v``)
for each job's progress. Every HTTP request and retry is logged at debug (``-vv``) by the client
itself, with its path and attempt number: its ``RequestAnswered`` and ``RequestRetried`` events
are not logged a second time here. Each record carries the job id
as ``record.job_id`` for handlers that want it as a field.
"""

from __future__ import annotations

import logging

from batchgen.events import (
    DownloadAgain,
    Downloaded,
    Event,
    Held,
    JobChanged,
    JobUnfinished,
    KeyConflict,
    NeedsDecision,
    NewAttempt,
    RateLimited,
    RunFinished,
    RunStarted,
    Stopping,
    Submitted,
    TaskStuck,
    Uploaded,
    WriteFailed,
)
from batchgen.models import JobStatus

log = logging.getLogger("batchgen.run")


class EventLog:
    """Subscribe an instance to a run's ``EventBus``."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.log = logger
        self._gates_heard: set[str] = set()

    def __call__(self, event: Event) -> None:
        handler = getattr(self, "_" + type(event).__name__, None)
        if handler is not None:
            handler(event)

    def _say(self, level: int, text: str, job_id: str | None = None) -> None:
        if self.log.isEnabledFor(level):
            self.log.log(level, text, extra={"job_id": job_id})

    def _RunStarted(self, e: RunStarted) -> None:
        self._say(
            logging.INFO,
            f"batch {e.batch}: {e.to_do} of {e.jobs} jobs to work on, {e.workers} workers",
        )

    def _JobChanged(self, e: JobChanged) -> None:
        if e.status is JobStatus.FAILED:
            rid = f" (request {e.request_id})" if e.request_id else ""
            self._say(logging.WARNING, f"{e.job_id}: failed: {e.message}{rid}", e.job_id)
        elif e.status is JobStatus.BLOCKED:
            self._say(logging.INFO, f"{e.job_id}: blocked: {e.message}", e.job_id)
        elif e.status is JobStatus.SUCCEEDED:
            self._say(logging.INFO, f"{e.job_id}: succeeded", e.job_id)
        elif e.status is JobStatus.DOWNLOADING and e.previous is JobStatus.RUNNING:
            self._say(logging.INFO, f"{e.job_id}: task {e.task_id} succeeded", e.job_id)

    def _Submitted(self, e: Submitted) -> None:
        how = " (replayed: the service already had it)" if e.replayed else ""
        self._say(logging.INFO, f"{e.job_id}: submitted as {e.task_id}{how}", e.job_id)

    def _NewAttempt(self, e: NewAttempt) -> None:
        self._say(logging.INFO, f"{e.job_id}: attempt {e.attempt}: {e.why}", e.job_id)

    def _Held(self, e: Held) -> None:
        first = e.gate not in self._gates_heard
        self._gates_heard.add(e.gate)
        level = logging.WARNING if first and e.gate not in ("credits", "signal") else logging.INFO
        self._say(level, f"{e.job_id}: not submitted ({e.gate}): {e.message}", e.job_id)

    def _Uploaded(self, e: Uploaded) -> None:
        self._say(logging.INFO, f"uploaded {e.source} as {e.file_id} ({e.size_bytes:,} bytes)")

    def _TaskStuck(self, e: TaskStuck) -> None:
        self._say(
            logging.WARNING,
            f"{e.job_id}: task {e.task_id} is unfinished after {e.elapsed_s:.0f}s; "
            "a rerun resumes it",
            e.job_id,
        )

    def _JobUnfinished(self, e: JobUnfinished) -> None:
        self._say(
            logging.WARNING, f"{e.job_id}: gave up for this run ({e.error}); a rerun resumes it"
        )

    def _NeedsDecision(self, e: NeedsDecision) -> None:
        self._say(logging.WARNING, f"{e.job_id}: not sent again: {e.why}", e.job_id)

    def _KeyConflict(self, e: KeyConflict) -> None:
        rid = f" (request {e.request_id})" if e.request_id else ""
        self._say(
            logging.WARNING,
            f"{e.job_id}: the service already has a task for key {e.idempotency_key} made from "
            f"another request body{rid}; the job is kept mid-submit, not failed",
            e.job_id,
        )

    def _WriteFailed(self, e: WriteFailed) -> None:
        self._say(
            logging.WARNING,
            f"{e.job_id}: task {e.task_id} succeeded but {e.path} cannot be written ({e.error}); "
            "the task is paid for: a rerun downloads it again without paying",
            e.job_id,
        )

    def _DownloadAgain(self, e: DownloadAgain) -> None:
        self._say(logging.WARNING, f"{e.job_id}: {e.why}; downloading it again", e.job_id)

    def _Downloaded(self, e: Downloaded) -> None:
        self._say(logging.INFO, f"{e.job_id}: saved {e.path} ({e.size_bytes:,} bytes)", e.job_id)

    def _Stopping(self, e: Stopping) -> None:
        self._say(logging.WARNING, e.detail)

    def _RateLimited(self, e: RateLimited) -> None:
        wait = "no Retry-After" if e.retry_after_s is None else f"Retry-After {e.retry_after_s:g}s"
        rate = f"; rate now {e.rate_per_s:.2f}/s" if e.rate_per_s is not None else ""
        self._say(logging.INFO, f"429 on {e.endpoint} ({wait}){rate}")

    def _RunFinished(self, e: RunFinished) -> None:
        why = ", ".join(r.value for r in e.stop_reasons) or "nothing left to do"
        self._say(
            logging.INFO,
            f"run finished ({why}): {e.submitted} submitted, {e.replayed} replayed; "
            f"exit {e.exit_code}",
        )
