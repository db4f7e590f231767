"""What more than one benchmark needs: the emulator in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any, TypedDict


def start_emulator(*flags: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``batchgen emulator --port 0 FLAGS`` in a subprocess (so it has a core of its own);
    return it with the base URL and key read from the export line it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgen.emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("export "):
            env = dict(item.split("=", 1) for item in line.split()[1:])
            return proc, env["RIVYA_BASE_URL"], env["RIVYA_API_KEY"]
    raise RuntimeError("the emulator exited before printing its export line")


# -- the one shape every benchmark reports in (bench/__main__.py aggregates and tabulates) -------
#
# A benchmark module ``bench/bench_<name>.py`` has:
#
#   REPEATS: int           how many times ``make bench`` runs it (``make bench-quick``: once)
#   IN_QUICK: bool         whether ``make bench-quick`` runs it (CI prints those, informationally)
#   def run(quick: bool = False) -> dict   one measurement: {"figures": [Figure, ...],
#                                           "details": {...anything JSON...}}
#
# Every figure is a ratio or a per-job cost measured within one run, so it holds on a noisy
# machine; the harness runs a module REPEATS times and reports min / median / max per key.


class Figure(TypedDict, total=False):
    key: str  # stable and unique across the suite, e.g. "ratelimit.at_r.served_share"
    label: str  # the table row's words, e.g. "served rate / R, client set at R"
    unit: str  # "x R", "%", "CPU s / 1,000 jobs", "MB", "s", "polls / task"
    value: float  # batchgen's figure in this run
    peer: float | None  # the peer's figure from the same run, where it has one
    target: float | None  # the threshold the issue sets (None: informational)
    better: str  # "higher" or "lower": which side of the target meets it
    note: str  # one sentence: what it includes, or why it misses


def figure(
    key: str,
    label: str,
    value: float,
    *,
    unit: str,
    target: float | None = None,
    better: str = "higher",
    peer: float | None = None,
    note: str = "",
) -> Figure:
    """One row of the results table (see ``Figure``)."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    return Figure(
        key=key,
        label=label,
        unit=unit,
        value=float(value),
        peer=None if peer is None else float(peer),
        target=target,
        better=better,
        note=note,
    )


# -- what the emulator's ledger says (GET /_emulator/ledger) -------------------------------------


def ledger(base_url: str) -> dict[str, Any]:
    """The emulator's whole ledger: tasks, charges, request counts by endpoint and status."""
    with urllib.request.urlopen(f"{base_url}/_emulator/ledger", timeout=30) as resp:
        return dict(json.loads(resp.read()))


def request_counts(led: dict[str, Any]) -> dict[str, int]:
    """API requests (rate-limited), their 429s, status reads answered 200, and downloads."""
    rows = led["requests"]
    api = [r for r in rows if r["endpoint"].startswith("/api/v1")]
    return {
        "api": sum(r["count"] for r in api),
        "api_429": sum(r["count"] for r in api if r["status"] == 429),
        "polls": sum(
            r["count"]
            for r in api
            if r["method"] == "GET"
            and r["endpoint"] == "/api/v1/generations/{task_id}"
            and r["status"] == 200
        ),
        "downloads": sum(r["count"] for r in rows if r["endpoint"].startswith("/results/")),
    }
