"""Progress while a batch runs, from the run's events: one status line, redrawn in place on a
terminal (``Console``), printed as plain periodic lines when not (cron, CI, a log file).

The display subscribes to the run's ``EventBus`` and keeps its own figures: counts per status
(from ``RunStarted`` and each ``JobChanged``), credits reserved and charged, requests and 429s
(``RequestAnswered``, ``RateLimited``), what a person must act on (``NeedsDecision``,
``KeyConflict``, ``WriteFailed``) and the runner's ETA (``Estimate``, computed from the same
forecasts that schedule the polls). It redraws on each ``Estimate`` (every progress interval).

On a terminal, ``LiveDisplay`` shows the same figures in a few lines (rich's ``Live``): counts
per phase, a bar of done/total, credits, the request rate and 429s, and the ETA, within 80
columns; log lines print above it (``RichConsole``), never onto it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import TextIO

from rich.console import Console as RichTerminal
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

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


# -- on a terminal: a multi-line live view (rich) ----------------------------------------------

PHASES = (
    (JobStatus.PENDING, JobStatus.SUBMITTING, JobStatus.RUNNING, JobStatus.DOWNLOADING),
    (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.BLOCKED),
)
RATE_WINDOW_S = 10.0  # the request rate shown is over about this many seconds
REDRAW_S = 0.25  # at most this often between the runner's estimates


class RichConsole(Console):
    """A terminal console whose live part is a ``rich.live.Live`` region of several lines.
    Log lines (``line``) and anything else written to ``sys.stderr`` meanwhile are printed
    above the region by rich, whole, and the region is drawn again below them."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.rich = RichTerminal(file=self.stream, highlight=False)
        self.view = Live(
            console=self.rich,
            auto_refresh=False,  # redrawn from the event loop only: no thread reads counters
            redirect_stdout=False,
            redirect_stderr=True,
            transient=False,
        )
        self._started = False

    def show(self, renderable: RenderableType) -> None:
        if not self._started:
            self.view.start()
            self._started = True
        self.view.update(renderable, refresh=True)

    def line(self, text: str) -> None:
        self.rich.print(Text(text), soft_wrap=True)

    def finish(self) -> None:
        if self._started:
            self.view.stop()
            self._started = False


class LiveDisplay(ProgressDisplay):
    """The progress display on a terminal: per phase counts, a bar of done/total, credits,
    the request rate and 429s, and the ETA, in a few lines that fit 80 columns."""

    def __init__(self, console: RichConsole, total: int) -> None:
        super().__init__(console, total)
        self.rich_console = console
        self._samples: deque[tuple[float, int]] = deque()
        self._drawn_at = 0.0

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if time.monotonic() - self._drawn_at >= REDRAW_S:
            self.draw()

    def draw(self) -> None:
        self._drawn_at = time.monotonic()
        self.rich_console.show(self.renderable())

    def rate(self) -> float:
        """Requests per second over the last ``RATE_WINDOW_S`` (sampled at each call)."""
        now = time.monotonic()
        self._samples.append((now, self.requests))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        then, before = self._samples[0]
        return (self.requests - before) / (now - then) if now > then else 0.0

    def renderable(self) -> RenderableType:
        by = self.by_status
        done = by[JobStatus.SUCCEEDED] + by[JobStatus.FAILED]
        eta = "-"
        if done >= self.total:
            eta = "done"
        elif self.eta_s is not None:
            eta = _clock(self.eta_s)
        head = Table.grid(padding=(0, 1))
        head.add_row(
            Text(_clock(time.monotonic() - self.started)),
            ProgressBar(total=max(self.total, 1), completed=done, width=40),
            Text(f"{done}/{self.total} done"),
        )
        lines: list[RenderableType] = [head]
        for phase in PHASES:
            lines.append(Text("  ".join(f"{s.value} {by[s]}" for s in phase)))
        lines.append(Text(f"credits {self.charged:,} charged, {self.reserved:,} reserved"))
        lines.append(
            Text(
                f"requests {self.requests:,} ({self.rate_limited} 429)  "
                f"{self.rate():.1f}/s  ETA {eta}"
            )
        )
        lines += [Text(f"! {n} {what}") for what, n in self.attention.items()]
        return Group(*lines)

    def finish(self) -> None:
        self.draw()
        self.rich_console.finish()
