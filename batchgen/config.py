"""Run configuration, resolved once. The only module that reads environment variables.

Precedence: command-line flag > environment > manifest > default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from batchgen.errors import ConfigError
from batchgen.models import Limits, Manifest

DEFAULT_BASE_URL = "https://rivya.ai"
ENV_KEY = "RIVYA_API_KEY"
ENV_BASE_URL = "RIVYA_BASE_URL"
LOOPBACK_HOSTS = ("localhost", "::1")


@dataclass(frozen=True)
class Connection:
    """Where to send requests and with which key. ``repr`` never shows the key."""

    base_url: str
    api_key: str

    def __repr__(self) -> str:
        return f"Connection(base_url={self.base_url!r}, api_key=<redacted>)"


def is_loopback(host: str | None) -> bool:
    host = (host or "").strip("[]").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def resolve_base_url(env: Mapping[str, str] | None = None) -> str:
    """The API base URL from the environment (default: the real service), checked."""
    env = os.environ if env is None else env
    base_url = (env.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{ENV_BASE_URL} is not an http(s) URL: {base_url!r}",
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
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing to send the API key over plain http to {parts.hostname}",
            hint=f"Use https:// in {ENV_BASE_URL}; plain http is allowed only for loopback.",
        )
    return Connection(base_url=base_url, api_key=key)


def default_state_path(manifest: Manifest, cwd: Path | None = None) -> Path:
    """``state/<batch>.db`` under the current folder, as the README documents."""
    return (cwd or Path.cwd()) / "state" / f"{manifest.batch}.db"


def resolve_limits(
    manifest: Manifest,
    *,
    rate_per_s: float | None = None,
    burst: int | None = None,
    max_in_flight: int | None = None,
) -> Limits:
    """Flags override the manifest's ``limits``."""
    base = manifest.limits
    return Limits(
        rate_per_s=rate_per_s if rate_per_s is not None else base.rate_per_s,
        burst=burst if burst is not None else base.burst,
        max_in_flight=max_in_flight if max_in_flight is not None else base.max_in_flight,
    )
