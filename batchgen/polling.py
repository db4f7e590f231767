"""When to poll a task next. Pure: the runner sleeps, this only decides how long.

The service's guidance: first poll 2-3 s after submit, then every 5-10 s, slower for long video
jobs, never a tight loop. Within that spirit the schedule aims at the moment the task is
*expected* to finish, learned from the batch's own finished tasks (per mode and duration), so a
typical task costs few polls and is still noticed soon after it finishes:

1. first poll at ``first_poll_s`` (catches tasks that fail at once);
2. then straight to the expected finish time (never sooner than ``min_interval_s``);
3. past it, every ``late_fraction`` of the expected run time, clamped to
   [``min_interval_s``, ``max_interval_s``].

Every figure is multiplied by ``time_scale`` (1.0 for the real service; the emulator's factor in
rehearsals, so the ratios hold).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PollPolicy:
    first_poll_s: float = 2.5
    min_interval_s: float = 5.0
    max_interval_s: float = 60.0
    late_fraction: float = 0.08
    stuck_factor: float = 8.0  # give up polling after this many expected run times ...
    stuck_min_s: float = 1800.0  # ... but never before this long
    time_scale: float = 1.0

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale


def prior_runtime_s(mode: str, duration_s: int) -> float:
    """What a task is expected to take before the batch has seen any finish (unscaled).

    A 5 s std clip is expected at about 90 s (the service takes roughly 1-4 minutes); longer
    clips and ``pro`` take longer.
    """
    base = 30.0 + 12.0 * duration_s
    return base * (1.6 if mode == "pro" else 1.0)


@dataclass
class RuntimeModel:
    """Learns run times per (mode, duration) from the batch's own finished tasks."""

    observed: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))

    def observe(self, mode: str, duration_s: int, runtime_s: float) -> None:
        samples = self.observed[(mode, duration_s)]
        samples.append(runtime_s)
        if len(samples) > 200:
            del samples[:100]

    def expected_s(self, mode: str, duration_s: int, policy: PollPolicy) -> float:
        """Median of this kind's observations; else others' rescaled by the prior; else prior."""
        own = self.observed.get((mode, duration_s))
        if own:
            return statistics.median(own)
        ratios = [
            statistics.median(v) / policy.scaled(prior_runtime_s(m, d))
            for (m, d), v in self.observed.items()
            if v
        ]
        factor = statistics.median(ratios) if ratios else 1.0
        return factor * policy.scaled(prior_runtime_s(mode, duration_s))


def next_poll_delay(polls_done: int, elapsed_s: float, expected_s: float, p: PollPolicy) -> float:
    """Seconds to wait before the next status poll of a task submitted ``elapsed_s`` ago."""
    min_gap = p.scaled(p.min_interval_s)
    if polls_done == 0:
        return max(p.scaled(p.first_poll_s) - elapsed_s, 0.0)
    if elapsed_s < expected_s:
        return max(expected_s - elapsed_s, min_gap)
    late = p.late_fraction * expected_s
    return min(max(late, min_gap), p.scaled(p.max_interval_s))


def is_stuck(elapsed_s: float, expected_s: float, p: PollPolicy) -> bool:
    """True once a task has run far longer than expected: report it, stop polling it."""
    return elapsed_s > max(p.stuck_factor * expected_s, p.scaled(p.stuck_min_s))
