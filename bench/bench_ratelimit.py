"""Issue 5, second "Done when": a client configured at 2R against a server limited to R.

The emulator runs in a subprocess (``python -m batchgen.emulator``) limited to R requests per
second per key (its sliding window over every ``/api/v1`` endpoint), at a time scale small
enough that tasks finish in about a second, with processing slots to spare: the request budget
is the only bottleneck. The real runner (``batchgen.commands.run_manifest``) then runs a
2,000-job manifest (1,000 subjects x 2 aspect ratios, std, 5 s) with ``rate_per_s`` = 2R and
100 tasks in flight. The emulator's ledger says what it answered.

Targets: under 5% of the API requests answered 429, and at least 0.8R API requests per second
answered without a 429 (over the whole run, start and tail included). The same batch with the
client configured at exactly R is recorded for comparison.

What counts: the emulator rate-limits ``/api/v1`` only. Result downloads (``/results/...``)
carry the key (same origin as the API) but are not counted in its window, so they are reported
apart and left out of the request rate.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from batchgen.commands import RunSettings, run_manifest
from batchgen.report import to_dict
from bench import _support

SERVER_RATE_PER_S = int(os.environ.get("BENCH_RATE_PER_S", "40"))
JOBS_SUBJECTS = int(os.environ.get("BENCH_SUBJECTS", "1000"))  # x 2 aspect ratios
TIME_SCALE = 0.01  # a 5 s std clip's 1-4 minutes become about 1-2 s
MAX_IN_FLIGHT = 100
BURST = 5  # the manifest default
PROCESSING_SLOTS = 1000  # the emulator's per-account processing cap, out of the way
SAMPLE_S = 1.0
MAX_429_SHARE = 0.05
MIN_RATE_SHARE = 0.8


def start_emulator(rate_per_s: int) -> tuple[subprocess.Popen[str], str, str]:
    """The emulator subprocess and its base URL and key (read from its export line)."""
    return _support.start_emulator(
        "--time-scale",
        str(TIME_SCALE),
        "--seed",
        "1",
        "--rate-limit-per-s",
        str(rate_per_s),
        "--max-processing-per-account",
        str(PROCESSING_SLOTS),
    )


def write_manifest(folder: Path) -> Path:
    """1,000 subjects x 2 aspect ratios = 2,000 std 5 s jobs, 100 in flight."""
    subjects = "\n".join(f"    - ceramic object {i:04d}" for i in range(JOBS_SUBJECTS))
    text = f"""version: 1
batch: bench-ratelimit
model: kling-3-0
defaults:
  params: {{mode: std, duration: 5, sound: false}}
matrix:
  subject:
{subjects}
  aspect_ratio: ["16:9", "9:16"]
prompt: "A slow cinematic orbit around a {{subject}}, soft studio light"
output:
  dir: {folder / "out"}
limits:
  burst: {BURST}
  max_in_flight: {MAX_IN_FLIGHT}
"""
    path = folder / "bench.yaml"
    path.write_text(text)
    return path


def ledger(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_emulator/ledger", timeout=30) as resp:
        return dict(json.loads(resp.read()))


def count_requests(rows: list[dict[str, Any]]) -> dict[str, int]:
    """API requests (rate-limited), their 429s, and downloads (not rate-limited)."""
    api = [r for r in rows if r["endpoint"].startswith("/api/v1")]
    return {
        "api": sum(r["count"] for r in api),
        "api_429": sum(r["count"] for r in api if r["status"] == 429),
        "downloads": sum(r["count"] for r in rows if r["endpoint"].startswith("/results/")),
    }


class Sampler(threading.Thread):
    """Reads the ledger every second while the batch runs: 429s and answers per second."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.stop.wait(SAMPLE_S):
            counts = count_requests(ledger(self.base_url)["requests"])
            self.samples.append((time.perf_counter() - started, counts))

    def per_10s(self) -> list[dict[str, float]]:
        """API answers without a 429 per second, and 429s, in each 10 s slice of the run."""
        out = []
        since, previous = 0.0, {"api": 0, "api_429": 0}
        for at, counts in self.samples[9::10]:
            ok = (counts["api"] - counts["api_429"]) - (previous["api"] - previous["api_429"])
            out.append(
                {
                    "until_s": round(at),
                    "ok_per_s": round(ok / (at - since), 1),
                    "429s": counts["api_429"] - previous["api_429"],
                }
            )
            since, previous = at, counts
        return out


def one_run(server_rate: int, client_rate: float) -> dict[str, Any]:
    """The whole batch against a fresh emulator; the ledger's figures."""
    proc, base_url, key = start_emulator(server_rate)
    sampler = Sampler(base_url)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
            folder = Path(tmp)
            settings = RunSettings(
                state_path=folder / "state.db",
                time_scale=TIME_SCALE,
                rate_per_s=client_rate,
                env={"RIVYA_BASE_URL": base_url, "RIVYA_API_KEY": key},
            )
            manifest = write_manifest(folder)
            sampler.start()
            started = time.perf_counter()
            result = run_manifest(manifest, settings)
            wall_s = time.perf_counter() - started
            sampler.stop.set()
            sampler.join()
            counts = count_requests(ledger(base_url)["requests"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    return summarise(server_rate, client_rate, wall_s, counts, to_dict(result.report), sampler)


def summarise(
    server_rate: int,
    client_rate: float,
    wall_s: float,
    counts: dict[str, int],
    report: dict[str, Any],
    sampler: Sampler,
) -> dict[str, Any]:
    api, refused = counts["api"], counts["api_429"]
    share_429 = refused / api if api else 0.0
    ok_rate = (api - refused) / wall_s
    return {
        "server_rate_per_s": server_rate,
        "client_rate_per_s": client_rate,
        "burst": BURST,
        "jobs": report["totals"]["jobs"],
        "jobs_succeeded": report["totals"]["by_status"].get("succeeded", 0),
        "by_status": report["totals"]["by_status"],
        "wall_s": round(wall_s, 1),
        "api_requests": api,
        "api_429": refused,
        "share_429": round(share_429, 4),
        "api_rate_per_s": round(api / wall_s, 2),
        "api_ok_rate_per_s": round(ok_rate, 2),
        "ok_rate_share_of_limit": round(ok_rate / server_rate, 3),
        "downloads_not_rate_limited": counts["downloads"],
        "meets_429_target": share_429 < MAX_429_SHARE,
        "meets_rate_target": ok_rate >= MIN_RATE_SHARE * server_rate,
        "per_10s": sampler.per_10s(),
    }


def run() -> dict[str, Any]:
    """The 2R run (the target) and the R run (for comparison)."""
    r = SERVER_RATE_PER_S
    at_2r = one_run(r, 2.0 * r)
    at_r = one_run(r, float(r))
    return {
        "target": f"client at 2R: < {MAX_429_SHARE:.0%} 429s and >= {MIN_RATE_SHARE}R served",
        "time_scale": TIME_SCALE,
        "max_in_flight": MAX_IN_FLIGHT,
        "meets_targets": at_2r["meets_429_target"] and at_2r["meets_rate_target"],
        "client_at_2r": at_2r,
        "client_at_r": at_r,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
