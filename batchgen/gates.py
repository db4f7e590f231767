"""May this job be submitted now? Submission gates, consulted before every submit.

A gate answers ``None`` ("yes") or a ``Hold`` ("not now, because ..."). The runner asks every
gate of the run, in order, before it uploads a job's references and again right before the
create request; the first hold wins. A held job is not sent: it stays ``pending`` (or, when the
hold says ``block``, is marked ``blocked`` so that the next run gives it a new attempt), the
run goes on following the tasks already in flight, and it ends with the hold's stop reason on
its outcome (exit 4: resumable).

Gates of every run: ``Latch("credits")`` (closed when the wallet runs out), ``Latch("signal")``
(closed by SIGINT/SIGTERM). ``Deadline`` stops new submissions at a point in time. Anyone can
add a gate: any object with a ``name`` and a ``check(job)`` method (``RunSettings.gates``); a
budget or a time window is one more gate. Gates that want to know what happened (a budget
counts charges) subscribe to the run's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from batchgen.models import JobSpec
from batchgen.outcome import StopReason


@dataclass(frozen=True)
class Hold:
    """A gate's "not now": which gate, why (the run's stop reason), a sentence for people,
    and whether the job is marked ``blocked`` (it needs a new attempt) or stays ``pending``."""

    gate: str
    reason: StopReason
    message: str
    block: bool = False


@runtime_checkable
class Gate(Protocol):
    """Anything with a name that can say whether a job may be submitted now."""

    name: str

    def check(self, job: JobSpec) -> Hold | None: ...


class Latch:
    """A gate that is open until ``close`` is called, then holds every job the same way."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._hold: Hold | None = None

    def close(self, reason: StopReason, message: str, *, block: bool = False) -> bool:
        """Close the latch; True if it was open (the first close says why)."""
        if self._hold is not None:
            return False
        self._hold = Hold(self.name, reason, message, block)
        return True

    def check(self, job: JobSpec) -> Hold | None:
        return self._hold

    @property
    def is_closed(self) -> bool:
        return self._hold is not None


class Deadline:
    """Nothing new is submitted at or after ``until`` (seconds since the epoch)."""

    name = "deadline"

    def __init__(self, until: float, *, clock: Callable[[], float] = time.time) -> None:
        self.until = until
        self._clock = clock

    def check(self, job: JobSpec) -> Hold | None:
        if self._clock() < self.until:
            return None
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.until))
        return Hold(self.name, StopReason.HELD, f"the submission deadline ({when}) has passed")


class Gates:
    """The gates of one run, asked in order; the first hold wins."""

    def __init__(self, gates: Iterable[Gate]) -> None:
        self._gates = tuple(gates)
        names = [g.name for g in self._gates]
        if len(set(names)) != len(names):
            raise ValueError(f"two gates share a name: {sorted(names)}")

    def __iter__(self) -> Iterator[Gate]:
        return iter(self._gates)

    def check(self, job: JobSpec) -> Hold | None:
        for gate in self._gates:
            hold = gate.check(job)
            if hold is not None:
                return hold
        return None
