"""batchgen: run batches of Rivya kling-3-0 video generations from a YAML manifest.

The public Python API; the ``batchgen`` command is a thin adapter over these::

    from pathlib import Path
    import batchgen

    manifest = batchgen.load_manifest(Path("jobs/demo.yaml"))      # raises ManifestError
    result = batchgen.run_manifest(Path("jobs/demo.yaml"),
                                   batchgen.RunSettings(emulator=batchgen.EmulatorChoice()))
    print(result.exit_code, result.outcome.stop_reasons, result.report.totals)

Extend a run without touching batchgen: ``RunSettings(gates=(my_gate,))`` adds a submission
gate (any object with ``name`` and ``check(job) -> Hold | None``), and
``RunSettings(subscribers=(my_listener,))`` receives every typed event of the run.
"""

from typing import TYPE_CHECKING, Any

from batchgen._version import __version__

if TYPE_CHECKING:  # the names below are imported on first use (see __getattr__)
    from batchgen.client import RivyaClient
    from batchgen.commands import (
        RunResult,
        plan_batch,
        report_batch,
        run_manifest,
        status_batch,
        validate_manifest,
    )
    from batchgen.config import EmulatorChoice, RunConfig, RunSettings, resolve_run_config
    from batchgen.errors import BatchgenError, ManifestError, Problem
    from batchgen.events import Event, EventBus
    from batchgen.gates import Deadline, Gate, Hold, Latch
    from batchgen.limits import RequestLimiter
    from batchgen.manifest import load_manifest
    from batchgen.models import JobSpec, JobStatus, Limits, Manifest, Reference, RemoteStatus
    from batchgen.outcome import ExitCode, RunOutcome, StopReason
    from batchgen.retry import RetryPolicy
    from batchgen.runner import run_batch
    from batchgen.store import StateStore

# Imported on first use, so that ``batchgen`` (and its CLI) starts in milliseconds: the CLI
# takes over SIGINT/SIGTERM before aiohttp and the rest are loaded (see batchgen.signals).
_EXPORTS = {
    "BatchgenError": "batchgen.errors",
    "Deadline": "batchgen.gates",
    "EmulatorChoice": "batchgen.config",
    "Event": "batchgen.events",
    "EventBus": "batchgen.events",
    "ExitCode": "batchgen.outcome",
    "Gate": "batchgen.gates",
    "Hold": "batchgen.gates",
    "JobSpec": "batchgen.models",
    "JobStatus": "batchgen.models",
    "Latch": "batchgen.gates",
    "Limits": "batchgen.models",
    "Manifest": "batchgen.models",
    "ManifestError": "batchgen.errors",
    "Problem": "batchgen.errors",
    "Reference": "batchgen.models",
    "RemoteStatus": "batchgen.models",
    "RequestLimiter": "batchgen.limits",
    "RetryPolicy": "batchgen.retry",
    "RivyaClient": "batchgen.client",
    "RunConfig": "batchgen.config",
    "RunOutcome": "batchgen.outcome",
    "RunResult": "batchgen.commands",
    "RunSettings": "batchgen.config",
    "StateStore": "batchgen.store",
    "StopReason": "batchgen.outcome",
    "load_manifest": "batchgen.manifest",
    "plan_batch": "batchgen.commands",
    "report_batch": "batchgen.commands",
    "resolve_run_config": "batchgen.config",
    "run_batch": "batchgen.runner",
    "run_manifest": "batchgen.commands",
    "status_batch": "batchgen.commands",
    "validate_manifest": "batchgen.commands",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BatchgenError",
    "Deadline",
    "EmulatorChoice",
    "Event",
    "EventBus",
    "ExitCode",
    "Gate",
    "Hold",
    "JobSpec",
    "JobStatus",
    "Latch",
    "Limits",
    "Manifest",
    "ManifestError",
    "Problem",
    "Reference",
    "RemoteStatus",
    "RequestLimiter",
    "RetryPolicy",
    "RivyaClient",
    "RunConfig",
    "RunOutcome",
    "RunResult",
    "RunSettings",
    "StateStore",
    "StopReason",
    "__version__",
    "load_manifest",
    "plan_batch",
    "report_batch",
    "resolve_run_config",
    "run_batch",
    "run_manifest",
    "status_batch",
    "validate_manifest",
]
