"""Watching a batch: ``batchgen status`` as text or JSON, and ``status --watch``, which redraws
it every few seconds from another shell while a run holds the state.

Read only: the status is read from the state database with a read-only connection, and whether
a run holds the state is a shared, non-blocking try of its lock that is released at once
(``commands.run_holds_lock``); the watch never takes the run's lock.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from batchgen.binding import describe_service
from batchgen.commands import BatchStatus, InFlight
from batchgen.console import iso_now
from batchgen.redact import redact
from batchgen.report import Report, ReportStatus, render_totals, to_dict

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen


def failures_by_code(report: Report) -> dict[str, int]:
    """Failed jobs counted by their recorded error code (``unknown`` when none was recorded),
    most frequent first."""
    codes = Counter(
        (job.error.code if job.error and job.error.code else "unknown")
        for job in report.jobs
        if job.status is ReportStatus.FAILED
    )
    return dict(codes.most_common())


def status_to_dict(status: BatchStatus) -> dict[str, Any]:
    """``batchgen status --json``: one object (totals in the JSON report's shape)."""
    report = status.report
    totals = to_dict(report)["totals"]
    oldest = status.oldest_in_flight
    return {
        "batch": report.batch,
        "state_file": report.state_file,
        "running": status.running,
        "totals": totals,
        "by_status": totals["by_status"],
        "failures": failures_by_code(report),
        "oldest_in_flight": None if oldest is None else _in_flight_dict(oldest),
        "events": [{"at": e.at, "kind": e.kind, "detail": e.detail} for e in status.events],
        "removed": list(report.removed),
        "service": report.service,
    }


def _in_flight_dict(f: InFlight) -> dict[str, Any]:
    age = None if f.age_s is None else round(f.age_s, 1)
    return {
        "job_id": f.job_id,
        "task_id": f.task_id,
        "age_s": age,
        "remote_status": f.remote_status,
    }


def render_status_json(status: BatchStatus) -> str:
    return redact(json.dumps(status_to_dict(status), indent=2))


def render_status(status: BatchStatus) -> str:
    """``batchgen status``: totals, service, failures by code, the oldest task in flight and
    the latest events."""
    report = status.report
    lines = [render_totals(report), describe_service(report.service)]
    lines.append("a run holds this state now" if status.running else "no run holds this state")
    failures = failures_by_code(report)
    if failures:
        lines.append("failures: " + ", ".join(f"{n} {code}" for code, n in failures.items()))
    oldest = status.oldest_in_flight
    if oldest is not None:
        age = "age unknown" if oldest.age_s is None else f"{oldest.age_s:.0f}s old"
        lines.append(
            f"oldest in flight: {oldest.job_id} (task {oldest.task_id}, {age}, "
            f"{oldest.remote_status or 'status unknown'})"
        )
    if status.events:
        lines.append("latest events:")
        lines += [f"  {e.at}  {e.kind}: {e.detail}" for e in status.events]
    return redact("\n".join(lines))


def finished(status: BatchStatus) -> bool:
    """No run holds the state and no job of it is in flight (submitting, running or
    downloading)."""
    busy = (ReportStatus.SUBMITTING, ReportStatus.RUNNING, ReportStatus.DOWNLOADING)
    return not status.running and not any(status.report.totals.count(s) for s in busy)


def watch_status(
    read: Callable[[], BatchStatus],
    render: Callable[[BatchStatus], str],
    *,
    interval_s: float,
    until_done: bool,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchStatus:
    """Redraw the status every ``interval_s`` until interrupted or, with ``until_done``,
    until ``finished``; returns the last status read. On a terminal the screen is cleared
    and redrawn in place; otherwise each refresh is a block headed by an ISO timestamp."""
    out = out or sys.stdout
    tty = bool(getattr(out, "isatty", None) and out.isatty())
    while True:
        status = read()
        text = render(status)
        if tty:
            out.write(f"{CLEAR}{iso_now()}  (every {interval_s:g}s; Ctrl-C to stop)\n{text}\n")
        else:
            out.write(f"-- {iso_now()}\n{text}\n")
        out.flush()
        if until_done and finished(status):
            return status
        sleep(interval_s)
