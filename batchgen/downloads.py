"""Result files: download every result of a succeeded task into the output folder.

File names come from job ids, never from the server, always inside the output folder:

* the version of a job the manifest names now: ``<job id>.mp4``, then ``<job id>~2.mp4``,
  ``~3`` ... for further results of its task;
* a superseded version (the job's prompt or params were edited since): ``<job id>~v<first 12
  hex of its request hash>.mp4`` (then ``~2`` ...). When a new version's video arrives, or an
  edit is reverted, the files are *moved* between these names; a paid video is never
  overwritten or deleted.

``~`` is in no job id, so no job's file can be another's. Each file's size and sha256 are
recorded when it lands; ``check`` compares the disk with the record at the start of a run (the
hash only when asked: ``--verify``). An expired result URL (404/410) makes the task be fetched
again for fresh URLs, up to ``MAX_URL_REFRESHES`` times.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchgen.client import RivyaClient
from batchgen.errors import LocalJobError, OutputWriteError, ResultExpiredError
from batchgen.events import Downloaded, EventBus
from batchgen.files import file_sha256
from batchgen.models import VERSION_HEX, JobSpec, RemoteStatus, output_stem, version_of
from batchgen.store import JobRow, RecordedOutputs, StateStore

MAX_URL_REFRESHES = 3  # fresh task GETs for expired result URLs, per job
# A download's temp file (batchgen.files): ".<stem>[~v<hash>][~N].mp4.<random>.part"
_PARTIAL = re.compile(r"\.(?P<name>.+)\.mp4\.[^.]+\.part")
_SUFFIXES = re.compile(rf"(~v[0-9a-f]{{{VERSION_HEX}}})?(~\d+)?$")


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
    ) -> tuple[JobRow, Landed]:
        """Download every result of ``row``'s task to the names of the job's current version;
        returns the row as last recorded (a URL refresh records the task again) and what
        landed. Does not mark the job succeeded. ``fresh``: ask the task for its URLs first
        (the stored ones are from an earlier run and may have expired or moved)."""
        if fresh:
            row = await self._refreshed(row)
        last = ""
        for refreshes in range(MAX_URL_REFRESHES + 1):
            try:
                return row, await self._download(row, spec, list(row.result_urls))
            except ResultExpiredError as exc:  # 401/403/404/410 on a result, any host
                last = exc.message
                if refreshes >= MAX_URL_REFRESHES:
                    break
                row = await self._refreshed(row)
        raise LocalJobError(
            "result_expired",
            f"the result URLs kept expiring after {MAX_URL_REFRESHES} refreshes ({last})",
        )

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

    async def _download(self, row: JobRow, spec: JobSpec, urls: list[str]) -> Landed:
        if row.in_manifest:
            dests = [self.output_path(spec.id, i) for i in range(len(urls))]
        else:  # a superseded version's task, finished after the job was edited
            dests = self.version_paths(row, len(urls))
        self._make_room(row, dests)
        landed = Landed()
        for dest, url in zip(dests, urls, strict=True):
            size, digest = await self.client.download_hashed(url, dest)  # hashed as it streams
            landed.add(str(dest), size, digest)
            self.bus.emit(Downloaded(job_id=spec.id, path=str(dest), size_bytes=size))
        return landed

    # -- versions ------------------------------------------------------------------------------

    def _make_room(self, row: JobRow, dests: Sequence[Path]) -> None:
        """Move the files of other versions of ``row``'s job that sit at ``dests`` to their
        own versioned names (and record that), so writing ``dests`` overwrites no paid video."""
        wanted = {str(d) for d in dests}
        for other in self.store.versions_with_outputs(row.job_id, besides=row.job_key):
            if wanted & set(other.outputs):
                self._move(other, self.version_paths(other, len(other.outputs)))

    def _move(self, row: JobRow, targets: Sequence[Path]) -> None:
        """Rename ``row``'s files to ``targets``, then record the new names. A crash between
        the two leaves a file the record names elsewhere: ``check`` finds it by size and
        hash at its other name (``locate``) and corrects the record."""
        for source, target in zip(row.outputs, targets, strict=False):
            if Path(source) != target and os.path.exists(source):
                try:
                    os.replace(source, target)
                except OSError as exc:
                    raise OutputWriteError(str(target), exc.strerror or str(exc)) from exc
        self.store.relocate_outputs(row.job_key, [str(t) for t in targets])

    def arrange(self, row: JobRow) -> bool:
        """Put a succeeded current version's files at the job's plain names (an edit that
        was reverted brings an earlier version back): move the other version there aside
        first. A plain name held by a file no version recorded is left alone (the files stay
        under their versioned names). Returns True when files moved."""
        canonical = [self.output_path(row.job_id, i) for i in range(len(row.outputs))]
        if [str(c) for c in canonical] == list(row.outputs):
            return False
        owned = {p for other in self.store.versions_of(row.job_id) for p in other.outputs}
        if any(c.exists() and str(c) not in owned for c in canonical):
            return False
        self._make_room(row, canonical)
        self._move(row, canonical)
        return True

    def version_paths(self, row: JobRow, count: int) -> list[Path]:
        """Where a superseded version of a job keeps its files (see the module docstring)."""
        tag = f"~v{version_of(row.request_hash)}"
        return [self.output_path(row.job_id, i, tag) for i in range(count)]

    # -- the disk against the record -----------------------------------------------------------

    def check(self, rec: RecordedOutputs, *, verify: bool = False) -> Checked:
        """Whether a succeeded job's files are as recorded, and if not why (missing, another
        size, another hash with ``verify``). A file found whole under the job's other name (a
        run stopped between moving a file and recording it) is recorded where it is."""
        digests = rec.sha256 if verify else None
        why = damaged(rec.outputs, rec.sizes, digests)
        if why is None:
            return Checked(why=None, as_recorded=True)
        found = self._locate(rec)
        if found is None:
            return Checked(why=why, as_recorded=False)
        self.store.relocate_outputs(rec.job_key, found)
        return Checked(why=damaged(found, rec.sizes, digests), as_recorded=False)

    def _locate(self, rec: RecordedOutputs) -> list[str] | None:
        if rec.sizes is None:
            return None
        found = []
        for i, (path, size) in enumerate(zip(rec.outputs, rec.sizes, strict=False)):
            tag = f"~v{version_of(rec.request_hash)}"
            candidates = [
                path,
                str(self.output_path(rec.job_id, i)),
                str(self.output_path(rec.job_id, i, tag)),
            ]
            hit = next((c for c in candidates if _size(c) == size), None)
            if hit is None:
                return None
            found.append(hit)
        return found

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
            if name in stems or _SUFFIXES.sub("", name) in stems:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def output_path(self, job_id: str, index: int, version: str = "") -> Path:
        """``<output dir>/<job id>[~v<hash>].mp4`` (then ``~2``, ``~3``...), always inside
        the folder."""
        stem = output_stem(job_id) + version + ("" if index == 0 else f"~{index + 1}")
        path = (self.output_dir / f"{stem}.mp4").resolve()
        if path.parent != self.output_dir:
            raise LocalJobError(
                "bad_output_path", f"job id {job_id!r} does not make a safe file name"
            )
        return path


@dataclass
class Landed:
    """The files of one task as they landed: paths, sizes in bytes, hex sha256."""

    outputs: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)

    def add(self, path: str, size: int, digest: str) -> None:
        self.outputs.append(path)
        self.sizes.append(size)
        self.sha256.append(digest)


@dataclass(frozen=True)
class Checked:
    """What ``Downloader.check`` found: ``why`` the files are not whole (None: they are), and
    whether they are whole at the paths the record had (no relocation was needed)."""

    why: str | None
    as_recorded: bool


def damaged(
    outputs: Sequence[str],
    sizes: Sequence[int] | None,
    sha256: Sequence[str] | None = None,
) -> str | None:
    """Why a succeeded job's files are not as recorded (missing, another size, or, given the
    recorded hashes, another sha256), or None. Rows from before sizes were recorded are only
    checked for a non-empty file."""
    n = len(outputs)
    for path, size, digest in zip(
        outputs, sizes or (None,) * n, sha256 or (None,) * n, strict=False
    ):
        found = _size(path)
        if found is None:
            return f"{path} is missing"
        if size is None and found == 0:
            return f"{path} is empty"
        if size is not None and found != size:
            return f"{path} has {found:,} bytes, not the {size:,} recorded"
        if digest is not None and file_sha256(Path(path)) != digest:
            return f"{path} does not have the sha256 recorded when it was downloaded"
    return None


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
