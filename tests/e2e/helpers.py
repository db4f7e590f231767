"""Helpers for end-to-end tests: write manifests, run batchgen as a user would, read the ledger."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERO = REPO / "jobs" / "refs" / "hero.png"
TIME_SCALE = "0.002"


def write_manifest(
    folder: Path,
    *,
    products: tuple[str, ...] = ("sneaker", "watch"),
    batch: str = "t",
    rate: int = 200,
    extra_jobs: str = "",
) -> Path:
    """A demo-shaped manifest: products x 2 aspect ratios from a matrix, plus a hero with a ref."""
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERO, folder / "refs" / "hero.png")
    axis = ", ".join(products)
    text = f"""version: 1
batch: {batch}
model: kling-3-0
defaults:
  params: {{mode: std, duration: 5, sound: false, aspect_ratio: "16:9"}}
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
