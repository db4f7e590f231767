"""The one exception tree of batchgen.

Everything batchgen raises on purpose is a ``BatchgenError``. Library errors (aiohttp, sqlite3,
yaml, OSError) are translated at the boundary with ``raise ... from exc``. Whether an error is
retried is decided by its *type*, never by its message text. The exit code an error ends a
command with is decided in one place, ``batchgen.outcome.error_exit_code`` (shown on the right)::

    BatchgenError                      1  unless listed otherwise
    ├── UsageError                     2  wrong flags / arguments
    ├── ManifestError                  2  manifest or rows file invalid; .problems lists all
    ├── ConfigError                    1  run-wide setup: no API key, insecure base URL, ...
    ├── StateError                     1  state database unreadable, locked, from a newer batchgen
    ├── ApiError                          the API answered with an error envelope (or a bare status)
    │   ├── RunWideApiError            1  stop the whole run at once, mark no job failed
    │   │   ├── AuthError                 401 api_key_missing / _invalid / _revoked / _expired
    │   │   └── ScopeDeniedError          403 api_scope_denied
    │   ├── JobApiError                   that job fails permanently, never retried
    │   │   ├── ValidationFailedError     400 validation_failed
    │   │   ├── NotFoundError             404 not_found
    │   │   ├── IdempotencyConflictError  409 idempotency_conflict: never fails the job (the
    │   │   │                             service holds a task for its key); stops submitting
    │   │   ├── ClientRequestError        any other / unknown 4xx
    │   │   └── BadAnswerError            bad_answer: a 2xx whose content cannot be trusted
    │   │                                 (credits out of range, an unsafe id, our key echoed)
    │   ├── InsufficientCreditsError   4  402 insufficient_credits: stop submitting, resumable
    │   └── TransientApiError             retried with backoff (same idempotency key)
    │       ├── RateLimitedError          429 rate_limited (.retry_after_s may be None)
    │       ├── ServiceUnavailableError   503 public_api_disabled
    │       │   └── ServiceDisabledError      ... with its Retry-After (.retry_after_s)
    │       └── ServerError               any other 5xx, known or unknown code
    ├── TransportError                    no usable answer: reset, timeout, bad body (retried)
    │   └── DownloadTimeoutError          a download outlasted its deadline (download_timeout)
    ├── ResultExpiredError                a result URL answered 404/410: fetch the task again
    ├── LocalJobError                     a local problem fails one job (unreadable reference,
    │   │                                 a reference changed since validation, bad file name)
    │   └── ResultRefusedError            a result the client will not keep: too large
    │                                     (result_too_large), not a video (result_not_video)
    ├── OutputWriteError                  a result file cannot be written (disk full, read-only
    │                                     or vanished folder): the job stays downloading (its
    │                                     task is paid for), the run stops submitting, exit 4
    ├── RetryExhaustedError            1  a transient error outlasted the attempt cap or deadline
    └── Interrupted             130 or 4  SIGINT (130) / SIGTERM (4) before the run could stop
                                          on its own (validation, job sync): nothing was sent

A remote task that ends ``failed`` and a run stopped by credits, a gate or a signal are not
errors: they are recorded on the job's row and on the run's outcome (``batchgen.outcome``).

``RETRYABLE`` is the tuple of types that a retry policy may retry.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass


class BatchgenError(Exception):
    """Base of every error batchgen raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  {self.hint}"
        return self.message


class UsageError(BatchgenError):
    """The command line is wrong (unknown flag, missing file argument, bad value)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where (``file:line:column`` or ``file:row``) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ManifestError(BatchgenError):
    """The manifest or a file it names is invalid. Nothing was sent. ``problems`` lists them all."""

    def __init__(self, problems: Sequence[Problem], *, hint: str | None = None) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"the manifest has {count} problem{'s' if count != 1 else ''}; nothing was sent"
        body = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"{head}:\n{body}",
            hint=hint or f"Fix {'them' if count != 1 else 'it'}, then run the same command again.",
        )


class ConfigError(BatchgenError):
    """Run-wide configuration is unusable (no API key, a key over plain http, bad base URL)."""


class StateError(BatchgenError):
    """The state database cannot be used (unreadable, locked, written by a newer batchgen)."""


class ApiError(BatchgenError):
    """The Rivya API answered a request with an error.

    ``code`` is the envelope's ``error.code`` (the contract); ``status`` the HTTP status;
    ``request_id`` the envelope's ``requestId`` (keep it: support asks for it).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status
        self.request_id = request_id


class RunWideApiError(ApiError):
    """An answer that means no request of this run can succeed: stop the run, fail no job."""


class AuthError(RunWideApiError):
    """401: the API key is missing, invalid, revoked or expired."""


class ScopeDeniedError(RunWideApiError):
    """403 api_scope_denied: the key lacks the scope this endpoint needs."""


class JobApiError(ApiError):
    """The API refused this job's request for good: record it on the job, never retry."""


class ValidationFailedError(JobApiError):
    """400 validation_failed."""


class NotFoundError(JobApiError):
    """404 not_found: the task (or file) is not this account's, or does not exist."""


class IdempotencyConflictError(JobApiError):
    """409 idempotency_conflict: the key was used with a different body."""


class ClientRequestError(JobApiError):
    """Any other or unknown 4xx: not retryable per the contract."""


class InsufficientCreditsError(ApiError):
    """402 insufficient_credits: stop submitting new jobs; the run is resumable."""


class TransientApiError(ApiError):
    """An error answer that may go away: retried with backoff and the same idempotency key."""


class RateLimitedError(TransientApiError):
    """429 rate_limited; ``retry_after_s`` is the Retry-After in seconds, if the server sent one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class ServiceUnavailableError(TransientApiError):
    """503 public_api_disabled: the public API is switched off for now."""


class ServerError(TransientApiError):
    """Any 5xx, with a known or unknown code."""


class TransportError(BatchgenError):
    """No usable answer: connection refused or reset, timeout, truncated or non-JSON body."""


class ResultExpiredError(BatchgenError):
    """A result URL answered 404/410: it expired; GET the task again for fresh URLs."""


class LocalJobError(BatchgenError):
    """A local problem that fails one job, recorded on its row with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class OutputWriteError(BatchgenError):
    """Writing a result file failed with an OSError: a local problem, not the network's and not
    the job's. ``path`` is the file, ``reason`` the OS's words for it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"cannot write {path}: {reason}",
            hint="Check free space and permissions of the output folder, then run again.",
        )
        self.path = path
        self.reason = reason


class RetryExhaustedError(BatchgenError):
    """A transient error persisted past the attempt cap or the deadline."""

    def __init__(self, message: str, *, last: BaseException | None = None) -> None:
        super().__init__(message)
        self.last = last


class Interrupted(BatchgenError):
    """A signal arrived before the run could stop on its own (during validation or the job
    sync): nothing was sent, the state is consistent. Run the same command again to resume."""

    def __init__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name}; nothing was lost",
            hint="Run the same command again to resume: finished jobs are kept.",
        )
        self.signum = signum


class BadAnswerError(JobApiError):
    """A 2xx answer the client cannot trust for this job (code ``bad_answer``): a number out of
    range, an id unsafe in a URL or a terminal, the API key echoed back. That job fails; the run
    goes on. The message names the field and (a cleaned, truncated) value."""

    def __init__(self, message: str, *, status: int = 200, request_id: str | None = None) -> None:
        super().__init__(message, code="bad_answer", status=status, request_id=request_id)


class ServiceDisabledError(ServiceUnavailableError):
    """503 public_api_disabled; ``retry_after_s`` is its Retry-After in seconds, if sent."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class DownloadTimeoutError(TransportError):
    """A download (a result or a reference) outlasted its overall deadline, or stalled: retried
    like any transport error. ``code`` is ``download_timeout``."""

    code = "download_timeout"


class ResultRefusedError(LocalJobError):
    """A result file the client refuses to keep (``result_too_large``: over
    ``max_result_bytes``; ``result_not_video``: its first bytes are no MP4/MOV or WebM/Matroska
    container). Nothing is left on disk; that job fails its download, the run goes on."""


RETRYABLE: tuple[type[BaseException], ...] = (TransientApiError, TransportError)
"""Error types a retry policy may retry. Everything else is final for that request."""
