"""One library call per CLI command. ``cli.py`` only parses, calls one of these, and renders.

Python users get the same behaviour without the CLI::

    from batchgen.commands import run_manifest
    result = run_manifest(Path("jobs/demo.yaml"), RunSettings(emulator=EmulatorChoice()))
    print(result.exit_code, result.report.totals)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml

from batchgen import signals
from batchgen.client import RivyaClient
from batchgen.config import (
    Connection,
    EmulatorChoice,
    RunConfig,
    RunSettings,
    default_state_path,
    resolve_base_url,
    resolve_run_config,
    state_path_for,
)
from batchgen.console import Console
from batchgen.errors import ManifestError, UsageError
from batchgen.eventlog import EventLog
from batchgen.events import EventBus, RunFinished
from batchgen.limits import RequestLimiter
from batchgen.manifest import load_manifest
from batchgen.models import Manifest
from batchgen.outcome import RunOutcome, run_exit_code
from batchgen.progress import ProgressDisplay
from batchgen.recorder import EventRecorder
from batchgen.redact import install_redaction
from batchgen.report import Report, report_from_state, report_from_store
from batchgen.runner import run_batch
from batchgen.store import StateStore, StoredEvent

log = logging.getLogger("batchgen")


@dataclass(frozen=True)
class RunResult:
    report: Report
    outcome: RunOutcome
    exit_code: int
    state_path: Path
    config: RunConfig


def validate_manifest(path: Path) -> Manifest:
    """Load and validate; raises ManifestError listing every problem. Sends nothing."""
    return load_manifest(path)


def run_manifest(path: Path, settings: RunSettings | None = None) -> RunResult:
    """Validate the manifest, then run or resume its batch to the end (or a resumable stop)."""
    settings = settings or RunSettings()
    catcher = signals.install() if settings.handle_signals else None
    manifest = load_manifest(path)  # every problem surfaces here, before anything is sent
    config = resolve_run_config(manifest, settings)
    for note in config.notes:
        log.warning("%s", note)
    bus = EventBus(EventLog(), *config.subscribers)
    with StateStore.open(config.state_path, manifest.batch) as store:
        bus.subscribe(EventRecorder(store))
        with _progress(config, bus, len(manifest.jobs)):
            outcome = anyio.run(_run_async, manifest, store, config, bus, catcher)
        report = report_from_store(manifest, store)
        code = run_exit_code(outcome, dict(report.totals.by_status))
        bus.emit(
            RunFinished(
                stop_reasons=tuple(outcome.stop_reasons),
                submitted=outcome.submitted,
                replayed=outcome.replayed,
                exit_code=int(code),
            )
        )
    return RunResult(report, outcome, int(code), config.state_path, config)


@contextlib.contextmanager
def _progress(config: RunConfig, bus: EventBus, total: int) -> Iterator[None]:
    """The progress display, when the caller asked for one (the CLI: unless ``--quiet``)."""
    if config.progress_stream is None:
        yield
        return
    console = Console(config.progress_stream)
    display = ProgressDisplay(console, total)
    bus.subscribe(display)
    with console.active():
        try:
            yield
        finally:
            bus.unsubscribe(display)
            display.finish()


async def _run_async(
    manifest: Manifest,
    store: StateStore,
    config: RunConfig,
    bus: EventBus,
    catcher: signals.SignalCatcher | None,
) -> RunOutcome:
    async with AsyncExitStack() as stack:
        connection = config.connection
        if config.emulator is not None:
            emu = await stack.enter_async_context(_start_emulator(config.emulator, store.path))
            connection = Connection(base_url=emu.base_url, api_key=emu.api_key)
        assert connection is not None
        install_redaction(connection.api_key)
        limiter = RequestLimiter(rate_per_s=config.limits.rate_per_s, burst=config.limits.burst)
        client = await stack.enter_async_context(
            RivyaClient(
                connection.base_url,
                connection.api_key,
                limiter=limiter,
                retry=config.retry,
                events=bus,
            )
        )
        return await run_batch(manifest, store, client, config, bus, catcher)


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


def report_batch(path: Path | None, state_path: Path | None = None) -> Report:
    """The report of a batch from its state database (read only; works during a run). Given a
    manifest that no longer validates (a reference moved, say) or none, the report is read
    from the state alone: the jobs of its latest run."""
    return _read_state(path, state_path, events=0).report


@dataclass(frozen=True)
class BatchStatus:
    """``batchgen status``: the report, and the latest notable events of the batch's runs."""

    report: Report
    events: tuple[StoredEvent, ...]


def status_batch(
    path: Path | None, state_path: Path | None = None, *, events: int = 5
) -> BatchStatus:
    """The report and the ``events`` table's latest rows (read only; works during a run)."""
    return _read_state(path, state_path, events=events)


def _read_state(path: Path | None, state_path: Path | None, *, events: int) -> BatchStatus:
    manifest, problem = None, None
    if path is not None:
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            problem = exc
    if manifest is not None:
        state_path = state_path or default_state_path(manifest)
        with StateStore.open_readonly(state_path, manifest.batch) as store:
            return BatchStatus(report_from_store(manifest, store), store.recent_events(events))
    batch = _batch_name(path) if path is not None else None
    if state_path is None:
        if path is None:
            raise UsageError("name the batch's manifest, or its state file with --state FILE")
        state_path = state_path_for(path, batch) if batch is not None else None
        if state_path is None or not state_path.exists():
            assert problem is not None
            raise problem  # no state to fall back on: the manifest's problems are the news
    if problem is not None:
        first = str(problem).splitlines()[0]
        log.warning(
            "%s does not validate now (%s); the report is read from the state alone: the jobs "
            "of its latest run",
            path,
            first,
        )
    with StateStore.open_readonly(state_path, batch) as store:
        return BatchStatus(report_from_state(store), store.recent_events(events))


def _batch_name(path: Path) -> str | None:
    """The ``batch:`` of a manifest that does not validate, read leniently (None if even that
    cannot be read): enough to find its state."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    batch = doc.get("batch") if isinstance(doc, dict) else None
    return batch if isinstance(batch, str) and batch else None


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
        with StateStore.open_readonly(state_path, manifest.batch) as store:
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
