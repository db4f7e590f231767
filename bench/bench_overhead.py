"""Issue 12, item 4: what the client itself costs per job, in CPU and memory, and how fast it
goes when the service sets no limit.

Every measurement runs the whole of ``batchgen run`` as a library call (``run_manifest``: the
manifest load, job sync, preflight, the runner with its real client, store, downloads and event
subscribers, the report at the end) in a **child process of its own**, against the emulator in
another process (``bench._support.start_emulator``), so the child's own CPU time
(``getrusage(RUSAGE_SELF)``: user + system, every thread) and peak RSS are the client's alone.

* ``overhead.cpu_per_1000_jobs``: a batch of ``JOBS`` std 5 s jobs (``QUICK_JOBS`` in quick
  mode), 200 in flight, no rate limit on either side, the emulator at time scale 0.002 (a task
  takes about 0.2 s; the client's poll clock is scaled alike, so each task still gets its
  submit, a couple of polls and one download); CPU seconds of the child per 1,000 jobs;
* ``overhead.jobs_per_s``: the same run's jobs / wall seconds (the emulator shares the cores);
* ``overhead.peak_rss_10k``: peak RSS of a child with ``IN_FLIGHT_RSS`` (10,000) jobs in flight
  at once: every one submitted, tasks that take minutes; the child stops itself (SIGINT, as a
  person would) a moment after the last create was answered. Quick mode measures at 500 and
  1,000 in flight instead and extrapolates linearly to 10,000 (the note says so).

``details.profile``: one extra, smaller run under ``cProfile`` with a per-thread CPU clock,
its own-time summed into buckets (state writes, HTTP, files, events, ...): where the CPU goes.
The profiler inflates small functions, so the shares are indicative, not exact.

What the profile said before this module's work (2026-12-02, this 2-core machine shared with
three other sessions' tests and benchmarks, so every wall and CPU figure was noisy): each job
made about five fsynced transactions on the event loop's thread (about 5,000 COMMITs per 1,000
jobs; with 1,000 jobs in flight the first create left 2 s after the run started, behind 1,000
fsyncs); the loop's thread spent roughly 40% of its samples inside ``sqlite3`` ``execute``
(py-spy), most of it waiting for the disk; a ``JobRow`` was rebuilt after every change with every
JSON column parsed (46 ``json.loads`` per job); a JSON answer was parsed twice (the second time
for key redaction); every request seeded a fresh ``random.Random`` (2.5 KB held per request in
flight); every download took three worker-thread trips (fsync, folder fsync, and a second read
of the file for its sha256). After: commits are grouped (about 1.2 per job at 200 in flight, one
per loop turn for every worker that needs one), a row parses only non-empty JSON (bodies once
while recent), answers are parsed once, one ``Random`` per client, downloads hash while they
stream and take one thread trip. Python calls per job fell by about 12% and the memory per task
in flight from about 24 to about 18-20 KB; the CPU per job is dominated by aiohttp, the event
loop and builtins, spread thin: see ``details.profile``.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._support import figure, start_emulator

REPEATS = 2
IN_QUICK = True

JOBS = 1000
QUICK_JOBS = 300
PROFILE_JOBS = 300
IN_FLIGHT = 200
IN_FLIGHT_RSS = 10_000
QUICK_RSS_POINTS = (500, 1000)
FAST_SCALE = 0.002  # a std 5 s task: ~0.2 s
SLOW_SCALE = 1.0  # tasks run for minutes: every one stays in flight while the rest submit
NO_LIMIT = 1_000_000

CPU_TARGET_S = 2.0  # CPU seconds per 1,000 jobs
RSS_TARGET_MB = 200.0
JOBS_PER_S_TARGET = 100.0
ROOT = Path(__file__).resolve().parents[1]


def _manifest(folder: Path, jobs: int, in_flight: int) -> Path:
    subjects = ", ".join(f"s{i}" for i in range(jobs))
    path = folder / "overhead.yaml"
    path.write_text(
        f"""version: 1
batch: bench-overhead
model: kling-3-0
defaults:
  params: {{aspect_ratio: "16:9", mode: std, duration: "5"}}
matrix:
  subject: [{subjects}]
prompt: "A slow orbit around a ceramic {{subject}}, soft studio light"
output:
  dir: {folder / "out"}
limits:
  requests_per_second: {NO_LIMIT}
  burst: {min(in_flight, 1000)}
  max_in_flight: {in_flight}
"""
    )
    return path


# -- the child: one run, measured from inside -------------------------------------------------


def _child(args: dict[str, Any]) -> dict[str, Any]:
    from batchgen.commands import run_manifest
    from batchgen.config import RunSettings
    from batchgen.events import Event, Submitted

    folder = Path(args["folder"])
    jobs, in_flight = args["jobs"], args["in_flight"]
    manifest = _manifest(folder, jobs, in_flight)
    subscribers: tuple[Any, ...] = ()
    if args.get("stop_when_submitted"):
        import asyncio

        submitted = [0]

        def stop_when_all_in_flight(event: Event) -> None:
            if isinstance(event, Submitted):
                submitted[0] += 1
                if submitted[0] == jobs:  # every task in flight: a moment more, then stop
                    asyncio.get_running_loop().call_later(1.0, os.kill, os.getpid(), signal.SIGINT)

        subscribers = (stop_when_all_in_flight,)
    settings = RunSettings(
        state_path=folder / "state.db",
        time_scale=args["scale"],
        handle_signals=bool(args.get("stop_when_submitted")),
        subscribers=subscribers,
        env={"RIVYA_BASE_URL": args["base_url"], "RIVYA_API_KEY": args["api_key"]},
    )
    profiler = cProfile.Profile(time.thread_time) if args.get("profile") else None
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = run_manifest(manifest, settings)
    if profiler is not None:
        profiler.disable()
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "jobs": jobs,
        "in_flight": in_flight,
        "exit_code": result.exit_code,
        "by_status": dict((s.value, n) for s, n in result.report.totals.by_status),
        "wall_s": round(wall_s, 3),
        "cpu_user_s": round(after.ru_utime - before.ru_utime, 3),
        "cpu_sys_s": round(after.ru_stime - before.ru_stime, 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
    }
    if profiler is not None:
        out["profile"] = _buckets(pstats.Stats(profiler))
    return out


# What each function's own CPU time is counted as, by the first pattern its file matches.
BUCKETS = (
    ("event loop (asyncio, anyio, selectors)", ("asyncio/", "anyio/", "selectors", "select.")),
    ("state (sqlite, store, rows)", ("sqlite3", "sqlite_utils", "batchgen/store.py", "rows.py")),
    ("http (aiohttp, sockets, yarl, multidict)", ("aiohttp", "yarl", "multidict", "socket")),
    ("client (client, wire, limits, retry)", ("client.py", "wire.py", "limits.py", "retry.py")),
    ("json", ("json/",)),
    ("files (downloads, fsync, sha256)", ("files.py", "downloads.py", "tempfile", "posix")),
    (
        "events + logging",
        ("batchgen/events.py", "eventlog", "recorder", "progress", "jsonlog", "logging/"),
    ),
    ("runner, polling, schedule", ("runner.py", "polling.py", "schedule.py", "gates.py")),
    ("manifest, report, startup", ("manifest", "report.py", "yaml", "commands.py")),
)


def _bucket_of(filename: str, name: str) -> str:
    where = f"{filename}:{name}"
    for label, needles in BUCKETS:
        if any(n in where for n in needles):
            return label
    return "builtins (isinstance, len, dict.get ...) and other" if filename == "~" else "other"


def _buckets(stats: pstats.Stats) -> dict[str, Any]:
    totals: dict[str, float] = {}
    calls: dict[str, int] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, ncalls, tottime, _ct, _callers) in raw.items():
        label = _bucket_of(filename, name)
        totals[label] = totals.get(label, 0.0) + tottime
        calls[label] = calls.get(label, 0) + ncalls
    whole = sum(totals.values()) or 1.0
    shares = sorted(totals.items(), key=lambda kv: -kv[1])
    sqlite_calls = sum(
        v[1]
        for k, v in raw.items()
        if k[2] in ("<method 'execute' of 'sqlite3.Connection' objects>",)
    )
    steps = {label: 0.0 for label in STEPS}
    for (filename, _line, name), (_cc, _n, _tt, cumtime, _callers) in raw.items():
        for label, wanted in STEPS.items():
            if any(filename.endswith(f) and name == n for f, n in wanted):
                steps[label] += cumtime
    return {
        "profiled_cpu_s": round(whole, 2),
        "own_time_share": {label: round(t / whole, 3) for label, t in shares},
        "step_share": {label: round(t / whole, 3) for label, t in steps.items()},
        "sqlite_statements": sqlite_calls,
        "python_calls": stats.total_calls,  # type: ignore[attr-defined]
    }


# Inclusive time of a few entry points that do not nest in one another.
STEPS = {
    "HTTP exchanges (client + aiohttp, download streaming)": (("client.py", "_exchange"),),
    "state writes and commits": (
        ("store.py", "_transition"),
        ("store.py", "_commit_group"),
        ("store.py", "log_event"),
        ("store.py", "log_job_event"),
    ),
    "event bus (subscribers)": (("events.py", "emit"),),
}


# -- the parent: emulator, children, figures ---------------------------------------------------


def _spawn(args: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_overhead", json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the measured run failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def _measure(scale: float, folder: Path, **args: Any) -> dict[str, Any]:
    """One child run on a fresh emulator (its ledger and rate window start empty)."""
    flags = ["--time-scale", str(scale), "--rate-limit-per-s", str(NO_LIMIT)]
    flags += ["--max-processing-per-account", str(NO_LIMIT), "--seed", "12"]
    proc, base_url, api_key = start_emulator(*flags)
    try:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            out = _spawn(
                {"folder": tmp, "scale": scale, "base_url": base_url, "api_key": api_key} | args
            )
        if not args.get("stop_when_submitted"):
            out["requests_per_job"] = _requests_per_job(base_url, args["jobs"])
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _requests_per_job(base_url: str, jobs: int) -> dict[str, float]:
    """What the service answered, per job, by endpoint (from the emulator's ledger)."""
    with urllib.request.urlopen(f"{base_url}/_emulator/ledger", timeout=60) as answer:
        ledger = json.load(answer)
    counts: dict[str, int] = {}
    for row in ledger["requests"]:
        label = f"{row['method']} {row['endpoint']}"
        counts[label] = counts.get(label, 0) + row["count"]
    return {label: round(n / jobs, 2) for label, n in sorted(counts.items())}


def run(quick: bool = False) -> dict[str, Any]:
    jobs = QUICK_JOBS if quick else JOBS
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fast = _measure(FAST_SCALE, folder, jobs=jobs, in_flight=IN_FLIGHT)
        if quick:
            points = [
                _measure(SLOW_SCALE, folder, jobs=n, in_flight=n, stop_when_submitted=True)
                for n in QUICK_RSS_POINTS
            ]
        else:
            points = [
                _measure(
                    SLOW_SCALE,
                    folder,
                    jobs=IN_FLIGHT_RSS,
                    in_flight=IN_FLIGHT_RSS,
                    stop_when_submitted=True,
                )
            ]
        profile = None
        if not quick:
            profiled = _measure(
                FAST_SCALE, folder, jobs=PROFILE_JOBS, in_flight=IN_FLIGHT, profile=True
            )
            profile = profiled.pop("profile")
    return _report(fast, points, profile)


def _report(
    fast: dict[str, Any], points: list[dict[str, Any]], profile: dict[str, Any] | None
) -> dict[str, Any]:
    succeeded = fast["by_status"].get("succeeded", 0)
    cpu_s = fast["cpu_user_s"] + fast["cpu_sys_s"]
    per_1000 = 1000 * cpu_s / fast["jobs"]
    jobs_per_s = succeeded / fast["wall_s"]
    if len(points) == 1:
        rss = points[0]["peak_rss_mb"]
        rss_note = f"measured with {points[0]['in_flight']:,} tasks in flight at once"
        per_task_kb = None
    else:
        (a, b) = points[0], points[-1]
        slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["in_flight"] - a["in_flight"])
        base = a["peak_rss_mb"] - slope * a["in_flight"]
        rss = base + slope * IN_FLIGHT_RSS
        per_task_kb = round(slope * 1024, 1)
        rss_note = (
            f"extrapolated (quick mode) from {a['in_flight']:,} and {b['in_flight']:,} in flight: "
            f"{base:.0f} MB + {slope * 1024:.1f} KB per task"
        )
    miss_cpu = "" if per_1000 <= CPU_TARGET_S else " (misses: see details.profile)"
    figures = [
        figure(
            "overhead.cpu_per_1000_jobs",
            "client CPU per 1,000 jobs (submit, polls, download, state writes)",
            per_1000,
            unit="CPU s / 1,000 jobs",
            target=CPU_TARGET_S,
            better="lower",
            note=f"whole run_manifest of {fast['jobs']:,} jobs in a child process, user+sys of "
            f"every thread; {fast['wall_s']:.1f}s wall" + miss_cpu,
        ),
        figure(
            "overhead.peak_rss_10k_in_flight",
            "peak RSS with 10,000 tasks in flight",
            rss,
            unit="MB",
            target=RSS_TARGET_MB,
            better="lower",
            note=rss_note,
        ),
        figure(
            "overhead.jobs_per_s_no_limit",
            "jobs per second, no rate limit (fast tasks, 200 in flight)",
            jobs_per_s,
            unit="jobs / s",
            target=JOBS_PER_S_TARGET,
            better="higher",
            note=f"{succeeded:,} jobs end to end (create, polls, download) / wall time; the "
            "emulator shares the machine's cores with the client",
        ),
    ]
    details: dict[str, Any] = {"fast_run": fast, "rss_runs": points}
    if per_task_kb is not None:
        details["rss_per_task_kb"] = per_task_kb
    if profile is not None:
        details["profile"] = profile
    return {"figures": figures, "details": details}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))), flush=True)
