"""docs/scheduling.md's crontab line and systemd units are the ones a user copies: run their
command lines (not cron or systemd themselves) against the emulator, and let systemd-analyze
check the units where it exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from batchgen.emulator import EmulatorConfig, EmulatorThread

from .helpers import REPO, write_manifest

DOC = (REPO / "docs" / "scheduling.md").read_text()


def _block(info: str, containing: str) -> str:
    for body in re.findall(rf"```{info}\n(.*?)```", DOC, flags=re.S):
        if containing in body:
            return str(body)
    raise AssertionError(f"no ```{info} block with {containing!r} in docs/scheduling.md")


def _home(tmp_path: Path, emu: EmulatorThread) -> Path:
    """A home as the page assumes it: batchgen in ~/batchgen/.venv, the batch in ~/videos,
    the key in ~/.config/batchgen/rivya.env."""
    home = tmp_path / "home"
    venv_bin = home / "batchgen" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "batchgen").symlink_to(Path(sys.executable).parent / "batchgen")
    videos = home / "videos"
    manifest = write_manifest(videos, products=("a",))
    (videos / "jobs").mkdir()
    manifest.rename(videos / "jobs" / "nightly.yaml")
    text = (videos / "jobs" / "nightly.yaml").read_text().replace("refs/", "../refs/")
    (videos / "jobs" / "nightly.yaml").write_text(text.replace("dir: out", "dir: ../out"))
    env_file = home / ".config" / "batchgen" / "rivya.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"RIVYA_BASE_URL={emu.base_url}\nRIVYA_API_KEY={emu.api_key}\n")
    env_file.chmod(0o600)
    return home


def _later() -> str:
    return (datetime.now() + timedelta(hours=2)).strftime("%H:%M")  # never closes mid-test


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVYA_")}
    env["HOME"] = str(home)
    return env


@pytest.mark.slow
def test_the_crontab_line_runs_the_batch_and_leaves_a_log_and_a_summary(tmp_path: Path) -> None:
    line = next(
        ln for ln in _block("crontab", "batchgen").splitlines() if ln and not ln.startswith("#")
    )
    command = line.split(None, 5)[5].replace("--until 06:00", f"--until {_later()}")
    with EmulatorThread(EmulatorConfig(time_scale=0.005, rate_limit_per_s=1000.0)) as emu:
        home = _home(tmp_path, emu)
        done = subprocess.run(
            ["bash", "-c", command], env=_clean_env(home), timeout=300, capture_output=True
        )
        ledger = emu.ledger()
    logs = home / "videos" / "logs"
    assert done.returncode == 0, (logs / "nightly.txt").read_text()
    assert len(ledger["tasks"]) == 3
    events = [json.loads(x) for x in (logs / "nightly.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_finished" and events[-1]["exit_code"] == 0
    assert json.loads((logs / "last-summary.json").read_text())["exit_code"] == 0
    assert emu.api_key not in (logs / "nightly.jsonl").read_text()


@pytest.mark.slow
def test_the_systemd_service_command_runs_the_batch(tmp_path: Path) -> None:
    service = _block("ini", "ExecStart=")
    fields = dict(
        ln.split("=", 1) for ln in service.splitlines() if "=" in ln and not ln.startswith("#")
    )
    with EmulatorThread(EmulatorConfig(time_scale=0.005, rate_limit_per_s=1000.0)) as emu:
        home = _home(tmp_path, emu)
        env = _clean_env(home)
        for ln in Path(fields["EnvironmentFile"].replace("%h", str(home))).read_text().split():
            key, value = ln.split("=", 1)
            env[key] = value
        cwd = fields["WorkingDirectory"].replace("%h", str(home))
        subprocess.run(fields["ExecStartPre"].split(), cwd=cwd, check=True)
        argv = fields["ExecStart"].replace("%h", str(home)).split()
        argv[argv.index("--until") + 1] = _later()
        done = subprocess.run(argv, cwd=cwd, env=env, timeout=300, capture_output=True, text=True)
        ledger = emu.ledger()
    assert done.returncode == 0, done.stderr
    ok = {int(code) for code in fields["SuccessExitStatus"].split()}
    assert ok == {3, 4}
    assert len(ledger["tasks"]) == 3


def test_systemd_analyze_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    service = tmp_path / "batchgen-nightly.service"
    timer = tmp_path / "batchgen-nightly.timer"
    service.write_text(_block("ini", "ExecStart=").replace("%h", str(tmp_path)))
    timer.write_text(_block("ini", "OnCalendar="))
    fake = tmp_path / "batchgen" / ".venv" / "bin" / "batchgen"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    done = subprocess.run(
        [analyze, "verify", str(service), str(timer)], capture_output=True, text=True
    )
    problems = [
        ln for ln in done.stderr.splitlines() if "batchgen-nightly" in ln and "rivya.env" not in ln
    ]
    assert not problems, done.stderr
