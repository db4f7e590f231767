"""The command-line pieces: a flag per switch, config from flags, and ``serve``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from batchgen.emulator import EmulatorConfig
from batchgen.emulator.cli import SWITCH_HELP, add_arguments, config_from_args, flag_for


def parse(*argv: str) -> argparse.Namespace:
    """Parse ``argv`` with the emulator's flags."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_every_switch_has_a_flag_with_help():
    """Each EmulatorConfig field has a command-line flag with help text."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = parser.format_help()
    for field in dataclasses.fields(EmulatorConfig):
        assert field.name in SWITCH_HELP
        assert flag_for(field.name) in help_text


def test_defaults_give_the_default_config():
    """No flags means the default EmulatorConfig."""
    assert config_from_args(parse()) == EmulatorConfig()


def test_flags_become_config():
    """Flags of every kind (number, choice, bool, repeated) land in the config."""
    ns = parse(
        "--time-scale", "0.01", "--seed", "7", "--rate-limit-per-s", "50",
        "--retry-after-mode", "http-date", "--public-api-disabled", "--no-admin",
        "--key", "rvya_sk_one",
        "--key", "rvya_sk_two,scopes=files:read,status=revoked,account=acct2",
        "--price", "kling-3-0=45", "--state-file", "state/emu.jsonl", "--fault-502-rate", "0.1",
        "--create-status", "mixed",
    )  # fmt: skip
    cfg = config_from_args(ns)
    assert (cfg.time_scale, cfg.seed, cfg.rate_limit_per_s) == (0.01, 7, 50.0)
    assert cfg.retry_after_mode == "http-date" and cfg.public_api_disabled
    assert cfg.admin_enabled is False
    assert [k.key for k in cfg.keys] == ["rvya_sk_one", "rvya_sk_two"]
    assert cfg.keys[1].scopes == ("files:read",) and cfg.keys[1].status == "revoked"
    assert cfg.keys[1].account == "acct2"
    assert dict(cfg.prices) == {"kling-3-0": 45}
    assert cfg.state_file == "state/emu.jsonl"
    assert (cfg.fault_502_rate, cfg.create_status) == (0.1, "mixed")


def test_bad_values_are_refused_with_a_message():
    """A share above 1 or a malformed price is a ValueError naming the problem."""
    with pytest.raises(ValueError, match="drop_rate"):
        config_from_args(parse("--drop-rate", "2"))
    with pytest.raises(ValueError, match="MODEL=CREDITS"):
        config_from_args(parse("--price", "ninety"))


def start_server(*flags: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``python -m batchgen.emulator`` and read its banner up to the export line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgen.emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("export "):
            break
    return proc, lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_the_export_line_and_stops_cleanly(signum):
    """serve prints the base URL and an export line that works, and exits 0 on Ctrl-C/SIGTERM."""
    proc, lines = start_server("--time-scale", "0.01")
    try:
        export = lines[-1].split()
        env = dict(item.split("=", 1) for item in export[1:])
        assert env["RIVYA_BASE_URL"].startswith("http://127.0.0.1:")
        assert any(env["RIVYA_BASE_URL"] in line for line in lines[:-1])
        request = urllib.request.Request(
            env["RIVYA_BASE_URL"] + "/api/v1/credits",
            headers={"Authorization": f"Bearer {env['RIVYA_API_KEY']}"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.load(resp) == {"current_credits": 1_000_000}
    finally:
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert "emulator stopped" in stderr
    assert "Traceback" not in stderr


def test_serve_explains_a_port_in_use():
    """When the port is taken, serve says so, suggests --port, and exits 1."""
    proc, lines = start_server()
    try:
        port = lines[-1].split("RIVYA_BASE_URL=")[1].split()[0].rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "batchgen.emulator", "--port", port],
            capture_output=True,
            text=True,
            timeout=20,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert second.returncode == 1
    assert second.stderr.startswith("Error: cannot listen on 127.0.0.1:")
    assert "--port" in second.stderr


def test_state_file_survives_a_killed_process(tmp_path):
    """A task created just before the process is killed (-9) is still there after a restart."""
    state = str(tmp_path / "emu.jsonl")
    body = json.dumps({"model": "kling-3-0", "prompt": "survive"}).encode()

    def create(base: str, key: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            base + "/api/v1/generations",
            data=body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "job-1",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)

    proc, lines = start_server("--state-file", state)
    env = dict(item.split("=", 1) for item in lines[-1].split()[1:])
    try:
        first_status, first = create(env["RIVYA_BASE_URL"], env["RIVYA_API_KEY"])
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    proc, lines = start_server("--state-file", state)
    env = dict(item.split("=", 1) for item in lines[-1].split()[1:])
    try:
        again_status, again = create(env["RIVYA_BASE_URL"], env["RIVYA_API_KEY"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert (first_status, again_status) == (201, 200)
    assert again["id"] == first["id"]


def test_every_flag_is_documented():
    """docs/emulator.md names every flag of the emulator, so the docs cannot drift."""
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text()
    for field in dataclasses.fields(EmulatorConfig):
        assert f"`{flag_for(field.name)}`" in docs, field.name
