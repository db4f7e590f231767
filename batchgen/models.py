"""Frozen dataclasses and enums that every layer shares. Pure: no I/O, no network, no database.

The identity scheme (issue "stable identity across edits"):

* ``request_hash(spec)`` hashes a job's *canonical request*: model, prompt, params and the content
  hashes of its references (not their upload URLs, which change). Edit one job's prompt and only
  that job's hash changes.
* ``job_key(batch, job_id, request_hash)`` names one version of one job. It is the primary key of
  the ``jobs`` table, so an edited job is a *new* row and never inherits an old idempotency key.
* ``idempotency_key(job_key, attempt)`` is what goes in the ``Idempotency-Key`` header. Attempt 1
  is the normal run; a deliberate re-run (a job blocked on credits, ``--retry-failed``) bumps it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

MODEL_ID = "kling-3-0"


@dataclass(frozen=True, order=True)
class Location:
    """Where something came from: a manifest node (line and column, 1-based) or a rows-file row."""

    file: str
    line: int
    column: int | None = None

    def __str__(self) -> str:
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Reference:
    """A reference image of a job: a local file (absolute path) or an http(s) URL.

    ``sha256`` is the content hash of a local file, filled in by validation; for a URL it is
    None and the URL itself stands in the request hash.
    """

    source: str
    where: Location | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    mime_type: str | None = None

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))

    @property
    def name(self) -> str:
        return self.source.rstrip("/").rsplit("/", 1)[-1] or "reference"

    @property
    def identity(self) -> str:
        """What stands for this reference in the request hash: content hash, else the URL."""
        return f"sha256:{self.sha256}" if self.sha256 else f"url:{self.source}"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One generation request as the manifest asked for it, validated.

    ``params`` holds the kling-3-0 params in the documented *string* form (``"5"``, ``"false"``),
    sorted by key, without ``referenceMediaItems`` (those are built at submit time from uploads).
    ``extra_params`` are params batchgen does not know (the manifest's ``extra_params``), in
    string form and sorted; they are sent beside ``params`` unchecked.
    """

    id: str
    prompt: str
    params: tuple[tuple[str, str], ...]
    references: tuple[Reference, ...] = ()
    where: Location | None = None
    model: str = MODEL_ID
    extra_params: tuple[tuple[str, str], ...] = ()
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def params_dict(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def request_hash(self) -> str:
        """``request_hash(self)``, computed once (a run asks for it several times per job)."""
        if self._hash is None:
            object.__setattr__(self, "_hash", request_hash(self))
        assert self._hash is not None
        return self._hash


def canonical_request(spec: JobSpec) -> dict[str, Any]:
    """The JSON value whose hash identifies a job's request (key order never matters).

    Extra params join ``params`` (their names never clash), so a job without any keeps the hash
    it had before ``extra_params`` existed, and editing one makes a new version.
    """
    return {
        "model": spec.model,
        "prompt": spec.prompt,
        "params": dict(sorted(spec.params + spec.extra_params)),
        "references": [r.identity for r in spec.references],
    }


def _sha256_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_hash(spec: JobSpec) -> str:
    """Hex sha256 of the canonical request: ``_sha256_json(canonical_request(spec))``, the
    same bytes built from parts (its keys sorted: model, params, prompt, references), where
    the params and references, shared by many jobs, are encoded once each."""
    text = "".join(
        (
            '{"model":',
            _json_text(spec.model),
            ',"params":',
            _params_json(spec.params, spec.extra_params),
            ',"prompt":',
            _json_text(spec.prompt),
            ',"references":',
            _references_json(spec.references),
            "}",
        )
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_json_text = json.encoder.encode_basestring  # a str as JSON text, non-ASCII kept (C-accelerated)


@lru_cache(maxsize=4096)
def _params_json(params: tuple[tuple[str, str], ...], extra: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(
        dict(sorted(params + extra)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


@lru_cache(maxsize=4096)
def _references_json(references: tuple[Reference, ...]) -> str:
    return json.dumps([r.identity for r in references], separators=(",", ":"), ensure_ascii=False)


def job_key(batch: str, job_id: str, req_hash: str) -> str:
    """Stable name of one version of one job: ``bg-`` + 32 hex characters (the sha256 of the
    JSON list ``[batch, job_id, req_hash]``, built directly)."""
    text = f"[{_json_text(batch)},{_json_text(job_id)},{_json_text(req_hash)}]"
    return "bg-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def idempotency_key(key: str, attempt: int) -> str:
    """The ``Idempotency-Key`` header value: ``[A-Za-z0-9._:-]``, well under 255 characters."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return f"{key}.{attempt}"


_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM_CHARS = 150


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1)."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def job_selected(job_id: str, only: Sequence[str]) -> bool:
    """Whether ``--only`` patterns (job ids or shell-style globs such as ``hero*``) choose
    this job; no patterns choose every job."""
    return not only or any(fnmatch.fnmatchcase(job_id, pattern) for pattern in only)


VERSION_HEX = 12  # hex digits of the request hash that name a job's version


def version_of(request_hash: str) -> str:
    """A job version's short name: the first ``VERSION_HEX`` hex digits of its request hash
    (a superseded version's files are ``<job id>~v<version>.mp4``; the report shows it)."""
    return request_hash[:VERSION_HEX]


def output_stem(name: str) -> str:
    """The file-name stem of a job id (or a reference's name): letters, digits and ``._-``
    only, no leading or trailing ``.``/``_``, at most 150 characters, never empty. Two ids with
    the same stem, ignoring letter case, would write one file (``Manifest`` refuses them)."""
    cleaned = _UNSAFE_IN_NAMES.sub("_", name).strip("._")
    return cleaned[:MAX_STEM_CHARS] or "job"


def parse_timestamp(stamp: str | None) -> float | None:
    """Seconds since the epoch of an ISO-8601 timestamp (``Z`` or an offset; naive means UTC);
    None when absent or unreadable."""
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def client_request_id(batch: str, job_id: str) -> str:
    """A traceable id for the request, at most 128 characters per the contract."""
    return f"{batch}/{job_id}"[:128]


MAX_JOBS = 100_000  # ``limits.max_jobs``'s default: past it, a manifest stops at validation


@dataclass(frozen=True)
class Limits:
    """Request budget. ``rate_per_s`` sustained requests per second over *all* requests,
    ``burst`` how many may go at once after a quiet spell, ``max_in_flight`` how many tasks may
    be submitted and not yet finished."""

    rate_per_s: float = 5.0
    burst: int = 5
    max_in_flight: int = 20
    max_credits: int | None = None  # the batch's budget: credits charged or held, at most
    max_jobs: int = MAX_JOBS  # a sanity cap: a manifest expanding past it stops at validation


@dataclass(frozen=True)
class Window:
    """The daily time window in which new jobs may be submitted: ``start`` to ``end`` as
    minutes after midnight in the time zone ``timezone`` (an IANA name; None: the machine's).
    ``end`` before ``start`` spans midnight (``22:00-06:00``)."""

    start_min: int
    end_min: int
    timezone: str | None = None
    text: str = ""  # as written, e.g. "22:00-06:00"


def parse_window(text: str) -> tuple[int, int]:
    """``"22:00-06:00"`` as (start, end) minutes after midnight."""
    match = re.fullmatch(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a window like 22:00-06:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: what to run, where outputs go, the request budget."""

    path: Path
    batch: str
    jobs: tuple[JobSpec, ...]
    output_dir: Path
    limits: Limits = field(default_factory=Limits)
    model: str = MODEL_ID
    window: Window | None = None  # ``schedule.window``: submit only inside it


class JobStatus(StrEnum):
    """Where a job is in its life. Stored as plain text in the ``jobs.status`` column."""

    PENDING = "pending"  # known from the manifest; nothing sent for this attempt yet
    SUBMITTING = "submitting"  # idempotency key durable; the create request may have been sent
    RUNNING = "running"  # task id known; remote task queued or processing
    DOWNLOADING = "downloading"  # remote task succeeded; result files not all on disk yet
    SUCCEEDED = "succeeded"  # terminal: every result file is on disk
    FAILED = "failed"  # terminal: permanent failure, recorded with error code and message
    BLOCKED = "blocked"  # out of credits; a later run resubmits with the next attempt number


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})

# The state machine the store enforces: from -> allowed next states.
TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.SUBMITTING, JobStatus.FAILED, JobStatus.BLOCKED}),
    # -> PENDING: the service refused the stored body (its uploads expired), so no task exists
    # for its key: a new attempt, with a new key and fresh uploads (``StateStore.new_attempt``).
    JobStatus.SUBMITTING: frozenset(
        {
            JobStatus.SUBMITTING,
            JobStatus.RUNNING,
            JobStatus.FAILED,
            JobStatus.BLOCKED,
            JobStatus.PENDING,
        }
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.DOWNLOADING, JobStatus.FAILED, JobStatus.BLOCKED}
    ),
    JobStatus.DOWNLOADING: frozenset(
        {JobStatus.DOWNLOADING, JobStatus.SUCCEEDED, JobStatus.FAILED}
    ),
    # -> DOWNLOADING: a result file was deleted or damaged; its paid task's results are
    # fetched again (``StateStore.download_again``), nothing is submitted.
    JobStatus.SUCCEEDED: frozenset({JobStatus.DOWNLOADING}),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),  # only by an explicit --retry-failed
    JobStatus.BLOCKED: frozenset({JobStatus.PENDING}),  # a later run picks it up
}


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    return new in TRANSITIONS[old]


class RemoteStatus(StrEnum):
    """A remote task's status as the service reports it. New values may appear (the service
    may add them without a new API version): they read as ``UNKNOWN``, never as an error."""

    QUEUED = "queued"  # waiting for a processing slot
    PROCESSING = "processing"  # rendering
    SUCCEEDED = "succeeded"  # terminal: result URLs are ready
    FAILED = "failed"  # terminal: ``error`` may say why (or be null)
    ENDED = "ended"  # terminal: another name that ends a task (``cancelled``, ``expired`` ...)
    UNKNOWN = "unknown"  # a status this batchgen does not know (the raw text is kept)

    @classmethod
    def parse(cls, text: object) -> RemoteStatus:
        """The status of a status text. Names that say the task ended without a result read
        as ``ENDED`` (the job fails with that name as its code); any other unknown name reads
        as ``UNKNOWN`` and is polled like ``processing``, under the stuck rule."""
        if not isinstance(text, str):
            return cls.UNKNOWN
        name = text.strip().lower()
        if name in ENDING_STATUS_NAMES:
            return cls.ENDED
        try:
            return cls(name) if name not in (cls.ENDED.value, cls.UNKNOWN.value) else cls.UNKNOWN
        except ValueError:
            return cls.UNKNOWN


# Status names a service may use for a task that ended without a result (the contract's
# reading: "names that end a task"). Any other unknown name is taken as still running.
ENDING_STATUS_NAMES = frozenset(
    {
        "cancelled",
        "canceled",
        "expired",
        "error",
        "errored",
        "timeout",
        "timed_out",
        "aborted",
        "rejected",
        "terminated",
        "killed",
        "deleted",
        "stopped",
    }
)


@dataclass(frozen=True)
class RemoteTask:
    """The API's task object, as the client parsed it."""

    id: str
    status: RemoteStatus
    reserved_credits: int | None = None
    final_credits: int | None = None
    result_urls: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    replayed: bool = False
    created_at: str | None = None  # the service's timestamps, as sent (ISO 8601)
    updated_at: str | None = None  # when the status last changed
    raw_status: str | None = None  # the status text as sent (differs from ``status`` if unknown)

    def __post_init__(self) -> None:
        if not isinstance(self.status, RemoteStatus):  # a caller passed the text
            object.__setattr__(self, "status", RemoteStatus.parse(self.status))

    @property
    def is_terminal(self) -> bool:
        return self.status in (RemoteStatus.SUCCEEDED, RemoteStatus.FAILED, RemoteStatus.ENDED)


@dataclass(frozen=True)
class UploadedFile:
    """An uploaded reference, as the Files API described it (``id`` or the ``file_id`` variant)."""

    id: str
    url: str
    mime_type: str
    size_bytes: int
    name: str
    expires_at: str | None = None
