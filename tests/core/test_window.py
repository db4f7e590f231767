"""The submission window's pure rules: inside or not, when it opens next, how it is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.gates import WindowGate, in_window, next_opening
from batchgen.models import JobSpec, parse_window

minutes = st.integers(min_value=0, max_value=24 * 60 - 1)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


def test_parse_window_reads_start_and_end_and_refuses_nonsense() -> None:
    assert parse_window("22:00-06:00") == (22 * 60, 6 * 60)
    assert parse_window(" 9:30 - 17:45 ") == (9 * 60 + 30, 17 * 60 + 45)
    for bad in ("22-06", "24:00-06:00", "22:00", "22:60-01:00", ""):
        with pytest.raises(ValueError, match="is not a window like 22:00-06:00"):
            parse_window(bad)


@given(moments, minutes, minutes)
def test_inside_is_between_start_and_end_spanning_midnight(now, start, end) -> None:
    minute = now.hour * 60 + now.minute
    inside = in_window(now, start, end)
    if start == end:
        assert inside
    elif start < end:
        assert inside == (start <= minute < end)
    else:
        assert inside == (minute >= start or minute < end)


@given(moments, minutes)
def test_the_next_opening_is_after_now_within_a_day_at_the_start(now, start) -> None:
    opens = next_opening(now, start)
    assert now < opens <= now + timedelta(days=1)
    assert opens.hour * 60 + opens.minute == start and opens.second == 0


def test_the_gate_holds_outside_and_names_the_opening_in_its_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    noon = datetime(2026, 12, 2, 12, 0, tzinfo=berlin).timestamp()
    gate = WindowGate(22 * 60, 6 * 60, berlin, "22:00-06:00", clock=lambda: noon)
    hold = gate.check(JobSpec("a", "p", ()))
    assert hold is not None and hold.gate == "window"
    assert "opens next at 2026-12-02 22:00+01:00" in hold.message and "CET" in hold.message
    night = datetime(2026, 12, 2, 23, 0, tzinfo=berlin).timestamp()
    assert (
        WindowGate(22 * 60, 6 * 60, berlin, "", clock=lambda: night).check(JobSpec("a", "p", ()))
        is None
    )
