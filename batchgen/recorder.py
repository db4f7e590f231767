"""The state's ``events`` table as a subscriber: what a person may want to know later.

Not every event: a batch of a million jobs must not write a million rows of routine. Kept:
the start and end of each run, stops, stuck tasks, jobs left unfinished, failures and the
first hold of each gate, and what a person must act on: a job that needs a decision (its key
outlived the service's memory), an idempotency conflict, a result file that could not be
written. (A new attempt is written by ``StateStore.new_attempt`` itself, in the
same transaction as the change.) ``batchgen status`` shows the latest of them.
"""

from __future__ import annotations

from batchgen.events import (
    Event,
    Held,
    JobChanged,
    JobUnfinished,
    KeyConflict,
    NeedsDecision,
    RunFinished,
    RunStarted,
    Stopping,
    TaskStuck,
    WriteFailed,
)
from batchgen.models import JobStatus
from batchgen.store import StateStore


class EventRecorder:
    """Subscribe an instance to a run's ``EventBus``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._held: set[str] = set()

    def __call__(self, event: Event) -> None:
        kind, job_id, detail = _describe(event)
        if kind == "held":
            if detail in self._held:
                return
            self._held.add(detail)
        if kind is not None and job_id is not None:
            self.store.log_job_event(job_id, kind, detail)
        elif kind is not None:
            self.store.log_event(None, kind, detail)


def _describe(event: Event) -> tuple[str | None, str | None, str]:
    match event:
        case RunStarted():
            return "run_started", None, f"{event.to_do} of {event.jobs} jobs to work on"
        case RunFinished():
            why = ", ".join(r.value for r in event.stop_reasons) or "done"
            return "run_finished", None, f"exit {event.exit_code} ({why})"
        case Stopping():
            return "stopping", None, event.detail
        case TaskStuck():
            return "stuck", event.job_id, f"task {event.task_id} after {event.elapsed_s:.0f}s"
        case JobUnfinished():
            return "unfinished", event.job_id, event.error
        case NeedsDecision() | KeyConflict() | WriteFailed():
            return _attention(event)
        case JobChanged(status=JobStatus.FAILED):
            return "failed", event.job_id, f"{event.error_code}: {event.message}"
        case Held():
            return "held", None, f"{event.gate}: {event.message}"
    return None, None, ""


def _attention(event: NeedsDecision | KeyConflict | WriteFailed) -> tuple[str, str, str]:
    """What a person must act on, one row per job."""
    match event:
        case NeedsDecision():
            return "needs_decision", event.job_id, event.why
        case KeyConflict():
            return "key_conflict", event.job_id, f"key {event.idempotency_key}: {event.message}"
    return "write_failed", event.job_id, f"task {event.task_id}: {event.path}: {event.error}"
