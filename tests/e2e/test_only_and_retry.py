"""``--only`` restricts a run, a report and a status to some jobs; ``retry`` gives the chosen
failed jobs a new attempt and keeps the earlier attempts in the record."""

from __future__ import annotations

import json
from pathlib import Path

from batchgen.emulator import EmulatorConfig, EmulatorThread

from .helpers import env_for, run_cli, tasks_per_job, write_manifest


def test_only_then_retry_with_history(tmp_path: Path) -> None:
    cfg = EmulatorConfig(time_scale=0.01, seed=3, rate_limit_per_s=1000.0, failure_rate=0.4)
    manifest = write_manifest(tmp_path, products=tuple(f"p{i}" for i in range(5)))
    state = tmp_path / "s.db"
    base = ("--state", str(state), "--time-scale", "0.01", "-q")
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        pilot = run_cli("run", str(manifest), *base, "--only", "p0-*", "--only", "hero", env=env)
        assert pilot.returncode in (0, 3), pilot.stderr  # only the chosen jobs count
        assert set(tasks_per_job(emu.ledger())) == {"t/p0-16x9", "t/p0-9x16", "t/hero"}
        everything = run_cli("run", str(manifest), *base, env=env)
        assert everything.returncode == 3, everything.stderr  # the seed fails some tasks
        report = json.loads(
            run_cli(
                "report", str(manifest), "--state", str(state), "--format", "json", env={}
            ).stdout
        )
        failed = sorted(j["id"] for j in report["jobs"] if j["status"] == "failed")
        assert len(failed) >= 2
        chosen, left = failed[0], failed[1:]
        before = tasks_per_job(emu.ledger())
        retried = run_cli("retry", str(manifest), *base, "--only", chosen, env=env)
        after = tasks_per_job(emu.ledger())
    assert retried.returncode in (0, 3), retried.stderr
    assert after[f"t/{chosen}"] == before[f"t/{chosen}"] + 1
    assert all(after[f"t/{job}"] == before[f"t/{job}"] for job in left)
    shown = run_cli(
        "report",
        str(manifest),
        "--state",
        str(state),
        "--format",
        "json",
        "--only",
        chosen,
        env={},
    )
    (job,) = json.loads(shown.stdout)["jobs"]
    assert job["id"] == chosen and job["attempt"] == 2
    assert len(job["earlier_attempts"]) == 1 and job["earlier_attempts"][0]["task_id"]
    status = run_cli("status", str(manifest), "--state", str(state), "--only", "p0-*", env={})
    assert "2 jobs" in status.stdout
