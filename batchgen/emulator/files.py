"""Uploaded files: type detection by signature, size and model rules, expiry, lookup by URL.

The type comes from the file's first bytes, never from its name: a PNG named ``.jpg`` is stored
as ``image/png``; a text file named ``.png`` is refused. Bytes are kept once per content hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .catalog import MAX_IMAGE_BYTES, MODELS
from .clock import iso
from .envelope import validation_failed

KINDS = ("image", "video", "audio")
MAX_BYTES = {"image": MAX_IMAGE_BYTES, "video": 100 * 1024 * 1024, "audio": 50 * 1024 * 1024}
URL_PREFIX = "/files/"


def sniff(data: bytes) -> tuple[str, str] | None:
    """``(kind, mime_type)`` from the file's signature, or None when it is not recognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image", "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio", "audio/wav"
    if data[4:8] == b"ftyp":
        return ("audio", "audio/mp4") if data[8:11] == b"M4A" else ("video", "video/mp4")
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "video/webm"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio", "audio/mpeg"
    return None


@dataclass
class FileRecord:
    """One upload. ``url`` is a path; responses make it absolute with the request's origin."""

    id: str
    account: str
    kind: str
    name: str
    mime_type: str
    size_bytes: int
    sha256: str
    client_request_id: str | None
    created_at: float
    expires_at: float

    @property
    def path(self) -> str:
        """The path under which the bytes are served."""
        return f"{URL_PREFIX}{self.id}/{quote(self.name, safe='')}"

    def view(self, origin: str, id_field: str, minimal: bool = False) -> dict[str, Any]:
        """The public file object (``id_field`` is ``id`` or the ``file_id`` variant).

        ``minimal``: only ``url`` and ``duration_token``, the two fields the documentation
        names (the ``files_answer`` switch); the file still works when referenced by URL.
        """
        token = f"dur_{self.sha256[:16]}" if self.kind != "image" else None
        if minimal:
            return {"url": origin + self.path, "duration_token": token}
        return {
            id_field: self.id,
            "object": "file",
            "kind": self.kind,
            "name": self.name,
            "mime_type": self.mime_type,
            "size_bytes": self.size_bytes,
            "url": origin + self.path,
            "duration_seconds": None,
            "duration_token": token,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
        }


def check_upload(
    data: bytes,
    kind: str,
    model: str | None,
    client_request_id: str | None,
    image_limit: int = MAX_IMAGE_BYTES,
) -> tuple[str, str]:
    """Validate an upload; return its detected ``(kind, mime_type)``.

    ``image_limit`` is the most bytes an image may have (the ``size_limit`` switch).
    """
    if kind not in KINDS:
        raise validation_failed(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if client_request_id is not None and len(client_request_id) > 128:
        raise validation_failed(
            f"client_request_id is {len(client_request_id)} characters; the limit is 128"
        )
    if not data:
        raise validation_failed("the file is empty")
    detected = sniff(data)
    if detected is None:
        raise validation_failed(
            "the file's content is not a recognised image, video or audio format "
            "(the type is read from the file's bytes, not its name)"
        )
    if detected[0] != kind:
        raise validation_failed(f"kind is {kind!r} but the file's content is {detected[1]}")
    limit = MAX_BYTES[kind]
    if model is not None:
        limit = _check_model_rules(model, detected)
    if kind == "image":
        limit = min(limit, image_limit)
    if len(data) > limit:
        raise validation_failed(f"the file is {len(data)} bytes; the limit is {limit} bytes")
    return detected


def _check_model_rules(model: str, detected: tuple[str, str]) -> int:
    entry = MODELS.get(model)
    if entry is None:
        raise validation_failed(f"model must be one of {sorted(MODELS)}, got {model!r}")
    rules = entry["reference_media"]["kinds"].get(detected[0])
    if rules is None:
        raise validation_failed(f"{model} takes only {entry['file_kinds']} files")
    if detected[1] not in rules["mime_types"]:
        raise validation_failed(f"{model} takes {rules['mime_types']}, not {detected[1]}")
    return int(rules["max_bytes"])


def file_id_from_url(url: str) -> str | None:
    """The file id in a file URL (any host), or None when it is not one of ours."""
    path = urlsplit(url).path
    if not path.startswith(URL_PREFIX):
        return None
    return unquote(path[len(URL_PREFIX) :]).split("/", 1)[0] or None


class FileStore:
    """File records by id and their bytes by content hash."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.records: dict[str, FileRecord] = {}
        self.blobs: dict[str, bytes] = {}

    def next_id(self) -> str:
        """The id of the next upload (deterministic for a seed)."""
        digest = hashlib.sha256(f"{self.seed}|file-id|{len(self.records)}".encode()).hexdigest()
        return f"file_{digest[:24]}"

    def add(self, record: FileRecord, data: bytes | None) -> None:
        """Keep a record (and its bytes, when given)."""
        self.records[record.id] = record
        if data is not None:
            self.blobs.setdefault(record.sha256, data)

    def find(self, account: str, file_id: str) -> FileRecord | None:
        """The account's file with this id, expired or not."""
        record = self.records.get(file_id)
        return record if record is not None and record.account == account else None

    def resolve(self, account: str, url: str, now: float) -> tuple[str, str] | str:
        """``(kind, mime)`` for a usable reference URL, or why it is not usable."""
        file_id = file_id_from_url(url)
        record = self.find(account, file_id) if file_id else None
        if record is None:
            return "is not a file uploaded by this account; upload it with POST /api/v1/files"
        if now >= record.expires_at:
            return f"points to a file that expired at {iso(record.expires_at)}; upload it again"
        return record.kind, record.mime_type
