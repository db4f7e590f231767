"""``batchgen status --json`` and ``status --watch`` (issue 11 item 6), with the real CLI while
a run on the in-process emulator holds the state."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .helpers import job_count, run_cli, start_cli, wait_until, write_manifest

PRODUCTS = ("sneaker", "watch")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RIVYA_")}


def _state(manifest: Path) -> Path:
    return manifest.parent / "state" / "t.emulator.db"


def test_status_json_after_a_run(tmp_path: Path) -> None:
    """status --json prints one object with totals, failures by code, no task in flight, the
    latest events, the service, and running false once the run has ended."""
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    run = run_cli("run", str(manifest), "--emulator", "--time-scale", "0.002", "-q", env=_env())
    assert run.returncode == 0, run.stderr
    status = run_cli("status", str(manifest), "--emulator", "--json", env=_env())
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["running"] is False
    assert doc["totals"]["jobs"] == job_count(PRODUCTS)
    assert doc["by_status"] == {"succeeded": job_count(PRODUCTS)}
    assert doc["failures"] == {}
    assert doc["oldest_in_flight"] is None
    assert doc["events"] and {"at", "kind", "detail"} <= set(doc["events"][0])
    assert doc["service"]


def test_status_watch_follows_a_run_to_its_end(tmp_path: Path) -> None:
    """status --watch 0.5 --until-done, started in another process while a run holds the
    state, prints several timestamped refreshes (one showing the run holding the state and a
    task in flight) and ends after the run with the final counts and the report's exit code."""
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    run = start_cli("run", str(manifest), "--emulator", "--time-scale", "0.05", env=_env())
    try:
        args = ("status", str(manifest), "--emulator", "--json")
        assert wait_until(
            lambda: (
                _state(manifest).exists()
                and json.loads(run_cli(*args, env=_env()).stdout or "{}").get("running") is True
            ),
            timeout_s=60,
            interval_s=0.2,
        ), "the run never held its state"
        watch = start_cli(
            "status", str(manifest), "--emulator", "--watch", "0.5", "--until-done", env=_env()
        )
        out, err = watch.communicate(timeout=180)
        _, run_err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, run_err
    assert watch.returncode == 0, err
    blocks = out.split("-- ")[1:]
    assert len(blocks) >= 2, out
    assert all(b[:4].isdigit() for b in blocks)  # each headed by an ISO timestamp
    assert any("a run holds this state now" in b for b in blocks[:-1])
    assert any("oldest in flight: " in b for b in blocks[:-1])
    last = blocks[-1]
    assert "no run holds this state" in last
    assert f"{job_count(PRODUCTS)} jobs ({job_count(PRODUCTS)} succeeded)" in last
