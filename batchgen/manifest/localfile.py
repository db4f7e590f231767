"""Reading a local input (manifest, rows file, reference image) safely: regular files only,
never more than a cap.

A FIFO would block ``open()``/``read()`` forever and ``/dev/zero`` never ends, so the kind of
file is checked before it is opened (``stat``), the file is opened with ``O_NONBLOCK`` (opening a
FIFO then returns at once) and checked again on the open descriptor (``fstat``: it may have been
swapped in between), and at most ``cap + 1`` bytes are read, so a file that grew or was replaced
after it was checked is caught by its size, not read to the end.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


class LocalFileError(Exception):
    """Why a local input cannot be used; ``reason`` is a message fragment ("is a FIFO, ...")."""

    def __init__(self, reason: str, *, kind: str = "unreadable", size: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "missing", "folder", "special", "too_large" or "unreadable"
        self.size = size  # of a too-large file, when known before reading


def file_kind(mode: int) -> str:
    """What a ``stat`` mode is, in words: ``a FIFO (named pipe)``, ``a folder``, ..."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    for test, name in kinds:
        if test(mode):
            return name
    return "not a regular file"


def _check_mode(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = file_kind(mode)
    if stat.S_ISDIR(mode):
        raise LocalFileError(f"is {kind}, not a file", kind="folder")
    raise LocalFileError(f"is {kind}, not a regular file", kind="special")


def regular_size(path: Path) -> int:
    """The size of the regular file at ``path``; raises ``LocalFileError`` for anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LocalFileError("does not exist", kind="missing") from None
    except OSError as exc:
        raise LocalFileError(f"cannot be read: {exc.strerror}") from exc
    _check_mode(st.st_mode)
    return st.st_size


def read_capped(path: Path, cap: int, *, digest: bool = False) -> tuple[bytes, str | None]:
    """The bytes of the regular file at ``path`` (and their sha256 when ``digest``), at most
    ``cap`` of them. Raises ``LocalFileError`` (kind ``too_large`` when it holds more)."""
    size = regular_size(path)
    if size > cap:
        raise LocalFileError(_too_large(size, cap), kind="too_large", size=size)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise LocalFileError(f"cannot be read: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as handle:
        _check_mode(os.fstat(fd).st_mode)  # swapped for a FIFO or device since the stat?
        try:
            data = _read_at_most(handle, cap + 1)
        except OSError as exc:
            raise LocalFileError(f"cannot be read: {exc.strerror}") from exc
    if len(data) > cap:
        raise LocalFileError(_too_large(None, cap), kind="too_large")
    return data, hashlib.sha256(data).hexdigest() if digest else None


def _read_at_most(handle: BinaryIO, limit: int) -> bytes:
    read = handle.read
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = read(min(CHUNK_BYTES, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _too_large(size: int | None, cap: int) -> str:
    return f"is {size:,} bytes" if size is not None else f"is more than {cap:,} bytes"
