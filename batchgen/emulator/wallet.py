"""Credit balances per account and the book of every charge and refund."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One movement of credits caused by a task (or an admin top-up, with no task)."""

    account: str
    kind: str  # charge | refund | topup
    amount: int
    task_id: str | None
    at: float


class Wallet:
    """Balances start at ``starting_credits`` for each account the first time it is seen."""

    def __init__(self, starting_credits: int) -> None:
        self.starting_credits = starting_credits
        self._balances: dict[str, int] = {}
        self.entries: list[Entry] = []

    def balance(self, account: str) -> int:
        """Current credits of ``account``."""
        return self._balances.get(account, self.starting_credits)

    def charge(self, account: str, amount: int, task_id: str, at: float) -> None:
        """Take ``amount`` for ``task_id`` (the caller checked the balance)."""
        self._move(Entry(account, "charge", amount, task_id, at), -amount)

    def refund(self, account: str, amount: int, task_id: str, at: float) -> None:
        """Return ``amount`` reserved for a task that failed."""
        self._move(Entry(account, "refund", amount, task_id, at), amount)

    def topup(self, account: str, amount: int, at: float) -> None:
        """Add ``amount`` credits (an admin call during a run)."""
        self._move(Entry(account, "topup", amount, None, at), amount)

    def _move(self, entry: Entry, delta: int) -> None:
        self._balances[entry.account] = self.balance(entry.account) + delta
        self.entries.append(entry)

    def snapshot(self) -> dict[str, Any]:
        """``{account: balance}`` for every account seen so far."""
        return dict(self._balances)
