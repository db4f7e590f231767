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

from batchgen._version import __version__
from batchgen.client import RivyaClient
from batchgen.commands import (
    RunResult,
    plan_batch,
    report_batch,
    run_manifest,
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
    "validate_manifest",
]
