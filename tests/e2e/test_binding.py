"""A state is the record of one service and one account (issue 9), end to end with the real CLI:
a rehearsal never becomes a real run's record, a state refuses another service or key, one
manifest has one state wherever it runs from, and a lost state does not silently pay again."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from batchgen.emulator import ApiKey, EmulatorThread

from .helpers import (
    TIME_SCALE,
    batchgen_cmd,
    env_for,
    job_count,
    request_count,
    tasks_per_job,
    write_manifest,
)

PRODUCTS = ("sneaker",)
JOBS = job_count(PRODUCTS)
CREATES = ("POST", "/api/v1/generations")


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``batchgen ARGS`` from the folder ``cwd`` (the default state no longer depends on it);
    a ``run`` gets the tests' time scale."""
    extra = ("--time-scale", TIME_SCALE) if args[0] == "run" else ()
    return subprocess.run(
        batchgen_cmd(*args, *extra),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def no_server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RIVYA_")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meta(state: Path) -> dict[str, str]:
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as conn:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def test_a_rehearsal_never_becomes_the_real_runs_record(emulator_thread, tmp_path) -> None:
    """`run --emulator` keeps its state and videos apart; the real run that follows submits
    every job to its server and leaves the rehearsal's state untouched."""
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    rehearsal = cli("run", str(manifest), "--emulator", env=no_server_env(), cwd=tmp_path)
    assert rehearsal.returncode == 0, rehearsal.stderr
    rehearsal_state = tmp_path / "state" / "t.emulator.db"
    assert len(list((tmp_path / "out.emulator").glob("*.mp4"))) == JOBS
    assert (tmp_path / "state" / "t.emulator.server.json").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "state" / "t.db").exists()
    before = digest(rehearsal_state)
    unread = cli("report", str(manifest), env=no_server_env(), cwd=tmp_path)
    assert unread.returncode == 1 and "only a rehearsal has run" in unread.stderr
    assert "--emulator" in unread.stderr

    real = cli("run", str(manifest), env=env_for(emulator_thread), cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    ledger = emulator_thread.ledger()
    assert len(ledger["tasks"]) == JOBS and set(tasks_per_job(ledger).values()) == {1}
    assert len(list((tmp_path / "out").glob("*.mp4"))) == JOBS
    assert digest(rehearsal_state) == before, "the real run did not touch the rehearsal's state"
    assert meta(tmp_path / "state" / "t.db")["service"] == "http://127.0.0.1"
    assert meta(rehearsal_state)["service"] == "emulator (in-process)"

    # and the other way round: the real state refuses a rehearsal pointed at it
    refused = cli(
        "run", str(manifest), "--emulator", "--state", str(tmp_path / "state" / "t.db"),
        env=no_server_env(), cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 1 and "emulator (in-process)" in refused.stderr
    status = cli("status", str(manifest), "--emulator", env=no_server_env(), cwd=tmp_path)
    assert "service: emulator (in-process)" in status.stdout


def test_a_state_refuses_another_service_naming_both(
    emulator_thread, fast_emulator_config, tmp_path
) -> None:
    """A state bound to 127.0.0.1 refuses a server on 127.0.0.2 before any request."""
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = str(tmp_path / "s.db")
    first = cli("run", str(manifest), "--state", state, env=env_for(emulator_thread), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    with EmulatorThread(fast_emulator_config, host="127.0.0.2") as other:
        done = cli("run", str(manifest), "--state", state, env=env_for(other), cwd=tmp_path)
        assert done.returncode == 1
        assert "http://127.0.0.1" in done.stderr and "http://127.0.0.2" in done.stderr
        assert "--state FILE" in done.stderr and "Traceback" not in done.stderr
        assert request_count(other.ledger()) == 0, "nothing was sent to the other service"


def test_another_key_is_refused_until_same_account(fast_emulator_config, tmp_path) -> None:
    """A second key of the account is refused with a hint; --same-account records it. Neither
    key reaches the state file or the messages; the fingerprint is not the key."""
    one, two = "rvya_sk_first_key_4d2f9a1b7c", "rvya_sk_second_key_8e3c0b5a2d"
    cfg = dataclasses.replace(fast_emulator_config, keys=(ApiKey(one), ApiKey(two)))
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    state = tmp_path / "s.db"
    with EmulatorThread(cfg) as emu:
        env = env_for(emu)
        env["RIVYA_API_KEY"] = one
        assert (
            cli("run", str(manifest), "--state", str(state), env=env, cwd=tmp_path).returncode == 0
        )
        creates = request_count(emu.ledger(), *CREATES)
        env["RIVYA_API_KEY"] = two
        refused = cli("run", str(manifest), "--state", str(state), env=env, cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "another API key" in refused.stderr and "--same-account" in refused.stderr
        assert one not in refused.stderr + refused.stdout and two not in refused.stderr
        assert request_count(emu.ledger(), *CREATES) == creates
        fingerprint = meta(state)["account"]
        rebound = cli(
            "run", str(manifest), "--state", str(state), "--same-account", env=env, cwd=tmp_path
        )
        assert rebound.returncode == 0, rebound.stderr
        assert "0 submitted" in rebound.stdout
        assert request_count(emu.ledger(), *CREATES) == creates
    assert meta(state)["account"] != fingerprint
    for found in (fingerprint, meta(state)["account"]):
        assert found not in one and found not in two and len(found) == 16
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*") if p.is_file())
    assert one.encode() not in stored and two.encode() not in stored


def test_one_state_per_manifest_wherever_it_runs_from(emulator_thread, tmp_path) -> None:
    """Run from two different folders: one state beside the manifest; the second run sends
    no create request."""
    manifest = write_manifest(tmp_path / "jobs", products=PRODUCTS)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = env_for(emulator_thread)
    assert cli("run", str(manifest), env=env, cwd=tmp_path / "a").returncode == 0
    creates = request_count(emulator_thread.ledger(), *CREATES)
    again = cli("run", str(manifest), env=env, cwd=tmp_path / "b")
    assert again.returncode == 0 and "0 submitted, 0 resumed" in again.stdout
    assert request_count(emulator_thread.ledger(), *CREATES) == creates
    assert (tmp_path / "jobs" / "state" / "t.db").exists()
    assert not (tmp_path / "a" / "state").exists() and not (tmp_path / "b" / "state").exists()


def test_a_lost_state_with_videos_in_the_output_refuses_until_new_state(
    emulator_thread, tmp_path
) -> None:
    """The videos came from a state that is gone: a run would submit again, so it refuses
    (nothing sent, no state created); --new-state goes ahead knowingly."""
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    env = env_for(emulator_thread)
    assert cli("run", str(manifest), env=env, cwd=tmp_path).returncode == 0
    for leftover in (tmp_path / "state").glob("t.db*"):
        leftover.unlink()
    requests = request_count(emulator_thread.ledger())
    refused = cli("run", str(manifest), env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "--new-state" in refused.stderr and "submit" in refused.stderr
    assert request_count(emulator_thread.ledger()) == requests
    assert not (tmp_path / "state" / "t.db").exists()
    again = cli("run", str(manifest), "--new-state", env=env, cwd=tmp_path)
    # the reference job's body names a new upload, so its old key no longer fits: the run
    # stops submitting and keeps the job mid-submit (exit 4), never failed, never paid twice
    assert again.returncode == 4, again.stderr
    assert "another request body" in again.stderr
    assert (tmp_path / "state" / "t.db").exists()
    per_job = tasks_per_job(emulator_thread.ledger())
    text_only = [f"t/sneaker-{ratio}" for ratio in ("16x9", "9x16")]  # client_request_id
    assert all(per_job[job] == 1 for job in text_only), "text-only jobs were replayed, not paid"


def test_two_manifests_of_one_batch_in_one_folder_are_warned_about(tmp_path) -> None:
    """A second manifest with the same batch and output folder: plan and run say so."""
    first = write_manifest(tmp_path, products=PRODUCTS)
    second = tmp_path / "copy.yaml"
    second.write_text(first.read_text())
    done = cli("run", str(first), "--emulator", "-q", env=no_server_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = cli("plan", str(second), "--emulator", env=no_server_env(), cwd=tmp_path)
    assert plan.returncode == 0
    assert "is also written by" in plan.stderr and str(first) in plan.stderr
    run = cli("run", str(second), "--emulator", "-q", env=no_server_env(), cwd=tmp_path)
    assert run.returncode == 0 and str(first) in run.stderr
