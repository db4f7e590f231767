"""``run --on-finish CMD``: a command run through the shell once the run has ended, with the
run's summary as JSON on its standard input (a notification, an upload, the next step).

The summary (``run_summary``): ``batch``, ``exit_code``, ``stop_reasons``, ``submitted``,
``replayed``, ``totals`` (the report's totals, as ``batchgen report --format json`` has them),
``state_file`` and ``finished_at`` (ISO 8601 UTC). A run-wide error after the run started gives
the same keys with ``totals`` null and an ``error`` sentence (``error_summary``).

The command's own exit status and output never change batchgen's exit code: a failing command,
one that cannot start, or one still running after ``timeout_s`` (it is killed, with whatever it
started) is logged as a warning. Its environment is batchgen's without ``RIVYA_API_KEY`` (and
without any variable whose value holds the key); the summary passes through ``redact()``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchgen.outcome import RunOutcome
from batchgen.redact import redact
from batchgen.report import Report, to_dict

log = logging.getLogger("batchgen")

DEFAULT_TIMEOUT_S = 60.0
KEY_VARIABLE = "RIVYA_API_KEY"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_summary(
    report: Report, outcome: RunOutcome, exit_code: int, state_path: Path
) -> dict[str, Any]:
    """What the ``--on-finish`` command reads on its standard input after a run."""
    return {
        "batch": report.batch,
        "exit_code": int(exit_code),
        "stop_reasons": [reason.value for reason in outcome.stop_reasons],
        "submitted": outcome.submitted,
        "replayed": outcome.replayed,
        "totals": to_dict(report)["totals"],
        "state_file": str(state_path),
        "finished_at": _now_iso(),
    }


def error_summary(batch: str | None, exit_code: int, error: str) -> dict[str, Any]:
    """The summary of a run that a run-wide error ended after it started (no report)."""
    return {
        "batch": batch,
        "exit_code": int(exit_code),
        "stop_reasons": [],
        "submitted": None,
        "replayed": None,
        "totals": None,
        "state_file": None,
        "finished_at": _now_iso(),
        "error": error,
    }


def command_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without the API key."""
    source = os.environ if env is None else env
    return {
        name: value
        for name, value in source.items()
        if name != KEY_VARIABLE and redact(value) == value
    }


def run_on_finish(
    command: str,
    summary: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> int | None:
    """Run ``command`` through the shell with ``summary`` as JSON on stdin; its exit status,
    or None when it could not start or was killed after ``timeout_s``. Never raises for the
    command's sake: what went wrong is logged."""
    data = redact(json.dumps(summary, indent=2)).encode("utf-8") + b"\n"
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # the user's own shell command, by design
            command,
            shell=True,
            stdin=subprocess.PIPE,
            env=command_env(env),
            start_new_session=True,  # its own process group: a timeout ends all of it
        )
    except OSError as exc:
        log.warning("--on-finish: %r could not start: %s", command, exc)
        return None
    try:
        proc.communicate(data, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        log.warning(
            "--on-finish: %r was still running after %gs; it was stopped", command, timeout_s
        )
        return None
    if proc.returncode != 0:
        log.warning(
            "--on-finish: %r exited %d after %.1fs (batchgen's exit code is unchanged)",
            command,
            proc.returncode,
            time.monotonic() - started,
        )
    return proc.returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()
