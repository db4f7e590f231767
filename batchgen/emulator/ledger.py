"""The read-only ledger tests use to prove what happened (``GET /_emulator/ledger``).

Shape: ``{"tasks": [...], "charges": [...], "topups": [...], "files": [...], "requests": [...],
"faults": [...], "result_requests": [...], "wallet": {"current_credits": int, "accounts":
{...}}}``. Request counts and result requests are kept per process: a restart starts them again
from zero.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import iso

if TYPE_CHECKING:
    from .state import EmulatorState

DROPPED = 0  # the status recorded for a connection dropped without an answer


@dataclass(frozen=True)
class ResultRequest:
    """One request for a result file, on the API origin or the second origin."""

    origin: str  # api | other
    method: str
    path: str
    status: int
    authorization: bool  # whether it carried an Authorization header (the key must not)
    at: float


class RequestCounter:
    """Counts of requests by (method, endpoint template, status) and of injected faults.

    Also every request for a result file, one by one, with whether it carried a key.
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.faults: Counter[tuple[str, str, str]] = Counter()
        self.result_requests: list[ResultRequest] = []

    def result_request(self, row: ResultRequest) -> None:
        """One request for a result file, as answered."""
        self.result_requests.append(row)

    def count(self, method: str, endpoint: str, status: int) -> None:
        """One answered (or dropped) request."""
        self.requests[(method, endpoint, status)] += 1

    def fault(self, kind: str, method: str, endpoint: str) -> None:
        """One injected fault (``5xx``, ``drop_before``, ``drop_after_create``, ``slow``...)."""
        self.faults[(kind, method, endpoint)] += 1


def build_ledger(state: EmulatorState, now: float) -> dict[str, Any]:
    """The whole ledger at ``now``."""
    state.tasks.settle(now, state.wallet)
    default_account = state.config.keys[0].account
    return {
        "tasks": [_task_row(t, now) for t in state.tasks.tasks.values()],
        "charges": [_entry_row(e) for e in state.wallet.entries if e.kind != "topup"],
        "topups": [_entry_row(e) for e in state.wallet.entries if e.kind == "topup"],
        "files": [_file_row(f) for f in state.files.records.values()],
        "requests": [
            {"method": m, "endpoint": e, "status": s, "count": c}
            for (m, e, s), c in sorted(state.counter.requests.items())
        ],
        "faults": [
            {"kind": k, "method": m, "endpoint": e, "count": c}
            for (k, m, e), c in sorted(state.counter.faults.items())
        ],
        "result_requests": [
            dataclasses.asdict(r) | {"at": iso(r.at)} for r in state.counter.result_requests
        ],
        "wallet": {
            "current_credits": state.wallet.balance(default_account),
            "accounts": {k.account: state.wallet.balance(k.account) for k in state.config.keys}
            | state.wallet.snapshot(),
        },
    }


def _entry_row(entry: Any) -> dict[str, Any]:
    return {
        "task_id": entry.task_id,
        "kind": entry.kind,
        "amount": entry.amount,
        "account": entry.account,
        "at": iso(entry.at),
    }


def _task_row(task: Any, now: float) -> dict[str, Any]:
    return {
        "id": task.id,
        "account": task.account,
        "idempotency_key": task.idempotency_key,
        "body": task.body,
        "status": task.status(now),
        "reserved_credits": task.reserved_credits,
        "final_credits": task.reserved_credits
        if task.charged and task.status(now) == "succeeded"
        else 0,
        "charged": task.charged,
        "error_code": task.error_code if task.outcome == "failed" else None,
        "created_at": iso(task.created_at),
        "started_at": iso(task.start_at) if now >= task.start_at else None,  # processing began
        "finished_at": iso(task.end_at) if now >= task.end_at else None,  # reached its end
    }


def _file_row(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "account": record.account,
        "kind": record.kind,
        "name": record.name,
        "mime_type": record.mime_type,
        "size_bytes": record.size_bytes,
        "sha256": record.sha256,
        "client_request_id": record.client_request_id,
        "url_path": record.path,
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
    }
