"""The live view of ``batchgen run`` on a real terminal: tmux, 80x24 (issue 11 item 6)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import batchgen_cmd, write_manifest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

PRODUCTS = ("sneaker", "watch", "lamp", "chair", "mug", "bag")


def _tmux(sock: Path, *args: str) -> str:
    done = subprocess.run(
        ["tmux", "-S", str(sock), *args], capture_output=True, text=True, timeout=30
    )
    return done.stdout


def test_the_live_view_in_an_80_column_terminal(tmp_path: Path) -> None:
    """In a detached tmux session of 80x24, a rehearsal run shows the counts, the request rate
    and the ETA while it runs, and no line is wider than the terminal."""
    manifest = write_manifest(tmp_path, products=PRODUCTS)
    sock = tmp_path / "tmux.sock"
    cmd = shlex.join(batchgen_cmd("run", str(manifest), "--emulator", "--time-scale", "0.05"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIVYA_", "TMUX"))}
    subprocess.run(
        ["tmux", "-S", str(sock), "-f", "/dev/null", "new-session", "-d", "-s", "live",
         "-x", "80", "-y", "24", "-c", str(tmp_path), f"{cmd}; sleep 60"],
        env={**env, "TERM": "xterm-256color"},
        check=True,
        timeout=30,
    )  # fmt: skip
    captures: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "live")
            captures.append(screen)
            if "ETA" in screen and "/s" in screen and "running" in screen and "ETA -" not in screen:
                break
            time.sleep(0.5)
    finally:
        (tmp_path / "tmux-captures.txt").write_text("\n=====\n".join(captures))
        _tmux(sock, "kill-server")
    screen = captures[-1]
    (tmp_path / "tmux-screen.txt").write_text(screen)
    for shown in ("done", "pending", "running", "succeeded", "credits", "/s", "ETA"):
        assert shown in screen, (shown, screen)
    assert all(len(line) <= 80 for line in screen.splitlines()), screen
    assert f"/{len(PRODUCTS) * 2 + 1} done" in screen
