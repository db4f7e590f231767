"""How long a task waits and runs, and whether it fails: a seeded model of the real service.

Processing time grows with ``duration`` and with ``mode=pro`` (and a little with multi-shots
and sound): a 5 s clip takes about 1 to 4 minutes from submit to result at ``time_scale`` 1
(std from about 50 s, pro with multi-shots and sound up to about 3.7 min). Everything is
multiplied by ``time_scale``.

Where the variance lives: a render of one configuration (mode, duration, multi-shots, sound) is
a fixed amount of work (a diffusion model runs a fixed number of steps over a latent whose size
the configuration sets), so its processing time varies only modestly, from the hardware and
load of the machine that takes it: a log-normal spread of ``SPREAD_SIGMA`` 0.15 puts 90% of
renders within x0.78..x1.28 of their kind's median. The wide range users see comes from the
configuration (x1.6 for pro, longer clips) and from waiting: a queue wait before every task,
plus the wait for one of the account's processing slots, which in a big batch dominates.

Randomness comes from a ``random.Random`` seeded by the config seed and the task's identity (its
idempotency key when it has one), so a task's fate does not depend on how requests interleave.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

BASE_RUN_S = 70.0  # median processing time of a 5 s std clip
PRO_FACTOR = 1.6
MULTI_SHOT_FACTOR = 1.25
SOUND_FACTOR = 1.1
SPREAD_SIGMA = 0.15  # log-normal spread of the processing time within one configuration
QUEUE_WAIT_S = (5.0, 20.0)  # minimum wait before processing, even with free capacity


@dataclass(frozen=True)
class TaskPlan:
    """The seeded fate of one task, in scaled seconds."""

    queue_s: float  # earliest start after creation
    run_s: float  # processing time (time to failure when ``fails``)
    fails: bool
    null_error: bool  # a failure reported with ``error: null``
    other_end: bool = False  # a success that ends with another terminal status name instead


def task_rng(seed: int, account: str, identity: str) -> random.Random:
    """A random source private to one task."""
    digest = hashlib.sha256(f"{seed}|task|{account}|{identity}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def median_run_s(params: dict[str, str]) -> float:
    """Median processing seconds at time scale 1 for these (string) params."""
    seconds: float = BASE_RUN_S * (int(params.get("duration", "5")) / 5) ** 0.85
    if params.get("mode", "pro") == "pro":
        seconds *= PRO_FACTOR
    if params.get("multi_shots") == "true":
        seconds *= MULTI_SHOT_FACTOR
    if params.get("sound") == "true":
        seconds *= SOUND_FACTOR
    return seconds


def plan_task(
    rng: random.Random,
    params: dict[str, str],
    time_scale: float,
    failure_rate: float,
    null_error_share: float,
    end_status_rate: float = 0.0,
) -> TaskPlan:
    """Draw a task's queue wait, processing time and outcome.

    ``end_status_rate`` is drawn last, so turning it on changes no other task's fate.
    """
    queue_s = rng.uniform(*QUEUE_WAIT_S)
    spread = min(1.8, max(0.6, math.exp(rng.gauss(0.0, SPREAD_SIGMA))))
    run_s = median_run_s(params) * spread
    fails = rng.random() < failure_rate
    null_error = rng.random() < null_error_share
    if fails:
        run_s *= rng.uniform(0.2, 1.0)
    other_end = rng.random() < end_status_rate
    return TaskPlan(
        queue_s * time_scale, run_s * time_scale, fails, fails and null_error, other_end
    )
