"""Which service and account a state belongs to (issue 9: "the state is the record").

A state database records what *one* service did for *one* account: a job marked succeeded there
means a task of that service, paid by that account. Resuming it against another service (a
rehearsal's state against the real service, or the other way round) would skip jobs that service
never ran, and poll task ids it has never seen. So the state's ``meta`` table keeps:

* ``service``: the API origin, ``scheme://host[:port]`` lower-cased. For a loopback host the
  port is left out: a local emulator listens on a new port each time it starts, and it is
  still the same service. The in-process emulator (``--emulator``) is ``emulator (in-process)``.
* ``account``: ``HMAC-SHA256(salt, api_key)`` in hex, its first 16 characters, with
  ``account_salt`` a random salt of this state. The key itself is never stored; the salt
  keeps the fingerprint from being compared across states or looked up in a table.
* ``manifest``: the resolved path of the manifest the state was last run from.

Pure: no I/O. ``commands`` reads and writes the meta and the output folder's marker.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchgen.errors import StateError
from batchgen.models import is_loopback_host

EMULATOR_SERVICE = "emulator (in-process)"
META_SERVICE = "service"
META_ACCOUNT = "account"
META_SALT = "account_salt"
META_MANIFEST = "manifest"
MARKER_NAME = ".batchgen.json"  # in the output folder: which batch, manifest and state write it
FINGERPRINT_CHARS = 16


def service_identity(base_url: str | None) -> str:
    """The service of a run: the API origin, or ``EMULATOR_SERVICE`` for ``None`` (the
    in-process emulator). A loopback origin leaves its port out (see the module docstring)."""
    if base_url is None:
        return EMULATOR_SERVICE
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    shown = f"[{host}]" if ":" in host else host
    port = parts.port
    if port is None or is_loopback_host(host) or port == {"http": 80, "https": 443}.get(scheme):
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


def new_salt() -> str:
    return secrets.token_hex(16)


def account_fingerprint(salt: str, api_key: str) -> str:
    """``HMAC-SHA256(salt, api_key)``, hex, first 16 characters: tells two keys apart, and
    cannot be turned back into the key."""
    digest = hmac.new(salt.encode(), api_key.encode(), hashlib.sha256).hexdigest()
    return digest[:FINGERPRINT_CHARS]


@dataclass(frozen=True)
class Target:
    """What a run is about to talk to: the service and the key."""

    service: str
    api_key: str

    def __repr__(self) -> str:
        return f"Target(service={self.service!r}, api_key=<redacted>)"


def check_binding(
    meta: Mapping[str, str],
    target: Target,
    *,
    state_path: Path,
    same_account: bool = False,
) -> dict[str, str]:
    """The ``meta`` entries to record for a run of ``target`` on this state, or ``StateError``
    when the state belongs to another service, or (without ``same_account``) another account.
    A state without a binding (new, or written before bindings) is adopted."""
    salt = meta.get(META_SALT) or new_salt()
    fingerprint = account_fingerprint(salt, target.api_key)
    bound = meta.get(META_SERVICE)
    if bound is not None and bound != target.service:
        raise StateError(
            f"the state {state_path} belongs to the service {bound}, and this run targets "
            f"{target.service}. Its jobs were submitted to {bound}: resuming it here would "
            f"skip jobs {target.service} never ran and ask it for tasks it never made.",
            hint=(
                "Start a separate state for this service with --state FILE, and point the "
                "manifest's output at a separate folder, so the two runs' videos do not mix."
            ),
        )
    recorded = meta.get(META_ACCOUNT)
    if recorded is not None and recorded != fingerprint and not same_account:
        raise StateError(
            f"the state {state_path} was written with another API key (another account, or "
            f"another key of it) on {target.service}; this run's key is not that one. Jobs "
            "the state records were paid by that account, and its tasks are visible to it only.",
            hint=(
                "If this is a new key of the same account, pass --same-account to record it. "
                "For another account, start a separate state with --state FILE."
            ),
        )
    return {META_SERVICE: target.service, META_SALT: salt, META_ACCOUNT: fingerprint}


def service_of(meta: Mapping[str, str]) -> str | None:
    """The service a state belongs to (``None``: it has not been run since bindings)."""
    return meta.get(META_SERVICE)


def describe_service(service: str | None) -> str:
    """One line for ``status`` and ``report``: which service the state's record is of."""
    if service is None:
        return "service: not recorded yet (the state's next run records it)"
    return f"service: {service} (the state records what this service did)"


def marker(batch: str, manifest: Path, state: Path, service: str) -> dict[str, str]:
    """The content of ``<output folder>/.batchgen.json``."""
    return {
        "batch": batch,
        "manifest": str(manifest),
        "state": str(state),
        "service": service,
    }


def sharing_warnings(
    found: Mapping[str, Any] | None,
    meta: Mapping[str, str],
    *,
    batch: str,
    manifest: Path,
    output_dir: Path,
    exists: Callable[[Path], bool] = Path.exists,
) -> list[str]:
    """Warnings when another manifest or batch writes the same output folder (by its marker
    ``found``), or the state was last run from another manifest that still exists."""
    warnings = []
    if found:
        other_batch = found.get("batch")
        other_manifest = found.get("manifest")
        if isinstance(other_batch, str) and other_batch != batch:
            warnings.append(
                f"the output folder {output_dir} is also written by batch {other_batch!r} "
                f"(manifest {other_manifest}); videos with the same job id overwrite each other"
            )
        elif (
            isinstance(other_manifest, str)
            and Path(other_manifest) != manifest
            and exists(Path(other_manifest))
        ):
            warnings.append(
                f"the output folder {output_dir} is also written by {other_manifest}, another "
                f"manifest of batch {batch!r}; give each manifest its own batch name and folder"
            )
    recorded = meta.get(META_MANIFEST)
    if recorded and Path(recorded) != manifest and exists(Path(recorded)):
        warnings.append(
            f"this state was last run from {recorded}, another manifest that still exists; "
            "two manifests sharing one state mark each other's jobs as no longer in the manifest"
        )
    return warnings


def orphaned_videos(found: Mapping[str, Any] | None, batch: str, videos: int) -> bool:
    """True when the output folder says it holds this batch's videos (``videos`` of the
    manifest's jobs are there) but the state that recorded them is gone."""
    return found is not None and found.get("batch") == batch and videos > 0


def orphan_error(state_path: Path, output_dir: Path, videos: int) -> StateError:
    return StateError(
        f"there is no state at {state_path}, but {output_dir} holds {videos} video(s) of this "
        "batch's jobs: they came from a state that is gone. Running now would start a new "
        "state and submit those jobs again.",
        hint=(
            "Restore the state file, or pass it with --state FILE. To start over knowingly, "
            "pass --new-state: every job is submitted again. Within the service's 24 h "
            "idempotency-key lifetime a text-only job is replayed without charge and a job "
            "with references stops the run with an idempotency conflict (nothing is charged); "
            "after it, every job is charged again."
        ),
    )
