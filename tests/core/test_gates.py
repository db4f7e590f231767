"""Submission gates: the built-in deadline, a latch, and the first hold winning."""

from __future__ import annotations

import pytest

from batchgen.gates import Deadline, Gates, Hold, Latch
from batchgen.models import JobSpec
from batchgen.outcome import StopReason

JOB = JobSpec(id="a", prompt="a fox", params=(("duration", "5"),))


def test_a_deadline_lets_jobs_through_before_it_and_holds_them_from_it() -> None:
    """Before ``until`` the deadline says yes; at and after it, a held job stays pending."""
    now = [100.0]
    gate = Deadline(150.0, clock=lambda: now[0])
    assert gate.check(JOB) is None
    now[0] = 150.0
    hold = gate.check(JOB)
    assert hold is not None and (hold.gate, hold.reason, hold.block) == (
        "deadline",
        StopReason.HELD,
        False,
    )


def test_a_latch_holds_every_job_the_way_its_first_close_said() -> None:
    """A latch is open until closed; a second close changes nothing."""
    latch = Latch("credits")
    assert latch.check(JOB) is None
    assert latch.close(StopReason.CREDITS, "credits ran out", block=True)
    assert not latch.close(StopReason.HELD, "something else")
    assert latch.check(JOB) == Hold("credits", StopReason.CREDITS, "credits ran out", True)


def test_gates_ask_in_order_and_names_are_unique() -> None:
    """The first gate that holds answers for all; two gates with one name are refused."""
    first, second = Latch("first"), Latch("second")
    gates = Gates([first, second])
    second.close(StopReason.HELD, "second says no")
    first.close(StopReason.CREDITS, "first says no")
    hold = gates.check(JOB)
    assert hold is not None and hold.gate == "first"
    with pytest.raises(ValueError, match="share a name"):
        Gates([Latch("x"), Latch("x")])
