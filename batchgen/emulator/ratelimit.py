"""Per-key sliding-window rate limiting, plus seeded 429 bursts that outlast a window.

A window remembers the time of each accepted request; a request is refused when the window
already holds ``limit`` of them. Refused requests are not remembered, so a client that backs
off recovers as soon as the oldest request leaves the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rate-limit check."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds until a slot frees up (0 when one is free now)


class SlidingWindow:
    """Sliding-window log per key: O(1) amortised per request."""

    def __init__(self) -> None:
        self._log: dict[str, deque[float]] = {}
        self._burst_until: dict[str, float] = {}

    def check(self, who: str, now: float, per_s: float, window_s: float) -> Verdict:
        """Count a request by ``who`` at ``now`` if the window has room."""
        limit = max(1, round(per_s * window_s))
        log = self._log.get(who)
        if log is None:
            log = self._log[who] = deque()
        horizon = now - window_s
        while log and log[0] <= horizon:
            log.popleft()
        if self._burst_until.get(who, 0.0) > now:
            return Verdict(False, limit, 0, max(1, math.ceil(window_s)))
        if len(log) >= limit:
            reset = max(1, math.ceil(log[len(log) - limit] + window_s - now))
            return Verdict(False, limit, 0, reset)
        log.append(now)
        reset = math.ceil(log[0] + window_s - now) if len(log) >= limit else 0
        return Verdict(True, limit, limit - len(log), reset)

    def start_burst(self, who: str, now: float, duration_s: float) -> None:
        """Refuse every request by ``who`` for ``duration_s`` seconds."""
        self._burst_until[who] = now + duration_s


def limit_headers(verdict: Verdict) -> dict[str, str]:
    """``X-RateLimit-*`` headers (Reset is in whole seconds from now)."""
    return {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(verdict.remaining),
        "X-RateLimit-Reset": str(verdict.reset_s),
    }


def retry_after(mode: str, verdict: Verdict, wall_now: float) -> dict[str, str]:
    """The ``Retry-After`` header for a 429 in ``mode`` (seconds | none | http-date)."""
    seconds = max(1, verdict.reset_s)
    if mode == "none":
        return {}
    if mode == "http-date":
        return {"Retry-After": formatdate(wall_now + seconds + 1, usegmt=True)}
    return {"Retry-After": str(seconds)}
