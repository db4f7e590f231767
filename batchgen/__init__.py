"""batchgen: run batches of Rivya kling-3-0 video generations from a YAML manifest.

The public Python API; the ``batchgen`` command is a thin adapter over these::

    from pathlib import Path
    import batchgen

    manifest = batchgen.load_manifest(Path("jobs/demo.yaml"))      # raises ManifestError
    result = batchgen.run_manifest(Path("jobs/demo.yaml"),
                                   batchgen.RunSettings(emulator=batchgen.EmulatorChoice()))
    print(result.exit_code, result.report.totals)
"""

from batchgen._version import __version__
from batchgen.client import RivyaClient
from batchgen.commands import (
    EmulatorChoice,
    RunResult,
    RunSettings,
    plan_batch,
    report_batch,
    run_manifest,
    validate_manifest,
)
from batchgen.errors import BatchgenError, ManifestError, Problem
from batchgen.limits import RequestLimiter
from batchgen.manifest import load_manifest
from batchgen.models import JobSpec, JobStatus, Limits, Manifest, Reference
from batchgen.retry import RetryPolicy
from batchgen.runner import RunOptions, RunOutcome, run_batch
from batchgen.store import StateStore

__all__ = [
    "BatchgenError",
    "EmulatorChoice",
    "JobSpec",
    "JobStatus",
    "Limits",
    "Manifest",
    "ManifestError",
    "Problem",
    "Reference",
    "RequestLimiter",
    "RetryPolicy",
    "RivyaClient",
    "RunOptions",
    "RunOutcome",
    "RunResult",
    "RunSettings",
    "StateStore",
    "__version__",
    "load_manifest",
    "plan_batch",
    "report_batch",
    "run_batch",
    "run_manifest",
    "validate_manifest",
]
