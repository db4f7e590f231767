"""Helpers for end-to-end tests: write manifests, run batchgen as a user would, read the ledger."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERO = REPO / "jobs" / "refs" / "hero.png"
TIME_SCALE = "0.002"
DEFAULT_PARAMS = '{mode: std, duration: 5, sound: false, aspect_ratio: "16:9"}'


def write_manifest(
    folder: Path,
    *,
    products: tuple[str, ...] = ("sneaker", "watch"),
    batch: str = "t",
    rate: int = 200,
    extra_jobs: str = "",
    params: str = DEFAULT_PARAMS,
) -> Path:
    """A demo-shaped manifest: products x 2 aspect ratios from a matrix, plus a hero with a ref."""
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERO, folder / "refs" / "hero.png")
    axis = ", ".join(products)
    text = f"""version: 1
batch: {batch}
model: kling-3-0
defaults:
  params: {params}
matrix:
  product: [{axis}]
  aspect_ratio: ["16:9", "9:16"]
prompt: "A cinematic product reveal of a {{product}} on a turntable"
jobs:
  - id: hero
    prompt: "The product in the photo rises slowly into frame, soft studio light"
    params: {{mode: pro, duration: 10}}
    references: [refs/hero.png]
{extra_jobs}output:
  dir: out
limits:
  requests_per_second: {rate}
  max_in_flight: 20
"""
    path = folder / "manifest.yaml"
    path.write_text(text)
    return path


def job_count(products: tuple[str, ...] = ("sneaker", "watch")) -> int:
    return len(products) * 2 + 1


def env_for(emu: Any, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(RIVYA_BASE_URL=emu.base_url, RIVYA_API_KEY=emu.api_key, **extra)
    return env


def batchgen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "batchgen", *args]


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        batchgen_cmd(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def tasks_per_job(ledger: dict[str, Any]) -> Counter[str]:
    """How many tasks the emulator created for each job (by the body's client_request_id)."""
    return Counter(t["body"].get("client_request_id") for t in ledger["tasks"])


def tasks_per_key(ledger: dict[str, Any]) -> Counter[str]:
    return Counter(t["idempotency_key"] for t in ledger["tasks"])


def request_count(
    ledger: dict[str, Any], method: str | None = None, endpoint_prefix: str = "/api/v1"
) -> int:
    return sum(
        r["count"]
        for r in ledger["requests"]
        if r["endpoint"].startswith(endpoint_prefix) and (method is None or r["method"] == method)
    )


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """``batchgen ARGS`` as a child process, its output captured (read it with communicate)."""
    return subprocess.Popen(
        batchgen_cmd(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def job_rows(state: Path) -> list[tuple[str, str, int]]:
    """(job id, status, polls) of every stored job, read-only, so it works during a run."""
    if not state.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)) as conn:
            return conn.execute("SELECT job_id, status, polls FROM jobs").fetchall()
    except sqlite3.OperationalError:  # the run has not created its tables yet
        return []


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def run_cli_timed(
    *args: str, env: dict[str, str], limit_s: float
) -> tuple[subprocess.CompletedProcess, float]:
    """``run_cli`` that gives up after ``limit_s``: the child is killed and its returncode is
    None, so a test can fail with a message instead of waiting for a slow run to end."""
    started = time.monotonic()
    proc = start_cli(*args, env=env)
    try:
        out, err = proc.communicate(timeout=limit_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    elapsed = time.monotonic() - started
    return subprocess.CompletedProcess(proc.args, code, out, err), elapsed  # type: ignore[arg-type]
