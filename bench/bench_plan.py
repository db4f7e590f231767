"""``batchgen plan`` on a 100,000-job manifest: load (parse, expand, validate) + plan.

Two shapes of 100,000 jobs, generated in a temporary folder:

* matrix: 5,000 prompt subjects x 10 durations x 2 aspect ratios, one shared reference image;
* rows: a 100,000-row CSV (id, prompt, duration, references).

Each is timed for ``load_manifest`` and ``make_plan`` (without and with a state snapshot in which
half the jobs are done, so every request hash is computed). Target: load + plan < 10 s.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from batchgen.manifest import load_manifest
from batchgen.plan import make_plan

REF = Path(__file__).resolve().parent.parent / "jobs" / "refs" / "hero.png"
SUBJECTS = 5_000
T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - started, 3)


def _subject(i: int) -> str:
    return f"a hand-made ceramic object number {i} with a glaze in shade {i % 37}"


def write_matrix_manifest(folder: Path) -> Path:
    """5,000 subjects x 10 durations x 2 ratios = 100,000 jobs."""
    (folder / "ref.png").write_bytes(REF.read_bytes())
    subjects = "\n".join(f"    - subject {i:05d}, {_subject(i)}" for i in range(SUBJECTS))
    text = f"""version: 1
batch: bench-matrix
defaults:
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


def write_rows_manifest(folder: Path, rows: int = 100_000) -> Path:
    """A CSV of 100,000 rows, each with its own prompt and one of two references."""
    (folder / "ref.png").write_bytes(REF.read_bytes())
    (folder / "ref2.png").write_bytes(REF.read_bytes() + b"\x00")
    lines = ["id,prompt,duration,references"]
    lines += [
        f"row-{i},{_subject(i)} turning slowly,{3 + i % 13},ref{'2' if i % 2 else ''}.png"
        for i in range(rows)
    ]
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    path = folder / "rows.yaml"
    path.write_text("version: 1\nbatch: bench-rows\nrows: rows.csv\n")
    return path


def _measure(path: Path) -> dict[str, float | int]:
    manifest, load_s = _timed(lambda: load_manifest(path))
    plan, plan_s = _timed(lambda: make_plan(manifest))
    state = {job.id: (job.request_hash, "succeeded") for job in manifest.jobs[::2]}
    with_state, state_s = _timed(lambda: make_plan(manifest, state=state))
    assert with_state.changes is not None and with_state.changes.done == len(state)
    return {
        "jobs": plan.job_count,
        "load_s": load_s,
        "plan_s": plan_s,
        "plan_with_state_s": state_s,
        "load_plus_plan_s": round(load_s + plan_s, 3),
        "load_plus_plan_with_state_s": round(load_s + state_s, 3),
    }


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        matrix = _measure(write_matrix_manifest(folder))
        rows = _measure(write_rows_manifest(folder))
    worst = max(
        float(matrix["load_plus_plan_with_state_s"]), float(rows["load_plus_plan_with_state_s"])
    )
    return {
        "target_s": 10.0,
        "worst_s": worst,
        "meets_target": worst < 10.0,
        "matrix": matrix,
        "rows": rows,
    }
