"""Result files on disk: streamed to a temp file beside the destination, fsynced, renamed.

A download is either whole at its final name or not there at all: a failure at any point (a
cut connection, cancellation, a full disk) removes the temp file and leaves the destination as
it was. The rename is made durable by an fsync of the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio

from batchgen.errors import OutputWriteError

CHUNK_BYTES = 256 * 1024
_UMASK: list[int] = []


def _umask() -> int:
    """The process's umask (read once: reading it means setting it for a moment)."""
    if not _UMASK:
        current = os.umask(0o022)
        os.umask(current)
        _UMASK.append(current)
    return _UMASK[0]


async def stream_to_file(resp: aiohttp.ClientResponse, dest: Path) -> int:
    """Write the body to a temp file beside ``dest``; fsync and rename only when whole.

    A failure at any point (a cut connection, cancellation, a full disk) removes the temp file
    and leaves ``dest`` as it was. Local file errors become a (non-retryable) ``OutputWriteError``;
    network errors while reading stay aiohttp's, for the caller to turn into ``TransportError``.
    """
    with _local_file_errors(dest):
        if dest.parent.exists() and not dest.parent.is_dir():
            raise OutputWriteError(str(dest), f"{dest.parent} is a file, not a folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        written = await _write_all(resp, fd, dest)
        with _local_file_errors(dest):
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a video is a normal file
            os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    await anyio.to_thread.run_sync(_fsync_dir, dest.parent)
    return written


async def _write_all(resp: aiohttp.ClientResponse, fd: int, dest: Path) -> int:
    written = 0
    with os.fdopen(fd, "wb") as out:
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            with _local_file_errors(dest):
                out.write(chunk)
            written += len(chunk)
        with _local_file_errors(dest):
            out.flush()
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
    return written


@contextlib.contextmanager
def _local_file_errors(dest: Path) -> Iterator[None]:
    """Turn an OSError of a local file operation into an ``OutputWriteError`` naming the file."""
    try:
        yield
    except OSError as exc:
        raise OutputWriteError(str(dest), exc.strerror or str(exc)) from exc


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
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
