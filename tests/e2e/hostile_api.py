"""A small hostile Rivya server for end-to-end tests: a real aiohttp app on loopback that takes
jobs and answers each task by a script chosen from the job's prompt, including answers no
honest server gives (the API key echoed back, absurd numbers, unknown status names).

The prompt's first word picks the script:

* ``echo``: the task fails with the caller's key in its error message and status text;
* ``expired`` / ``cancelled``: the task ends with that status name;
* ``limbo``: the task reports ``paused_for_review`` (a name batchgen does not know) for a
  few polls, then fails;
* ``absurd``: the task's ``reserved_credits`` is 2**63;
* ``negative``: ``final_credits`` is -90 when it fails;
* anything else: the task fails plainly (``generation_failed``, 90 refunded).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from typing import Any

from aiohttp import web


class HostileApi:
    """Run with ``with HostileApi() as api:``; ``api.base_url``; ``api.key``."""

    key = "rvya_sk_hostile_0123456789abcdef0123"

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.polls: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def __enter__(self) -> HostileApi:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()  # its self-pipe sockets too

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/generations", self._create)
        app.router.add_get("/api/v1/generations/{task_id}", self._get)
        app.router.add_get("/api/v1/credits", self._credits)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        task_id = f"task_{next(self._ids)}"
        script = str(body.get("prompt", "")).split(" ", 1)[0]
        self.tasks[task_id] = {"script": script}
        return web.json_response(self._task(task_id, "queued"), status=201)

    async def _get(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        if task_id not in self.tasks:
            error = {"code": "not_found", "message": "no such task", "requestId": "req_1"}
            return web.json_response({"error": error}, status=404)
        self.polls[task_id] += 1
        script = self.tasks[task_id]["script"]
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if script == "echo":
            task = self._task(task_id, f"failed-for-{key}")
            task["status"] = "failed"
            task["error"] = {"code": "generation_failed", "message": f"rejected key {key}"}
            task["x_debug"] = {"authorization": f"Bearer {key}"}
            return web.json_response(task)
        if script in ("expired", "cancelled"):
            return web.json_response(self._task(task_id, script))
        if script == "limbo" and self.polls[task_id] < 4:
            return web.json_response(self._task(task_id, "paused_for_review"))
        task = self._task(task_id, "failed")
        task["error"] = {"code": "generation_failed", "message": "it did not work"}
        if script == "absurd":
            task["reserved_credits"] = 2**63
        if script == "negative":
            task["final_credits"] = -90
        return web.json_response(task)

    async def _credits(self, request: web.Request) -> web.Response:
        return web.json_response({"current_credits": 1_000_000})

    @staticmethod
    def _task(task_id: str, status: str) -> dict[str, Any]:
        return {
            "id": task_id,
            "status": status,
            "model": "kling-3-0",
            "reserved_credits": 90,
            "final_credits": 0,
            "created_at": "2026-12-01T00:00:00.000Z",
            "updated_at": "2026-12-01T00:00:01.000Z",
            "result": None,
            "error": None,
        }
