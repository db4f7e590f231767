"""One library call per CLI command. ``cli.py`` only parses, calls one of these, and renders.

Python users get the same behaviour without the CLI::

    from batchgen.commands import run_manifest
    result = run_manifest(Path("jobs/demo.yaml"), RunSettings(emulator=EmulatorChoice()))
    print(result.exit_code, result.report.totals)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import yaml

from batchgen import binding, signals
from batchgen.client import RivyaClient
from batchgen.config import (
    ENV_KEY,
    Connection,
    EmulatorChoice,
    RunConfig,
    RunSettings,
    default_output_dir,
    default_state_path,
    resolve_base_url,
    resolve_connection,
    resolve_run_config,
    resolve_state_path,
    state_path_for,
)
from batchgen.console import Console
from batchgen.errors import ManifestError, StateError, UsageError
from batchgen.eventlog import EventLog
from batchgen.events import EventBus, RunFinished
from batchgen.limits import RequestLimiter
from batchgen.manifest import load_manifest, manifest_warnings
from batchgen.models import JobStatus, Manifest, job_selected, output_stem
from batchgen.outcome import RunOutcome, run_exit_code
from batchgen.preflight import online_facts, run_preflight
from batchgen.progress import LiveDisplay, ProgressDisplay, RichConsole
from batchgen.recorder import EventRecorder
from batchgen.redact import install_redaction
from batchgen.report import Report, report_from_state, report_from_store, select_jobs
from batchgen.rows import JobRow
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
    manifest = load_manifest(path)
    for line in manifest_warnings(manifest):
        log.warning("%s", line)
    return manifest


def run_manifest(path: Path, settings: RunSettings | None = None) -> RunResult:
    """Validate the manifest, then run or resume its batch to the end (or a resumable stop)."""
    settings = settings or RunSettings()
    catcher = signals.install() if settings.handle_signals else None
    manifest = load_manifest(path)  # every problem surfaces here, before anything is sent
    for line in manifest_warnings(manifest):
        log.warning("%s", line)
    config = resolve_run_config(manifest, settings)
    if config.connection is not None:
        install_redaction(config.connection.api_key)  # from here on, whatever is logged
    for note in config.notes:
        log.warning("%s", note)
    output_dir = config.output_dir or manifest.output_dir
    found = read_marker(output_dir)
    if not config.state_path.exists() and not config.new_state:
        videos = _videos_of(manifest, output_dir)
        if binding.orphaned_videos(found, manifest.batch, videos):
            raise binding.orphan_error(config.state_path, output_dir, videos)
    bus = EventBus(EventLog(), *config.subscribers)
    with StateStore.open(config.state_path, manifest.batch) as store:
        _warn_sharing(manifest, found, store.meta(), output_dir)
        if config.connection is not None:  # the in-process emulator's is known once it runs
            _bind(manifest, store, config, config.connection)
        bus.subscribe(EventRecorder(store))
        with _progress(config, bus, len(manifest.jobs)):
            outcome = anyio.run(_run_async, manifest, store, config, bus, catcher)
        report = select_jobs(report_from_store(manifest, store), config.only)
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
    if console.live:  # a terminal: the multi-line view; elsewhere timestamped lines
        console = RichConsole(config.progress_stream)
        display = LiveDisplay(console, total)
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
        if config.emulator is not None:
            _bind(manifest, store, config, connection)  # before the first request
        if config.preflight:  # seconds, before the first upload or submit
            await run_preflight(
                connection.base_url,
                connection.api_key,
                manifest,
                store.snapshot(),
                retry_failed=config.retry_failed,
                require_funds=config.require_funds,
            )  # its requests are not on the bus: a run's events begin with RunStarted
        limiter = RequestLimiter(rate_per_s=config.limits.rate_per_s, burst=config.limits.burst)
        client = await stack.enter_async_context(
            RivyaClient(
                connection.base_url,
                connection.api_key,
                limiter=limiter,
                retry=config.retry,
                max_result_bytes=config.max_result_bytes,
                download_deadline_s=config.download_deadline_s,
                events=bus,
            )
        )
        return await run_batch(manifest, store, client, config, bus, catcher)


def _bind(manifest: Manifest, store: StateStore, config: RunConfig, conn: Connection) -> None:
    """Check that the state belongs to the service and account this run targets (a state
    with no binding yet is adopted), record them and the manifest, and mark the output folder
    as this batch's. Raises ``StateError`` before anything is sent."""
    service = binding.service_identity(None if config.emulator else conn.base_url)
    meta = store.meta()
    if binding.META_SERVICE not in meta and _old_journal(store.path).exists():
        # a state from before bindings that an in-process rehearsal wrote (its journal is
        # beside it): it is the emulator's record, whoever runs it next
        meta = {**meta, binding.META_SERVICE: binding.EMULATOR_SERVICE}
    updates = binding.check_binding(
        meta,
        binding.Target(service, conn.api_key),
        state_path=store.path,
        same_account=config.same_account,
    )
    manifest_path = manifest.path.resolve()
    store.set_meta(**updates, **{binding.META_MANIFEST: str(manifest_path)})
    output_dir = config.output_dir or manifest.output_dir
    mark = binding.marker(manifest.batch, manifest_path, store.path.resolve(), service)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        tmp = output_dir / f"{binding.MARKER_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(mark, indent=2) + "\n")
        os.replace(tmp, output_dir / binding.MARKER_NAME)
    except OSError as exc:
        log.warning("could not write %s: %s", output_dir / binding.MARKER_NAME, exc)


def read_marker(output_dir: Path) -> dict[str, Any] | None:
    """The output folder's ``.batchgen.json`` (which batch, manifest and state wrote it)."""
    try:
        found = json.loads((output_dir / binding.MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _videos_of(manifest: Manifest, output_dir: Path) -> int:
    """How many of the manifest's jobs have a ``<job id>.mp4`` in the output folder (the
    folder is listed once, not asked a million times)."""
    try:
        names = {entry.name for entry in os.scandir(output_dir)}
    except OSError:
        return 0  # no folder (or none readable): no videos in it
    return sum(f"{output_stem(job.id)}.mp4" in names for job in manifest.jobs)


def _warn_sharing(
    manifest: Manifest, found: Mapping[str, Any] | None, meta: Mapping[str, str], out: Path
) -> None:
    for line in binding.sharing_warnings(
        found, meta, batch=manifest.batch, manifest=manifest.path.resolve(), output_dir=out
    ):
        log.warning("%s", line)


def _old_journal(state_path: Path) -> Path:
    """Where the in-process emulator kept its journal before bindings."""
    return state_path.with_name(state_path.stem + ".emulator.json")


def _start_emulator(choice: EmulatorChoice, state_path: Path) -> Any:
    """The in-process emulator keeps its own state next to the batch's (``<state stem>.server.
    json``), so that a resumed rehearsal finds the tasks the interrupted one created."""
    from batchgen.emulator import EmulatorConfig, running_emulator

    emu_state = state_path.with_name(state_path.stem + ".server.json")
    if not emu_state.exists() and _old_journal(state_path).exists():
        emu_state = _old_journal(state_path)  # a rehearsal begun before the rename
    cfg = EmulatorConfig(
        time_scale=choice.time_scale,
        seed=choice.seed,
        state_file=str(emu_state),
        **dict(choice.options),
    )
    return running_emulator(cfg, host="127.0.0.1", port=0)


def _state_path(manifest: Manifest, given: Path | None, emulator: bool) -> Path:
    """The state a read-only command reads: as ``run`` would pick it (a note when old)."""
    path, notes = resolve_state_path(manifest, given, emulator=emulator)
    for note in notes:
        log.warning("%s", note)
    return path


def _open_state(manifest: Manifest, given: Path | None, emulator: bool) -> StateStore:
    """The state a read-only command reads; when only a rehearsal has run, say so."""
    path = _state_path(manifest, given, emulator)
    rehearsal = default_state_path(manifest, emulator=True)
    if given is None and not emulator and not path.exists() and rehearsal.exists():
        raise StateError(
            f"no state database at {path}; only a rehearsal has run ({rehearsal})",
            hint="Add --emulator to read the rehearsal's state.",
        )
    return StateStore.open_readonly(path, manifest.batch)


def report_batch(
    path: Path | None,
    state_path: Path | None = None,
    *,
    emulator: bool = False,
    only: Sequence[str] = (),
) -> Report:
    """The report of a batch from its state database (read only; works during a run).
    ``emulator``: the rehearsal's state (``run --emulator``'s default). Given a manifest that
    no longer validates (a reference moved, say) or none, the report is read from the state
    alone: the jobs of its latest run."""
    return select_jobs(_inspect(path, state_path, emulator=emulator, events=0).report, only)


@dataclass(frozen=True)
class InFlight:
    """A task created on the service and not finished yet, as the state last saw it."""

    job_id: str
    task_id: str
    age_s: float | None  # since the service created it (None: its creation time is unknown)
    remote_status: str | None  # the status the service last answered


@dataclass(frozen=True)
class BatchStatus:
    """``batchgen status``: the report, the latest notable events of the batch's runs, the
    oldest task in flight, and whether a run holds the state right now."""

    report: Report
    events: tuple[StoredEvent, ...]
    oldest_in_flight: InFlight | None = None
    running: bool = False


def status_batch(
    path: Path | None,
    state_path: Path | None = None,
    *,
    events: int = 5,
    emulator: bool = False,
    only: Sequence[str] = (),
) -> BatchStatus:
    """The report and the ``events`` table's latest rows (read only; works during a run and
    never takes the run's lock)."""
    status = _inspect(path, state_path, emulator=emulator, events=events, only=only)
    return replace(status, report=select_jobs(status.report, only))


def run_holds_lock(state_path: Path) -> bool:
    """Whether a run holds the state's lock now: a shared, non-blocking try on the lock file
    beside the resolved state (a run holds it exclusively), released at once. A missing lock
    file is never created: no run has it."""
    real = state_path.resolve()
    try:
        fd = os.open(real.with_name(real.name + ".lock"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a shared lock taken above
    return False


def oldest_in_flight(rows: Sequence[JobRow], now: float | None = None) -> InFlight | None:
    """The running job whose task the service created first (unknown creation times last)."""
    now = time.time() if now is None else now
    found = [
        InFlight(r.job_id, r.task_id, _age_s(r.task_created_at, now), r.remote_status)
        for r in rows
        if r.status is JobStatus.RUNNING and r.task_id is not None
    ]
    if not found:
        return None
    return max(found, key=lambda f: -1.0 if f.age_s is None else f.age_s)


def _age_s(created_at: str | None, now: float) -> float | None:
    if not created_at:
        return None
    try:
        return max(now - datetime.fromisoformat(created_at).timestamp(), 0.0)
    except ValueError:
        return None


def _inspect(
    path: Path | None,
    state_path: Path | None,
    *,
    emulator: bool,
    events: int,
    only: Sequence[str] = (),
) -> BatchStatus:
    manifest, problem = None, None
    if path is not None:
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            problem = exc
    if manifest is not None:
        with _open_state(manifest, state_path, emulator) as store:
            return _status_of(store, report_from_store(manifest, store), events, only)
    batch = _batch_name(path) if path is not None else None
    if state_path is None:
        if path is None:
            raise UsageError("name the batch's manifest, or its state file with --state FILE")
        state_path = state_path_for(path, batch, emulator=emulator) if batch else None
        if state_path is None or not state_path.exists():
            assert problem is not None
            raise problem  # no state to fall back on: the manifest's problems are the news
    if problem is not None:
        more = len(problem.problems) - 1
        log.warning(
            "%s does not validate now (%s%s); the report is read from the state alone: the "
            "jobs of its latest run",
            path,
            problem.problems[0] if problem.problems else problem.message,
            f", and {more} more problem(s): batchgen validate lists them" if more > 0 else "",
        )
    with StateStore.open_readonly(state_path, batch) as store:
        return _status_of(store, report_from_state(store), events, only)


def _status_of(store: StateStore, report: Report, events: int, only: Sequence[str]) -> BatchStatus:
    rows = [r for r in store.jobs(statuses=[JobStatus.RUNNING]) if job_selected(r.job_id, only)]
    return BatchStatus(
        report,
        store.recent_events(events),
        oldest_in_flight(rows),
        run_holds_lock(store.path),
    )


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
    emulator: bool = False,
) -> Any:
    """What a run would do now and what it would reserve. Sends nothing unless ``online``
    (then the public models endpoint is asked for the price and, when ``RIVYA_API_KEY`` is
    set, the credits endpoint for the wallet; a dead address fails in seconds). ``emulator``: for a
    rehearsal (its own state and output folder). Warns, as ``run`` does, when the output
    folder or the state is shared with another manifest or batch."""
    from batchgen.plan import make_plan

    manifest = load_manifest(path)
    state_path = _state_path(manifest, state_path, emulator)
    output_dir = default_output_dir(manifest, emulator=emulator)
    state = None
    meta: dict[str, str] = {}
    if state_path.exists():
        with StateStore.open_readonly(state_path, manifest.batch) as store:
            state = store.snapshot()
            meta = store.meta()
    _warn_sharing(manifest, read_marker(output_dir), meta, output_dir)
    shown = dataclasses.replace(manifest, output_dir=output_dir)
    if not online:
        return make_plan(shown, state=state)
    env = os.environ if env is None else env
    key = resolve_connection(env).api_key if (env.get(ENV_KEY) or "").strip() else None
    facts = anyio.run(online_facts, resolve_base_url(env), key, manifest.model, backend="asyncio")
    plan = make_plan(shown, state=state, base_credits=facts.price)
    return dataclasses.replace(plan, wallet=facts.wallet, wallet_note=facts.note)
