"""Seeded fault decisions: 5xx answers, dropped connections, slow answers, 429 bursts.

Each decision draws from a ``random.Random`` seeded by the config seed, the request's identity
(method, path and idempotency key) and how many times that identity was seen. So the n-th try of
a given create or poll meets the same fate in every run with the same seed, whatever the order
in which requests from different jobs arrive.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from .config import EmulatorConfig

NO_FAULT_FIELDS = ("fault_500_rate", "fault_502_rate", "fault_503_rate", "drop_rate")


@dataclass(frozen=True)
class Fault:
    """What to do to one request. ``None`` for ``answer`` means: answer normally."""

    answer: int | None = None  # 500 | 502 | 503
    drop: bool = False  # close the connection before doing anything
    drop_after_create: bool = False  # create the task, then close without answering
    slow_s: float = 0.0  # delay the answer
    burst: bool = False  # start a 429 burst for the key


NONE = Fault()


def any_faults(cfg: EmulatorConfig) -> bool:
    """Whether any fault switch is on (so the common case costs nothing)."""
    rates = (getattr(cfg, name) for name in NO_FAULT_FIELDS)
    return any(rates) or cfg.slow_rate > 0 or cfg.rate_limit_burst_rate > 0


class FaultPlanner:
    """Draws faults per request identity."""

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()

    def decide(self, cfg: EmulatorConfig, identity: str, is_create: bool) -> Fault:
        """The fault (possibly none) for the next request with ``identity``."""
        self._seen[identity] += 1
        rng = random.Random(f"{cfg.seed}|fault|{identity}|{self._seen[identity]}")
        burst = rng.random() < cfg.rate_limit_burst_rate
        slow_s = cfg.slow_delay_s if rng.random() < cfg.slow_rate else 0.0
        after = rng.random() < cfg.drop_after_create_share
        roll = rng.random()
        for status in (500, 502, 503):
            rate = getattr(cfg, f"fault_{status}_rate")
            if roll < rate:
                return Fault(answer=status, slow_s=slow_s, burst=burst)
            roll -= rate
        if roll < cfg.drop_rate:
            if is_create and after:
                return Fault(drop_after_create=True, slow_s=slow_s, burst=burst)
            return Fault(drop=True, slow_s=slow_s, burst=burst)
        return Fault(slow_s=slow_s, burst=burst)


FAULT_ANSWERS = {
    500: ("internal_error", "the service hit an internal error; retry with back-off"),
    502: ("bad_gateway", "an upstream service answered badly; retry with back-off"),
    503: ("service_unavailable", "the service is briefly unavailable; retry with back-off"),
}
