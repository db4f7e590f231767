"""Run configuration, resolved once. The only module that reads environment variables.

``RunSettings`` is what the caller asked for (the command line's flags, or a Python caller's
arguments; ``None`` means "not given"). ``resolve_run_config(manifest, settings)`` turns it,
the environment and the manifest into one frozen ``RunConfig``, with one precedence everywhere:
flag > environment > manifest > default. The runner reads only the ``RunConfig``; the
``Manifest`` stays what the file said.

Where a run keeps its record: ``state/<batch>.db`` in the manifest's folder, whatever the
current folder (``default_state_path``; an old ``./state/<batch>.db`` is still found, with a
note). A rehearsal on the in-process emulator keeps its own state (``<batch>.emulator.db``) and
output folder (``<output>.emulator``), so it never becomes a real run's record (``binding``).

Time scale: ``--time-scale`` speeds up a *rehearsal*. With the in-process emulator it scales the
emulator's time model and the polls alike; against a server on loopback (a standalone emulator)
it scales the polls; against any other host it may only slow them down: a run against the real
service never polls faster than the service's guidance, whatever flag is given.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from batchgen.errors import ConfigError, StateError
from batchgen.events import Subscriber
from batchgen.files import DOWNLOAD_DEADLINE_S, MAX_RESULT_BYTES
from batchgen.gates import Gate
from batchgen.keys import DEFAULT_KEY_LIFETIME_S
from batchgen.models import Limits, Manifest, is_loopback_host
from batchgen.polling import PollPolicy
from batchgen.redact import KEY_PREFIXES
from batchgen.retry import RetryPolicy
from batchgen.store import StateStore

DEFAULT_BASE_URL = "https://rivya.ai"
ENV_KEY = "RIVYA_API_KEY"
ENV_BASE_URL = "RIVYA_BASE_URL"


@dataclass(frozen=True)
class Connection:
    """Where to send requests and with which key. ``repr`` never shows the key."""

    base_url: str
    api_key: str

    def __repr__(self) -> str:
        return f"Connection(base_url={self.base_url!r}, api_key=<redacted>)"


def resolve_base_url(env: Mapping[str, str] | None = None) -> str:
    """The API base URL from the environment (default: the real service), checked. Its value
    is never echoed in a message: it may be a key pasted into the wrong variable."""
    env = os.environ if env is None else env
    base_url = (env.get(ENV_BASE_URL) or DEFAULT_BASE_URL).strip().rstrip("/")
    key = (env.get(ENV_KEY) or "").strip()
    if any(p in base_url for p in KEY_PREFIXES) or (len(key) >= 8 and key in base_url):
        raise ConfigError(
            f"{ENV_BASE_URL} holds what looks like an API key (its value is not shown)",
            hint=f"Put the key in {ENV_KEY} and the service's address ({DEFAULT_BASE_URL}) in "
            f"{ENV_BASE_URL}, or unset {ENV_BASE_URL} to use the real service.",
        )
    parts = urlsplit(base_url)
    try:
        credentials = parts.username is not None or parts.password is not None
        hostname = parts.hostname
    except ValueError:  # an unparsable port or host
        credentials, hostname = False, None
    if credentials:
        raise ConfigError(
            f"{ENV_BASE_URL} carries credentials (user:password@host; not shown)",
            hint=f"The key goes in {ENV_KEY} only; set {ENV_BASE_URL} to the address alone, "
            f"like {DEFAULT_BASE_URL}.",
        )
    if parts.scheme not in ("http", "https") or not hostname:
        raise ConfigError(
            f"{ENV_BASE_URL} is not an http(s) URL (its value is not shown, in case it is a "
            "secret)",
            hint=f"Set it like {DEFAULT_BASE_URL}, or unset it to use the real service.",
        )
    return base_url


def resolve_connection(env: Mapping[str, str] | None = None) -> Connection:
    """The API base URL and key from the environment, checked before anything is sent."""
    env = os.environ if env is None else env
    base_url = resolve_base_url(env)
    parts = urlsplit(base_url)
    key = (env.get(ENV_KEY) or "").strip()
    if not key:
        raise ConfigError(
            f"no API key: {ENV_KEY} is not set",
            hint=(
                f"export {ENV_KEY}=rvya_sk_... (from your Rivya account), or rehearse on the "
                "embedded emulator with --emulator."
            ),
        )
    if re.search(r"\s", key):
        raise ConfigError(f"{ENV_KEY} contains whitespace; paste the key alone")
    if key.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"{ENV_KEY} holds a URL, not a key: are {ENV_KEY} and {ENV_BASE_URL} swapped?",
            hint=f"{ENV_KEY}=rvya_sk_... (your key), {ENV_BASE_URL}={DEFAULT_BASE_URL}.",
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"refusing to send the API key over plain http to {parts.hostname}",
            hint=f"Use https:// in {ENV_BASE_URL}; plain http is allowed only for loopback.",
        )
    return Connection(base_url=base_url, api_key=key)


DEMO_TIME_SCALE = 0.02  # rehearsal default: a 5 s clip's 1-4 minutes become 1-5 seconds
DEFAULT_PROGRESS_INTERVAL_S = 5.0


@dataclass(frozen=True)
class EmulatorChoice:
    """Run against the embedded emulator, in this process, instead of the real service."""

    time_scale: float = DEMO_TIME_SCALE
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)  # extra EmulatorConfig fields


@dataclass(frozen=True)
class RunSettings:
    """What the caller asked for; ``None`` (or empty) means "not given". See ``RunConfig``."""

    state_path: Path | None = None
    emulator: EmulatorChoice | None = None
    same_account: bool = False  # the state's account fingerprint may change (a new key)
    new_state: bool = False  # start a new state although the output folder holds its videos
    time_scale: float | None = None
    rate_per_s: float | None = None
    burst: int | None = None
    max_in_flight: int | None = None
    retry_failed: bool = False
    verify: bool = False  # check each recorded video's sha256, not only its size
    only: tuple[str, ...] = ()  # job ids or globs this run works on (empty: every job)
    max_credits: int | None = None  # the batch's budget (overrides limits.max_credits)
    limit: int | None = None  # submit at most this many new jobs in this run (a pilot)
    until: float | None = None  # submit nothing new at or after (seconds since the epoch)
    max_result_bytes: int | None = None  # a larger result is refused (default 500 MB)
    download_deadline_s: float | None = None  # one attempt at one result file (default 600 s)
    key_lifetime_s: float | None = None  # how long the service remembers an Idempotency-Key
    resend_expired: bool = False  # resend mid-submit jobs whose key may be forgotten
    require_funds: bool = False  # stop before submitting when the wallet is short (preflight)
    preflight: bool = True  # check address, key and wallet before the first upload
    retry: RetryPolicy | None = None
    handle_signals: bool = False  # the process's SignalCatcher reaches the run (the CLI sets it)
    progress_stream: TextIO | None = None
    progress_interval_s: float | None = None
    gates: tuple[Gate, ...] = ()  # extra submission gates, asked after the built-in ones
    subscribers: tuple[Subscriber, ...] = ()  # extra listeners to the run's events
    env: Mapping[str, str] | None = None  # the environment (default: os.environ)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides the manifest, resolved once. Read by the runner."""

    batch: str
    state_path: Path
    connection: Connection | None  # None: the in-process emulator (known once it starts)
    emulator: EmulatorChoice | None = None
    output_dir: Path | None = None  # the manifest's (None), or its ``.emulator`` sibling
    same_account: bool = False
    new_state: bool = False
    limits: Limits = field(default_factory=Limits)
    poll: PollPolicy = field(default_factory=PollPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_failed: bool = False
    verify: bool = False
    only: tuple[str, ...] = ()  # job ids or globs this run works on (empty: every job)
    limit: int | None = None  # new jobs this run may submit (None: all)
    until: float | None = None  # submission deadline, seconds since the epoch (None: none)
    max_result_bytes: int = MAX_RESULT_BYTES
    download_deadline_s: float = DOWNLOAD_DEADLINE_S
    key_lifetime_s: float = DEFAULT_KEY_LIFETIME_S  # see batchgen.keys
    resend_expired: bool = False  # resend even a key older than key_lifetime_s (may pay twice)
    require_funds: bool = False  # a short wallet stops the run before it submits (exit 4)
    preflight: bool = True  # see batchgen.preflight
    handle_signals: bool = False
    progress_stream: TextIO | None = None
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S
    gates: tuple[Gate, ...] = ()
    subscribers: tuple[Subscriber, ...] = ()
    notes: tuple[str, ...] = ()  # what resolving decided that the user should hear


def default_state_path(manifest: Manifest, *, emulator: bool = False) -> Path:
    """``state/<batch>.db`` in the manifest's folder (resolved), wherever the command runs
    from: one state per manifest. A rehearsal (``--emulator``) keeps its own,
    ``state/<batch>.emulator.db``, so it never mixes with the real service's record."""
    return state_path_for(manifest.path, manifest.batch, emulator=emulator)


def state_path_for(manifest_path: Path, batch: str, *, emulator: bool = False) -> Path:
    """``default_state_path`` from the manifest's path and batch name alone (a report of a
    manifest that no longer validates finds its state so)."""
    suffix = ".emulator.db" if emulator else ".db"
    return Path(manifest_path).resolve().parent / "state" / f"{batch}{suffix}"


def default_output_dir(manifest: Manifest, *, emulator: bool = False) -> Path:
    """The manifest's output folder; a rehearsal writes its sibling ``<name>.emulator``."""
    out = manifest.output_dir
    return out.with_name(out.name + ".emulator") if emulator else out


def resolve_state_path(
    manifest: Manifest,
    given: Path | None = None,
    *,
    emulator: bool = False,
    cwd: Path | None = None,
) -> tuple[Path, tuple[str, ...]]:
    """The state file (and a note when an old default was used): ``--state`` when given, else
    ``default_state_path``. Before it was the manifest's folder, the default was ``state/
    <batch>.db`` under the current folder; such a file, when it is this batch's and the new
    default does not exist yet, is still used, with a note to move it."""
    if given is not None:
        return given, ()
    path = default_state_path(manifest, emulator=emulator)
    if emulator or path.exists():
        return path, ()
    legacy = (cwd or Path.cwd()) / "state" / f"{manifest.batch}.db"
    if legacy.resolve() == path or not legacy.exists() or _batch_of(legacy) != manifest.batch:
        return path, ()
    note = (
        f"using the state {legacy} (the old default under the current folder); move it to "
        f"{path}, where every run of {manifest.path.name} looks for it"
    )
    return legacy, (note,)


def _batch_of(path: Path) -> str | None:
    """The batch a state file records, or None when it is not a readable state."""
    try:
        with StateStore.open_readonly(path) as store:
            return store.batch
    except StateError:
        return None


def resolve_limits(
    manifest: Manifest,
    *,
    rate_per_s: float | None = None,
    burst: int | None = None,
    max_in_flight: int | None = None,
    max_credits: int | None = None,
) -> Limits:
    """Flags override the manifest's ``limits`` (which carry the defaults it did not set)."""
    base = manifest.limits
    return Limits(
        rate_per_s=rate_per_s if rate_per_s is not None else base.rate_per_s,
        burst=burst if burst is not None else base.burst,
        max_in_flight=max_in_flight if max_in_flight is not None else base.max_in_flight,
        max_credits=max_credits if max_credits is not None else base.max_credits,
    )


def resolve_run_config(
    manifest: Manifest, settings: RunSettings | None = None, *, cwd: Path | None = None
) -> RunConfig:
    """The one place where flags, environment, manifest and defaults meet (in that order)."""
    settings = settings or RunSettings()
    connection = None if settings.emulator else resolve_connection(settings.env)
    time_scale, notes = _poll_time_scale(settings, connection)
    if manifest.window is not None:
        zone = manifest.window.timezone or f"the machine's time zone, {time.strftime('%Z')}"
        notes += (f"new jobs are submitted only inside {manifest.window.text} ({zone})",)
    emulator = settings.emulator
    if emulator is not None and settings.time_scale is not None:
        emulator = EmulatorChoice(settings.time_scale, emulator.seed, emulator.options)
    state_path, state_notes = resolve_state_path(
        manifest, settings.state_path, emulator=emulator is not None, cwd=cwd
    )
    return RunConfig(
        batch=manifest.batch,
        state_path=state_path,
        connection=connection,
        emulator=emulator,
        output_dir=default_output_dir(manifest, emulator=emulator is not None),
        same_account=settings.same_account,
        new_state=settings.new_state,
        limits=resolve_limits(
            manifest,
            rate_per_s=settings.rate_per_s,
            burst=settings.burst,
            max_in_flight=settings.max_in_flight,
            max_credits=settings.max_credits,
        ),
        poll=PollPolicy(time_scale=time_scale),
        retry=settings.retry or RetryPolicy(),
        retry_failed=settings.retry_failed,
        verify=settings.verify,
        only=tuple(settings.only),
        limit=settings.limit,
        until=settings.until,
        max_result_bytes=settings.max_result_bytes or MAX_RESULT_BYTES,
        download_deadline_s=settings.download_deadline_s or DOWNLOAD_DEADLINE_S,
        key_lifetime_s=(
            DEFAULT_KEY_LIFETIME_S if settings.key_lifetime_s is None else settings.key_lifetime_s
        ),
        resend_expired=settings.resend_expired,
        require_funds=settings.require_funds,
        preflight=settings.preflight,
        handle_signals=settings.handle_signals,
        progress_stream=settings.progress_stream,
        progress_interval_s=settings.progress_interval_s or DEFAULT_PROGRESS_INTERVAL_S,
        gates=tuple(settings.gates),
        subscribers=tuple(settings.subscribers),
        notes=state_notes + notes,
    )


def _poll_time_scale(
    settings: RunSettings, connection: Connection | None
) -> tuple[float, tuple[str, ...]]:
    """The poll schedule's time scale; a rehearsal's speed-up never reaches the real service."""
    asked = settings.time_scale
    if settings.emulator is not None:
        return (asked if asked is not None else settings.emulator.time_scale), ()
    if asked is None:
        return 1.0, ()
    assert connection is not None
    host = urlsplit(connection.base_url).hostname
    if asked >= 1.0 or is_loopback_host(host):
        return asked, ()
    note = (
        f"--time-scale {asked:g} ignored: {host} is not a local emulator, and batchgen never "
        "polls a real service faster than its guidance (time scale 1)."
    )
    return 1.0, (note,)
