"""``python -m bench [--quick] [--record] [NAME ...]``: run the benchmarks, write the table.

Every ``bench/bench_<name>.py`` module (or those named) runs ``REPEATS`` times (``--quick``:
once, and only the modules with ``IN_QUICK``); each figure key is aggregated to min / median /
max and judged by its median against its target (``bench/_table.py``). Writes, untracked:

* ``bench/results.json``: the machine, every row with its verdict, every run's details;
* ``bench/results.md``: the same as a Markdown table.

``--record`` also rewrites the generated section of ``docs/benchmarks.md`` (the tracked page);
a plain run never changes a tracked file. Exit status 0 unless a module crashed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import _table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "results.md"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"


def machine() -> dict[str, Any]:
    """Cores, CPU model, RAM, Python and OS of this machine (Linux's /proc where it has one)."""
    cpu, ram_kb = platform.processor() or "unknown CPU", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(ram_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "os": _os_name(),
        "load_at_start": " / ".join(f"{x:.1f}" for x in load),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    return platform.platform()


def module_names(requested: list[str]) -> list[str]:
    """``bench_<name>`` for each requested name (``peer`` or ``bench_peer``), or all of them."""
    if not requested:
        return sorted(p.stem for p in HERE.glob("bench_*.py"))
    names = [n if n.startswith("bench_") else f"bench_{n}" for n in requested]
    for name in names:
        if not (HERE / f"{name}.py").exists():
            raise SystemExit(f"no benchmark bench/{name}.py")
    return names


def run_module(module: Any, quick: bool) -> tuple[list[list[Any]], list[Any], str | None]:
    """Run one module REPEATS times (once when quick): its figures per run, its details per
    run, and why it gave none (a crash, or a module still on the old interface)."""
    name = module.__name__.removeprefix("bench.")
    if not hasattr(module, "REPEATS"):
        return [], [], "no REPEATS / IN_QUICK / figures: not on the Figure interface yet; skipped"
    repeats = 1 if quick else int(module.REPEATS)
    runs, details = [], []
    for n in range(repeats):
        print(f"== {name} run {n + 1}/{repeats}", flush=True)
        started = time.perf_counter()
        try:
            out = module.run(quick=quick)
        except Exception as exc:
            traceback.print_exc()
            return runs, details, f"run {n + 1} crashed: {type(exc).__name__}: {exc}"
        if not isinstance(out, dict) or "figures" not in out:
            return runs, details, "run() returned no 'figures': not on the Figure interface yet"
        runs.append(out["figures"])
        details.append({"wall_s": round(time.perf_counter() - started, 1)} | out.get("details", {}))
        for fig in out["figures"]:
            peer = "" if fig.get("peer") is None else f"  (peer {_table.fmt(fig['peer'])})"
            print(f"   {fig['key']}: {_table.fmt(fig['value'])} {fig['unit']}{peer}", flush=True)
    return runs, details, None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each module once, IN_QUICK only")
    parser.add_argument("--record", action="store_true", help=f"also rewrite {DOCS_PAGE.name}")
    parser.add_argument("names", nargs="*", help="modules to run (peer or bench_peer); all")
    args = parser.parse_args(argv)
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "quick": args.quick,
    }
    started = time.perf_counter()
    rows: list[_table.Row] = []
    problems: dict[str, str] = {}
    modules: dict[str, Any] = {}
    for name in module_names(args.names):
        try:
            module = importlib.import_module(f"bench.{name}")
        except Exception as exc:
            problems[name] = f"does not import: {type(exc).__name__}: {exc} (crashed)"
            print(f"!! {name}: {problems[name]}", flush=True)
            continue
        if args.quick and not getattr(module, "IN_QUICK", False):
            continue
        t0 = time.perf_counter()
        runs, details, problem = run_module(module, args.quick)
        modules[name] = {"wall_s": round(time.perf_counter() - t0, 1), "runs": details}
        rows += _table.aggregate(name, runs)
        if problem:
            problems[name] = problem
            modules[name]["problem"] = problem
            print(f"!! {name}: {problem}", flush=True)
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    markdown = _table.render(meta, rows, problems)
    record = meta | {"rows": [r.to_json() for r in rows], "modules": modules}
    RESULTS_JSON.write_text(json.dumps(record, indent=2) + "\n")
    RESULTS_MD.write_text(markdown)
    print("\n" + markdown, flush=True)
    print(f"-> {RESULTS_JSON.relative_to(ROOT)}, {RESULTS_MD.relative_to(ROOT)}", flush=True)
    if args.record:
        DOCS_PAGE.write_text(_table.replace_section(DOCS_PAGE.read_text(), markdown))
        print(f"-> {DOCS_PAGE.relative_to(ROOT)} (generated section)", flush=True)
    crashed = any("crashed" in why for why in problems.values())
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
