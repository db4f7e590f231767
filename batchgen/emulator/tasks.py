"""Generation tasks: creation, the account-wide processing cap, and lazy status.

A task's whole timeline is fixed when it is created: it waits at least its queue time, then for
a free processing slot of its account (at most ``max_processing_per_account`` run at once, first
come first served), then runs. Its status at any moment is a pure function of the clock, so no
background work is needed per task; refunds of failed tasks are settled lazily from a heap.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from typing import Any

from .clock import iso
from .timemodel import TaskPlan
from .wallet import Wallet

FAILURE_MESSAGE = "the model could not generate this video; try again or change the prompt"


@dataclass
class Task:
    """One generation task. Fields above ``refunded`` are persisted in the state file."""

    id: str
    account: str
    index: int
    model: str
    body: Any
    params: dict[str, str]
    idempotency_key: str | None
    reserved_credits: int
    charged: bool
    created_at: float
    start_at: float
    end_at: float
    outcome: str  # succeeded | failed | another terminal name (end_status_name)
    error_code: str | None  # None with outcome failed: reported as ``error: null``
    error_message: str
    refunded: bool = field(default=False)
    result_issued_at: float | None = field(default=None)
    result_path: str | None = field(default=None)

    def status(self, now: float) -> str:
        """queued, processing or the outcome (succeeded, failed...) at ``now``."""
        if now >= self.end_at:
            return self.outcome
        return "processing" if now >= self.start_at else "queued"

    def updated_at(self, now: float) -> float:
        """When the status last changed."""
        if now >= self.end_at:
            return self.end_at
        return self.start_at if now >= self.start_at else self.created_at

    def persisted(self) -> dict[str, Any]:
        """The fields written to the state file."""
        out = dict(self.__dict__)
        del out["refunded"], out["result_issued_at"], out["result_path"]
        return out


def task_view(
    task: Task, now: float, result_urls: list[str] | None, interim_name: str = ""
) -> dict[str, Any]:
    """The public task object at ``now`` (``result_urls`` when it succeeded).

    ``interim_name``, when set, is shown instead of ``processing`` (a reading of the contract).
    """
    status = task.status(now)
    failed = status == "failed"
    error = None
    if failed and task.error_code is not None:
        error = {"code": task.error_code, "message": task.error_message}
    succeeded = status == "succeeded"
    shown = interim_name if status == "processing" and interim_name else status
    return {
        "id": task.id,
        "status": shown,
        "model": task.model,
        "reserved_credits": task.reserved_credits,
        "final_credits": task.reserved_credits if succeeded and task.charged else 0,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at(now)),
        "result": {"primary_url": result_urls[0], "urls": result_urls}
        if succeeded and result_urls
        else None,
        "error": error,
    }


class TaskBook:
    """Every task, each account's processing slots, and failed tasks awaiting refund."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.tasks: dict[str, Task] = {}
        self._slots: dict[str, list[float]] = {}
        self._refunds: list[tuple[float, str]] = []

    def next_id(self) -> tuple[int, str]:
        """The index and id of the next task (deterministic for a seed)."""
        index = len(self.tasks)
        digest = hashlib.sha256(f"{self.seed}|task-id|{index}".encode()).hexdigest()
        return index, f"task_{digest[:24]}"

    def schedule(self, account: str, earliest: float, run_s: float, cap: int) -> float:
        """Reserve a processing slot; return when the task starts."""
        slots = self._slots.setdefault(account, [])
        while len(slots) > cap:
            heapq.heappop(slots)
        start = earliest if len(slots) < cap else max(earliest, heapq.heappop(slots))
        heapq.heappush(slots, start + run_s)
        return start

    def add(self, task: Task) -> None:
        """Record a created task (and remember to refund it if it will not succeed)."""
        self.tasks[task.id] = task
        if task.outcome != "succeeded" and task.charged:
            heapq.heappush(self._refunds, (task.end_at, task.id))

    def settle(self, now: float, wallet: Wallet) -> None:
        """Refund every charged task that has failed by ``now``."""
        while self._refunds and self._refunds[0][0] <= now:
            _, task_id = heapq.heappop(self._refunds)
            self.refund_if_failed(self.tasks[task_id], now, wallet)

    @staticmethod
    def refund_if_failed(task: Task, now: float, wallet: Wallet) -> None:
        """Return the reservation of a task that ended without success to the wallet, once."""
        ended = now >= task.end_at and task.outcome != "succeeded"
        if task.charged and not task.refunded and ended:
            task.refunded = True
            wallet.refund(task.account, task.reserved_credits, task.id, task.end_at)


def funded_task(
    common: dict[str, Any], plan: TaskPlan, start_at: float, end_status_name: str
) -> Task:
    """A charged task that starts at ``start_at`` and ends as ``plan`` says.

    A planned success that ``plan.other_end`` picks ends with ``end_status_name`` instead (a
    terminal status the documentation does not list), and is refunded like a failure.
    """
    outcome = "failed" if plan.fails else "succeeded"
    if outcome == "succeeded" and plan.other_end:
        outcome = end_status_name
    return Task(
        **common,
        charged=True,
        start_at=start_at,
        end_at=start_at + plan.run_s,
        outcome=outcome,
        error_code=None if plan.null_error or not plan.fails else "generation_failed",
        error_message=FAILURE_MESSAGE,
    )


def unfunded_task(
    common: dict[str, Any], fails_at: float, error_code: str | None, message: str
) -> Task:
    """A task created without credits that fails with ``error_code`` at ``fails_at``."""
    return Task(
        **common,
        charged=False,
        start_at=fails_at,
        end_at=fails_at,
        outcome="failed",
        error_code=error_code,
        error_message=message,
    )
