"""Helpers shared by the client tests (plain functions and constants; fixtures live in conftest)."""

from __future__ import annotations

from typing import Any

import anyio

from batchgen.client import RivyaClient
from batchgen.models import RemoteTask
from batchgen.retry import RetryPolicy

# The smallest valid PNG (1x1): the Files API detects the type from these magic bytes.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000100ffff03000006000557bfab00000000"
    "49454e44ae426082"
)

FAST_RETRY = RetryPolicy(max_attempts=8, base_delay_s=0.001, max_delay_s=0.02, deadline_s=30)
NO_RETRY = RetryPolicy(max_attempts=1)


def generation_body(prompt: str = "A product on a turntable", **params: Any) -> dict[str, Any]:
    """A valid kling-3-0 request body in the documented string form."""
    return {
        "model": "kling-3-0",
        "prompt": prompt,
        "params": {"mode": "std", "duration": "5", **params},
    }


async def wait_terminal(client: RivyaClient, task_id: str, *, polls: int = 2000) -> RemoteTask:
    """Poll a task until it is terminal (the emulator runs at a tiny time scale)."""
    for _ in range(polls):
        task = await client.get_generation(task_id)
        if task.is_terminal:
            return task
        await anyio.sleep(0.01)
    raise AssertionError(f"task {task_id} did not finish")


def requests_to(ledger: dict[str, Any], method: str, endpoint: str) -> dict[int, int]:
    """The emulator ledger's request counts for one endpoint, by status (0 = dropped)."""
    return {
        row["status"]: row["count"]
        for row in ledger["requests"]
        if row["method"] == method and row["endpoint"] == endpoint
    }
