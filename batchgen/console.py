"""The terminal (standard error) while batchgen runs: log lines above a live progress line.

On a terminal the progress display is one line redrawn in place. A log line written at the
same time must not be glued onto it: ``Console.line`` clears the live line, writes the log line
and redraws the live line below it. Not on a terminal, both are plain lines.

Off a terminal, each progress line carries the same ISO 8601 timestamp as a log line.
``ConsoleHandler`` is the ``logging`` handler the CLI installs: it writes each record through
the console of the run in progress (if any), with an ISO 8601 timestamp (``IsoFormatter``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

_active: Console | None = None


class Console:
    """One stream shared by a live line (redrawn on a terminal) and whole lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._shown = ""  # the live line as drawn (truncated)

    @property
    def width(self) -> int:
        return max(shutil.get_terminal_size().columns - 1, 20)

    def status(self, text: str) -> None:
        """Show ``text`` as the live line (on a terminal) or as a line of its own."""
        if not self.live:  # a log file, cron, CI: a line like any log line, with its time
            self._write(f"{iso_now()} batchgen: {text}\n")
            return
        text = text[: self.width]  # a line wider than the terminal would wrap and stack
        pad = " " * max(len(self._shown) - len(text), 0)
        self._write("\r" + text + pad)
        self._shown = text

    def line(self, text: str) -> None:
        """Write a whole line above the live line."""
        if self.live and self._shown:
            self._write("\r\x1b[K" + text + "\n" + self._shown)
        else:
            self._write(text + "\n")

    def finish(self) -> None:
        """End the live line (the cursor moves below it)."""
        if self.live and self._shown:
            self._write("\n")
        self._shown = ""

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    @contextlib.contextmanager
    def active(self) -> Iterator[Console]:
        """While inside, log lines of ``ConsoleHandler`` go through this console."""
        global _active
        previous, _active = _active, self
        try:
            yield self
        finally:
            self.finish()
            _active = previous


class IsoFormatter(logging.Formatter):
    """``2026-12-01T21:03:50.123+00:00 batchgen: message``: local time with its offset."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s batchgen: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_now(record.created)


def iso_now(at: float | None = None) -> str:
    """Local time with its offset and milliseconds: ``2026-12-01T21:03:50.123+00:00``."""
    when = datetime.now() if at is None else datetime.fromtimestamp(at)
    return when.astimezone().isoformat("T", "milliseconds")


class ConsoleHandler(logging.Handler):
    """Writes to the active console, else to whatever ``sys.stderr`` is at the time (tests
    and host programs may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if _active is not None:
                _active.line(text)
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
        except Exception:  # logging must never end the run
            self.handleError(record)
