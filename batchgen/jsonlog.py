"""The JSON log (``run --log FILE``): one JSON object per line per event, for machines.

A subscriber of the run's ``EventBus``, like the text log. Each line is the event's dataclass
fields, serialized generically (enums as their values, tuples as lists, a non-finite number as
null), so a new event type needs no code here, after two keys of its own: ``at`` (when it
happened, ISO 8601 in UTC with milliseconds) and ``event`` (the class name in snake_case:
``job_changed``, ``run_finished``). Every line passes through ``redact()`` on its way out.

The file is opened for appending (a rerun adds to it) and flushed after every line. When a line
would take it past ``max_bytes``, it is renamed to ``FILE.1`` (``.1`` to ``.2``, and so on,
``keep`` of them kept) and a new file is started. A write that fails (a full disk) is logged
once and ends the JSON log for the run; it never ends the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any

from batchgen.events import Event
from batchgen.redact import redact

log = logging.getLogger("batchgen.run")

DEFAULT_MAX_BYTES = 50_000_000
KEEP = 3  # rotated files kept: FILE.1 (newest) .. FILE.3


def iso_utc(at: float) -> str:
    """``2026-12-01T21:03:50.123Z``: seconds since the epoch as ISO 8601 UTC, milliseconds."""
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def snake_case(name: str) -> str:
    """``JobChanged`` -> ``job_changed``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _plain(value: Any) -> Any:
    """A value as JSON-ready data: enums as their values, tuples as lists, inf/nan as None."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # a Path, say: never a reason to lose the line


def event_record(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict: ``at`` and ``event`` first, then its fields."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    fields.pop("at", None)
    return {"at": iso_utc(event.at), "event": snake_case(type(event).__name__)} | {
        name: _plain(value) for name, value in fields.items()
    }


def json_line(record: dict[str, Any]) -> str:
    """One line of the JSON log, redacted, with its newline."""
    return redact(json.dumps(record, ensure_ascii=False, allow_nan=False)) + "\n"


def rotate(path: Path, keep: int = KEEP) -> None:
    """``path`` becomes ``path.1``; ``path.1`` becomes ``path.2`` ... ``path.<keep>`` is lost."""
    for n in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{n}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


class JsonLog:
    """Subscribe an instance to a run's ``EventBus``; ``close()`` (or ``with``) at the end.
    Opening the file raises ``OSError`` (so a bad path is known before the run starts)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self.max_bytes = max(int(max_bytes), 1)
        self.keep = keep
        self._size = 0
        self._file: IO[str] | None = self._open()

    def _open(self) -> IO[str]:
        file = self.path.open("a", encoding="utf-8")
        self._size = os.fstat(file.fileno()).st_size
        return file

    def __enter__(self) -> JsonLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __call__(self, event: Event) -> None:
        self.write(event_record(event))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (an event's, or another with ``at`` and ``event``)."""
        if self._file is None:
            return
        line = json_line(record)
        try:
            size = len(line.encode("utf-8"))
            if self._size + size > self.max_bytes and self._size > 0:
                self._file.close()
                rotate(self.path, self.keep)
                self._file = self._open()
            self._file.write(line)
            self._file.flush()
            self._size += size
        except OSError as exc:
            log.warning("the JSON log %s cannot be written (%s); it stops here", self.path, exc)
            self.close()
