"""The key lifetime rule: a stored key older than the lifetime is 'expired', with its age."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from batchgen.keys import DEFAULT_KEY_LIFETIME_S, expired_key_age

STORED = "2026-05-11T00:00:00.000Z"
STORED_S = datetime(2026, 5, 11, tzinfo=UTC).timestamp()


def test_default_is_the_contracts_24_hours() -> None:
    """The default lifetime is the contract's 24 h."""
    assert DEFAULT_KEY_LIFETIME_S == 24 * 3600


def test_within_the_lifetime_is_not_expired() -> None:
    """A key younger than (or exactly) the lifetime may be resent."""
    assert expired_key_age(STORED, 86_400, STORED_S + 10) is None
    assert expired_key_age(STORED, 86_400, STORED_S + 86_400) is None


def test_past_the_lifetime_gives_the_age() -> None:
    """A key older than the lifetime is expired, and its age in seconds is returned."""
    assert expired_key_age(STORED, 86_400, STORED_S + 86_401) == 86_401
    assert expired_key_age(STORED, 2.5, STORED_S + 3) == 3


def test_unknown_age_counts_as_expired() -> None:
    """No or an unreadable stored time means the key may be forgotten: infinite age."""
    assert expired_key_age(None, 86_400, STORED_S) == math.inf
    assert expired_key_age("yesterday", 86_400, STORED_S) == math.inf


@given(
    lifetime=st.integers(min_value=1, max_value=10**7),
    elapsed=st.integers(min_value=-(10**3), max_value=10**8),
)
def test_expired_exactly_when_older_than_the_lifetime(lifetime: int, elapsed: int) -> None:
    """The rule is 'older than the lifetime', whatever the (whole-second) numbers."""
    age = expired_key_age(STORED, lifetime, STORED_S + elapsed)
    assert age == (elapsed if elapsed > lifetime else None)
