"""The Files API: detection by signature, limits, model rules, expiry and the id variant."""

from __future__ import annotations

import anyio
import pytest
from emulator_support import JPEG, WEBP, png_bytes


@pytest.mark.anyio
async def test_upload_returns_the_file_object(open_api):
    """An upload answers 201 with the contract's file object, and the URL serves the bytes."""
    data = png_bytes()
    async with open_api() as api:
        reply = await api.upload(data, name="ref.png", client_request_id="batch/ref-1")
        served = await api.call("GET", reply.body["url"], key=None)
        fetched = await api.call("GET", f"/api/v1/files/{reply.body['id']}")
    assert reply.status == 201
    f = reply.body
    assert f["id"].startswith("file_") and f["object"] == "file"
    assert (f["kind"], f["name"], f["mime_type"], f["size_bytes"]) == (
        "image",
        "ref.png",
        "image/png",
        len(data),
    )
    assert f["duration_seconds"] is None and f["duration_token"] is None
    assert f["expires_at"] > f["created_at"]
    assert served.raw == data and served.headers["Content-Type"] == "image/png"
    assert fetched.body == f


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("data", "name", "mime"),
    [
        (png_bytes(), "photo.jpg", "image/png"),
        (JPEG, "x.png", "image/jpeg"),
        (WEBP, "w", "image/webp"),
    ],
)
async def test_type_comes_from_the_bytes_not_the_name(open_api, data, name, mime):
    """A renamed image is stored under its real type."""
    async with open_api() as api:
        reply = await api.upload(data, name=name)
    assert reply.status == 201
    assert reply.body["mime_type"] == mime
    assert reply.body["name"] == name


@pytest.mark.anyio
async def test_non_image_is_rejected(open_api):
    """A text file named .png is refused with validation_failed."""
    async with open_api() as api:
        reply = await api.upload(b"hello, I am text", name="fake.png")
    assert (reply.status, reply.code) == (400, "validation_failed")
    assert "not its name" in reply.body["error"]["message"]


@pytest.mark.anyio
async def test_ten_megabytes_is_the_limit(open_api):
    """An image of exactly 10 MB is accepted, one byte more is refused."""
    limit = 10 * 1024 * 1024
    exact = png_bytes()
    exact = png_bytes(padding=limit - len(exact) - 16)
    async with open_api() as api:
        ok = await api.upload(exact)
        too_big = await api.upload(exact + b"\0")
    assert len(exact) == limit
    assert ok.status == 201
    assert (too_big.status, too_big.code) == (400, "validation_failed")


@pytest.mark.anyio
async def test_model_rules_apply_when_model_is_given(open_api):
    """With model kling-3-0 a video is refused; without a model it is accepted."""
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\0" * 64
    async with open_api() as api:
        with_model = await api.upload(mp4, name="clip.mp4", kind="video")
        without = await api.upload(mp4, name="clip.mp4", kind="video", model=None)
        unknown_model = await api.upload(png_bytes(), model="kling-9")
    assert with_model.status == 400
    assert "takes only ['image']" in with_model.body["error"]["message"]
    assert without.status == 201
    assert without.body["duration_token"]
    assert unknown_model.status == 400


@pytest.mark.anyio
async def test_form_is_checked(open_api):
    """A wrong kind, a kind that contradicts the bytes, a long client_request_id are refused."""
    async with open_api() as api:
        bad_kind = await api.upload(png_bytes(), kind="document")
        mismatch = await api.upload(png_bytes(), kind="audio", model=None)
        long_id = await api.upload(png_bytes(), client_request_id="c" * 129)
        not_multipart = await api.call("POST", "/api/v1/files", json={"file": "x"})
    for reply in (bad_kind, mismatch, long_id, not_multipart):
        assert (reply.status, reply.code) == (400, "validation_failed")


@pytest.mark.anyio
async def test_file_id_variant(open_api):
    """With file_id_field 'file_id' the file object names its id file_id."""
    async with open_api(file_id_field="file_id") as api:
        reply = await api.upload(png_bytes())
    assert "id" not in reply.body
    assert reply.body["file_id"].startswith("file_")


@pytest.mark.anyio
async def test_uploads_expire(open_api):
    """After file_ttl_s an upload is gone: GET is 404 and its URL answers 410."""
    async with open_api(file_ttl_s=0.1) as api:
        f = (await api.upload(png_bytes())).body
        await anyio.sleep(0.15)
        meta = await api.call("GET", f"/api/v1/files/{f['id']}")
        content = await api.call("GET", f["url"], key=None)
    assert (meta.status, meta.code) == (404, "not_found")
    assert content.status == 410
