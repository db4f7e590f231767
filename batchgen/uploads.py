"""Reference images: read (and re-check) them, upload each distinct one once, build bodies.

Each distinct reference (by content hash, or URL) is uploaded once per batch and reused from
the state's ``uploads`` table until shortly before the Files API expires it. A local file is
read again at submit time and must still have the content hash validation saw.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import anyio

from batchgen.client import RivyaClient
from batchgen.contract import MAX_REFERENCE_BYTES, sniff_image_mime
from batchgen.errors import LocalJobError
from batchgen.events import EventBus, Uploaded
from batchgen.manifest.localfile import LocalFileError, read_capped
from batchgen.models import (
    JobSpec,
    Reference,
    UploadedFile,
    client_request_id,
    output_stem,
    parse_timestamp,
)
from batchgen.store import StateStore
from batchgen.wire import DEFAULT_FILE_TTL_S

log = logging.getLogger("batchgen.uploads")

UPLOAD_REUSE_MARGIN_S = 3600.0  # re-upload a reference that expires within the hour ...
UPLOAD_REUSE_MARGIN_SHARE = 0.25  # ... or within the last quarter of its lifetime, if shorter


class Uploader:
    """Uploads the references of a batch and builds the create request of each job."""

    def __init__(
        self, batch: str, model: str, store: StateStore, client: RivyaClient, bus: EventBus
    ) -> None:
        self.batch = batch
        self.model = model
        self.store = store
        self.client = client
        self.bus = bus
        self._locks: dict[str, anyio.Lock] = {}

    async def body_for(self, spec: JobSpec) -> dict[str, Any]:
        """The create request of ``spec``, its references uploaded (or reused)."""
        params: dict[str, Any] = dict(spec.params)
        params.update(spec.extra_params)  # unknown to batchgen: sent as given (string form)
        items = []
        for ref in spec.references:
            up = await self.ensure_uploaded(ref)
            items.append(
                {"url": up.url, "kind": "image", "name": up.name, "mimeType": up.mime_type}
            )
        if items:
            params["referenceMediaItems"] = items
        return {
            "model": spec.model,
            "prompt": spec.prompt,
            "params": params,
            "client_request_id": client_request_id(self.batch, spec.id),
        }

    async def ensure_uploaded(self, ref: Reference) -> UploadedFile:
        """Upload each distinct reference once per batch; reuse it until it nearly expires."""
        source_key = ref.identity
        lock = self._locks.setdefault(source_key, anyio.Lock())
        async with lock:
            stored = self.store.upload_for(source_key)
            usable = stored is not None and bool(stored.mime_type)  # never mimeType: ""
            if stored and usable and not expires_soon(stored.expires_at, stored.uploaded_at):
                return UploadedFile(
                    id=stored.file_id,
                    url=stored.url,
                    mime_type=stored.mime_type,
                    size_bytes=stored.size_bytes,
                    name=stored.name,
                    expires_at=stored.expires_at,
                )
            data = await self._read(ref)
            mime = sniff_image_mime(data[:16]) or ref.mime_type  # the bytes sent decide
            up = await self.client.upload_file(
                data, upload_name(ref), kind="image", model=self.model, mime_type=mime
            )
            self.store.save_upload(source_key, up)
            self.bus.emit(Uploaded(source=ref.source, file_id=up.id, size_bytes=len(data)))
            return up

    async def _read(self, ref: Reference) -> bytes:
        if ref.is_url:
            return await self.client.fetch_reference(ref.source)
        return await anyio.to_thread.run_sync(read_local_reference, ref)


def read_local_reference(ref: Reference) -> bytes:
    """A local reference's bytes, which must still be the file validation hashed: a regular
    file of at most ``MAX_REFERENCE_BYTES`` (only that much + 1 is read) with the same sha256.
    A file swapped for a FIFO, a device, a bigger or another file is never sent under the old
    identity: the job fails with ``reference_changed`` (or ``reference_unreadable``)."""
    again = "run the same command again to validate it anew"
    try:
        data, digest = read_capped(Path(ref.source), MAX_REFERENCE_BYTES, digest=True)
    except LocalFileError as exc:
        if exc.kind in ("missing", "unreadable"):
            raise LocalJobError("reference_unreadable", f"{ref.source} {exc.reason}") from exc
        raise LocalJobError(
            "reference_changed",
            f"{ref.source} changed after validation: it now {exc.reason} "
            f"(at most {MAX_REFERENCE_BYTES:,} bytes are sent); {again}",
        ) from exc
    if ref.sha256 and digest != ref.sha256:
        raise LocalJobError(
            "reference_changed",
            f"{ref.source} changed after validation (its content hash differs); {again}",
        )
    return data


def expires_soon(expires_at: str | None, uploaded_at: str | None) -> bool:
    """True when an upload expires within the margin (or its expiry cannot be read). An
    upload recorded without an expiry is taken to live ``DEFAULT_FILE_TTL_S`` (an hour)."""
    expires, uploaded = parse_timestamp(expires_at), parse_timestamp(uploaded_at)
    if not expires_at and uploaded is not None:
        expires = uploaded + DEFAULT_FILE_TTL_S
    if expires is None:
        return True
    margin = UPLOAD_REUSE_MARGIN_S
    if uploaded is not None and expires > uploaded:
        margin = min(margin, UPLOAD_REUSE_MARGIN_SHARE * (expires - uploaded))
    return expires - time.time() < margin


def upload_name(ref: Reference) -> str:
    return output_stem(ref.name) if ref.name.strip("._") else "reference"
