"""``Idempotency-Key`` bookkeeping for creates, scoped to the account.

Same key and same JSON body -> the original task again; same key with a different body -> 409;
a replay that arrives while the first request is still being processed waits for it, or (the
``replay_in_flight="409"`` reading, as Stripe does for a key in use) is answered 409.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .envelope import ApiError, validation_failed

KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,255}")


def check_key(key: str) -> None:
    """Raise ``validation_failed`` unless ``key`` is 1-255 chars of ``[A-Za-z0-9._:-]``."""
    if not KEY_PATTERN.fullmatch(key):
        raise validation_failed(
            "Idempotency-Key must be 1-255 characters of letters, digits and . _ : -"
        )


def canonical(body: Any) -> str:
    """The JSON value of ``body`` as a string independent of key order and whitespace."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Entry:
    """What one key was used for; ``task_id`` is None while the first request is in flight."""

    body: str
    at: float
    task_id: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class IdempotencyStore:
    """Keys per account, forgotten after ``ttl_s``."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}

    async def claim(
        self, account: str, key: str, body: str, now: float, ttl_s: float, *, wait: bool = True
    ) -> str | None:
        """The task id to replay, or None after claiming ``key`` for a new task. A replay of a
        request still in flight waits for it, or with ``wait=False`` is answered 409."""
        while True:
            entry = self._entries.get((account, key))
            if entry is None or (entry.task_id is not None and now - entry.at > ttl_s):
                self._entries[(account, key)] = Entry(body=body, at=now)
                return None
            if entry.body != body:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "this Idempotency-Key was already used with a different request body; "
                    "use a new key for a changed request",
                )
            if entry.task_id is not None:
                return entry.task_id
            if not wait:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "a request with this Idempotency-Key is still being processed; retry later",
                )
            await entry.done.wait()

    def finish(self, account: str, key: str, task_id: str | None) -> None:
        """Bind a claimed key to its task, or release it (None) when no task was created."""
        entry = self._entries.get((account, key))
        if entry is None or entry.task_id is not None:
            return
        if task_id is None:
            del self._entries[(account, key)]
        else:
            entry.task_id = task_id
        entry.done.set()

    def restore(self, account: str, key: str, body: str, task_id: str, at: float) -> None:
        """Re-learn a key from a persisted task."""
        self._entries[(account, key)] = Entry(body=body, at=at, task_id=task_id)
