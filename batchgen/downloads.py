"""Result files: download every result of a succeeded task into the output folder.

File names come from job ids, never from the server: ``<output dir>/<job id>.mp4``, then
``<job id>~2.mp4``, ``~3`` ... for further results (``~`` is in no job id, so no job's file can
be another's), always inside the output folder. An expired result URL
(404/410) makes the task be fetched again for fresh URLs, up to ``MAX_URL_REFRESHES`` times.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from batchgen.client import RivyaClient
from batchgen.errors import LocalJobError, ResultExpiredError
from batchgen.events import Downloaded, EventBus
from batchgen.models import JobSpec, RemoteStatus, output_stem
from batchgen.store import JobRow, StateStore

MAX_URL_REFRESHES = 3  # fresh task GETs for expired result URLs, per job
# A download's temp file (batchgen.files): ".<stem>[~N].mp4.<random>.part"
_PARTIAL = re.compile(r"\.(?P<name>.+)\.mp4\.[^.]+\.part")


class Downloader:
    """Puts a succeeded task's results on disk and records them."""

    def __init__(
        self, output_dir: Path, store: StateStore, client: RivyaClient, bus: EventBus
    ) -> None:
        self.output_dir = output_dir.resolve()
        self.store = store
        self.client = client
        self.bus = bus

    async def fetch_all(
        self, row: JobRow, spec: JobSpec, *, fresh: bool = False
    ) -> tuple[JobRow, list[str], list[int]]:
        """Download every result of ``row``'s task; returns the row as last recorded (a URL
        refresh records the task again), the output paths and their sizes. Does not mark the
        job succeeded. ``fresh``: ask the task for its URLs first (the stored ones are from an
        earlier run and may have expired or moved)."""
        if fresh:
            row = await self._refreshed(row)
        for refreshes in range(MAX_URL_REFRESHES + 1):
            try:
                return (row, *await self._download(spec, list(row.result_urls)))
            except ResultExpiredError:
                if refreshes >= MAX_URL_REFRESHES:
                    break
                row = await self._refreshed(row)
        raise LocalJobError("result_expired", "the result URLs kept expiring")

    async def _refreshed(self, row: JobRow) -> JobRow:
        """The task fetched again for fresh result URLs, recorded. The answer is checked, not
        trusted: a task that no longer says it succeeded, with at least one URL, gives none."""
        if row.task_id is None:
            raise LocalJobError("result_unavailable", "the job has no task to fetch results from")
        task = await self.client.get_generation(row.task_id)
        if task.status is not RemoteStatus.SUCCEEDED or not task.result_urls:
            raise LocalJobError(
                "result_unavailable",
                f"task {row.task_id} now says {task.raw_status or task.status.value!r} and "
                "offers no result URL",
            )
        return self.store.record_succeeded_remote(row.job_key, task, polled=False)

    async def _download(self, spec: JobSpec, urls: list[str]) -> tuple[list[str], list[int]]:
        outputs, sizes = [], []
        for i, url in enumerate(urls):
            dest = self.output_path(spec.id, i)
            size = await self.client.download(url, dest)
            outputs.append(str(dest))
            sizes.append(size)
            self.bus.emit(Downloaded(job_id=spec.id, path=str(dest), size_bytes=size))
        return outputs, sizes

    def remove_partials(self, job_ids: Iterable[str]) -> int:
        """Delete the temp files of downloads that a killed run left behind (``.<name>.mp4.
        <random>.part`` beside a job's video), for this batch's jobs only. Call it while the
        state's lock is held: no download of this batch is under way then."""
        try:
            entries = list(os.scandir(self.output_dir))
        except OSError:
            return 0
        partials = [
            (entry, match["name"])  # "<stem>" or "<stem>~N" (a further result of the job)
            for entry in entries
            if (match := _PARTIAL.fullmatch(entry.name)) and entry.is_file(follow_symlinks=False)
        ]
        if not partials:
            return 0
        stems = {output_stem(job_id) for job_id in job_ids}
        removed = 0
        for entry, name in partials:
            if name in stems or re.sub(r"~\d+$", "", name) in stems:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def output_path(self, job_id: str, index: int) -> Path:
        """``<output dir>/<job id>.mp4`` (then ``~2``, ``~3``...), always inside the folder."""
        stem = output_stem(job_id) + ("" if index == 0 else f"~{index + 1}")
        path = (self.output_dir / f"{stem}.mp4").resolve()
        if path.parent != self.output_dir:
            raise LocalJobError(
                "bad_output_path", f"job id {job_id!r} does not make a safe file name"
            )
        return path


def damaged(outputs: Sequence[str], sizes: Sequence[int] | None) -> str | None:
    """Why a succeeded job's files are not as recorded (missing, or another size), or None.
    Rows from before sizes were recorded are only checked for a non-empty file."""
    for path, size in zip(outputs, sizes or (None,) * len(outputs), strict=False):
        try:
            found = os.stat(path).st_size
        except OSError:
            return f"{path} is missing"
        if size is None and found == 0:
            return f"{path} is empty"
        if size is not None and found != size:
            return f"{path} has {found:,} bytes, not the {size:,} recorded"
    return None
