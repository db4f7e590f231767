"""Reading a multipart upload (``POST /api/v1/files``) and turning it into a stored file."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from .catalog import image_limit
from .envelope import validation_failed
from .files import MAX_BYTES, FileRecord, check_upload
from .state import EmulatorState

READ_LIMIT = max(MAX_BYTES.values())
FIELD_LIMIT = 4096
CHUNK = 256 * 1024
FORM_FIELDS = {"kind", "model", "client_request_id"}


@dataclass(frozen=True)
class Upload:
    """The fields of one upload form."""

    data: bytes
    name: str
    kind: str
    model: str | None
    client_request_id: str | None


async def read_upload(request: web.Request) -> Upload:
    """Parse the form: ``file`` and ``kind`` (required), ``model``, ``client_request_id``."""
    if not request.content_type.startswith("multipart/"):
        raise validation_failed("send the file as multipart/form-data with fields file and kind")
    try:
        return await _parse_form(request)
    except (ValueError, HttpProcessingError) as exc:  # aiohttp's words for a malformed body
        raise validation_failed(f"the multipart body could not be read: {exc}") from exc


async def _parse_form(request: web.Request) -> Upload:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    data: bytes | None = None
    name = "upload"
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise validation_failed("nested multipart bodies are not accepted")
        if part.name == "file":
            data = await _read_limited(part, READ_LIMIT)
            name = _clean_name(part.filename)
        elif part.name in FORM_FIELDS:
            fields[part.name] = (await _read_limited(part, FIELD_LIMIT)).decode(errors="replace")
        else:
            raise validation_failed(
                f"unknown form field {part.name!r}; the fields are file, {sorted(FORM_FIELDS)}"
            )
    if data is None:
        raise validation_failed("the form has no 'file' field")
    if "kind" not in fields:
        raise validation_failed("the form has no 'kind' field (image, video or audio)")
    return Upload(data, name, fields["kind"], fields.get("model"), fields.get("client_request_id"))


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise validation_failed(f"the field {part.name!r} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _clean_name(filename: str | None) -> str:
    name = posixpath.basename((filename or "").replace("\\", "/")).strip()
    return name[:255] or "upload"


def store_upload(state: EmulatorState, account: str, upload: Upload) -> FileRecord:
    """Validate ``upload`` and keep it; raises ``validation_failed`` when it is refused."""
    limit = image_limit(state.config.size_limit)
    kind, mime = check_upload(
        upload.data, upload.kind, upload.model, upload.client_request_id, limit
    )
    now = state.clock.now()
    record = FileRecord(
        id=state.files.next_id(),
        account=account,
        kind=kind,
        name=upload.name,
        mime_type=mime,
        size_bytes=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
        client_request_id=upload.client_request_id,
        created_at=now,
        expires_at=now + state.config.file_ttl_s,
    )
    state.add_file(record, upload.data)
    return record
