"""Reference images: check each distinct file once (exists, size, image signature) and hash it.

Local paths are relative to the manifest's folder and become absolute. ``http(s)://`` URLs are
accepted as they are and never fetched (the runner decides what to do with them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from batchgen.contract import (
    MAX_REFERENCE_BYTES,
    REFERENCE_MIME_TYPES,
    sniff_image_mime,
    sniff_other_kind,
)
from batchgen.manifest.doc import Val
from batchgen.manifest.localfile import LocalFileError, read_capped
from batchgen.manifest.problems import Problems
from batchgen.models import Reference

ACCEPTED = "JPEG, PNG or WebP"


@dataclass(frozen=True)
class FileInfo:
    """What validation learnt about one reference file."""

    sha256: str
    size_bytes: int
    mime_type: str


class ReferenceResolver:
    """Callable ``Val[str] -> Reference | None``; each distinct file is read and hashed once."""

    def __init__(self, base_dir: Path, problems: Problems) -> None:
        self.base_dir = str(base_dir)
        self.problems = problems
        self.files: dict[str, FileInfo | str] = {}  # absolute path -> what it is
        self.paths: dict[str, str] = {}  # value as written -> absolute path
        self.usable: dict[str, Reference] = {}  # value as written -> its reference, if usable

    def __call__(self, ref: Val[str]) -> Reference | None:
        """The reference, or None after adding a problem at ``ref``. Every job that names a
        usable reference with the same text shares one ``Reference`` (located where it was
        first written): a million rows naming two images make two objects, not a million."""
        found = self.usable.get(ref.value)
        if found is not None:
            return found
        result = self._resolve(ref)
        if result is not None:
            self.usable[ref.value] = result
        return result

    def _resolve(self, ref: Val[str]) -> Reference | None:
        if "://" in ref.value:
            return self._url(ref)
        path = self.paths.get(ref.value)
        if path is None:
            path = self.paths[ref.value] = os.path.normpath(os.path.join(self.base_dir, ref.value))
        info = self.files.get(path)
        if info is None:
            info = self.files[path] = inspect_file(Path(path))
        if isinstance(info, str):
            self.problems.add(ref.where, f"reference {ref.value!r} {info}")
            return None
        return Reference(path, ref.where, info.sha256, info.size_bytes, info.mime_type)

    def _url(self, ref: Val[str]) -> Reference | None:
        parts = urlsplit(ref.value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return Reference(ref.value, ref.where)
        self.problems.add(
            ref.where,
            f"reference {ref.value!r} is neither a local file nor an http(s) URL; "
            "write a path relative to the manifest's folder, or an https:// address",
        )
        return None


def inspect_file(path: Path) -> FileInfo | str:
    """The file's hash, size and image type, or what is wrong with it (a message fragment).

    Only a regular file is read, and never more than ``MAX_REFERENCE_BYTES`` + 1 bytes of it.
    """
    try:
        data, digest = read_capped(path, MAX_REFERENCE_BYTES, digest=True)
    except LocalFileError as exc:
        return _unusable(exc, path)
    mime = sniff_image_mime(data[:16])
    if mime is None or mime not in REFERENCE_MIME_TYPES:
        return _not_an_image(data[:16])
    assert digest is not None
    return FileInfo(digest, len(data), mime)


def too_large_message(size: int | None) -> str:
    """Why a reference of ``size`` bytes (None: more than the limit) is refused."""
    shown = f"{size / 1_000_000:.1f} MB ({size:,} bytes)" if size else "over 10 MB"
    return (
        f"is {shown}; kling-3-0 accepts images of at most 10 MB, which batchgen reads as "
        f"{MAX_REFERENCE_BYTES:,} bytes (the service may count a MB as 1,000,000 bytes): "
        "shrink or recompress it"
    )


def _unusable(exc: LocalFileError, path: Path) -> str:
    if exc.kind == "missing":
        return f"does not exist (looked for {path}; relative paths start at the manifest's folder)"
    if exc.kind == "folder":
        return "is a folder, not an image file"
    if exc.kind == "special":
        return f"{exc.reason}; name an image file"
    if exc.kind == "too_large":
        return too_large_message(exc.size)
    return exc.reason


def _not_an_image(head: bytes) -> str:
    kind = sniff_other_kind(head)
    if kind:
        return f"is {kind}; kling-3-0 accepts {ACCEPTED} images: convert it"
    return (
        f"is not a {ACCEPTED} image (its content has no image signature; the file name does "
        "not matter, the bytes do)"
    )
