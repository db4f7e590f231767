"""Scale: a million-job manifest, a resumed 100,000-job batch and a ten-million-job typo.

Every measurement runs in a subprocess of its own (so one's memory never counts in another's),
against an emulator in another subprocess (``_support.start_emulator``):

* **validate + plan**: ``load_manifest`` + ``make_plan`` of a generated 1,000,000-job matrix
  (50,000 prompt subjects x 10 durations x 2 aspect ratios, one reference image; ``limits:
  {max_jobs: 1000000}``) and of a 1,000,000-row CSV. Wall seconds (CPU seconds in the details).
* **first request of a run**: ``batchgen run`` on the matrix, from process start until the
  emulator's ledger counts its first POST (the reference upload: the first request that needs
  the jobs synced and the work list made; the preflight's account reads come before the sync),
  then SIGKILL. The run's peak RSS is its ``VmHWM`` at that moment; the state's bytes per job
  are read after it stopped.
* **resumed batch, first create**: a batch is started and killed after its first create
  (the setup); the same command again, timed from process start to the ledger's next create.
* **a ten-million-job typo**: ``batchgen validate`` on a matrix of 10,000,000 jobs with the
  default ``limits.max_jobs``: seconds until it stops (the figure asserts that it does stop).

Quick mode (``make bench-quick``) uses 100,000 jobs for the "million" figures and 20,000 for the
resumed batch, and says so in each key and label.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import _support
from bench._support import Figure, figure

REPEATS = 1
IN_QUICK = True

REF = Path(__file__).resolve().parent.parent / "jobs" / "refs" / "hero.png"
FIRST_REQUEST_TARGET_S = 30.0
RSS_TARGET_MB = 500.0
PLAN_TARGET_S = 30.0
RESUME_TARGET_S = 3.0
STATE_TARGET_BYTES = 3000.0
TYPO_TARGET_S = 5.0  # "a clear stop in seconds"
RUN_TIMEOUT_S = 300.0


def _subject(i: int) -> str:
    return f"a hand-made ceramic object number {i} with a glaze in shade {i % 37}"


def write_matrix(folder: Path, jobs: int, *, max_jobs: int | None = None) -> Path:
    """A matrix of ``jobs`` jobs: ``jobs / 20`` subjects x 10 durations x 2 ratios."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ref.png").write_bytes(REF.read_bytes())
    subjects = "\n".join(f"    - subject {i:07d}, {_subject(i)}" for i in range(jobs // 20))
    limits = f"limits: {{max_jobs: {max_jobs}}}\n" if max_jobs else ""
    text = f"""version: 1
batch: bench-scale
{limits}defaults:
  params: {{mode: std, sound: false}}
  references: [ref.png]
matrix:
  subject:
{subjects}
  duration: [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
  aspect_ratio: ["16:9", "9:16"]
prompt: "A slow cinematic orbit around {{subject}}, soft studio light, shallow depth of field"
"""
    path = folder / "matrix.yaml"
    path.write_text(text)
    return path


def write_rows(folder: Path, rows: int) -> Path:
    """A CSV of ``rows`` rows, each with its own prompt and one of two references."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ref.png").write_bytes(REF.read_bytes())
    (folder / "ref2.png").write_bytes(REF.read_bytes() + b"\x00")
    with (folder / "rows.csv").open("w") as out:
        out.write("id,prompt,duration,references\n")
        for i in range(rows):
            ref = "ref2.png" if i % 2 else "ref.png"
            out.write(f"row-{i},{_subject(i)} turning slowly,{3 + i % 13},{ref}\n")
    path = folder / "rows.yaml"
    path.write_text(
        f"version: 1\nbatch: bench-rows\nlimits: {{max_jobs: {rows}}}\nrows: rows.csv\n"
    )
    return path


# -- validate + plan, in a child process -------------------------------------------------------


def _child_plan(path: str) -> None:
    """(In the child.) Load and plan ``path``; print wall and CPU seconds and peak RSS."""
    from batchgen.manifest import load_manifest
    from batchgen.plan import make_plan

    wall, cpu = time.perf_counter(), time.process_time()
    manifest = load_manifest(Path(path))
    plan = make_plan(manifest)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "jobs": plan.job_count,
                "wall_s": round(time.perf_counter() - wall, 2),
                "cpu_s": round(time.process_time() - cpu, 2),
                "peak_rss_mb": round(rss, 1),
            }
        )
    )


def measure_plan(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_scale", "plan", str(path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- a run against the emulator, timed to its first request -----------------------------------


def _api_requests(base: str) -> dict[str, int]:
    """Requests the emulator answered so far, by ``METHOD endpoint`` (its own routes left out)."""
    with urllib.request.urlopen(f"{base}/_emulator/ledger", timeout=10) as resp:
        ledger = json.load(resp)
    counts: dict[str, int] = {}
    for row in ledger["requests"]:
        if row["endpoint"].startswith("/api/"):
            name = f"{row['method']} {row['endpoint']}"
            counts[name] = counts.get(name, 0) + row["count"]
    return counts


def _posts(counts: dict[str, int], *, creates_only: bool) -> int:
    """POST requests counted (an upload or a create), or creates only."""
    return sum(
        n
        for name, n in counts.items()
        if name.startswith("POST ") and ("generation" in name or not creates_only)
    )


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (``VmHWM``) so far, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_run(manifest: Path, state: Path, base: str, key: str, *, until: str) -> dict[str, Any]:
    """Start ``batchgen run``; when the ledger shows its first POST (``until="post"``: an upload
    or a create, the first request after the preflight's reads of the account, sent once the
    jobs are synced and the work list made) or its first create (``until="create"``), note the
    time and peak RSS, then kill it (the state is crash-safe: the next run resumes it)."""
    before = _api_requests(base)
    env = {**os.environ, "RIVYA_BASE_URL": base, "RIVYA_API_KEY": key}
    cmd = [sys.executable, "-m", "batchgen", "run", str(manifest), "--state", str(state), "-q"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen_s, rss = None, float("nan")
        while proc.poll() is None and time.perf_counter() - started < RUN_TIMEOUT_S:
            now = _api_requests(base)
            creates_only = until == "create"
            fresh = _posts(now, creates_only=creates_only) > _posts(
                before, creates_only=creates_only
            )
            if fresh:
                seen_s = time.perf_counter() - started
                rss = _peak_rss_mb(proc.pid)
                break
            time.sleep(0.05)
        # SIGKILL, not SIGINT: every write is durable when made (what a crash resumes from),
        # and after a SIGINT a run still walks its whole queue marking each job "not
        # submitted (signal)", minutes for a million jobs, which is not what is measured here
        proc.kill()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if seen_s is None:
        raise RuntimeError(f"the run sent nothing (exit {proc.returncode}): {err[-2000:]!r}")
    return {"seconds": round(seen_s, 2), "peak_rss_mb": round(rss, 1), "exit": proc.returncode}


def _state_bytes(state: Path) -> int:
    return sum(
        p.stat().st_size for p in (state, state.with_name(state.name + "-wal")) if p.exists()
    )


# -- the ten-million-job typo --------------------------------------------------------------------


def measure_typo(folder: Path) -> dict[str, Any]:
    """``batchgen validate`` on a 10,000,000-job matrix under the default cap."""
    subjects = "\n".join(f"    - subject {i}" for i in range(50_000))
    path = folder / "typo.yaml"
    path.write_text(
        "version: 1\nbatch: typo\nmatrix:\n  subject:\n"
        + subjects
        + "\n  duration: [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n"
        + '  aspect_ratio: ["16:9", "9:16"]\n'
        + "  take: [a, b, c, d, e, f, g, h, i, j]\n"
        + 'prompt: "{subject}, take {take}"\n'
    )  # 50,000 x 10 x 2 x 10 = 10,000,000: a "take" axis where ``repeat`` was meant
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "batchgen", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    seconds = time.perf_counter() - started
    stopped = out.returncode != 0 and "max_jobs" in out.stderr
    return {"seconds": round(seconds, 2), "stopped": stopped, "exit": out.returncode}


# -- the benchmark ---------------------------------------------------------------------------------


def run(quick: bool = False) -> dict[str, Any]:
    big = 100_000 if quick else 1_000_000
    resumed = 20_000 if quick else 100_000
    big_name = "100k" if quick else "1m"
    resumed_name = "20k" if quick else "100k"
    note_quick = " (quick mode: 100,000 jobs stand in for 1,000,000)" if quick else ""
    details: dict[str, Any] = {"quick": quick, "jobs": big, "resumed_jobs": resumed}
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        matrix = write_matrix(root / "big", big, max_jobs=big)
        details["plan_matrix"] = plan = measure_plan(matrix)
        figures.append(
            figure(
                f"scale.plan_{big_name}.matrix_s",
                f"validate + plan, {big:,}-job matrix",
                plan["wall_s"],
                unit="s",
                target=PLAN_TARGET_S,
                better="lower",
                note=f"load_manifest + make_plan, wall ({plan['cpu_s']} CPU s, "
                f"{plan['peak_rss_mb']:.0f} MB peak){note_quick}",
            )
        )
        if not quick:
            details["plan_rows"] = rows = measure_plan(write_rows(root / "rows", big))
            figures.append(
                figure(
                    f"scale.plan_{big_name}.rows_s",
                    f"validate + plan, {big:,}-row CSV",
                    rows["wall_s"],
                    unit="s",
                    target=PLAN_TARGET_S,
                    better="lower",
                    note=f"load_manifest + make_plan, wall ({rows['cpu_s']} CPU s, "
                    f"{rows['peak_rss_mb']:.0f} MB peak)",
                )
            )
        proc, base, key = _support.start_emulator("--time-scale", "0.01", "--seed", "1")
        try:
            state = root / "big.db"
            details["run_big"] = first = timed_run(matrix, state, base, key, until="post")
            per_job = _state_bytes(state) / big
            details["state_bytes"] = _state_bytes(state)
            details["state_file_bytes"] = state.stat().st_size
            small = write_matrix(root / "resumed", resumed, max_jobs=resumed)
            small_state = root / "resumed.db"
            details["resume_setup"] = timed_run(small, small_state, base, key, until="create")
            details["resume"] = again = timed_run(small, small_state, base, key, until="create")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        figures += [
            figure(
                f"scale.run_{big_name}.first_request_s",
                f"{big:,}-job run: seconds to its first request",
                first["seconds"],
                unit="s",
                target=FIRST_REQUEST_TARGET_S,
                better="lower",
                note="process start to the emulator's first POST (the reference upload): load, "
                f"validate, preflight, state sync, work list{note_quick}",
            ),
            figure(
                f"scale.run_{big_name}.peak_rss_mb",
                f"{big:,}-job run: peak RSS before its first request",
                first["peak_rss_mb"],
                unit="MB",
                target=RSS_TARGET_MB,
                better="lower",
                note=f"VmHWM of the run when its first POST arrived{note_quick}",
            ),
            figure(
                "scale.state_bytes_per_job",
                "state bytes per job",
                per_job,
                unit="B / job",
                target=STATE_TARGET_BYTES,
                better="lower",
                note=f"state database + WAL after the {big:,}-job run synced and was killed "
                "(its WAL not yet checkpointed back: about half of it)",
            ),
            figure(
                f"scale.resume_{resumed_name}.first_create_s",
                f"resumed {resumed:,}-job batch: seconds to its first create",
                again["seconds"],
                unit="s",
                target=RESUME_TARGET_S,
                better="lower",
                note="the same run command again after a run killed at its first create, from "
                "process start to "
                "its first create request"
                + (" (quick mode: 20,000 jobs stand in for 100,000)" if quick else ""),
            ),
        ]
        details["typo"] = typo = measure_typo(root)
        figures.append(
            figure(
                "scale.typo_validate_s",
                "a 10,000,000-job matrix typo: validate stops in",
                typo["seconds"] if typo["stopped"] else float("inf"),
                unit="s",
                target=TYPO_TARGET_S,
                better="lower",
                note="batchgen validate with the default limits.max_jobs (100,000): the count "
                "and how to raise the cap, before expanding"
                + ("" if typo["stopped"] else "; IT DID NOT STOP"),
            )
        )
    return {"figures": figures, "details": details}


if __name__ == "__main__":
    if sys.argv[1:2] == ["plan"]:
        _child_plan(sys.argv[2])
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
