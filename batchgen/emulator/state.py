"""Everything the emulator remembers, in one object the routes share.

``EmulatorState`` owns the stores (keys, rate windows, wallet, tasks, files, idempotency keys,
request counts) and the journal. Config changes from admin calls replace ``config`` whole.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .auth import KeyRing
from .clock import Clock
from .config import EmulatorConfig
from .faults import FaultPlanner, any_faults
from .files import FileRecord, FileStore
from .idempotency import IdempotencyStore, canonical
from .journal import Journal
from .ledger import RequestCounter
from .ratelimit import SlidingWindow
from .tasks import Task, TaskBook
from .wallet import Wallet

FIXED_SWITCHES = ("seed", "state_file", "admin_enabled")


class EmulatorState:
    """The emulator's memory: built empty, or replayed from ``config.state_file``."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.limiter = SlidingWindow()
        self.wallet = Wallet(config.starting_credits)
        self.tasks = TaskBook(config.seed)
        self.files = FileStore(config.seed)
        self.idempotency = IdempotencyStore()
        self.counter = RequestCounter()
        self.planner = FaultPlanner()
        self.journal = Journal(config.state_file) if config.state_file else None
        self.config = config
        self.keyring = KeyRing(config.keys)
        self.faulty = any_faults(config)
        # ``http://HOST:PORT`` of the second origin serving results, once the server runs one
        self.result_origin: str | None = None
        if self.journal is not None:
            self._replay(self.journal)

    def apply_config(self, config: EmulatorConfig) -> None:
        """Switch to ``config`` (admin call); seed, state file and admin cannot change."""
        changed = [n for n in FIXED_SWITCHES if getattr(config, n) != getattr(self.config, n)]
        if changed:
            raise ValueError(f"{changed} are fixed when the emulator starts; restart it to change")
        self.config = config
        self.keyring = KeyRing(config.keys)
        self.wallet.starting_credits = config.starting_credits
        self.faulty = any_faults(config)

    def add_task(self, task: Task) -> None:
        """Record a new task: charge it, remember its key, journal it."""
        self._learn_task(task)
        if self.journal is not None:
            self.journal.append({"type": "task", "task": task.persisted()})

    def add_file(self, record: FileRecord, data: bytes) -> None:
        """Record an upload and journal it."""
        self.files.add(record, data)
        if self.journal is not None:
            self.journal.save_blob(record.sha256, data)
            self.journal.append({"type": "file", "file": dataclasses.asdict(record)})

    def topup(self, account: str, amount: int) -> None:
        """Add credits to ``account`` and journal it."""
        now = self.clock.now()
        self.wallet.topup(account, amount, now)
        if self.journal is not None:
            self.journal.append({"type": "topup", "account": account, "amount": amount, "at": now})

    def close(self) -> None:
        """Release the state file."""
        if self.journal is not None:
            self.journal.close()

    def _learn_task(self, task: Task) -> None:
        self.tasks.add(task)
        if task.charged:
            self.wallet.charge(task.account, task.reserved_credits, task.id, task.created_at)

    def _replay(self, journal: Journal) -> None:
        for record in journal.records():
            kind = record.get("type")
            if kind == "task":
                task = Task(**record["task"])
                self._learn_task(task)
                if task.idempotency_key is not None:
                    body = canonical(task.body)
                    key = task.idempotency_key
                    self.idempotency.restore(task.account, key, body, task.id, task.created_at)
                if task.charged:  # occupy the processing slot it had
                    cap = self.config.max_processing_per_account
                    run_s = task.end_at - task.start_at
                    self.tasks.schedule(task.account, task.start_at, run_s, cap)
            elif kind == "file":
                data: dict[str, Any] = record["file"]
                self.files.add(FileRecord(**data), journal.load_blob(data["sha256"]))
            elif kind == "topup":
                self.wallet.topup(record["account"], record["amount"], record["at"])
