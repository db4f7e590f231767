"""Output piped into a reader that stops early (`| head`) ends quietly."""

from __future__ import annotations

import subprocess
from pathlib import Path

from batchgen.manifest import load_manifest
from batchgen.store import StateStore

from .helpers import batchgen_cmd, write_manifest


def test_report_json_into_head_ends_quietly_with_141(tmp_path: Path) -> None:
    """`report --format json | head -c 100` gets its 100 bytes; batchgen stops without a
    traceback or an error message and exits 141, as a program stopped by SIGPIPE does."""
    products = tuple(f"p{i}" for i in range(300))
    manifest = load_manifest(write_manifest(tmp_path, products=products))
    state = tmp_path / "s.db"
    with StateStore.open(state, manifest.batch) as store:
        store.sync_jobs(manifest.jobs)  # 601 jobs: a report far larger than a pipe's buffer
    report = subprocess.Popen(
        batchgen_cmd("report", str(manifest.path), "--state", str(state), "--format", "json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert report.stdout is not None
    head = subprocess.run(["head", "-c", "100"], stdin=report.stdout, capture_output=True)
    report.stdout.close()
    assert report.stderr is not None
    with report.stderr:
        err = report.stderr.read().decode()
    assert report.wait(timeout=60) == 141
    assert len(head.stdout) == 100 and head.stdout.startswith(b"{")
    assert err == ""
