"""Crash safety under faults: SIGKILL at random instants with 5xx and dropped connections on."""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, EmulatorThread

from .helpers import TIME_SCALE, batchgen_cmd, env_for, run_cli, tasks_per_job

JOBS = 300
KILLS = 20


def write_big_manifest(folder: Path) -> Path:
    """300 jobs: 150 subjects x 2 aspect ratios, text-to-video, fast to run on the emulator."""
    subjects = ", ".join(f"s{i:03d}" for i in range(JOBS // 2))
    path = folder / "big.yaml"
    path.write_text(
        f"""version: 1
batch: crash
model: kling-3-0
defaults:
  params: {{mode: std, duration: 5}}
matrix:
  subject: [{subjects}]
  aspect_ratio: ["16:9", "9:16"]
prompt: "A slow dolly shot of subject {{subject}} in a sunlit studio"
output:
  dir: out
limits:
  requests_per_second: 50
  burst: 10
  max_in_flight: 60
"""
    )
    return path


@pytest.mark.slow
def test_random_sigkills_with_faults_never_double_charge(tmp_path: Path) -> None:
    """20 SIGKILLs at random instants over a 300-job batch with 10% 5xx and 5% dropped
    connections (half after the task was created): every job ends terminal with exactly one
    task, and the credits recorded equal the ledger's."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE),
        seed=99,
        rate_limit_per_s=5000.0,
        fault_500_rate=0.04,
        fault_502_rate=0.03,
        fault_503_rate=0.03,
        drop_rate=0.05,
        drop_after_create_share=0.5,
        failure_rate=0.05,
    )
    rng = random.Random(20261124)
    manifest = write_big_manifest(tmp_path)
    state = tmp_path / "s.db"
    args = ("run", str(manifest), "--state", str(state), "--time-scale", TIME_SCALE, "-q")
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        kills = 0
        while kills < KILLS:
            proc = subprocess.Popen(
                batchgen_cmd(*args),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.3, 1.3))  # startup is ~0.4 s; land anywhere after it
            if proc.poll() is not None:
                break  # the batch finished before this kill: nothing left to interrupt
            proc.kill()
            proc.wait(timeout=10)
            kills += 1
        codes = []
        for _ in range(5):  # faults stay on: a run may stop resumable (4); rerun as cron would
            final = run_cli(*args, env=env, timeout=300)
            codes.append(final.returncode)
            if final.returncode in (0, 3):
                break
        ledger = emu.ledger()
    assert kills >= KILLS, f"only {kills} kills landed before the batch finished"
    assert codes[-1] in (0, 3), (codes, final.stderr[-2000:])
    per_job = tasks_per_job(ledger)
    assert len(per_job) == JOBS, "every job got a task"
    assert Counter(per_job.values()) == Counter({1: JOBS}), "no job got a second task"
    faults = {f["kind"]: f["count"] for f in ledger.get("faults", [])}
    assert sum(faults.values()) > 50, f"faults were really injected: {faults}"

    import sqlite3

    rows = (
        sqlite3.connect(state)
        .execute("SELECT status, task_id, final_credits FROM jobs WHERE in_manifest = 1")
        .fetchall()
    )
    assert {r[0] for r in rows} <= {"succeeded", "failed"}, Counter(r[0] for r in rows)
    by_task = {t["id"]: t for t in ledger["tasks"]}
    assert {r[1] for r in rows} == set(by_task), "the state knows exactly the ledger's tasks"
    charged = sum(c["amount"] * (1 if c["kind"] == "charge" else -1) for c in ledger["charges"])
    assert sum(r[2] or 0 for r in rows) == charged
