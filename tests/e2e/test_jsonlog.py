"""``run --log FILE`` and ``run --on-finish CMD`` through the CLI, against the emulator: a JSON
line per event without the key, size rotation, and a summary command that runs whatever the
exit code and never changes it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.emulator.config import DEFAULT_API_KEY

from .helpers import TIME_SCALE, env_for, job_count, run_cli, write_manifest

DATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def env_for_nothing() -> dict[str, str]:
    """This process's environment without a service: ``--emulator`` needs none."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RIVYA_")}


def records(path: Path) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(isinstance(r["at"], str) and r["at"].endswith("Z") and r["event"] for r in found)
    return found


def test_json_log_and_on_finish_of_a_successful_run(tmp_path: Path) -> None:
    """Every line parses with at and event, job changes and the run's end are there, the key
    is not; the on-finish command reads the summary, and its exit 9 leaves batchgen's 0; every
    stderr line (progress included) is dated."""
    manifest = write_manifest(tmp_path)
    log, out = tmp_path / "run.jsonl", tmp_path / "out.json"
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=5, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        key = emu.api_key
        run = run_cli(
            "run", str(manifest), "--time-scale", TIME_SCALE, "--progress-interval", "0.05",
            "--log", str(log), "--on-finish", f"cat > {out}; exit 9", env=env,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = records(log)
    kinds = {r["event"] for r in found}
    assert {"run_started", "job_changed", "submitted", "run_finished"} <= kinds
    changed = [r for r in found if r["event"] == "job_changed"]
    assert {"job_id", "status", "previous", "task_id", "attempt", "credits"} <= set(changed[-1])
    assert found[-1]["event"] == "run_finished" and found[-1]["exit_code"] == 0
    assert key not in log.read_text()
    summary = json.loads(out.read_text())
    assert summary["exit_code"] == 0 and summary["batch"] == "t"
    assert summary["totals"]["by_status"] == {"succeeded": job_count()}
    assert {"stop_reasons", "submitted", "replayed", "state_file", "finished_at"} <= set(summary)
    assert key not in out.read_text()
    assert "exited 9" in run.stderr
    lines = run.stderr.splitlines()
    assert lines and all(DATED.match(line) for line in lines), run.stderr


def test_json_log_rotates_and_every_line_still_parses(tmp_path: Path) -> None:
    """With a tiny --log-max-mb the in-process rehearsal's log rotates to FILE.1..3; every
    file holds whole JSON lines, the run's end is in the newest, the emulator's key in none."""
    manifest = write_manifest(tmp_path)
    log = tmp_path / "run.jsonl"
    run = run_cli(
        "run", str(manifest), "--emulator", "--time-scale", TIME_SCALE, "-q",
        "--log", str(log), "--log-max-mb", "0.002", env=env_for_nothing(),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    kept = sorted(p.name for p in tmp_path.glob("run.jsonl*"))
    assert kept == ["run.jsonl", "run.jsonl.1", "run.jsonl.2", "run.jsonl.3"]
    for path in tmp_path.glob("run.jsonl*"):
        assert path.stat().st_size <= 2000
        records(path)
        assert DEFAULT_API_KEY not in path.read_text()
        assert DEFAULT_API_KEY.removeprefix("rvya_sk_") not in path.read_text()
    assert records(log)[-1]["event"] == "run_finished"


def test_on_finish_runs_when_the_run_stops_early(tmp_path: Path) -> None:
    """Out of credits (exit 4), the on-finish command still gets the summary, with exit code
    4 and the credits stop; the JSON log ends with the same exit code."""
    manifest = write_manifest(tmp_path)
    log, out = tmp_path / "run.jsonl", tmp_path / "out.json"
    cfg = EmulatorConfig(
        time_scale=float(TIME_SCALE), seed=6, rate_limit_per_s=1000.0, starting_credits=90
    )
    with EmulatorThread(cfg) as emu:
        run = run_cli(
            "run", str(manifest), "--time-scale", TIME_SCALE, "-q",
            "--log", str(log), "--on-finish", f"cat > {out}", env=env_for(emu),
        )  # fmt: skip
    assert run.returncode == 4, run.stderr
    summary = json.loads(out.read_text())
    assert summary["exit_code"] == 4 and "credits" in summary["stop_reasons"]
    assert summary["totals"]["by_status"].get("blocked", 0) >= 1
    assert records(log)[-1] == {**records(log)[-1], "event": "run_finished", "exit_code": 4}
