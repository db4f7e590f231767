"""The preflight: a dead address, a refused key and a short wallet are found before anything is
uploaded or submitted, in seconds; ``plan --online`` shows the wallet."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from batchgen.emulator import ApiKey, EmulatorConfig, EmulatorThread

from .helpers import TIME_SCALE, env_for, job_count, run_cli, run_cli_timed, write_manifest

PRICE = 90  # the emulator's base_credits for kling-3-0


def unused_port() -> int:
    """A loopback port nobody listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def dead_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RIVYA_BASE_URL=f"http://127.0.0.1:{unused_port()}", RIVYA_API_KEY="rvya_sk_dead")
    return env


def emulator_config(**changes: object) -> EmulatorConfig:
    return EmulatorConfig(time_scale=float(TIME_SCALE), seed=5, rate_limit_per_s=1000.0, **changes)


def run_args(manifest: Path, tmp_path: Path) -> list[str]:
    return ["run", str(manifest), "--state", str(tmp_path / "s.db"), "--time-scale", TIME_SCALE]


def test_dead_url_fails_fast_naming_the_variable(tmp_path: Path) -> None:
    """Against a port nobody listens on, ``run`` exits 1 within seconds naming RIVYA_BASE_URL."""
    manifest = write_manifest(tmp_path)
    proc, elapsed = run_cli_timed(*run_args(manifest, tmp_path), "-q", env=dead_env(), limit_s=60)
    assert proc.returncode == 1, proc.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert "RIVYA_BASE_URL" in proc.stderr and "127.0.0.1" in proc.stderr
    assert "rvya_sk_dead" not in proc.stderr + proc.stdout


def test_plan_online_dead_url_fails_fast(tmp_path: Path) -> None:
    """``plan --online`` against a dead address exits 1 within seconds naming RIVYA_BASE_URL."""
    manifest = write_manifest(tmp_path)
    proc, elapsed = run_cli_timed("plan", str(manifest), "--online", env=dead_env(), limit_s=60)
    assert proc.returncode == 1, proc.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert "RIVYA_BASE_URL" in proc.stderr


def test_short_wallet_warns_and_proceeds(tmp_path: Path) -> None:
    """A wallet short of the run's reservation gets a warning naming wallet, need and
    shortfall; the run goes on and stops resumably when the credits run out."""
    manifest = write_manifest(tmp_path)
    need = PRICE * job_count()
    with EmulatorThread(emulator_config(starting_credits=PRICE * 3)) as emu:
        proc = run_cli(*run_args(manifest, tmp_path), "-q", env=env_for(emu))
        ledger = emu.ledger()
    assert proc.returncode == 4, proc.stderr
    assert f"the wallet holds {PRICE * 3:,} credits; this run may reserve {need:,}" in proc.stderr
    assert f"{need - PRICE * 3:,} short" in proc.stderr
    assert ledger["tasks"], "the run went on and submitted what the wallet covered"


def test_require_funds_stops_before_submitting_then_resumes(tmp_path: Path) -> None:
    """With ``--require-funds`` a short wallet exits 4 before any upload or task; after a
    top-up the same command finishes the batch (exit 0)."""
    manifest = write_manifest(tmp_path)
    args = [*run_args(manifest, tmp_path), "--require-funds", "-q"]
    with EmulatorThread(emulator_config(starting_credits=PRICE)) as emu:
        first = run_cli(*args, env=env_for(emu))
        ledger = emu.ledger()
        assert first.returncode == 4, first.stderr
        assert "--require-funds" in first.stderr and "Top up" in first.stderr
        assert ledger["tasks"] == [] and ledger["files"] == []
        emu.topup(PRICE * job_count())
        second = run_cli(*args, env=env_for(emu))
    assert second.returncode == 0, second.stderr


def test_revoked_key_stops_in_preflight(tmp_path: Path) -> None:
    """A revoked key stops the run in the preflight with exit 1: nothing uploaded or created."""
    manifest = write_manifest(tmp_path)
    cfg = emulator_config(keys=(ApiKey("rvya_sk_gone", status="revoked"),))
    with EmulatorThread(cfg) as emu:
        proc = run_cli(*run_args(manifest, tmp_path), "-q", env=env_for(emu))
        ledger = emu.ledger()
    assert proc.returncode == 1, proc.stderr
    assert "revoked" in proc.stderr
    assert ledger["tasks"] == [] and ledger["files"] == []
    assert not [r for r in ledger["requests"] if r["method"] == "POST"]


def test_plan_online_shows_the_wallet(tmp_path: Path) -> None:
    """``plan --online`` shows the wallet beside the estimate with a key, and says it is
    unknown without one."""
    manifest = write_manifest(tmp_path)
    with EmulatorThread(emulator_config(starting_credits=200)) as emu:
        with_key = run_cli("plan", str(manifest), "--online", env=env_for(emu))
        as_json = run_cli("plan", str(manifest), "--online", "--json", env=env_for(emu))
        env = env_for(emu)
        del env["RIVYA_API_KEY"]
        no_key = run_cli("plan", str(manifest), "--online", env=env)
    assert with_key.returncode == 0, with_key.stderr
    assert f"wallet      200 credits ({PRICE * job_count() - 200:,} short)" in with_key.stdout
    assert json.loads(as_json.stdout)["wallet"] == 200
    assert no_key.returncode == 0, no_key.stderr
    assert "wallet      unknown (no key)" in no_key.stdout
