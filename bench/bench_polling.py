"""Issue 5, third "Done when": few status polls per task, and finished tasks noticed promptly.

A batch of 96 jobs (12 subjects x mode std/pro x duration 5/10 s x sound off/on: eight kinds of
run time, interleaved) runs on the real runner (``run_batch`` with the real client and store)
against the embedded emulator at time scale 0.02, seeded, with no faults, and with the rate
limit and processing cap out of the way (all 96 tasks in flight, 96 slots), so the time
model alone sets when tasks finish. The client's poll timings are scaled by the same 0.02, so
ratios hold (a finer scale makes the poll gaps too short for a busy 2-core machine to keep).

Each run measures two schedules on the same batch (same tasks, same seeded run times):

* adaptive: the default schedule of ``batchgen.polling``;
* fixed 5 s: the service's guidance taken literally (first poll at 2.5 s, then every 5 s).

Each repeat takes another batch (another name, so other idempotency keys, so other seeded run
times): a 96-task batch is a sample, and the repeats' min-max shows how much it moves.

Figures, from the emulator's side except the moment of notice:

* status polls per task: ``GET /api/v1/generations/{task_id}`` answers in the ledger / tasks;
* notice latency: when the client got the first terminal answer (a thin subclass of the real
  client notes it) minus the ledger's ``finished_at``, as a share of the task's run time
  (``created_at`` to ``finished_at``), median over the tasks.

Targets (issue 5): at most 3 polls per task, and a median notice latency of at most 10% of the
run time, for the adaptive schedule.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from batchgen.client import RivyaClient
from batchgen.config import RunConfig
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.limits import RequestLimiter
from batchgen.manifest import load_manifest
from batchgen.models import RemoteTask
from batchgen.polling import PollPolicy
from batchgen.runner import run_batch
from batchgen.store import StateStore
from bench._support import figure

REPEATS = 2
IN_QUICK = False  # about 30 s a run; bench_peer's polls per task stand in for it in quick

TIME_SCALE = 0.02  # a 5 s std clip's ~80 s become ~1.6 s; the 5 s poll gap becomes 0.1 s
SEED = 11
SUBJECTS = 12  # x 8 kinds = 96 jobs
IN_FLIGHT = 96  # every job at once: one wave
_BATCHES = itertools.count(1)  # each run takes the next batch (other seeded fates)
RATE_PER_S = 5000.0  # client and emulator: the request budget is not what is measured here
MAX_POLLS_PER_TASK = 3.0
MAX_MEDIAN_LATENCY_SHARE = 0.10
POLL_ENDPOINT = "/api/v1/generations/{task_id}"


class NoticingClient(RivyaClient):
    """The real client, also noting when each task's terminal answer first arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.noticed: dict[str, float] = {}

    async def get_generation(self, task_id: str) -> RemoteTask:
        task = await super().get_generation(task_id)
        if task.is_terminal:
            self.noticed.setdefault(task_id, time.time())
        return task


def write_manifest(folder: Path, batch: str) -> Path:
    """12 subjects x 2 modes x 2 durations x 2 sound settings = 96 jobs, kinds interleaved."""
    subjects = ", ".join(f"object {i:02d}" for i in range(SUBJECTS))
    text = f"""version: 1
batch: {batch}
model: kling-3-0
defaults:
  params: {{aspect_ratio: "16:9"}}
matrix:
  subject: [{subjects}]
  mode: [std, pro]
  duration: [5, 10]
  sound: [false, true]
prompt: "A slow cinematic orbit around a ceramic {{subject}}, soft studio light"
output:
  dir: {folder / "out"}
limits:
  requests_per_second: {RATE_PER_S}
  burst: {IN_FLIGHT}
  max_in_flight: {IN_FLIGHT}
"""
    path = folder / f"{batch}.yaml"
    path.write_text(text)
    return path


async def _run(manifest_path: Path, state: Path, emu: Any, poll: PollPolicy) -> dict[str, float]:
    manifest = load_manifest(manifest_path)
    limiter = RequestLimiter(rate_per_s=RATE_PER_S, burst=IN_FLIGHT)
    with StateStore.open(state, manifest.batch) as store:
        async with NoticingClient(emu.base_url, emu.api_key, limiter=limiter) as client:
            started = time.perf_counter()
            outcome = await run_batch(
                manifest,
                store,
                client,
                RunConfig(batch=manifest.batch, state_path=store.path, connection=None, poll=poll),
            )
            wall_s = time.perf_counter() - started
        done = sum(r.status.value == "succeeded" for r in store.jobs())
    assert outcome.stuck == 0 and outcome.unfinished == 0, outcome
    assert done == len(manifest.jobs), f"{done} of {len(manifest.jobs)} jobs succeeded"
    return {"wall_s": round(wall_s, 1)} | _figures(emu.ledger(), client.noticed)


def _figures(ledger: dict[str, Any], noticed: dict[str, float]) -> dict[str, float]:
    tasks = ledger["tasks"]
    polls = sum(
        r["count"]
        for r in ledger["requests"]
        if r["method"] == "GET" and r["endpoint"] == POLL_ENDPOINT
    )
    shares = []
    for task in tasks:
        created, finished = _epoch(task["created_at"]), _epoch(task["finished_at"])
        shares.append((noticed[task["id"]] - finished) / (finished - created))
    shares.sort()
    return {
        "tasks": len(tasks),
        "polls_per_task": round(polls / len(tasks), 2),
        "latency_share_median": round(statistics.median(shares), 4),
        "latency_share_p90": round(shares[int(0.9 * (len(shares) - 1))], 4),
        "latency_share_max": round(shares[-1], 4),
        "run_s_median": round(
            statistics.median(_epoch(t["finished_at"]) - _epoch(t["created_at"]) for t in tasks),
            3,
        ),
    }


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _one(batch: int, poll: PollPolicy, folder: Path) -> dict[str, float]:
    """Batch ``batch`` (its name sets the idempotency keys, hence every task's seeded fate) on
    a fresh emulator with this poll policy."""
    cfg = EmulatorConfig(
        time_scale=TIME_SCALE,
        seed=SEED,
        rate_limit_per_s=RATE_PER_S,
        max_processing_per_account=IN_FLIGHT,
    )
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        manifest = write_manifest(Path(tmp), f"bench-polling-{batch}")
        with EmulatorThread(cfg) as emu:
            state = Path(tmp) / "state.db"
            return anyio.run(_run, manifest, state, emu, poll, backend="asyncio")


def run(quick: bool = False) -> dict[str, object]:
    """One batch (the next one) under the adaptive schedule, then under the fixed 5 s one."""
    batch = next(_BATCHES)
    adaptive = PollPolicy(time_scale=TIME_SCALE)
    fixed = PollPolicy(time_scale=TIME_SCALE, fixed_interval_s=5.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours = _one(batch, adaptive, folder)
        literal = _one(batch, fixed, folder)
    saved = 1 - ours["polls_per_task"] / literal["polls_per_task"]
    return {
        "figures": [
            figure(
                "polling.polls_per_task",
                "status polls per task (adaptive schedule)",
                ours["polls_per_task"],
                unit="polls / task",
                target=MAX_POLLS_PER_TASK,
                better="lower",
                note=f"{SUBJECTS * 8} tasks of 8 kinds (std/pro, 5/10 s, sound), time scale "
                f"{TIME_SCALE}; the same batch polled every 5 s takes "
                f"{literal['polls_per_task']:.1f}",
            ),
            figure(
                "polling.polls_saved_vs_fixed_5s",
                "polls saved against a fixed 5 s poller (same tasks)",
                100 * saved,
                unit="%",
                note="1 - adaptive / fixed (first poll at 2.5 s, then every 5 s); informational",
            ),
            figure(
                "polling.notice_latency_median",
                "median notice latency / task run time (adaptive)",
                100 * ours["latency_share_median"],
                unit="%",
                target=100 * MAX_MEDIAN_LATENCY_SHARE,
                better="lower",
                note="first terminal answer minus the ledger's finished_at, over created_at to "
                f"finished_at; fixed 5 s: {100 * literal['latency_share_median']:.0f}%",
            ),
        ],
        "details": {
            "batch": f"bench-polling-{batch}",
            "jobs": SUBJECTS * 8,
            "time_scale": TIME_SCALE,
            "in_flight": IN_FLIGHT,
            "seed": SEED,
            "adaptive": ours,
            "fixed_5s": literal,
        },
    }
