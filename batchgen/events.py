"""What happened during a run: one stream of typed events, and the bus that carries it.

Every part of a run that has something to tell (the runner, the client, the gates) emits a
frozen event on one ``EventBus``; whoever wants to know subscribes: the text log (with
timestamps), the progress display, the state's ``events`` table, and, later, a JSON log. No
subscriber is handed a component to poke at, and no component formats text for people.

Pure: no I/O here. Subscribers are plain callables; they run synchronously, in emit order, on
the event loop's thread, so they must be quick (a counter, a log line, a short SQLite write).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batchgen.models import JobStatus
from batchgen.outcome import StopReason


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event. ``at`` is the wall-clock time it happened (seconds since epoch)."""

    at: float = field(default_factory=time.time, kw_only=True)


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    batch: str
    jobs: int  # jobs the manifest names
    to_do: int  # of those, not yet in a terminal state
    workers: int
    by_status: tuple[tuple[str, int], ...] = ()  # counts per status of the manifest's jobs
    reserved_credits: int = 0  # credits the state holds as reserved / charged, at the start
    final_credits: int = 0


@dataclass(frozen=True, slots=True)
class Stopping(Event):
    """The run stops submitting (and, for a signal, polling): why, in a sentence."""

    reason: StopReason
    detail: str


@dataclass(frozen=True, slots=True)
class Estimate(Event):
    """The runner's forecast of the work left (the same model that schedules the polls)."""

    eta_s: float | None  # None: nothing to forecast from yet


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    stop_reasons: tuple[StopReason, ...]
    submitted: int
    replayed: int
    exit_code: int


# -- jobs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobChanged(Event):
    """A job's row moved to ``status`` (the store's state machine allowed it)."""

    job_id: str
    status: JobStatus
    previous: JobStatus | None = None
    task_id: str | None = None
    attempt: int = 1
    error_code: str | None = None
    message: str | None = None
    request_id: str | None = None
    credits: tuple[int | None, int | None] = (None, None)  # (reserved, final) after the change
    previous_credits: tuple[int | None, int | None] = (None, None)  # the same, before it


@dataclass(frozen=True, slots=True)
class Submitted(Event):
    job_id: str
    task_id: str
    replayed: bool  # the service answered with the task an earlier request created


@dataclass(frozen=True, slots=True)
class NewAttempt(Event):
    """A job gets a new idempotency key (its stored body was refused, or it was requeued)."""

    job_id: str
    attempt: int
    why: str


@dataclass(frozen=True, slots=True)
class Held(Event):
    """A submission gate said "not now" to a job."""

    job_id: str
    gate: str
    reason: StopReason
    message: str


@dataclass(frozen=True, slots=True)
class Uploaded(Event):
    source: str  # the local path or URL of the reference
    file_id: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class TaskStuck(Event):
    job_id: str
    task_id: str
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class JobUnfinished(Event):
    """Transient errors outlasted the retry policy; the job stays where it was for a rerun."""

    job_id: str
    error: str


@dataclass(frozen=True, slots=True)
class NeedsDecision(Event):
    """A job found mid-submit whose key was stored longer ago than the service may remember
    it: not resent; it stays ``submitting`` until a person decides (``--resend-expired``)."""

    job_id: str
    idempotency_key: str
    submitted_at: str | None  # when the key and body were made durable (ISO 8601)
    age_s: float  # inf: the time it was stored is unknown
    why: str


@dataclass(frozen=True, slots=True)
class KeyConflict(Event):
    """Create answered 409 idempotency_conflict: the service holds this job's key with another
    body. The job stays ``submitting`` (a task may exist for the key), never failed."""

    job_id: str
    idempotency_key: str
    request_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class WriteFailed(Event):
    """A result file of a paid task could not be written (an OSError): the job stays
    ``downloading`` and a rerun downloads it again without paying."""

    job_id: str
    task_id: str | None
    path: str
    error: str


@dataclass(frozen=True, slots=True)
class DownloadAgain(Event):
    """A succeeded job's file is missing or damaged: its results are downloaded again."""

    job_id: str
    why: str


@dataclass(frozen=True, slots=True)
class Downloaded(Event):
    job_id: str
    path: str
    size_bytes: int


# -- requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestAnswered(Event):
    """One HTTP exchange ended: ``status`` is None when no answer came (reset, timeout)."""

    endpoint: str  # a label without ids: "GET /api/v1/generations/{id}"
    status: int | None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimited(Event):
    """A 429: its request waits ``retry_after_s`` (None: the server gave no Retry-After); the
    limiter decides whether every other worker pauses too (see ``batchgen.limits``)."""

    endpoint: str
    retry_after_s: float | None
    rate_per_s: float | None = None  # the request rate granted after the 429


@dataclass(frozen=True, slots=True)
class RequestRetried(Event):
    endpoint: str
    attempt: int  # the attempt that failed (1-based)
    error: str  # the error's type name and message (never a header, never the key)
    delay_s: float


Subscriber = Callable[[Event], object]


class EventBus:
    """One channel for a run's events. ``emit`` calls every subscriber in order."""

    def __init__(self, *subscribers: Subscriber) -> None:
        self._subscribers: list[Subscriber] = list(subscribers)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in tuple(self._subscribers):
            subscriber(event)
