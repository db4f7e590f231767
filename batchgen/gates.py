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

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
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
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.until))
        return Hold(
            self.name,
            StopReason.HELD,
            f"the submission deadline ({when}) has passed; tasks in flight are still followed, "
            "and the same command (with a later --until) continues",
        )


class Budget:
    """Nothing is submitted that would take the batch's credits (charged, plus held by tasks
    in flight, plus a task's price for each job being submitted) past ``limit``. Exact to one
    job: ``committed()`` is read at the moment of the decision, and the runner makes the
    decision and the job's move to ``submitting`` without an await between them."""

    name = "budget"

    def __init__(self, limit: int, committed: Callable[[], int], price: Callable[[], int]) -> None:
        self.limit = limit
        self._committed = committed
        self._price = price

    def check(self, job: JobSpec) -> Hold | None:
        committed, price = self._committed(), self._price()
        if committed + price <= self.limit:
            return None
        return Hold(
            self.name,
            StopReason.HELD,
            f"waiting for budget: {committed:,} of {self.limit:,} credits are charged or held, "
            f"and a task costs {price:,}; a run with a larger --max-credits continues",
        )


class Quota:
    """At most ``count`` new jobs are submitted in this run (a pilot: ``--limit N``)."""

    name = "limit"

    def __init__(self, count: int, used: Callable[[], int]) -> None:
        self.count = count
        self._used = used

    def check(self, job: JobSpec) -> Hold | None:
        if self._used() < self.count:
            return None
        return Hold(
            self.name,
            StopReason.HELD,
            f"--limit {self.count}: this run has submitted its {self.count} new job(s); the same "
            "command without --limit (or with a larger one) continues",
        )


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


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds of ``2h``, ``90m``, ``1h30m``, ``45s`` or a plain number of seconds."""
    text = text.strip().lower()
    match = _DURATION.fullmatch(text)
    if text and match and any(match.groups()):
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 2h, 90m, 1h30m or 45s") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration like 2h, 90m, 1h30m or 45s")
    return value


def parse_until(text: str, now: datetime) -> datetime:
    """The next ``HH:MM`` after ``now``, in ``now``'s time zone (tomorrow if it has passed
    today). ``now`` must be aware: the zone is explicit."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day like 06:00 or 23:30")
    when = now.replace(hour=int(match[1]), minute=int(match[2]), second=0, microsecond=0)
    return when if when > now else when + timedelta(days=1)


class WindowGate:
    """New jobs are submitted only inside the daily window (``schedule.window``); outside it
    tasks in flight are still followed and downloaded, and the hold says when it opens."""

    name = "window"

    def __init__(
        self,
        start_min: int,
        end_min: int,
        tz: tzinfo,
        text: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.start_min, self.end_min, self.tz, self.text = start_min, end_min, tz, text
        self._clock = clock

    def check(self, job: JobSpec) -> Hold | None:
        now = datetime.fromtimestamp(self._clock(), self.tz)
        if in_window(now, self.start_min, self.end_min):
            return None
        opens = next_opening(now, self.start_min)
        return Hold(
            self.name,
            StopReason.HELD,
            f"outside the submission window {self.text} ({now.tzname()}); it opens next at "
            f"{opens.isoformat(sep=' ', timespec='minutes')}: run the same command then",
        )


def local_zone() -> tzinfo:
    """The machine's time zone (what a window without ``timezone`` uses)."""
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def in_window(now: datetime, start_min: int, end_min: int) -> bool:
    """Is ``now`` (its wall clock) inside ``start``-``end`` (minutes after midnight; an end
    before the start spans midnight; equal ends mean all day)?"""
    minute = now.hour * 60 + now.minute
    if start_min == end_min:
        return True
    if start_min < end_min:
        return start_min <= minute < end_min
    return minute >= start_min or minute < end_min


def next_opening(now: datetime, start_min: int) -> datetime:
    """The next time the window opens after ``now``, in ``now``'s zone."""
    hour, minute = divmod(start_min, 60)
    opens = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return opens if opens > now else opens + timedelta(days=1)
