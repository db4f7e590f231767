"""The state file: an append-only JSON-lines journal, so state survives a restart.

Each mutation that matters (a task created, a file uploaded, a top-up) appends one line and
flushes it, so even a killed process keeps every task it answered for. Uploaded bytes go to
``<state_file>.blobs/<sha256>``. Loading replays the lines; a torn last line is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class Journal:
    """Append-only JSON lines at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.blob_dir = self.path.with_name(self.path.name + ".blobs")
        self._out: IO[str] | None = None

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to the operating system."""
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("a", encoding="utf-8")
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()

    def save_blob(self, sha256: str, data: bytes) -> None:
        """Keep uploaded bytes beside the journal (once per content)."""
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        target = self.blob_dir / sha256
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)

    def load_blob(self, sha256: str) -> bytes | None:
        """Uploaded bytes by hash, or None when they were not kept."""
        target = self.blob_dir / sha256
        return target.read_bytes() if target.exists() else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record, oldest first (nothing when the file does not exist yet)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    return  # a line torn by a crash: everything before it is whole

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._out is not None:
            self._out.close()
            self._out = None
