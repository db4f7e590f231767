"""How long the service may remember an idempotency key, and when a stored one is too old.

The contract says the service remembers an ``Idempotency-Key`` for 24 hours, and allows for a
shorter lifetime. A job found ``submitting`` holds a key and body that were made durable
before a create request that may or may not have reached the service. Within the lifetime,
resending them is safe: the service replays the task it made, or makes the only one. Past it,
the service may have forgotten the key: a resend could create (and charge) a second task. Such
a job is not resent blindly; a person decides (``--resend-expired``).

Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

import math

from batchgen.models import parse_timestamp

DEFAULT_KEY_LIFETIME_S = 86_400.0  # the contract's 24 hours


def expired_key_age(submitted_at: str | None, lifetime_s: float, now: float) -> float | None:
    """The age in seconds of a key stored at ``submitted_at`` (ISO 8601) when it is older than
    ``lifetime_s``, else None. A key of unknown age (no or unreadable timestamp) counts as
    expired, with an infinite age: resending it could cost a second task."""
    stored = parse_timestamp(submitted_at)
    if stored is None:
        return math.inf
    age = now - stored
    return age if age > lifetime_s else None
