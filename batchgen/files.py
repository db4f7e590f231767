"""Result files on disk: streamed to a temp file beside the destination, fsynced, renamed.

A download is either whole at its final name or not there at all: a failure at any point (a
cut connection, cancellation, a full disk) removes the temp file and leaves the destination as
it was. The rename is made durable by an fsync of the folder.

A result is bounded: a body larger than ``max_bytes`` is refused up front when its
Content-Length says so and otherwise the moment it would pass the cap (never more than
``max_bytes`` reach the disk); a body whose first bytes are no video container is refused after
its first chunk; a body that ends before its Content-Length is a (retryable) payload error.
Refusals are ``ResultRefusedError`` (codes ``result_too_large`` and ``result_not_video``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio

from batchgen.errors import OutputWriteError, ResultRefusedError

CHUNK_BYTES = 256 * 1024
VIDEO_HEAD_BYTES = 12  # enough for an ISO-BMFF box header or the EBML magic
EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # WebM / Matroska
_UMASK: list[int] = []


def _umask() -> int:
    """The process's umask (read once: reading it means setting it for a moment)."""
    if not _UMASK:
        current = os.umask(0o022)
        os.umask(current)
        _UMASK.append(current)
    return _UMASK[0]


def looks_like_video(head: bytes) -> bool:
    """True when ``head`` starts a video container: an MP4/MOV (ISO-BMFF ``ftyp`` box at
    offset 4) or WebM/Matroska (the EBML magic ``1A45DFA3``)."""
    return head[4:8] == b"ftyp" or head.startswith(EBML_MAGIC)


MAX_RESULT_BYTES = 500_000_000  # a result video larger than 500 MB is refused
DOWNLOAD_DEADLINE_S = 600.0  # one attempt at one file (a result or a reference), all of it


@dataclass(frozen=True)
class Bounds:
    """What a result body must be: at most ``max_bytes`` (None: no cap), and a video when
    ``video_only``."""

    max_bytes: int | None = None
    video_only: bool = False
    label: str = "the result"  # how messages name the body (a URL already made safe)

    def check_declared(self, resp: aiohttp.ClientResponse) -> None:
        declared = resp.content_length
        if self.max_bytes is not None and declared is not None and declared > self.max_bytes:
            raise self._too_large(f"it declares {declared:,} bytes")

    def check_size(self, size: int) -> None:
        if self.max_bytes is not None and size > self.max_bytes:
            raise self._too_large("its body goes on past that")

    def _too_large(self, why: str) -> ResultRefusedError:
        return ResultRefusedError(
            "result_too_large",
            f"{self.label} is larger than the {self.max_bytes or 0:,}-byte limit "
            f"(max_result_bytes): {why}; nothing was kept",
        )

    def check_head(self, head: bytes) -> None:
        if self.video_only and not looks_like_video(head):
            raise ResultRefusedError(
                "result_not_video",
                f"{self.label} is not a video (its first bytes are no "
                "MP4/MOV or WebM container); nothing was kept",
            )


async def stream_to_file(
    resp: aiohttp.ClientResponse, dest: Path, bounds: Bounds | None = None
) -> int:
    """Write the body to a temp file beside ``dest``; fsync and rename only when whole.

    A failure at any point (a cut connection, cancellation, a full disk, a refusal by
    ``bounds``) removes the temp file and leaves ``dest`` as it was. Local file errors become a
    (non-retryable) ``OutputWriteError``; network errors while reading stay aiohttp's (a body
    shorter than its Content-Length is one: ``ClientPayloadError``), for the caller to turn
    into ``TransportError``. Returns the bytes written.
    """
    return (await stream_and_hash(resp, dest, bounds))[0]


async def stream_and_hash(
    resp: aiohttp.ClientResponse, dest: Path, bounds: Bounds | None = None
) -> tuple[int, str]:
    """``stream_to_file``, also returning the hex sha256 of the bytes written, computed as
    they stream (the file is not read back)."""
    bounds = bounds or Bounds()
    bounds.check_declared(resp)
    with _local_file_errors(dest):
        if dest.parent.exists() and not dest.parent.is_dir():
            raise OutputWriteError(str(dest), f"{dest.parent} is a file, not a folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        return await _write_all(resp, fd, tmp, dest, bounds)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


async def _write_all(
    resp: aiohttp.ClientResponse, fd: int, tmp: Path, dest: Path, bounds: Bounds
) -> tuple[int, str]:
    written = 0
    head = b""
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            bounds.check_size(written + len(chunk))  # before a byte past the cap is written
            if len(head) < VIDEO_HEAD_BYTES:
                head += chunk[: VIDEO_HEAD_BYTES - len(head)]
                if len(head) == VIDEO_HEAD_BYTES:
                    bounds.check_head(head)
            with _local_file_errors(dest):
                out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
        if len(head) < VIDEO_HEAD_BYTES:
            bounds.check_head(head)  # a body too short to be a video
        # aiohttp decodes a compressed body, so only an identity body can be held to its length.
        encoded = resp.headers.get("Content-Encoding", "identity").strip().lower()
        declared = resp.content_length if encoded in ("", "identity") else None
        if declared is not None and written != declared:
            raise aiohttp.ClientPayloadError(
                f"the body ended after {written:,} of its {declared:,} bytes"
            )
        with _local_file_errors(dest):
            out.flush()
            # one trip to a worker thread for all of the disk waits: the file's fsync, the
            # rename, and the folder's fsync that makes the rename durable
            await anyio.to_thread.run_sync(_make_durable, out.fileno(), tmp, dest)
    return written, digest.hexdigest()


def _make_durable(fd: int, tmp: Path, dest: Path) -> None:
    """fsync the whole temp file, give it a normal file's mode, rename it to ``dest`` and make
    the rename durable. An OSError before the rename leaves ``dest`` as it was."""
    os.fsync(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a video is a normal file
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


@contextlib.contextmanager
def _local_file_errors(dest: Path) -> Iterator[None]:
    """Turn an OSError of a local file operation into an ``OutputWriteError`` naming the file."""
    try:
        yield
    except OSError as exc:
        raise OutputWriteError(str(dest), exc.strerror or str(exc)) from exc


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in chunks (a video is never read whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
