"""run_batch(): drive every job of a manifest to a terminal state, resumably.

Each job goes upload -> submit -> poll -> download, each a small step below. A pool of
``max_in_flight`` workers (an anyio task group) takes jobs from one queue, so at most that many
tasks are submitted and unfinished at once; the client's shared limiter paces every request.

Crash safety comes from the order of writes (see ``store``): the idempotency key and exact body
are durable before the create request; the task id is durable the moment it returns. A job found
``submitting`` on resume is re-sent with its stored key and body, so the service replays the
task it may already have created. Cancellation (Ctrl-C) only lands at ``await`` points, and every
store write is a synchronous call between them, so no write is ever cut in half.
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from batchgen.client import RivyaClient
from batchgen.errors import (
    BatchgenError,
    InsufficientCreditsError,
    JobApiError,
    ResultExpiredError,
    RetryExhaustedError,
    RunWideApiError,
    TransportError,
    ValidationFailedError,
)
from batchgen.models import (
    JobSpec,
    JobStatus,
    Manifest,
    Reference,
    RemoteTask,
    UploadedFile,
    client_request_id,
    job_key,
    parse_timestamp,
)
from batchgen.polling import (
    Forecast,
    PollPolicy,
    PollTrack,
    RuntimeModel,
    is_stuck,
    next_poll_delay,
    task_kind,
)
from batchgen.store import JobRow, StateStore

log = logging.getLogger("batchgen.runner")

UPLOAD_REUSE_MARGIN_S = 3600.0  # re-upload a reference that expires within the hour ...
UPLOAD_REUSE_MARGIN_SHARE = 0.25  # ... or within the last quarter of its lifetime, if shorter
MAX_URL_REFRESHES = 3  # fresh task GETs for expired result URLs, per job
QUEUED_DEADLINE_S = 12 * 3600.0  # stop polling a task that has not finished in 12 h (scaled)


@dataclass(frozen=True)
class RunOptions:
    """How a run behaves beyond the manifest."""

    poll: PollPolicy = field(default_factory=PollPolicy)
    retry_failed: bool = False  # give failed jobs another attempt (a new idempotency key)
    handle_signals: bool = False  # SIGINT/SIGTERM stop the run gracefully (the CLI sets it)
    progress_interval_s: float = 5.0


@dataclass
class RunOutcome:
    """What ended the run, besides jobs reaching their terminal states."""

    credits_ran_out: bool = False
    stuck: int = 0  # tasks polled past their deadline, still running remotely
    unfinished: int = 0  # jobs whose transient errors outlasted the retry policy
    signal: int | None = None  # the signal that stopped the run
    submitted: int = 0  # create requests answered with a new task in this run
    replayed: int = 0  # create requests answered with an existing task (a resume)


class _StopSubmitting(Exception):
    """Internal: the run no longer submits new jobs (credits ran out or a signal arrived)."""


class Runner:
    """One run of one batch. Use ``run_batch``; this class holds the run's shared state."""

    def __init__(
        self,
        manifest: Manifest,
        store: StateStore,
        client: RivyaClient,
        options: RunOptions,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.store = store
        self.client = client
        self.options = options
        self.on_progress = on_progress
        self.outcome = RunOutcome()
        self.runtimes = RuntimeModel()
        self.specs = {job_key(manifest.batch, s.id, s.request_hash): s for s in manifest.jobs}
        self._upload_locks: dict[str, anyio.Lock] = {}
        self._stop_submitting = False

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        self.store.sync_jobs(self.manifest.jobs)
        self._requeue()
        queue = deque(self._work_list())
        workers = min(self.manifest.limits.max_in_flight, len(queue))
        log.info(
            "batch %s: %d jobs to work on, %d workers", self.manifest.batch, len(queue), workers
        )
        try:
            async with anyio.create_task_group() as outer:
                if self.options.handle_signals:
                    outer.start_soon(self._watch_signals, outer.cancel_scope)
                if self.on_progress is not None:
                    outer.start_soon(self._report_progress)
                async with anyio.create_task_group() as tg:
                    for _ in range(workers):
                        tg.start_soon(self._worker, queue)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _primary(group) from None
        return self.outcome

    def _requeue(self) -> None:
        """Blocked jobs (and failed ones on request) get a new attempt with a new key."""
        again = [JobStatus.BLOCKED] + ([JobStatus.FAILED] if self.options.retry_failed else [])
        for row in self.store.jobs(statuses=again):
            self.store.requeue(row.job_key)

    def _work_list(self) -> list[JobRow]:
        """Unfinished jobs, the ones already in flight first (they hold paid tasks)."""
        order = {
            JobStatus.DOWNLOADING: 0,
            JobStatus.RUNNING: 1,
            JobStatus.SUBMITTING: 2,
            JobStatus.PENDING: 3,
        }
        rows = [r for r in self.store.jobs() if r.status in order]
        return sorted(rows, key=lambda r: order[r.status])

    async def _worker(self, queue: deque[JobRow]) -> None:
        while queue:
            row = queue.popleft()
            await self._process(row)

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.outcome.signal = signum
                self._stop_submitting = True
                log.warning("received %s: stopping; state is saved", signal.Signals(signum).name)
                scope.cancel()
                return

    async def _report_progress(self) -> None:
        assert self.on_progress is not None
        while True:
            self.on_progress()
            await anyio.sleep(self.options.progress_interval_s)

    # -- one job -------------------------------------------------------------------------------

    async def _process(self, row: JobRow) -> None:
        spec = self.specs[row.job_key]
        key = row.job_key
        try:
            await self._advance(row, spec)
        except _StopSubmitting:
            pass
        except InsufficientCreditsError as exc:
            self._credits_out(key, str(exc.message))
        except JobApiError as exc:
            self._fail(key, spec, exc.code, exc.message, exc.request_id)
        except RunWideApiError:
            raise
        except (RetryExhaustedError, TransportError) as exc:
            self.outcome.unfinished += 1
            self.store.log_event(key, "unfinished", str(exc))
            log.warning("%s: gave up for this run (%s); a rerun resumes it", spec.id, exc)
        except _JobError as exc:
            self._fail(key, spec, exc.code, exc.message, None)

    async def _advance(self, row: JobRow, spec: JobSpec) -> None:
        key = row.job_key
        status = row.status
        task: RemoteTask | None = None
        if status is JobStatus.PENDING:
            if self._stop_submitting:
                self._block_unsent(key)
                raise _StopSubmitting
            body = await self._build_body(spec)
            task = await self._submit(key, spec, body)
        elif status is JobStatus.SUBMITTING:
            task = await self._resubmit(row, spec)
        if status is not JobStatus.DOWNLOADING:
            task_id = task.id if task else row.task_id
            assert task_id is not None
            task = await self._poll_until_done(key, spec, task_id, task)
            if task is None:
                return
            if not self._settle(key, spec, task):
                return
        await self._download_all(key, spec)

    async def _submit(self, key: str, spec: JobSpec, body: dict[str, Any]) -> RemoteTask:
        ikey = self.store.begin_submit(key, body)  # durable before the request goes out
        task = await self.client.create_generation(body, idempotency_key=ikey)
        self.store.record_task(key, task)  # durable the moment it returns
        if task.replayed:
            self.outcome.replayed += 1
        else:
            self.outcome.submitted += 1
        log.info("%s: submitted as %s%s", spec.id, task.id, " (replayed)" if task.replayed else "")
        return task

    async def _resubmit(self, row: JobRow, spec: JobSpec) -> RemoteTask:
        """Resend a job found mid-submit with its stored key and body (the service replays the
        task if the first request created one). If the service refuses that body because its
        reference uploads expired meanwhile, no task exists for that key: start a new attempt
        with fresh uploads instead of failing the job."""
        assert row.request_body is not None, "a submitting job always has its body stored"
        try:
            return await self._submit(row.job_key, spec, row.request_body)
        except ValidationFailedError as exc:
            if not row.request_body.get("params", {}).get("referenceMediaItems"):
                raise
            self.store.record_failed(
                row.job_key, code=exc.code, message=exc.message, request_id=exc.request_id
            )
            self.store.requeue(row.job_key)
            self.store.log_event(row.job_key, "resubmit", "stored body refused; new attempt")
            log.info(
                "%s: stored request refused (%s); retrying with fresh uploads", spec.id, exc.message
            )
            for ref in spec.references:
                self.store.forget_upload(ref.identity)
            return await self._submit(row.job_key, spec, await self._build_body(spec))

    async def _poll_until_done(
        self, key: str, spec: JobSpec, task_id: str, task: RemoteTask | None
    ) -> RemoteTask | None:
        """Poll on the schedule until the task is terminal; None if it got stuck."""
        policy = self.options.poll
        kind = task_kind(spec.params_dict)
        row = self.store.job(key)
        started = _submitted_epoch(row)
        track = PollTrack(polls=row.polls)  # what the polls saw, for the schedule
        while task is None or not task.is_terminal:
            elapsed = time.time() - started
            forecast = self.runtimes.forecast(kind, policy)
            if self._stuck(key, spec, task_id, elapsed, track.processing_s(elapsed), forecast):
                return None
            await anyio.sleep(next_poll_delay(track, elapsed, forecast, policy))
            task = await self.client.get_generation(task_id)
            track = track.seen(task, time.time() - started)
            if not task.is_terminal:
                self.store.record_poll(key, task)
        if task.status == "succeeded":
            self.runtimes.observe(kind, track, time.time() - started)
        return task

    def _stuck(
        self,
        key: str,
        spec: JobSpec,
        task_id: str,
        elapsed: float,
        processing: float,
        forecast: Forecast,
    ) -> bool:
        """A task processing far longer than expected (or queued past QUEUED_DEADLINE_S) is
        reported and left for a later run. Time spent queued behind the account's own tasks
        is normal in a big batch, so only processing time counts against ``expected``."""
        policy = self.options.poll
        if not (
            is_stuck(processing, forecast.expected_s, policy)
            or elapsed > policy.scaled(QUEUED_DEADLINE_S)
        ):
            return False
        self.outcome.stuck += 1
        self.store.log_event(key, "stuck", f"task {task_id} unfinished after {elapsed:.0f}s")
        log.warning(
            "%s: task %s is unfinished after %.0fs; a rerun resumes it", spec.id, task_id, elapsed
        )
        return True

    def _settle(self, key: str, spec: JobSpec, task: RemoteTask) -> bool:
        """Record a terminal task; True if its results should be downloaded."""
        if task.status == "succeeded":
            if not task.result_urls:
                self._fail(key, spec, "no_result", "the task succeeded without result URLs", None)
                return False
            self.store.record_succeeded_remote(key, task)
            return True
        if task.error_code == "insufficient_credits":
            self._credits_out(key, task.error_message or "insufficient credits", task)
            return False
        message = task.error_message or "the generation failed (the service gave no reason)"
        self.store.record_failed(
            key, code=task.error_code or "generation_failed", message=message, task=task
        )
        log.warning("%s: failed: %s", spec.id, message)
        return False

    # -- references ----------------------------------------------------------------------------

    async def _build_body(self, spec: JobSpec) -> dict[str, Any]:
        params: dict[str, Any] = dict(spec.params)
        items = []
        for ref in spec.references:
            up = await self._ensure_uploaded(ref)
            items.append(
                {"url": up.url, "kind": "image", "name": up.name, "mimeType": up.mime_type}
            )
        if items:
            params["referenceMediaItems"] = items
        return {
            "model": spec.model,
            "prompt": spec.prompt,
            "params": params,
            "client_request_id": client_request_id(self.manifest.batch, spec.id),
        }

    async def _ensure_uploaded(self, ref: Reference) -> UploadedFile:
        """Upload each distinct reference once per batch; reuse it until it nearly expires."""
        source_key = ref.identity
        lock = self._upload_locks.setdefault(source_key, anyio.Lock())
        async with lock:
            stored = self.store.upload_for(source_key)
            if stored and not _expires_soon(stored.expires_at, stored.uploaded_at):
                return UploadedFile(
                    id=stored.file_id,
                    url=stored.url,
                    mime_type=stored.mime_type,
                    size_bytes=stored.size_bytes,
                    name=stored.name,
                    expires_at=stored.expires_at,
                )
            data = await self._read_reference(ref)
            up = await self.client.upload_file(
                data, _upload_name(ref), kind="image", model=self.manifest.model
            )
            self.store.save_upload(source_key, up)
            log.info("uploaded %s as %s", ref.source, up.id)
            return up

    async def _read_reference(self, ref: Reference) -> bytes:
        if ref.is_url:
            return await self.client.fetch_reference(ref.source)
        try:
            data = await anyio.Path(ref.source).read_bytes()
        except OSError as exc:
            raise _JobError("reference_unreadable", f"cannot read {ref.source}: {exc}") from exc
        if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256:
            raise _JobError(
                "reference_changed",
                f"{ref.source} changed after validation; run the same command again",
            )
        return data

    # -- downloads -----------------------------------------------------------------------------

    async def _download_all(self, key: str, spec: JobSpec) -> None:
        row = self.store.job(key)
        urls = list(row.result_urls)
        refreshes = 0
        while True:
            try:
                outputs = []
                for i, url in enumerate(urls):
                    dest = self._output_path(spec.id, i)
                    await self.client.download(url, dest)
                    outputs.append(str(dest))
                break
            except ResultExpiredError:
                if refreshes >= MAX_URL_REFRESHES or row.task_id is None:
                    raise _JobError("result_expired", "the result URLs kept expiring") from None
                refreshes += 1
                task = await self.client.get_generation(row.task_id)
                urls = list(task.result_urls)
                self.store.record_succeeded_remote(key, task, polled=False)
        self.store.record_outputs(key, outputs)
        log.info("%s: done -> %s", spec.id, ", ".join(outputs))

    def _output_path(self, job_id: str, index: int) -> Path:
        """``<output dir>/<job id>.mp4`` (then ``-2``, ``-3``...): names from job ids, never
        from the server, and always inside the output folder."""
        out_dir = self.manifest.output_dir.resolve()
        stem = _safe_filename(job_id) + ("" if index == 0 else f"-{index + 1}")
        path = (out_dir / f"{stem}.mp4").resolve()
        if path.parent != out_dir:
            raise _JobError("bad_output_path", f"job id {job_id!r} does not make a safe file name")
        return path

    # -- outcomes ------------------------------------------------------------------------------

    def _fail(
        self, key: str, spec: JobSpec, code: str | None, message: str, rid: str | None
    ) -> None:
        self.store.record_failed(key, code=code, message=message, request_id=rid)
        log.warning("%s: failed: %s%s", spec.id, message, f" (request {rid})" if rid else "")

    def _credits_out(self, key: str, message: str, task: RemoteTask | None = None) -> None:
        if not self._stop_submitting:
            log.warning("out of credits: no new jobs will be submitted; in-flight ones finish")
        self._stop_submitting = True
        self.outcome.credits_ran_out = True
        self.store.record_blocked(key, message=message, task=task)

    def _block_unsent(self, key: str) -> None:
        if self.outcome.credits_ran_out:
            self.store.record_blocked(key, message="not submitted: credits ran out")


class _JobError(BatchgenError):
    """Internal: a local problem that fails one job (unreadable reference, bad file name)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def run_batch(
    manifest: Manifest,
    store: StateStore,
    client: RivyaClient,
    options: RunOptions | None = None,
    on_progress: Callable[[], None] | None = None,
) -> RunOutcome:
    """Run (or resume) the batch; returns what ended the run. Job results are in ``store``."""
    runner = Runner(manifest, store, client, options or RunOptions(), on_progress)
    return await runner.run()


def _primary(group: BaseExceptionGroup) -> BaseException:
    """The error that stopped the run: a run-wide API error first, else the first leaf."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    for leaf in leaves:
        if isinstance(leaf, RunWideApiError):
            return leaf
    return leaves[0] if leaves else group


def _submitted_epoch(row: JobRow) -> float:
    return parse_timestamp(row.submitted_at or row.updated_at) or time.time()


def _expires_soon(expires_at: str | None, uploaded_at: str | None) -> bool:
    """True when an upload expires within the margin (or its expiry cannot be read)."""
    if not expires_at:
        return False
    expires, uploaded = parse_timestamp(expires_at), parse_timestamp(uploaded_at)
    if expires is None:
        return True
    margin = UPLOAD_REUSE_MARGIN_S
    if uploaded is not None and expires > uploaded:
        margin = min(margin, UPLOAD_REUSE_MARGIN_SHARE * (expires - uploaded))
    return expires - time.time() < margin


def _upload_name(ref: Reference) -> str:
    name = _safe_filename(ref.name)
    return name or "reference"


def _safe_filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned[:150] or "job"
