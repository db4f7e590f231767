"""SIGKILL at any instant, then the same command: every job still gets exactly one task."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .helpers import (
    TIME_SCALE,
    batchgen_cmd,
    env_for,
    run_cli,
    tasks_per_job,
    tasks_per_key,
    write_manifest,
)

PRODUCTS = ("a", "b", "c", "d", "e", "f")


def _wait_for_tasks(emu, proc: subprocess.Popen, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(emu.ledger()["tasks"]) >= at_least:
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_midway_then_rerun_gives_one_task_per_job(emulator_thread, tmp_path: Path) -> None:
    """Killing `batchgen run` with SIGKILL at several points and rerunning never doubles a task."""
    manifest = write_manifest(tmp_path, products=PRODUCTS, rate=50)
    jobs = len(PRODUCTS) * 2 + 1
    env = env_for(emulator_thread)
    args = (
        "run",
        str(manifest),
        "--state",
        str(tmp_path / "s.db"),
        "--time-scale",
        TIME_SCALE,
        "-q",
    )
    kills = 0
    for threshold in (1, 3, 6, 9):
        proc = subprocess.Popen(
            batchgen_cmd(*args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_tasks(emulator_thread, proc, threshold)
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait(timeout=10)
    assert kills >= 2, "the kills should land while the batch is still running"
    final = run_cli(*args, env=env)
    assert final.returncode == 0, final.stderr
    ledger = emulator_thread.ledger()
    assert sorted(tasks_per_job(ledger).values()) == [1] * jobs
    assert set(tasks_per_key(ledger).values()) == {1}
    assert len(list((tmp_path / "out").glob("*.mp4"))) == jobs
