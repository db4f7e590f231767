"""The emulator's clock: wall-clock seconds that advance with ``time.monotonic()``.

Task timings are stored as points on this clock, so they survive a restart (the state file
holds epoch seconds) while a running server never sees time jump when the system clock is set.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Epoch seconds anchored once at start, advanced by the monotonic clock."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        """Seconds since the epoch, monotonic within this process."""
        return self._wall0 + (time.monotonic() - self._mono0)


def iso(ts: float) -> str:
    """``2026-05-11T00:00:00.000Z`` for epoch seconds ``ts`` (millisecond precision, UTC)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
