"""The peer: the OpenAI cookbook's parallel request processor, adapted to Rivya video jobs.

Where the original lives: ``examples/api_request_parallel_processor.py`` in
https://github.com/openai/openai-cookbook (read at commit 04a3090348d4ce2e7977612fdf99b7f906a00b43).
Licence: MIT (the openai-cookbook repository's LICENSE, copyright OpenAI). This module
re-implements that design in this project's layout (the same loop, constants and order of
decisions, split into methods so each fits on a screen); it is not a copy of the original text.

Kept as published -- it exists to be measured against, not to be improved:

* one asyncio loop that takes one request at a time, first from the retry queue, then from the
  input file (streamed line by line), and sleeps 1 ms between iterations;
* a token bucket for requests: capacity ``max_requests_per_minute``, refilled continuously at
  ``max_requests_per_minute / 60`` per second, one token per request, starting full;
* after any rate-limit error, the loop sends nothing until 15 s after the latest one: a fixed
  pause for everyone, ``Retry-After`` and ``X-RateLimit-*`` unread; requests already sent go on;
* a retry queue: each request has ``attempts_left`` (``max_attempts``, default 5), one taken when
  it is sent; a failed request goes back on the queue while it has attempts left, else it is
  saved as failed; any exception (a reset connection, a body that is not JSON) is such a failure;
* no idempotency key: a retried create is a new task, and a rerun after a crash starts over;
* a JSONL save file with one line per finished job: ``[request, response, metadata]``.

Adapted, because a video API is not a completion API:

* endpoint and body: ``POST {base_url}/api/v1/generations`` with each input line's JSON
  (``model``, ``prompt``, ``params``, optional ``metadata`` kept aside as in the original); the
  key from ``RIVYA_API_KEY`` instead of ``OPENAI_API_KEY``;
* no token counting (tiktoken): Rivya limits requests only, so the token bucket is dropped and
  the request bucket kept;
* the error test: the original calls any body holding an ``"error"`` key an error, and a rate
  limit ``error.code == "429"``. Rivya's task object always holds ``"error": null``, so that test
  would fail every created task and create it again up to five times (issue 12 saw 191 paid tasks
  for 40 jobs that way). Here a non-2xx answer is the error (its body is Rivya's error envelope)
  and a rate limit is its code ``rate_limited`` -- the smallest change that lets the design run;
* polling: a fixed poller. The first status read ``poll_interval_s`` (5 s) after the create was
  answered, then every 5 s, both times ``time_scale`` (as batchgen's polls are, against a
  sped-up emulator). A status read is a request like any other: it waits for its 5 s, then goes
  on the retry queue (read before new lines), through the same bucket, pause and attempts;
* download: when a read says ``succeeded``, the result's ``primary_url`` is downloaded at once
  (it needs no key and is not an API request, so it takes no token) into ``out_dir``; a failed
  download fails that status read, which is retried (a new read brings a fresh URL);
* a job is in progress from its line being read until its video is saved or it failed, so the
  loop ends when every job has; a remote task that ends ``failed`` is saved as failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

SECONDS_TO_PAUSE_AFTER_RATE_LIMIT_ERROR = 15.0
SECONDS_TO_SLEEP_EACH_LOOP = 0.001  # limits the loop to about 1,000 requests per second
POLL_INTERVAL_S = 5.0  # the adaptation's fixed poller: first read after 5 s, then every 5 s

log = logging.getLogger("peer")


@dataclass
class StatusTracker:
    """The original's counters (one instance), plus what the adaptation adds."""

    num_tasks_started: int = 0
    num_tasks_in_progress: int = 0  # the loop ends when this reaches 0
    num_tasks_succeeded: int = 0
    num_tasks_failed: int = 0
    num_rate_limit_errors: int = 0
    num_api_errors: int = 0  # excluding rate limit errors, counted above
    num_other_errors: int = 0
    time_of_last_rate_limit_error: float = 0.0  # used to cool off after hitting rate limits
    num_pauses: int = 0  # added: how many times the loop paused
    num_creates: int = 0  # added: creates answered with a task (each one is charged)
    num_polls: int = 0  # added: status reads answered with the task


@dataclass(frozen=True)
class Settings:
    """What every request needs to be sent (the original passed these one by one)."""

    base_url: str
    api_key: str
    save_path: Path
    out_dir: Path
    max_attempts: int = 5
    poll_interval_s: float = POLL_INTERVAL_S

    @property
    def create_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/api/v1/generations"

    @property
    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class APIRequest:
    """One request with its inputs, attempts and errors: a create, or a status read of one
    Rivya task (``remote_id`` set)."""

    task_id: int  # the original's counter: the job's number in the input file
    request_json: dict[str, Any]
    attempts_left: int
    metadata: dict[str, Any] | None
    remote_id: str | None = None
    result: list[Any] = field(default_factory=list)

    async def call_api(self, proc: Processor) -> None:
        """Send it; on an error retry it (attempts left) or save it failed; on success go on."""
        log.info("Starting request #%s", self.task_id)
        error: Any = None
        response: dict[str, Any] = {}
        try:
            status, response = await self._send(proc)
            if not 200 <= status < 300:
                error = response
                log.warning("Request %s failed with error %s", self.task_id, response)
                proc.tracker.num_api_errors += 1
                if (response.get("error") or {}).get("code") == "rate_limited":
                    proc.tracker.time_of_last_rate_limit_error = time.time()
                    proc.tracker.num_rate_limit_errors += 1
                    proc.tracker.num_api_errors -= 1  # rate limit errors are counted separately
            else:
                await self._went_well(proc, response)
                return
        except Exception as exc:  # the original logs and saves any exception, then retries
            log.warning("Request %s failed with Exception %s", self.task_id, exc)
            proc.tracker.num_other_errors += 1
            error = exc
        self.result.append(error)
        if self.attempts_left:
            proc.retry_queue.put_nowait(self)
        else:
            log.error("Request %s failed after all attempts: %s", self.request_json, self.result)
            proc.finish(self, [str(e) for e in self.result], succeeded=False)

    async def _send(self, proc: Processor) -> tuple[int, dict[str, Any]]:
        s = proc.settings
        if self.remote_id is None:
            call = proc.session.post(s.create_url, headers=s.header, json=self.request_json)
        else:
            call = proc.session.get(f"{s.create_url}/{self.remote_id}", headers=s.header)
        async with call as response:
            return response.status, dict(await response.json(content_type=None))

    async def _went_well(self, proc: Processor, task: dict[str, Any]) -> None:
        """A create answered (poll it later), or a status read (poll again, download, or
        record the failure)."""
        if self.remote_id is None:
            proc.tracker.num_creates += 1
            proc.poll_later(self, str(task["id"]))
            return
        proc.tracker.num_polls += 1
        if task.get("status") == "succeeded":
            await proc.download(self, task)
            proc.finish(self, task, succeeded=True)
        elif task.get("status") == "failed":
            proc.finish(self, task, succeeded=False)
        else:
            proc.poll_later(self, self.remote_id or "")


class Processor:
    """The original's ``process_api_requests_from_file``: its loop, bucket and pause."""

    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession, max_requests_per_minute: float
    ) -> None:
        self.settings = settings
        self.session = session
        self.max_requests_per_minute = max_requests_per_minute
        self.tracker = StatusTracker()
        self.retry_queue: asyncio.Queue[APIRequest] = asyncio.Queue()
        self.available_request_capacity = max_requests_per_minute  # the bucket starts full
        self.last_update_time = time.time()
        self.file_not_finished = True
        self.next_request: APIRequest | None = None
        self._running: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references
        self._next_task_id = 0

    async def run(self, requests: TextIO) -> StatusTracker:
        """The main loop: take a request, refill the bucket, send if there is a token, stop when
        no job is in progress, sleep 1 ms, and cool down after a rate-limit error."""
        while True:
            if self.next_request is None:
                self.next_request = self._take(requests)
            self._refill()
            if self.next_request is not None and self.available_request_capacity >= 1:
                self.available_request_capacity -= 1
                self.next_request.attempts_left -= 1
                task = asyncio.create_task(self.next_request.call_api(self))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                self.next_request = None
            if self.tracker.num_tasks_in_progress == 0:
                break
            await asyncio.sleep(SECONDS_TO_SLEEP_EACH_LOOP)
            await self._cool_down()
        log.info("Parallel processing complete. Results saved to %s", self.settings.save_path)
        return self.tracker

    def _take(self, requests: TextIO) -> APIRequest | None:
        """The next request: a retry (or a due status read) first, else the file's next line."""
        if not self.retry_queue.empty():
            return self.retry_queue.get_nowait()
        if not self.file_not_finished:
            return None
        line = requests.readline()
        if not line:
            self.file_not_finished = False
            return None
        request_json = json.loads(line)
        request = APIRequest(
            task_id=self._next_task_id,
            request_json=request_json,
            attempts_left=self.settings.max_attempts,
            metadata=request_json.pop("metadata", None),
        )
        self._next_task_id += 1
        self.tracker.num_tasks_started += 1
        self.tracker.num_tasks_in_progress += 1
        return request

    def _refill(self) -> None:
        now = time.time()
        elapsed = now - self.last_update_time
        self.available_request_capacity = min(
            self.available_request_capacity + self.max_requests_per_minute * elapsed / 60.0,
            self.max_requests_per_minute,
        )
        self.last_update_time = now

    async def _cool_down(self) -> None:
        """If a rate-limit error came less than 15 s ago, sleep until 15 s after it."""
        since = time.time() - self.tracker.time_of_last_rate_limit_error
        if since < SECONDS_TO_PAUSE_AFTER_RATE_LIMIT_ERROR:
            self.tracker.num_pauses += 1
            await asyncio.sleep(SECONDS_TO_PAUSE_AFTER_RATE_LIMIT_ERROR - since)
            log.warning("Paused to cool down after a rate limit error")

    def poll_later(self, request: APIRequest, remote_id: str) -> None:
        """The adaptation's poller: a fresh status read of this task after the fixed interval."""
        read = APIRequest(
            task_id=request.task_id,
            request_json=request.request_json,
            attempts_left=self.settings.max_attempts,
            metadata=request.metadata,
            remote_id=remote_id,
        )
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.poll_interval_s, self.retry_queue.put_nowait, read)

    async def download(self, request: APIRequest, task: dict[str, Any]) -> None:
        """The result's primary URL, saved as ``<job number>.mp4`` (any failure raises)."""
        url = task["result"]["primary_url"]
        async with self.session.get(url) as response:
            response.raise_for_status()
            data = await response.read()
        (self.settings.out_dir / f"{request.task_id}.mp4").write_bytes(data)

    def finish(self, request: APIRequest, response: Any, *, succeeded: bool) -> None:
        """Append the job's line to the save file; it is no longer in progress."""
        line = [request.request_json, response]
        if request.metadata:
            line.append(request.metadata)
        with self.settings.save_path.open("a") as f:
            f.write(json.dumps(line) + "\n")
        self.tracker.num_tasks_in_progress -= 1
        if succeeded:
            self.tracker.num_tasks_succeeded += 1
        else:
            self.tracker.num_tasks_failed += 1


async def process_api_requests_from_file(
    requests_filepath: Path, settings: Settings, max_requests_per_minute: float
) -> StatusTracker:
    """Process every line of ``requests_filepath``; the counters at the end."""
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with requests_filepath.open() as requests:
        async with aiohttp.ClientSession() as session:
            proc = Processor(settings, session, max_requests_per_minute)
            tracker = await proc.run(requests)
    if tracker.num_tasks_failed:
        log.warning("%s / %s requests failed", tracker.num_tasks_failed, tracker.num_tasks_started)
    if tracker.num_rate_limit_errors:
        log.warning("%s rate limit errors received", tracker.num_rate_limit_errors)
    return tracker
