"""One library call per CLI command. ``cli.py`` only parses, calls one of these, and renders.

Python users get the same behaviour without the CLI::

    from batchgen.commands import run_manifest
    result = run_manifest(Path("jobs/demo.yaml"), emulator=EmulatorChoice())
    print(result.exit_code, result.report.totals)
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import anyio

from batchgen.client import RivyaClient
from batchgen.config import (
    Connection,
    default_state_path,
    resolve_base_url,
    resolve_connection,
    resolve_limits,
)
from batchgen.limits import RequestLimiter
from batchgen.manifest import load_manifest
from batchgen.models import Manifest
from batchgen.polling import PollPolicy
from batchgen.progress import ProgressPrinter
from batchgen.redact import install_redaction
from batchgen.report import EXIT_INTERRUPTED, EXIT_RESUMABLE, Report, exit_code, report_from_store
from batchgen.retry import RetryPolicy
from batchgen.runner import RunOptions, RunOutcome, run_batch
from batchgen.store import StateStore

log = logging.getLogger("batchgen")

DEMO_TIME_SCALE = 0.02  # rehearsal default: a 5 s clip's 1-4 minutes become 1-5 seconds


@dataclass(frozen=True)
class EmulatorChoice:
    """Run against the embedded emulator, in this process, instead of the real service."""

    time_scale: float = DEMO_TIME_SCALE
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)  # extra EmulatorConfig fields


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs beyond the manifest, resolved once (flag > env > manifest)."""

    state_path: Path | None = None
    emulator: EmulatorChoice | None = None
    time_scale: float | None = None  # scales poll timing; defaults to the emulator's, else 1
    rate_per_s: float | None = None
    burst: int | None = None
    max_in_flight: int | None = None
    retry_failed: bool = False
    retry: RetryPolicy | None = None  # per-request retries (default: RetryPolicy())
    handle_signals: bool = False
    progress_stream: TextIO | None = None
    progress_interval_s: float = 5.0
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RunResult:
    report: Report
    outcome: RunOutcome
    exit_code: int
    state_path: Path


def validate_manifest(path: Path) -> Manifest:
    """Load and validate; raises ManifestError listing every problem. Sends nothing."""
    return load_manifest(path)


def run_manifest(path: Path, settings: RunSettings | None = None) -> RunResult:
    """Validate the manifest, then run or resume its batch to the end (or a resumable stop)."""
    settings = settings or RunSettings()
    manifest = load_manifest(path)  # every problem surfaces here, before anything is sent
    state_path = settings.state_path or default_state_path(manifest)
    connection = None if settings.emulator else resolve_connection(settings.env)
    with StateStore.open(state_path, manifest.batch) as store:
        outcome = anyio.run(_run_async, manifest, store, connection, settings, backend="asyncio")
        report = report_from_store(manifest, store)
    code = exit_code(report, resumable_stop=outcome.credits_ran_out or bool(outcome.stuck))
    if outcome.signal is not None:
        code = EXIT_INTERRUPTED if outcome.signal == signal.SIGINT else EXIT_RESUMABLE
    return RunResult(report=report, outcome=outcome, exit_code=code, state_path=state_path)


async def _run_async(
    manifest: Manifest, store: StateStore, connection: Connection | None, settings: RunSettings
) -> RunOutcome:
    limits = resolve_limits(
        manifest,
        rate_per_s=settings.rate_per_s,
        burst=settings.burst,
        max_in_flight=settings.max_in_flight,
    )
    manifest = replace(manifest, limits=limits)
    time_scale = settings.time_scale
    async with AsyncExitStack() as stack:
        if settings.emulator is not None:
            emu = await stack.enter_async_context(_start_emulator(settings.emulator, store.path))
            connection = Connection(base_url=emu.base_url, api_key=emu.api_key)
            if time_scale is None:
                time_scale = settings.emulator.time_scale
        assert connection is not None
        install_redaction(connection.api_key)
        limiter = RequestLimiter(rate_per_s=limits.rate_per_s, burst=limits.burst)
        client = await stack.enter_async_context(
            RivyaClient(
                connection.base_url, connection.api_key, limiter=limiter, retry=settings.retry
            )
        )
        progress = None
        if settings.progress_stream is not None:
            progress = ProgressPrinter(store, len(manifest.jobs), settings.progress_stream)
            progress.client = client
        options = RunOptions(
            poll=PollPolicy(time_scale=time_scale or 1.0),
            retry_failed=settings.retry_failed,
            handle_signals=settings.handle_signals,
            progress_interval_s=settings.progress_interval_s,
        )
        try:
            return await run_batch(manifest, store, client, options, progress)
        finally:
            if progress is not None:
                progress()
                progress.finish()


def _start_emulator(choice: EmulatorChoice, state_path: Path) -> Any:
    """The in-process emulator keeps its own state next to the batch's, so that a resumed
    rehearsal finds the tasks the interrupted one created."""
    from batchgen.emulator import EmulatorConfig, running_emulator

    emu_state = state_path.with_name(state_path.stem + ".emulator.json")
    cfg = EmulatorConfig(
        time_scale=choice.time_scale,
        seed=choice.seed,
        state_file=str(emu_state),
        **dict(choice.options),
    )
    return running_emulator(cfg, host="127.0.0.1", port=0)


def report_batch(path: Path, state_path: Path | None = None) -> Report:
    """The report of a batch from its state database (read only; works during a run)."""
    manifest = load_manifest(path)
    state_path = state_path or default_state_path(manifest)
    with StateStore.open_readonly(state_path) as store:
        return report_from_store(manifest, store)


def plan_batch(
    path: Path,
    state_path: Path | None = None,
    *,
    online: bool = False,
    env: Mapping[str, str] | None = None,
) -> Any:
    """What a run would do now and what it would reserve. Sends nothing unless ``online``
    (then only the public models endpoint is asked for the price)."""
    from batchgen.plan import make_plan

    manifest = load_manifest(path)
    state_path = state_path or default_state_path(manifest)
    state = None
    if state_path.exists():
        with StateStore.open_readonly(state_path) as store:
            state = store.snapshot()
    base_credits = None
    if online:
        base_url = resolve_base_url(env)
        base_credits = anyio.run(_base_credits, base_url, manifest.model, backend="asyncio")
    return make_plan(manifest, state=state, base_credits=base_credits)


async def _base_credits(base_url: str, model: str) -> int | None:
    """The model's price per task from the public models endpoint (no key needed)."""
    async with RivyaClient(base_url, None) as client:
        for entry in await client.list_models():
            if entry.get("id") == model and isinstance(entry.get("base_credits"), int):
                return int(entry["base_credits"])
    return None
