"""The event stream's subscribers: timestamped log lines that never land on the progress line,
a progress display fed only by events, and every job change of a real run on the bus."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from batchgen import Event, RunSettings, run_manifest
from batchgen.console import Console, ConsoleHandler, IsoFormatter
from batchgen.emulator import EmulatorConfig, EmulatorThread
from batchgen.events import (
    Estimate,
    JobChanged,
    RequestAnswered,
    RunFinished,
    RunStarted,
    Submitted,
)
from batchgen.models import JobStatus
from batchgen.progress import ProgressDisplay
from batchgen.store import StateStore

from .helpers import TIME_SCALE, job_count, write_manifest


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_goes_above_the_live_line_not_onto_it() -> None:
    """On a terminal, a log line clears the progress line, prints on its own line, and the
    progress line is drawn again below it."""
    out = Tty()
    console = Console(out)
    logger = logging.getLogger("batchgen.test-console")
    handler = ConsoleHandler()
    handler.setFormatter(IsoFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with console.active():
            console.status("[0:00:01] 1/7 done")
            logger.warning("sneaker: failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "\r\x1b[K" in text
    after_clear = text.split("\r\x1b[K", 1)[1]
    log_line, rest = after_clear.split("\n", 1)
    assert log_line.endswith("batchgen: sneaker: failed")
    assert rest.startswith("[0:00:01] 1/7 done")


def test_log_lines_carry_an_iso_timestamp() -> None:
    """Every log line starts with a local ISO 8601 time with milliseconds and offset."""
    record = logging.LogRecord("batchgen", logging.WARNING, __file__, 1, "hello", None, None)
    line = IsoFormatter().format(record)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d batchgen: hello$", line)


def test_progress_figures_come_from_events_only() -> None:
    """Counts, credits, requests and the ETA on the progress line follow the events."""
    display = ProgressDisplay(Console(io.StringIO()), total=2)
    display(RunStarted(batch="b", jobs=2, to_do=2, workers=2, by_status=(("pending", 2),)))
    display(
        JobChanged(
            job_id="a",
            status=JobStatus.SUBMITTING,
            previous=JobStatus.PENDING,
            credits=(None, None),
        )
    )
    display(
        JobChanged(
            job_id="a",
            status=JobStatus.RUNNING,
            previous=JobStatus.SUBMITTING,
            credits=(90, None),
        )
    )
    display(RequestAnswered(endpoint="POST /api/v1/generations", status=201))
    display(Estimate(eta_s=65.0))
    line = display.line()
    assert "0/2 done: 1 pending, 1 running" in line
    assert "credits 0 charged, 90 reserved" in line
    assert "1 requests (0 429)" in line and "ETA 0:01:05" in line


def test_a_run_emits_every_job_change_on_one_bus(tmp_path: Path) -> None:
    """A subscriber sees the run start, each job submitted and succeeded, and the run end with
    its exit code; the events table keeps the run's start and end."""
    seen: list[Event] = []
    manifest = write_manifest(tmp_path)
    cfg = EmulatorConfig(time_scale=float(TIME_SCALE), seed=4, rate_limit_per_s=1000.0)
    with EmulatorThread(cfg) as emu:
        env = {"RIVYA_BASE_URL": emu.base_url, "RIVYA_API_KEY": emu.api_key}
        settings = RunSettings(
            state_path=tmp_path / "s.db",
            time_scale=float(TIME_SCALE),
            env=env,
            subscribers=(seen.append,),
        )
        result = run_manifest(manifest, settings)
    assert result.exit_code == 0
    assert isinstance(seen[0], RunStarted) and isinstance(seen[-1], RunFinished)
    assert seen[-1].exit_code == 0
    assert len([e for e in seen if isinstance(e, Submitted)]) == job_count()
    done = [e for e in seen if isinstance(e, JobChanged) and e.status is JobStatus.SUCCEEDED]
    assert sorted(e.job_id for e in done) == sorted(j.id for j in result.report.jobs)
    with StateStore.open_readonly(tmp_path / "s.db") as store:
        kinds = [e.kind for e in store.recent_events(1000)]
    assert kinds[0] == "run_finished" and kinds[-1] == "run_started"
