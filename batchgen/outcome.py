"""How a run ended: the stop reasons on its outcome, and the one function to an exit code.

Every exit code batchgen returns is decided here, from one of two things:

* a finished (or stopped) run: ``run_exit_code(outcome, by_status)`` looks at why the run
  stopped and at the jobs' statuses;
* an error that ended a command: ``error_exit_code(exc)`` looks at its type.

The codes, as the README's table documents them::

    0    every job succeeded
    1    run-wide error (bad key, missing scope, unreadable or locked state, a bug)
    2    usage error or invalid manifest (nothing was sent)
    3    the batch finished, but some jobs failed
    4    stopped early but resumable (credits, stuck tasks, network, a gate, SIGTERM); also
         when a person must act first (a job that needs a decision, an idempotency conflict,
         an unwritable output folder): like running out of credits, nothing is lost and
         nothing was paid twice; the summary says what to do, then the same command resumes
    130  interrupted by Ctrl-C (SIGINT)
    141  the output pipe was closed (`batchgen report --format json | head`)
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from batchgen.errors import (
    InsufficientCreditsError,
    Interrupted,
    ManifestError,
    UsageError,
)
from batchgen.models import JobStatus


class ExitCode(IntEnum):
    OK = 0
    RUN_ERROR = 1
    USAGE = 2
    SOME_FAILED = 3
    RESUMABLE = 4
    INTERRUPTED = 130
    PIPE_CLOSED = 141  # the reader of the output went away (`| head`), as after SIGPIPE


class StopReason(StrEnum):
    """Why a run stopped before every job reached a terminal state."""

    SIGINT = "sigint"  # Ctrl-C: exit 130
    SIGTERM = "sigterm"  # SIGTERM (a service manager, `kill`): exit 4
    CREDITS = "credits"  # the wallet ran out: jobs left blocked until a top-up
    STUCK = "stuck"  # tasks polled past their deadline, still running remotely
    UNFINISHED = "unfinished"  # transient errors outlasted the retry policy for some jobs
    HELD = "held"  # a submission gate (a deadline, a budget, a limit, ...) said "not now"
    NEEDS_DECISION = "needs_decision"  # a job mid-submit past the key lifetime: not resent
    KEY_CONFLICT = "key_conflict"  # the service holds this job's key with another body
    OUTPUT_UNWRITABLE = "output_unwritable"  # a paid result could not be written to disk

    @classmethod
    def for_signal(cls, signum: int) -> StopReason:
        return cls.SIGINT if signum == signal.SIGINT else cls.SIGTERM


@dataclass
class RunOutcome:
    """What a run did and why it stopped (``stop_reasons`` empty: nothing stopped it)."""

    stop_reasons: list[StopReason] = field(default_factory=list)
    submitted: int = 0  # create requests answered with a new task in this run
    replayed: int = 0  # create requests answered with an existing task (a resume)
    stuck: int = 0  # tasks polled past their deadline, left running remotely
    unfinished: int = 0  # jobs whose transient errors outlasted the retry policy
    held: int = 0  # jobs a submission gate kept from being submitted
    holds: dict[str, str] = field(default_factory=dict)  # gate name -> its first hold message
    # what a person must look at before the batch can go on, one sentence per job
    needs_decision: list[str] = field(default_factory=list)  # keys past their lifetime
    key_conflicts: list[str] = field(default_factory=list)  # 409 idempotency_conflict
    write_errors: list[str] = field(default_factory=list)  # result files not written

    def stop(self, reason: StopReason) -> bool:
        """Record ``reason``; True the first time it is recorded."""
        if reason in self.stop_reasons:
            return False
        self.stop_reasons.append(reason)
        return True


def describe_stops(outcome: RunOutcome) -> str:
    """Why the run stopped early, for people: "credits ran out (...); 2 task(s) ..."."""
    texts = {
        StopReason.SIGINT: "stopped by SIGINT",
        StopReason.SIGTERM: "stopped by SIGTERM",
        StopReason.CREDITS: "credits ran out (top up, then run the same command again)",
        StopReason.STUCK: f"{outcome.stuck} task(s) still running remotely",
        StopReason.UNFINISHED: (
            f"{outcome.unfinished} job(s) hit persistent network or server errors"
        ),
        StopReason.HELD: f"{outcome.held} job(s) held back by a submission gate"
        + "".join(f"; {gate}: {message}" for gate, message in outcome.holds.items()),
        StopReason.NEEDS_DECISION: _needs_decision(outcome.needs_decision),
        StopReason.KEY_CONFLICT: _key_conflict(outcome.key_conflicts),
        StopReason.OUTPUT_UNWRITABLE: _unwritable(outcome.write_errors),
    }
    return "; ".join(texts[r] for r in outcome.stop_reasons)


def needs_attention(outcome: RunOutcome) -> bool:
    """Whether running the same command again is not enough: a person must act first."""
    return bool({StopReason.NEEDS_DECISION, StopReason.KEY_CONFLICT} & set(outcome.stop_reasons))


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:3])
    return shown + (f"; and {len(items) - 3} more" if len(items) > 3 else "")


def _needs_decision(items: list[str]) -> str:
    return (
        f"{len(items)} job(s) were left mid-submit for longer than the service remembers an "
        f"Idempotency-Key, and were not sent again ({_listed(items)}). The service may have "
        "created and charged a task from the first request, or never received it; it may have "
        "forgotten the key, so a resend could create a second task. Check the account's task "
        "list for the job (its client_request_id is <batch>/<job id>): if no task is there, run "
        "the same command with --resend-expired (risk: a second charge if the first request "
        "did reach the service); if one is, do not resend: without that flag the job is never "
        "sent again"
    )


def _key_conflict(items: list[str]) -> str:
    return (
        f"the service already has a task for {len(items)} job(s)' idempotency key, made from "
        f"another request body ({_listed(items)}), so nothing more was submitted: the state "
        "that recorded those tasks is missing or was replaced (a deleted state file, or a "
        "reference re-uploaded under a new URL). Restore that state file (or pass it with "
        "--state FILE) and run again; do not use --retry-failed, which would pay for the job "
        "again"
    )


def _unwritable(items: list[str]) -> str:
    return (
        f"{len(items)} result file(s) could not be written ({_listed(items)}); the tasks are "
        "paid for and the jobs stay downloading, and nothing new was submitted. Free space or "
        "fix the output folder's permissions, then run the same command: the videos are "
        "downloaded again without paying"
    )


def run_exit_code(outcome: RunOutcome, by_status: Mapping[str, int]) -> ExitCode:
    """The exit code of a run from why it stopped and its jobs' statuses."""
    if StopReason.SIGINT in outcome.stop_reasons:
        return ExitCode.INTERRUPTED
    unfinished = sum(
        n for s, n in by_status.items() if s not in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    )
    if outcome.stop_reasons or unfinished:
        return ExitCode.RESUMABLE
    if by_status.get(JobStatus.FAILED, 0):
        return ExitCode.SOME_FAILED
    return ExitCode.OK


def jobs_exit_code(by_status: Mapping[str, int]) -> ExitCode:
    """The exit code the jobs' statuses alone call for (``report``: no run to ask)."""
    return run_exit_code(RunOutcome(), by_status)


def error_exit_code(exc: BaseException) -> ExitCode:
    """The exit code of an error that ended a command."""
    if isinstance(exc, Interrupted):
        return signal_exit_code(exc.signum)
    if isinstance(exc, UsageError | ManifestError):
        return ExitCode.USAGE
    if isinstance(exc, InsufficientCreditsError):
        return ExitCode.RESUMABLE
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return ExitCode.PIPE_CLOSED
    return ExitCode.RUN_ERROR  # any other BatchgenError, and a bug


def signal_exit_code(signum: int) -> ExitCode:
    """SIGINT exits 130 (the shell's convention); SIGTERM 4 (resumable: rerun to continue)."""
    return ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.RESUMABLE
