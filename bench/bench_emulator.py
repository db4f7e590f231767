"""How many status polls per second the emulator answers on one core.

The emulator runs in a subprocess pinned to one CPU (``python -m batchgen.emulator``), so it has
a core of its own; this process creates some tasks, then hammers
``GET /api/v1/generations/{id}`` over keep-alive connections for a fixed time. Target: at least
2,000 polls per second, so that client benchmarks measure the client, not the emulator.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from typing import Any

import aiohttp

from bench import _support
from bench._support import figure

REPEATS = 3
IN_QUICK = True  # a few seconds: a slow emulator would make every other figure meaningless

TARGET_PER_S = 2000
TASKS = 200
CONCURRENCY = 64
WARMUP_S = 1.0
MEASURE_S = 5.0
QUICK_MEASURE_S = 2.0


def start_emulator() -> tuple[subprocess.Popen[str], str, str]:
    """The emulator subprocess and its base URL and key (read from the export line)."""
    return _support.start_emulator(
        "--time-scale", "0.001", "--rate-limit-per-s", "1000000", "--seed", "1"
    )


def pin(pid: int, cpu: int) -> int | None:
    """Pin ``pid`` (0: this process) to one CPU when there are two or more; return it."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    os.sched_setaffinity(pid, {cpu})
    return cpu


async def create_tasks(http: aiohttp.ClientSession, base: str) -> list[str]:
    """Create the tasks to poll (they finish at once at this time scale)."""
    ids = []
    for n in range(TASKS):
        body = {"model": "kling-3-0", "prompt": f"bench clip {n}", "params": {"duration": "5"}}
        async with http.post(f"{base}/api/v1/generations", json=body) as resp:
            assert resp.status == 201, await resp.text()
            ids.append((await resp.json())["id"])
    await asyncio.sleep(0.5)
    return ids


async def hammer(http: aiohttp.ClientSession, urls: list[str], seconds: float) -> tuple[int, int]:
    """Poll ``urls`` round-robin from CONCURRENCY workers; return (answers, non-200 answers)."""
    deadline = time.perf_counter() + seconds
    done = errors = 0

    async def worker(offset: int) -> None:
        nonlocal done, errors
        n = offset
        while time.perf_counter() < deadline:
            async with http.get(urls[n % len(urls)]) as resp:
                await resp.read()
                done += 1
                errors += resp.status != 200
            n += CONCURRENCY

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return done, errors


async def measure(base: str, key: str, seconds: float) -> dict[str, Any]:
    """Warm up, then count polls answered in ``seconds``."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
        urls = [f"{base}/api/v1/generations/{i}" for i in await create_tasks(http, base)]
        await hammer(http, urls, WARMUP_S)
        started = time.perf_counter()
        done, errors = await hammer(http, urls, seconds)
        elapsed = time.perf_counter() - started
    return {"requests": done, "errors": errors, "elapsed_s": round(elapsed, 2)}


def run(quick: bool = False) -> dict[str, Any]:
    """Start the emulator, measure, stop it: the polls it answered per second."""
    proc, base, key = start_emulator()
    server_cpu = pin(proc.pid, 0)
    client_cpu = pin(0, 1)
    try:
        counts = asyncio.run(measure(base, key, QUICK_MEASURE_S if quick else MEASURE_S))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        if client_cpu is not None:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    per_s = counts["requests"] / counts["elapsed_s"]
    pinned = "pinned to one core" if server_cpu is not None else "not pinned (one core)"
    return {
        "figures": [
            figure(
                "emulator.status_polls_per_s",
                "status polls the emulator answers per second",
                per_s,
                unit="polls / s",
                target=TARGET_PER_S,
                note=f"the emulator subprocess {pinned}, {CONCURRENCY} keep-alive workers in "
                "this process on the other; the instrument, so client figures measure the client",
            )
        ],
        "details": {
            "concurrency": CONCURRENCY,
            "tasks": TASKS,
            "server_pinned_to_cpu": server_cpu,
            **counts,
        },
    }


if __name__ == "__main__":
    print(run())
