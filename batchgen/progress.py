"""Progress while a batch runs: one status line, redrawn in place on a terminal, printed as
plain periodic lines when not (cron, CI, a log file)."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from batchgen.store import StateStore

ORDER = ("pending", "submitting", "running", "downloading", "succeeded", "failed", "blocked")


class ProgressPrinter:
    """Call it periodically; it reads the counts from the store and prints one line."""

    def __init__(self, store: StateStore, total: int, stream: TextIO | None = None) -> None:
        self.store = store
        self.total = total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.live = self.stream.isatty()
        self._last = ""
        self.client: Any = None  # a RivyaClient: its .stats give the measured request rate
        self._mark = (self.started, 0)

    def line(self) -> str:
        c = self.store.counts()
        by = c["by_status"]
        done = by.get("succeeded", 0) + by.get("failed", 0)
        elapsed = time.monotonic() - self.started
        parts = [f"{by[s]} {s}" for s in ORDER if by.get(s)]
        text = (
            f"[{_clock(elapsed)}] {done}/{self.total} done: {', '.join(parts) or 'nothing yet'}"
            f" | credits {c['final_credits']} charged, {c['reserved_credits']} reserved"
        )
        text += self._requests()
        eta = _eta(done, self.total, elapsed)
        if eta:
            text += f" | ETA {eta}"
        return text

    def _requests(self) -> str:
        """Requests so far, 429s among them, and the rate since the previous line."""
        stats = getattr(self.client, "stats", None)
        if stats is None:
            return ""
        now, total = time.monotonic(), stats.requests
        then, before = self._mark
        self._mark = (now, total)
        rate = (total - before) / (now - then) if now > then else 0.0
        return f" | {total} requests ({stats.rate_limited} 429), {rate:.1f}/s"

    def __call__(self) -> None:
        text = self.line()
        if self.live:  # one row, redrawn: a line wider than the terminal would wrap and stack
            text = text[: max(shutil.get_terminal_size().columns - 1, 20)]
            pad = " " * max(len(self._last) - len(text), 0)
            self.stream.write("\r" + text + pad)
        elif text != self._last:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last = text

    def finish(self) -> None:
        if self.live and self._last:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _eta(done: int, total: int, elapsed: float) -> str | None:
    if done == 0 or done >= total or elapsed < 1:
        return None
    return _clock(elapsed / done * (total - done))
