"""run_batch(): drive every job of a manifest to a terminal state, resumably.

A job's row moves through the state machine of ``models.TRANSITIONS`` by one *step* per
status (the ``Runner.steps`` table): each step does one stage's I/O and returns the job's next
row, or None when the job is done for this run::

    pending     -> submit:  ask the gates, upload references, make the key durable, create
    submitting  -> resend:  the stored body with the stored key (the service replays its task),
                            unless the key is older than the service may remember it
    running     -> follow:  poll on the task's schedule until it is terminal (or stuck)
    downloading -> fetch:   download every result, then record the job succeeded

A pool of ``max_in_flight`` workers (an anyio task group) takes jobs from one queue, the ones
in flight first, so at most that many tasks are submitted and unfinished at once; the client's
shared limiter paces every request. Everything that happens is emitted as a typed event on the
run's ``EventBus``; how the run ended is its ``RunOutcome``.

Crash safety comes from the order of writes (see ``store``): the idempotency key and exact body
are durable before the create request; the task id is durable the moment it returns; a
composite change (a new attempt) is one transaction. Cancellation (a signal) only lands at
``await`` points, and every store write is a synchronous call between them. The store
commits the workers' writes in groups (``StateStore.grouped``); where a write must be on disk
before the job goes on (the key before its create, the task id after it), the step awaits
``store.durable()``, which shares one commit among the workers asking at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import anyio
import anyio.lowlevel

from batchgen.client import RivyaClient
from batchgen.config import RunConfig
from batchgen.contract import BASE_CREDITS
from batchgen.downloads import Checked, Downloader
from batchgen.errors import (
    IdempotencyConflictError,
    InsufficientCreditsError,
    JobApiError,
    LocalJobError,
    OutputWriteError,
    RetryExhaustedError,
    RunWideApiError,
    TransportError,
    ValidationFailedError,
)
from batchgen.events import (
    DownloadAgain,
    Estimate,
    EventBus,
    Held,
    JobChanged,
    JobUnfinished,
    KeyConflict,
    NeedsDecision,
    NewAttempt,
    RunStarted,
    Stopping,
    Submitted,
    TaskStuck,
    WriteFailed,
)
from batchgen.gates import (
    Budget,
    Deadline,
    Gate,
    Gates,
    Hold,
    Latch,
    Quota,
    WindowGate,
    local_zone,
)
from batchgen.keys import expired_key_age
from batchgen.models import (
    JobSpec,
    JobStatus,
    Manifest,
    RemoteStatus,
    RemoteTask,
    is_loopback_host,
    job_selected,
)
from batchgen.outcome import RunOutcome, StopReason
from batchgen.polling import PollTrack, RuntimeModel, TaskKind, task_kind
from batchgen.schedule import TaskSchedule, eta_s, schedule_for
from batchgen.signals import SignalCatcher
from batchgen.store import JobRow, RecordedOutputs, StateStore
from batchgen.uploads import Uploader

log = logging.getLogger("batchgen.runner")

Step = Callable[[JobRow, JobSpec], Awaitable[JobRow | None]]
IN_FLIGHT_ORDER = {
    JobStatus.DOWNLOADING: 0,
    JobStatus.RUNNING: 1,
    JobStatus.SUBMITTING: 2,
    JobStatus.PENDING: 3,
}


# Create refusals that say what is wrong with the request itself (never a credit shortage).
CLEAR_REFUSALS = frozenset({"validation_failed", "idempotency_conflict", "not_found", "bad_answer"})

# A superseded version is followed where a task exists or may exist (paid, or maybe paid: a
# ``submitting`` one is resent with its stored key and body, which the service replays); nothing
# new is ever sent for it (``_submit`` returns at once).
SUPERSEDED_TO_FINISH = (JobStatus.SUBMITTING, JobStatus.RUNNING, JobStatus.DOWNLOADING)


class Runner:
    """One run of one batch. Use ``run_batch``; this class holds the run's shared state."""

    def __init__(
        self,
        manifest: Manifest,
        store: StateStore,
        client: RivyaClient,
        config: RunConfig,
        bus: EventBus | None = None,
        signals: SignalCatcher | None = None,
    ) -> None:
        self.manifest = manifest
        self.store = store
        self.client = client
        self.config = config
        self.bus = bus or EventBus()
        self.signals = signals
        self.outcome = RunOutcome()
        self.runtimes = RuntimeModel()
        # job key -> spec of the jobs handed to workers (filled as the work list pages in)
        self.specs: dict[str, JobSpec] = {}
        self._by_id = {s.id: s for s in manifest.jobs}
        self.credits = Latch("credits")
        self.stopping = Latch("signal")
        self.conflict = Latch("key_conflict")  # the state that knew this batch is missing
        self.disk = Latch("output")  # result files cannot be written: do not buy more
        self.gates = Gates(
            [self.credits, self.stopping, self.conflict, self.disk, *self._asked(config)]
        )
        self.uploads = Uploader(manifest.batch, manifest.model, store, client, self.bus)
        output_dir = config.output_dir or manifest.output_dir  # a rehearsal's is its own
        self.downloads = Downloader(output_dir, store, client, self.bus)
        self.steps: dict[JobStatus, Step] = {
            JobStatus.PENDING: self._submit,
            JobStatus.SUBMITTING: self._resend,
            JobStatus.RUNNING: self._follow,
            JobStatus.DOWNLOADING: self._fetch,
        }
        self._following: dict[str, TaskSchedule] = {}  # job key -> schedule, tasks polled now
        self._pending_kinds: Counter[TaskKind] = Counter()  # queued jobs not yet submitted
        self._inherited: set[str] = set()  # job keys in flight when the run started
        self._fresh_urls: set[str] = set()  # job keys whose stored result URLs may be stale
        self._scope: anyio.CancelScope | None = None
        self._largest_reservation = 0  # credits: the largest a task of this run reserved
        self._unknown_statuses: set[str] = set()  # status names already reported
        self._reuploaded: set[str] = set()  # job keys given fresh uploads in this run
        self._begun = 0  # new jobs moved to submitting in this run (what --limit counts)
        self._committed: int | None = None  # the budget's running sum (``_committed_credits``)
        self._base_price = BASE_CREDITS  # the price that sum was taken at
        self._holding: dict[str, int] = {}  # job key -> what its row holds, once changed

    def _asked(self, config: RunConfig) -> list[Gate]:
        """The gates the user asked for (a budget, a pilot's limit, a deadline), then the
        caller's own."""
        asked: list[Gate] = []
        if config.limits.max_credits is not None:
            asked.append(
                Budget(
                    config.limits.max_credits,
                    committed=self._committed_credits,
                    price=lambda: self._price,
                )
            )
        if config.limit is not None:
            asked.append(Quota(config.limit, used=lambda: self._begun))
        if config.until is not None:
            asked.append(Deadline(config.until))
        window = self.manifest.window
        if window is not None:
            zone = ZoneInfo(window.timezone) if window.timezone else local_zone()
            asked.append(WindowGate(window.start_min, window.end_min, zone, window.text))
        return [*asked, *config.gates]

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        self.store.sync_jobs(self.manifest.jobs)
        self._requeue()
        self._learn_from_state()
        removed = self.downloads.remove_partials(s.id for s in self.manifest.jobs)
        if removed:
            log.info("removed %d partial download(s) a stopped run left behind", removed)
        self._check_outputs()
        queue = self._work_list()
        workers = min(self.config.limits.max_in_flight, len(queue))
        counts = self.store.counts()
        self.bus.emit(
            RunStarted(
                batch=self.manifest.batch,
                jobs=len(self.manifest.jobs),
                to_do=len(queue),
                workers=workers,
                by_status=tuple(sorted(counts["by_status"].items())),
                reserved_credits=counts["reserved_credits"],
                final_credits=counts["final_credits"],
            )
        )
        try:
            async with anyio.create_task_group() as outer:
                self._scope = outer.cancel_scope
                outer.start_soon(self._estimates)
                with self._listening():
                    async with anyio.create_task_group() as tg:
                        for _ in range(workers):
                            tg.start_soon(self._worker, queue)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _primary(group) from None
        return self.outcome

    def _listening(self) -> AbstractContextManager[None]:
        if self.signals is None or not self.config.handle_signals:
            return contextlib.nullcontext()
        return self.signals.listening(self.on_signal)

    def on_signal(self, signum: int) -> None:
        """SIGINT/SIGTERM: submit nothing more, stop polling at once; the state is saved."""
        reason = StopReason.for_signal(signum)
        if self.outcome.stop(reason):
            self.stopping.close(reason, f"stopped by {reason.name}")
            self.bus.emit(Stopping(reason, f"received {reason.name}: stopping; state is saved"))
        if self._scope is not None:
            self._scope.cancel()

    def _requeue(self) -> None:
        """Blocked jobs (and failed ones on request) get a new attempt with a new key."""
        again = [JobStatus.BLOCKED] + ([JobStatus.FAILED] if self.config.retry_failed else [])
        for row in self.store.jobs(statuses=again):
            if not job_selected(row.job_id, self.config.only):
                continue
            new = self.store.requeue(row.job_key)
            self._changed(row, new)
            self.bus.emit(NewAttempt(job_id=row.job_id, attempt=new.attempt, why="requeued"))

    def _check_outputs(self) -> None:
        """The record against the disk. A succeeded job whose file was deleted or damaged is
        downloaded again (its task is paid for; nothing is submitted); an edit that was
        reverted gets its version's files back under the job's plain names."""
        verify = self.config.verify
        recorded = self.store.recorded_outputs()
        checked = [(rec, self.downloads.check(rec, verify=verify)) for rec in recorded]
        lost = [(rec.job_key, c.why) for rec, c in checked if c.why is not None]
        for key, why in lost:
            row = self.store.job(key)
            self._changed(row, self.store.download_again(key, why=why))
            self._fresh_urls.add(key)
            self.bus.emit(DownloadAgain(job_id=row.job_id, why=why))
        for row in self._to_arrange(checked, verify=verify):
            try:
                if self.downloads.arrange(row):
                    log.info("%s: this version's video is back under the job's name", row.job_id)
            except OutputWriteError as exc:  # the files stay where the record says they are
                log.warning("%s: could not move its video: %s", row.job_id, exc)

    def _to_arrange(
        self, checked: list[tuple[RecordedOutputs, Checked]], *, verify: bool
    ) -> Iterator[JobRow]:
        """The succeeded rows ``Downloader.arrange`` may have to move files for. Without
        ``verify``, a job whose files ``check`` found whole as recorded, at its plain names, is
        not read again (a resumed batch of 100,000 succeeded jobs builds no 100,000 rows);
        ``check`` may have recorded other paths for a job, and then its row is read."""
        if verify:  # a hash mismatch may have moved a record to files of the right size
            yield from self.store.jobs(statuses=[JobStatus.SUCCEEDED])
            return
        for rec, found in checked:
            count = len(rec.outputs)
            plain = [str(self.downloads.output_path(rec.job_id, i)) for i in range(count)]
            if found.as_recorded and plain == list(rec.outputs):
                continue
            row = self.store.job(rec.job_key)
            if row.status is JobStatus.SUCCEEDED:
                yield row

    def _learn_from_state(self) -> None:
        """Seed the run-time model with the batch's tasks that finished in earlier runs."""
        for params, run_s, started_s in self.store.finished_runs():
            track = PollTrack(started_s=started_s, finished_s=run_s)
            self.runtimes.observe(task_kind(params), track, run_s)

    def _work_list(self) -> WorkQueue:
        """Unfinished jobs, the ones already in flight first (they hold paid tasks); and the
        paid tasks of superseded versions (a job edited while its task ran), which are followed
        and downloaded to their versioned names: a paid video is kept, and the sums settle.
        Pending jobs come last, read from the state a page at a time (``WorkQueue``)."""
        started = [s for s in IN_FLIGHT_ORDER if s is not JobStatus.PENDING]
        rows = self.store.jobs(statuses=started)
        rows += [
            r
            for r in self.store.jobs(statuses=SUPERSEDED_TO_FINISH, current_only=False)
            if not r.in_manifest
        ]
        rows = [r for r in rows if job_selected(r.job_id, self.config.only)]  # --only
        for row in rows:
            self._spec_for(row)
        rows.sort(key=lambda r: IN_FLIGHT_ORDER[r.status])
        for row in rows:
            if row.status is JobStatus.RUNNING:
                self._inherited.add(row.job_key)
            elif row.status is JobStatus.DOWNLOADING and any(
                _from_another_local_server(url, self.client.base_url) for url in row.result_urls
            ):
                self._fresh_urls.add(row.job_key)
        pending = self._count_pending()
        return WorkQueue(rows, pending, self._pending_page)

    def _count_pending(self) -> int:
        """How many pending jobs this run has, counted by kind for the ETA."""
        only = self.config.only
        kinds: dict[str | None, TaskKind] = {}
        total = 0
        for job_id, params, count in self.store.pending_params(by_id=bool(only)):
            if job_id is not None and not job_selected(job_id, only):
                continue
            kind = kinds.get(params)
            if kind is None:
                kind = kinds[params] = task_kind(json.loads(params) if params else {})
            self._pending_kinds[kind] += count
            total += count
        return total

    def _pending_page(self, after: int) -> tuple[int, list[JobRow]]:
        """The next page of pending rows after rowid ``after`` (``--only`` applied), and the
        last rowid read (``after`` when there are no more)."""
        page = self.store.pending_page(after, PENDING_PAGE)
        rows = [row for _, row in page if job_selected(row.job_id, self.config.only)]
        for row in rows:
            self._spec_for(row)
        return (page[-1][0] if page else after), rows

    def _spec_for(self, row: JobRow) -> JobSpec:
        """The spec a worker follows ``row`` with: the manifest's job of that id and version,
        else (a superseded version) what the row says of its request."""
        spec = self.specs.get(row.job_key)
        if spec is None:
            spec = self._by_id.get(row.job_id)
            if spec is None or not row.in_manifest or spec.request_hash != row.request_hash:
                spec = _spec_of(row)
            self.specs[row.job_key] = spec
        return spec

    async def _worker(self, queue: WorkQueue) -> None:
        while queue:
            await self._process(queue.popleft())
            # A job a gate holds is decided without awaiting anything: without this checkpoint
            # a worker would run through a whole queue of held jobs before a signal's
            # cancellation (or any other task) got a turn, which is minutes for a million jobs.
            await anyio.lowlevel.checkpoint()

    async def _estimates(self) -> None:
        """Every progress interval, the ETA from the same forecasts that schedule the polls."""
        while True:
            await anyio.sleep(self.config.progress_interval_s)
            self.bus.emit(Estimate(eta_s=self.eta_s()))

    def eta_s(self) -> float | None:
        now, policy = time.time(), self.config.poll
        if not self._following and not self._pending_kinds:
            return None
        remaining = [
            s.remaining_s(now, self.runtimes.forecast(s.kind, policy))
            for s in self._following.values()
        ]
        pending = [
            (self.runtimes.forecast(kind, policy).expected_s, n)
            for kind, n in self._pending_kinds.items()
            if n > 0
        ]
        limits = self.config.limits
        return eta_s(remaining, pending, slots=limits.max_in_flight, rate_per_s=limits.rate_per_s)

    # -- one job -------------------------------------------------------------------------------

    async def _process(self, row: JobRow) -> None:
        key = row.job_key
        spec = self.specs[key]
        current: JobRow | None = row
        del row  # the queue's row: each step's own is enough (one row per job in flight)
        try:
            while current is not None and current.status in self.steps:
                current = await self.steps[current.status](current, spec)
        except InsufficientCreditsError as exc:
            self._credits_out(self.store.job(key), spec, exc.message)
        except IdempotencyConflictError as exc:
            self._key_conflict(self.store.job(key), spec, exc)
        except JobApiError as exc:
            await self._refused(key, spec, exc)
        except RunWideApiError:
            raise
        except (RetryExhaustedError, TransportError) as exc:
            self._unfinished(spec, exc)
        except LocalJobError as exc:
            self._fail(key, spec, exc.code, exc.message, None)
        except OutputWriteError as exc:
            self._unwritable(self.store.job(key), spec, exc)
        finally:
            self._following.pop(key, None)

    # -- the steps -----------------------------------------------------------------------------

    async def _submit(self, row: JobRow, spec: JobSpec) -> JobRow | None:
        """pending -> submitting -> running: gates, uploads, durable key, create request."""
        if not row.in_manifest:  # a superseded version whose stored request was refused
            return None
        kind = task_kind(spec.params_dict)
        self._pending_kinds[kind] -= 1
        if self._held(row, spec):
            return None
        body = await self.uploads.body_for(spec)
        if self._held(row, spec):  # a gate may have closed while the references uploaded
            return None
        row = self._changed(row, self.store.begin_submit(row.job_key, body))  # no await since
        self._begun += 1  # the gates said yes: a budget or a limit is exact to one job
        await self.store.durable()  # the key and body are on disk before the request leaves
        return await self._send(row, spec, resend=False)

    async def _resend(self, row: JobRow, spec: JobSpec) -> JobRow | None:
        """submitting -> running: resend the stored body with the stored key, so the service
        replays the task the first request may have created. If the service refuses that body
        because its reference uploads expired meanwhile, no task exists for that key: the job
        gets a new attempt (one transaction) and goes through ``_submit`` with fresh uploads.

        A key stored longer ago than the service may remember it (``key_lifetime_s``) is not
        resent unless the user said so (``--resend-expired``): the first request may have
        created a task the service no longer ties to the key, and a resend would pay again."""
        if not self.config.resend_expired:
            age = expired_key_age(row.submitted_at, self.config.key_lifetime_s, time.time())
            if age is not None:
                self._needs_decision(row, spec, age)
                return None
        return await self._send(row, spec, resend=True)

    async def _send(self, row: JobRow, spec: JobSpec, *, resend: bool) -> JobRow:
        """The create request of a ``submitting`` row. Refused as ``validation_failed`` because
        of its references (their uploads expired or are unknown to the service: the message
        names one, or it is a resend of a stored body, whose uploads may have aged since), no
        task exists for the key: the job gets one new attempt (one transaction: the new key,
        the uploads forgotten, why in ``events``) and is submitted again with fresh uploads.
        A second refusal in the same run fails the job."""
        try:
            return await self._create(row)
        except ValidationFailedError as exc:
            items = (row.request_body or {}).get("params", {}).get("referenceMediaItems") or []
            named = "referenceMediaItems" in exc.message or any(
                _names_upload(exc.message, item) for item in items
            )
            if not items or not (named or resend) or row.job_key in self._reuploaded:
                raise
            self._reuploaded.add(row.job_key)
            why = f"request refused for its references ({exc.message}); new attempt, fresh uploads"
            new = self.store.new_attempt(
                row.job_key, why=why, forget_uploads=[r.identity for r in spec.references]
            )
            self.bus.emit(NewAttempt(job_id=spec.id, attempt=new.attempt, why=why))
            if row.in_manifest:
                self._pending_kinds[task_kind(spec.params_dict)] += 1
            return self._changed(row, new)

    async def _create(self, row: JobRow) -> JobRow:
        assert row.request_body is not None and row.idempotency_key is not None
        task = await self.client.create_generation(
            row.request_body, idempotency_key=row.idempotency_key
        )
        new = self._changed(row, self.store.record_task(row.job_key, task))  # written at once
        self._largest_reservation = max(self._largest_reservation, task.reserved_credits or 0)
        if task.replayed:
            self.outcome.replayed += 1
        else:
            self.outcome.submitted += 1
        self.bus.emit(Submitted(job_id=row.job_id, task_id=task.id, replayed=task.replayed))
        await self.store.durable()  # ... and on disk (with the neighbours' changes) before on
        return new

    async def _follow(self, row: JobRow, spec: JobSpec) -> JobRow | None:
        """running -> downloading | failed | blocked: poll on the task's schedule."""
        assert row.task_id is not None
        policy = self.config.poll
        schedule = schedule_for(
            kind=task_kind(spec.params_dict),
            policy=policy,
            created_at=row.task_created_at,
            submitted_at=row.submitted_at,
            recorded_at=row.task_recorded_at,
            started_at=row.task_started_at,
            polls=row.polls,
            inherited=row.job_key in self._inherited,
        )
        self._following[row.job_key] = schedule
        while True:
            forecast = self.runtimes.forecast(schedule.kind, policy)
            if schedule.stuck(time.time(), forecast):
                self._stuck(row, spec, schedule)
                return None
            await anyio.sleep(schedule.delay(time.time(), forecast))
            task = await self.client.get_generation(row.task_id)
            schedule.seen(task, time.time())
            if task.is_terminal:
                return await self._settle(row, spec, task, schedule)
            if task.status is RemoteStatus.UNKNOWN:
                self._unknown_status(spec, task)
            row = self._changed(row, self.store.record_poll(row.job_key, task))

    async def _settle(
        self, row: JobRow, spec: JobSpec, task: RemoteTask, schedule: TaskSchedule
    ) -> JobRow | None:
        """Record a terminal task: downloading (succeeded), blocked or failed."""
        if task.status is RemoteStatus.SUCCEEDED:
            if not task.result_urls:
                self._fail(row.job_key, spec, "no_result", "the task succeeded without result URLs")
                return None
            self.runtimes.observe(schedule.kind, schedule.track, schedule.elapsed(time.time()))
            return self._changed(row, self.store.record_succeeded_remote(row.job_key, task))
        if task.error_code == "insufficient_credits":
            self._credits_out(row, spec, task.error_message or "insufficient credits", task)
            return None
        if task.status is RemoteStatus.ENDED:  # "cancelled", "expired", ...: its name says why
            name = task.raw_status or "ended"
            message = task.error_message or f"the service ended the task as {name!r}, no result"
            self._changed(
                row, self.store.record_failed(row.job_key, code=name, message=message, task=task)
            )
            return None
        if await self._wallet_short(task):
            why = (
                f"the task failed ({task.error_code or 'no error code'}) without a charge, and "
                f"the wallet holds less than a task's price: out of credits"
            )
            self._credits_out(row, spec, why, task)
            return None
        message = task.error_message or "the generation failed (the service gave no reason)"
        new = self.store.record_failed(
            row.job_key, code=task.error_code or "generation_failed", message=message, task=task
        )
        self._changed(row, new)
        return None

    async def _wallet_short(self, task: RemoteTask | None) -> bool:
        """Could this failure be the wallet running dry in disguise? The documentation says a
        task started without enough credits "is marked failed" and names no code: a failure
        that reserved nothing, or says only ``generation_failed`` (or nothing), is checked
        against ``GET /api/v1/credits``. Short of one task's price means out of credits."""
        if task is not None:
            uncharged = not task.reserved_credits
            vague = task.error_code in (None, "generation_failed")
            if not (uncharged or vague):
                return False
        if self.credits.is_closed:
            return True  # already known: the wallet ran out during this run
        try:
            wallet = await self.client.get_credits()
        except (JobApiError, RunWideApiError, RetryExhaustedError, TransportError) as exc:
            log.warning(
                "could not read the wallet to tell a failure from a credit shortage: %s", exc
            )
            return False
        return wallet < self._price

    def _committed_credits(self) -> int:
        """The batch's credits held against the wallet, for the budget gate: summed from the
        state once per run (``StateStore.committed_credits``), then kept current by
        ``_changed``, which sees every transition: no table scan per submission."""
        if self._committed is None:
            self._committed = self.store.committed_credits(self._price)
            self._base_price = self._price
        return self._committed

    def _track_held(self, old: JobRow, new: JobRow) -> None:
        """Keep ``_committed`` equal to what ``committed_credits`` would sum now."""
        if self._committed is None:
            return  # not summed yet: the first sum will see this change
        before = self._holding.get(old.job_key, old.held_credits(self._base_price))
        after = new.held_credits(self._price)
        self._holding[new.job_key] = after
        kept = 0  # a new attempt moves the old task's final charge into ``attempts``
        if new.status is JobStatus.PENDING and old.task_id is not None:
            kept = old.final_credits or 0
        self._committed += after - before + kept

    async def _refused(self, key: str, spec: JobSpec, exc: JobApiError) -> None:
        """The service refused a request of this job (or answered it unreadably)."""
        if exc.code == "bad_answer" and self._mid_submit(key):
            # the create answer was unreadable (an unsafe id, absurd credits): a task may exist
            # and be paid for, so the job is never failed: it stays resumable
            self._unfinished(spec, exc)
        elif await self._refused_for_credits(key, exc):
            self._credits_out(self.store.job(key), spec, exc.message)
        else:
            self._fail(key, spec, exc.code, exc.message, exc.request_id)

    def _unfinished(self, spec: JobSpec, exc: Exception) -> None:
        """The job is left where it is for a later run (its errors outlasted this one)."""
        self.outcome.unfinished += 1
        self.outcome.stop(StopReason.UNFINISHED)
        self.bus.emit(JobUnfinished(job_id=spec.id, error=str(exc)))

    def _mid_submit(self, key: str) -> bool:
        return self.store.job(key).status is JobStatus.SUBMITTING

    async def _refused_for_credits(self, key: str, exc: JobApiError) -> bool:
        """A create refused with a code that does not say what is wrong with the request may
        be a credit shortage under another name: the wallet is read before the job fails."""
        if exc.code in CLEAR_REFUSALS or not self._mid_submit(key):
            return False
        return await self._wallet_short(None)

    @property
    def _price(self) -> int:
        """A task's price: the largest reservation seen in this run, else the model's base."""
        return self._largest_reservation or BASE_CREDITS

    def _unknown_status(self, spec: JobSpec, task: RemoteTask) -> None:
        """A status name batchgen does not know, which does not end the task: polled like
        ``processing`` (under the stuck rule), and named once per run in the log."""
        name = task.raw_status or "?"
        if name not in self._unknown_statuses:
            self._unknown_statuses.add(name)
            log.warning(
                "%s: the service reports the status %r, which batchgen does not know; it is "
                "followed like 'processing' (and reported stuck if it outlasts that)",
                spec.id,
                name,
            )

    async def _fetch(self, row: JobRow, spec: JobSpec) -> JobRow | None:
        """downloading -> succeeded: every result file on disk. A file lost since an earlier
        run is fetched with fresh URLs: the stored ones may have expired or moved meanwhile."""
        fresh = row.job_key in self._fresh_urls
        self._fresh_urls.discard(row.job_key)
        row, landed = await self.downloads.fetch_all(row, spec, fresh=fresh)
        new = self.store.record_outputs(row.job_key, landed.outputs, landed.sizes, landed.sha256)
        return self._changed(row, new)

    # -- outcomes ------------------------------------------------------------------------------

    def _held(self, row: JobRow, spec: JobSpec) -> bool:
        """Ask the gates; a held job stays pending (or is marked blocked) and is not sent."""
        hold = self.gates.check(spec)
        if hold is None:
            return False
        self._hold(row, spec, hold)
        return True

    def _hold(self, row: JobRow, spec: JobSpec, hold: Hold) -> None:
        self.outcome.held += 1
        self.outcome.holds.setdefault(hold.gate, hold.message)
        self.outcome.stop(hold.reason)
        self.bus.emit(
            Held(job_id=spec.id, gate=hold.gate, reason=hold.reason, message=hold.message)
        )
        if hold.block and row.status is JobStatus.PENDING:
            self._changed(row, self.store.record_blocked(row.job_key, message=hold.message))

    def _stuck(self, row: JobRow, spec: JobSpec, schedule: TaskSchedule) -> None:
        """A task processing far longer than expected (or followed past the deadline) is
        reported and left for a later run."""
        self.outcome.stuck += 1
        self.outcome.stop(StopReason.STUCK)
        elapsed = schedule.elapsed(time.time())
        assert row.task_id is not None
        self.bus.emit(TaskStuck(job_id=spec.id, task_id=row.task_id, elapsed_s=elapsed))

    def _needs_decision(self, row: JobRow, spec: JobSpec, age_s: float) -> None:
        """A job mid-submit past the key lifetime stays ``submitting``; a person decides."""
        assert row.idempotency_key is not None
        lifetime = self.config.key_lifetime_s
        when = f"at {row.submitted_at}" if row.submitted_at else "at an unknown time"
        age = f"{age_s:,.0f}s ago" if age_s != float("inf") else "at an unknown time"
        why = (
            f"its Idempotency-Key {row.idempotency_key} was stored {when} ({age}), longer "
            f"ago than the service remembers a key ({lifetime:g}s); the first request may or "
            "may not have created a task"
        )
        self.outcome.needs_decision.append(f"{spec.id}: key {row.idempotency_key} stored {when}")
        self.outcome.stop(StopReason.NEEDS_DECISION)
        self.bus.emit(
            NeedsDecision(
                job_id=spec.id,
                idempotency_key=row.idempotency_key,
                submitted_at=row.submitted_at,
                age_s=age_s,
                why=why,
            )
        )

    def _key_conflict(self, row: JobRow, spec: JobSpec, exc: IdempotencyConflictError) -> None:
        """409 idempotency_conflict: the service holds a task for this key, made from another
        body. The job stays ``submitting`` (never failed: it may be paid for) and nothing more
        is submitted: the state that recorded this batch is missing or was replaced."""
        self.outcome.key_conflicts.append(f"{spec.id}: key {row.idempotency_key}")
        self.bus.emit(
            KeyConflict(
                job_id=spec.id,
                idempotency_key=row.idempotency_key or "",
                request_id=exc.request_id,
                message=exc.message,
            )
        )
        if self.conflict.close(StopReason.KEY_CONFLICT, "not submitted: idempotency conflict"):
            self.outcome.stop(StopReason.KEY_CONFLICT)
            self.bus.emit(
                Stopping(
                    StopReason.KEY_CONFLICT,
                    "the service already has a task for a job's key from another request body: "
                    "the state that recorded it is missing or was replaced; nothing more is "
                    "submitted",
                )
            )

    def _unwritable(self, row: JobRow, spec: JobSpec, exc: OutputWriteError) -> None:
        """A paid result cannot be written: the job stays ``downloading`` (a rerun fetches it
        again without paying) and nothing more is submitted, since the disk is the problem."""
        self.outcome.write_errors.append(f"{spec.id}: task {row.task_id}: {exc.path}: {exc.reason}")
        self.bus.emit(
            WriteFailed(job_id=spec.id, task_id=row.task_id, path=exc.path, error=exc.reason)
        )
        if self.disk.close(StopReason.OUTPUT_UNWRITABLE, "not submitted: output not writable"):
            self.outcome.stop(StopReason.OUTPUT_UNWRITABLE)
            self.bus.emit(
                Stopping(
                    StopReason.OUTPUT_UNWRITABLE,
                    f"cannot write result files ({exc.reason}): no new jobs will be submitted; "
                    "in-flight ones finish",
                )
            )

    def _fail(
        self, key: str, spec: JobSpec, code: str | None, message: str, rid: str | None = None
    ) -> None:
        row = self.store.job(key)
        self._changed(
            row, self.store.record_failed(key, code=code, message=message, request_id=rid)
        )

    def _credits_out(
        self, row: JobRow, spec: JobSpec, message: str, task: RemoteTask | None = None
    ) -> None:
        """The wallet ran out: close the credits gate, block this job; tasks in flight go on."""
        if self.credits.close(StopReason.CREDITS, "not submitted: credits ran out", block=True):
            self.outcome.stop(StopReason.CREDITS)
            self.bus.emit(
                Stopping(
                    StopReason.CREDITS,
                    "out of credits: no new jobs will be submitted; in-flight ones finish",
                )
            )
        self._changed(row, self.store.record_blocked(row.job_key, message=message, task=task))

    def _changed(self, old: JobRow, new: JobRow) -> JobRow:
        """Emit the change of a job's row (every store transition goes through here). A poll
        that changed neither the status nor the credits tells no one anything: not emitted."""
        credits = (new.reserved_credits, new.final_credits)
        previous_credits = (old.reserved_credits, old.final_credits)
        if new.status is old.status and credits == previous_credits:
            return new
        self._track_held(old, new)
        self.bus.emit(
            JobChanged(
                job_id=new.job_id,
                status=new.status,
                previous=old.status,
                task_id=new.task_id,
                attempt=new.attempt,
                error_code=new.error_code,
                message=new.error_message,
                request_id=new.request_id,
                credits=credits,
                previous_credits=previous_credits,
            )
        )
        return new


PENDING_PAGE = 500  # pending rows read from the state at a time


class WorkQueue:
    """A run's work in order: the rows it starts with (those in flight), then the pending rows
    the state holds, read a page at a time as workers take them, so a million pending jobs
    are never all in memory as rows. ``len`` counts both (the pending ones as counted at the
    start); truth is the queue still has work."""

    def __init__(
        self,
        first: list[JobRow],
        pending: int,
        page: Callable[[int], tuple[int, list[JobRow]]],
    ) -> None:
        self._rows: deque[JobRow] = deque(first)
        self._pending = pending  # pending rows not yet read
        self._page = page
        self._after = 0  # rowid of the last pending row read

    def __len__(self) -> int:
        return len(self._rows) + self._pending

    def __bool__(self) -> bool:
        self._fill()
        return bool(self._rows)

    def popleft(self) -> JobRow:
        self._fill()
        return self._rows.popleft()

    def _fill(self) -> None:
        while not self._rows and self._pending > 0:
            after, rows = self._page(self._after)
            if after == self._after:  # the state has no more (a count can only shrink)
                self._pending = 0
                return
            self._after = after
            self._pending = max(self._pending - len(rows), 0)
            self._rows.extend(rows)


async def run_batch(
    manifest: Manifest,
    store: StateStore,
    client: RivyaClient,
    config: RunConfig,
    bus: EventBus | None = None,
    signals: SignalCatcher | None = None,
) -> RunOutcome:
    """Run (or resume) the batch; returns how the run ended. Job results are in ``store``.

    The store commits in groups meanwhile (``StateStore.grouped``): the workers' changes share
    fsyncs, and the steps await ``store.durable()`` where a write must be on disk first."""
    with store.grouped():
        return await Runner(manifest, store, client, config, bus, signals).run()


def _from_another_local_server(url: str, base_url: str) -> bool:
    """A loopback URL on another origin than this run's server: a result URL of an earlier
    rehearsal's in-process emulator (it listens on a new port each run), which no longer
    answers. Its task is fetched again for URLs of the server of this run."""
    here, there = urlsplit(base_url), urlsplit(url)
    return is_loopback_host(there.hostname) and (there.scheme, there.netloc) != (
        here.scheme,
        here.netloc,
    )


def _names_upload(message: str, item: object) -> bool:
    """Does a refusal's message name this reference item (its URL, or the file id in it)?"""
    url = item.get("url") if isinstance(item, dict) else None
    if not isinstance(url, str) or not url:
        return False
    parts = [p for p in urlsplit(url).path.split("/") if p]
    return url in message or any(p in message for p in parts if p.startswith("file"))


def _spec_of(row: JobRow) -> JobSpec:
    """The request of a stored version the manifest no longer names, as far as following and
    downloading its task needs it (its id and params: the task's kind)."""
    return JobSpec(
        id=row.job_id,
        prompt=row.prompt or "",
        params=tuple(sorted((row.params or {}).items())),
    )


def _primary(group: BaseExceptionGroup[Any]) -> BaseException:
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
