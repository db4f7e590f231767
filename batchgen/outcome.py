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
    4    stopped early but resumable (credits, stuck tasks, network, a gate, SIGTERM)
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
        StopReason.HELD: f"{outcome.held} job(s) held back by a submission gate",
    }
    return "; ".join(texts[r] for r in outcome.stop_reasons)


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
