"""The benchmark's peer (bench/peer/, the cookbook processor adapted) against the real emulator."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, EmulatorThread
from bench.peer.processor import (
    SECONDS_TO_PAUSE_AFTER_RATE_LIMIT_ERROR,
    Settings,
    StatusTracker,
    process_api_requests_from_file,
)

TIME_SCALE = 0.002


def _requests(folder: Path, jobs: int) -> Path:
    path = folder / "requests.jsonl"
    lines = [
        json.dumps(
            {
                "model": "kling-3-0",
                "prompt": f"A ceramic object {n}, slow orbit",
                "params": {"mode": "std", "duration": "5"},
                "metadata": {"job": n},
            }
        )
        for n in range(jobs)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(emu: EmulatorThread, folder: Path, jobs: int, per_minute: float) -> StatusTracker:
    settings = Settings(
        base_url=emu.base_url,
        api_key=emu.api_key,
        save_path=folder / "results.jsonl",
        out_dir=folder / "out",
        poll_interval_s=5.0 * TIME_SCALE,
    )
    requests = _requests(folder, jobs)
    return asyncio.run(process_api_requests_from_file(requests, settings, per_minute))


def test_the_peer_creates_polls_and_downloads_every_job_without_idempotency_keys(
    tmp_path: Path,
) -> None:
    """Each line becomes one task, polled to its end and downloaded; no key is ever sent."""
    cfg = EmulatorConfig(time_scale=TIME_SCALE, seed=3, rate_limit_per_s=1000)
    with EmulatorThread(cfg) as emu:
        tracker = _run(emu, tmp_path, jobs=6, per_minute=60_000)
        ledger = emu.ledger()
    assert tracker.num_tasks_succeeded + tracker.num_tasks_failed == 6
    assert tracker.num_creates == 6
    assert len(ledger["tasks"]) == 6
    assert all(t["idempotency_key"] is None for t in ledger["tasks"])
    succeeded = [t for t in ledger["tasks"] if t["status"] == "succeeded"]
    assert len(list((tmp_path / "out").glob("*.mp4"))) == len(succeeded)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 6


@pytest.mark.slow
def test_after_a_429_the_peer_pauses_everyone_for_15_s_and_still_finishes(
    tmp_path: Path,
) -> None:
    """Its full bucket bursts past the limit; the 429s stop all sending for 15 s, then retry."""
    cfg = EmulatorConfig(time_scale=TIME_SCALE, seed=3, rate_limit_per_s=5)
    with EmulatorThread(cfg) as emu:
        started = time.monotonic()
        tracker = _run(emu, tmp_path, jobs=4, per_minute=600)
        elapsed = time.monotonic() - started
        ledger = emu.ledger()
    assert tracker.num_rate_limit_errors >= 1
    assert tracker.num_pauses >= 1
    assert elapsed >= SECONDS_TO_PAUSE_AFTER_RATE_LIMIT_ERROR
    assert tracker.num_tasks_succeeded + tracker.num_tasks_failed == 4
    assert len(ledger["tasks"]) == 4  # a 429 created nothing, so its retry is no second charge
