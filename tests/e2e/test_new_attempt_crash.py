"""SIGKILL at every write of the "stored body refused -> new attempt" path, then a plain rerun."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, EmulatorThread

from .helpers import HERO, env_for, run_cli, start_cli, tasks_per_job

KILLER = Path(__file__).with_name("write_killer.py")
TIME_SCALE = "0.002"
FILE_TTL_S = 3.0  # uploads expire after this; each scenario's kill and rerun fit well inside it
UNAFFORDABLE = {"kling-3-0": 10**9}  # while preparing: every create answers 402
PRICES = {"kling-3-0": 90}


class _Scenario:
    """One batch of one job, ``hero`` (an image-to-video job), with its own state and batch name
    (so its own job keys, idempotency keys and client_request_id on the shared emulator)."""

    def __init__(self, folder: Path, batch: str) -> None:
        self.folder = folder
        self.batch = batch
        self.state = folder / "s.db"
        (folder / "refs").mkdir(parents=True)
        shutil.copy(HERO, folder / "refs" / "hero.png")
        manifest = folder / "manifest.yaml"
        manifest.write_text(
            f"""version: 1
batch: {batch}
model: kling-3-0
jobs:
  - id: hero
    prompt: "The product in the photo rises slowly into frame, soft studio light"
    params: {{mode: pro, duration: 10, sound: false}}
    references: [refs/hero.png]
output:
  dir: out
limits:
  requests_per_second: 200
"""
        )
        self.args = ("run", str(manifest), "--state", str(self.state), "--time-scale", TIME_SCALE)

    def hero(self) -> tuple[str, int]:
        """The hero job's (status, attempt), read from the state database."""
        with closing(sqlite3.connect(f"file:{self.state}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT status, attempt FROM jobs WHERE job_id = 'hero'").fetchone()
        return row[0], row[1]

    def tasks(self, ledger: dict) -> int:
        return tasks_per_job(ledger)[f"{self.batch}/hero"]

    def leave_mid_submit(self) -> None:
        """Turn the job the preparing run left blocked (its key and body durable, the create
        answered 402, so no task exists) into the row a SIGKILL right after the submit's
        commit leaves: ``submitting``, with that key and body."""
        with closing(sqlite3.connect(self.state)) as conn, conn:
            changed = conn.execute(
                "UPDATE jobs SET status = 'submitting', error_code = NULL, error_message = NULL "
                "WHERE job_id = 'hero' AND status = 'blocked' "
                "AND idempotency_key IS NOT NULL AND request_body IS NOT NULL"
            ).rowcount
        assert changed == 1, f"{self.batch}: the preparing run should leave hero blocked"

    def run_killer(self, env: dict[str, str], kill_at: int | None) -> subprocess.CompletedProcess:
        """The same command, SIGKILLed just before its ``kill_at``-th durable write (if any);
        the writes it made are listed in ``writes.jsonl``."""
        extra = {"BATCHGEN_WRITES_FILE": str(self.folder / "writes.jsonl")}
        if kill_at is not None:
            extra["BATCHGEN_KILL_AT_WRITE"] = str(kill_at)
        return subprocess.run(
            [sys.executable, str(KILLER), *self.args, "-q"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def writes(self) -> list[str]:
        lines = (self.folder / "writes.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


def _prepare(emu: EmulatorThread, scenarios: list[_Scenario]) -> None:
    """Leave every scenario's hero mid-submit with a stored body whose upload has expired."""
    emu.set_switches(prices=UNAFFORDABLE)
    runs = [start_cli(*s.args, "-q", env=env_for(emu)) for s in scenarios]
    for scenario, run in zip(scenarios, runs, strict=True):
        _, err = run.communicate(timeout=120)
        assert run.returncode == 4, f"{scenario.batch}: {err}"
        scenario.leave_mid_submit()
    emu.set_switches(prices=PRICES)
    time.sleep(FILE_TTL_S + 0.3)  # every reference upload of the preparing runs expires


@pytest.mark.slow
def test_sigkill_between_any_two_writes_of_the_new_attempt_path(tmp_path: Path) -> None:
    """A SIGKILL between any two writes of the new-attempt path leaves a job that a plain rerun
    finishes."""
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE), seed=41, rate_limit_per_s=1000.0, file_ttl_s=FILE_TTL_S
    )
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        reference = _Scenario(tmp_path / "reference", "nac-ref")
        _prepare(emu, [reference])
        done = reference.run_killer(env, kill_at=None)
        assert done.returncode == 0, done.stderr
        assert reference.hero() == ("succeeded", 2), "the stored body was refused: new attempt"
        writes = reference.writes()

        scenarios = [_Scenario(tmp_path / f"k{k}", f"nac-k{k}") for k in range(len(writes))]
        _prepare(emu, scenarios)
        bad, kills = [], 0
        for k, scenario in enumerate(scenarios, start=1):
            killed = scenario.run_killer(env, kill_at=k)
            kills += killed.returncode == -9
            rerun = run_cli(*scenario.args, "-q", env=env)
            (status, attempt), tasks = scenario.hero(), scenario.tasks(emu.ledger())
            if rerun.returncode != 0 or status != "succeeded" or tasks != 1:
                bad.append(
                    f"killed before write {k} ({writes[k - 1][:60]}...): killer exit "
                    f"{killed.returncode}, rerun exit {rerun.returncode}, hero {status} "
                    f"(attempt {attempt}), {tasks} task(s); {rerun.stderr.strip()}"
                )
    assert not bad, f"{len(bad)} of {len(writes)} kill points broke the job:\n" + "\n".join(bad)
    assert kills >= len(writes) - 3, "the kills should land (a few late polls may vary)"
