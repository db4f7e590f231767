"""Progress while a batch runs, from the run's events: one status line, redrawn in place on a
terminal (``Console``), printed as plain periodic lines when not (cron, CI, a log file).

The display subscribes to the run's ``EventBus`` and keeps its own figures: counts per status
(from ``RunStarted`` and each ``JobChanged``), credits reserved and charged, requests and 429s
(``RequestAnswered``, ``RateLimited``), what a person must act on (``NeedsDecision``,
``KeyConflict``, ``WriteFailed``) and the runner's ETA (``Estimate``, computed from the same
forecasts that schedule the polls). It redraws on each ``Estimate`` (every progress interval).
"""

from __future__ import annotations

import time
from collections import Counter

from batchgen.console import Console
from batchgen.events import (
    Estimate,
    Event,
    JobChanged,
    KeyConflict,
    NeedsDecision,
    RateLimited,
    RequestAnswered,
    RunStarted,
    WriteFailed,
)
from batchgen.models import JobStatus

ORDER = tuple(JobStatus)
ATTENTION: dict[type[Event], str] = {
    NeedsDecision: "need a decision (see the summary)",
    KeyConflict: "key conflict (see the summary)",
    WriteFailed: "not written to disk",
}


class ProgressDisplay:
    """Subscribe it to a run's events; it draws on ``console``."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.started = time.monotonic()
        self.by_status: Counter[str] = Counter()
        self.reserved = self.charged = 0
        self.requests = self.rate_limited = 0
        self.eta_s: float | None = None
        self.attention: Counter[str] = Counter()  # what a person must act on, by kind
        self._mark = (self.started, 0)
        self._last = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestAnswered):
            self.requests += 1
        elif isinstance(event, JobChanged):
            self._job_changed(event)
        elif isinstance(event, RateLimited):
            self.rate_limited += 1
        elif isinstance(event, Estimate):
            self.eta_s = event.eta_s
            self.draw()
        elif isinstance(event, NeedsDecision | KeyConflict | WriteFailed):
            self.attention[ATTENTION[type(event)]] += 1
            self.draw()
        elif isinstance(event, RunStarted):
            self.by_status = Counter(dict(event.by_status))
            self.reserved, self.charged = event.reserved_credits, event.final_credits
            self.draw()

    def _job_changed(self, e: JobChanged) -> None:
        if e.previous is not None:
            self.by_status[e.previous] -= 1
        self.by_status[e.status] += 1
        before_reserved, before_final = e.previous_credits
        after_reserved, after_final = e.credits
        self.reserved += (after_reserved or 0) - (before_reserved or 0)
        self.charged += (after_final or 0) - (before_final or 0)

    def line(self) -> str:
        by = self.by_status
        done = by[JobStatus.SUCCEEDED] + by[JobStatus.FAILED]
        parts = [f"{by[s]} {s}" for s in ORDER if by[s] > 0]
        text = (
            f"[{_clock(time.monotonic() - self.started)}] {done}/{self.total} done: "
            f"{', '.join(parts) or 'nothing yet'} | credits {self.charged} charged, "
            f"{self.reserved} reserved"
        )
        text += self._requests()
        if self.attention:
            text += " | " + ", ".join(f"{n} {what}" for what, n in self.attention.items())
        if self.eta_s is not None and done < self.total:
            text += f" | ETA {_clock(self.eta_s)}"
        return text

    def _requests(self) -> str:
        """Requests so far, 429s among them, and the rate since the previous line."""
        now = time.monotonic()
        then, before = self._mark
        self._mark = (now, self.requests)
        rate = (self.requests - before) / (now - then) if now > then else 0.0
        return f" | {self.requests} requests ({self.rate_limited} 429), {rate:.1f}/s"

    def draw(self) -> None:
        text = self.line()
        if self.console.live or text != self._last:
            self.console.status(text)
        self._last = text

    def finish(self) -> None:
        self.draw()
        self.console.finish()


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"
