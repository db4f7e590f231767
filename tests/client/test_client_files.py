"""Downloads (temp file, rename, expiry) and reference fetches, and where the key may travel."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from client_support import NO_RETRY, PNG, generation_body, wait_terminal

from batchgen.errors import (
    ClientRequestError,
    OutputWriteError,
    ResultExpiredError,
    RetryExhaustedError,
    TransportError,
    ValidationFailedError,
)
from batchgen.files import file_sha256
from batchgen.retry import RetryPolicy


async def finished_task(c):
    task = await c.create_generation(generation_body(), idempotency_key="k.dl")
    done = await wait_terminal(c, task.id)
    assert done.status == "succeeded"
    return done


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.mark.anyio
async def test_download_replaces_the_file_whole(make_emulator, make_client, tmp_path: Path):
    """A download lands whole at dest (replacing an older file), with no temp file left behind."""
    dest = tmp_path / "out" / "job.mp4"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    async with make_emulator() as emu, make_client(emu) as c:
        done = await finished_task(c)
        size = await c.download(done.result_urls[0], dest)
    data = dest.read_bytes()
    assert size == len(data) > 100 and data[4:8] == b"ftyp"
    assert leftovers(dest.parent) == []


@pytest.mark.anyio
async def test_download_hashed_gives_the_files_sha256_without_reading_it_back(
    make_emulator, make_client, tmp_path: Path
):
    """The sha256 computed while the body streams is the sha256 of the file that landed, with
    a normal file's mode (not the temp file's 0600)."""
    dest = tmp_path / "job.mp4"
    async with make_emulator() as emu, make_client(emu) as c:
        done = await finished_task(c)
        size, digest = await c.download_hashed(done.result_urls[0], dest)
    assert size == dest.stat().st_size and digest == file_sha256(dest)
    assert dest.stat().st_mode & 0o777 != 0o600 and leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_failed_download_leaves_no_half_file(make_emulator, make_client, tmp_path: Path):
    """A download whose connection drops leaves the old file untouched and no temp file."""
    dest = tmp_path / "job.mp4"
    dest.write_bytes(b"old")
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
    async with make_emulator() as emu, make_client(emu, retry=policy) as c:
        done = await finished_task(c)
        emu.set_switches(drop_rate=1.0)
        with pytest.raises(RetryExhaustedError) as info:
            await c.download(done.result_urls[0], dest)
    assert isinstance(info.value.last, TransportError)
    assert dest.read_bytes() == b"old" and leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_expired_result_url_then_fresh_url(make_emulator, make_client, tmp_path: Path):
    """An expired result URL (410) raises ResultExpiredError; a fresh GET of the task gives a URL
    that downloads."""
    async with make_emulator(result_url_ttl_s=1.0) as emu, make_client(emu) as c:
        done = await finished_task(c)
        await anyio.sleep(1.05)
        with pytest.raises(ResultExpiredError, match="410"):
            await c.download(done.result_urls[0], tmp_path / "a.mp4")
        fresh = await c.get_generation(done.id)
        assert fresh.result_urls != done.result_urls
        assert await c.download(fresh.result_urls[0], tmp_path / "a.mp4") > 0
    assert leftovers(tmp_path) == []


@pytest.mark.anyio
async def test_unknown_result_url_is_expired(make_emulator, make_client, tmp_path: Path):
    """A result URL that answers 404 raises ResultExpiredError and is not retried."""
    async with make_emulator() as emu, make_client(emu) as c:
        done = await finished_task(c)
        forged = done.result_urls[0].replace("/results/", "/results/x")
        with pytest.raises(ResultExpiredError, match="404"):
            await c.download(forged, tmp_path / "a.mp4")
    assert c.stats.retries == 0 and not (tmp_path / "a.mp4").exists()


@pytest.mark.anyio
async def test_key_goes_to_the_api_origin_only(make_emulator, make_client, tmp_path: Path):
    """Downloads never send the key, even to the API's own origin under /api/v1/; the 401
    that follows is an expired URL there too, not a bad key."""
    async with make_emulator() as emu, make_emulator() as other, make_client(emu) as c:
        for url in (
            f"{emu.base_url}/api/v1/credits",
            f"{other.base_url}/api/v1/credits",
            f"{emu.base_url.replace('127.0.0.1', 'localhost')}/api/v1/credits",
        ):
            with pytest.raises(ResultExpiredError, match="401"):
                await c.download(url, tmp_path / "x.json")
        assert [r["status"] for r in other.ledger()["requests"]] == [401]
        assert c.stats.by_endpoint[("GET result", 401)] == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_fetch_reference_never_sends_the_key(make_emulator, make_client):
    """fetch_reference reads public URLs and sends no key, even to the API host."""
    async with make_emulator() as emu, make_client(emu) as c:
        upload = await c.upload_file(PNG, "ref.png")
        assert await c.fetch_reference(upload.url) == PNG
        with pytest.raises(ClientRequestError) as info:
            await c.fetch_reference(f"{emu.base_url}/api/v1/credits")
    assert (info.value.code, info.value.status) == ("reference_unavailable", 401)


@pytest.mark.anyio
async def test_fetch_reference_size_cap(make_emulator, make_client):
    """A reference larger than the cap is refused with ValidationFailedError, not retried."""
    async with make_emulator() as emu, make_client(emu, max_reference_bytes=32) as c:
        upload = await c.upload_file(PNG, "ref.png")
        with pytest.raises(ValidationFailedError) as info:
            await c.fetch_reference(upload.url)
    assert info.value.code == "reference_too_large" and c.stats.retries == 0


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "not a url"])
async def test_only_http_urls_are_fetched(make_emulator, make_client, url, tmp_path: Path):
    """Non-http(s) URLs are refused before any request is made."""
    async with make_emulator() as emu, make_client(emu, retry=NO_RETRY) as c:
        with pytest.raises(ClientRequestError):
            await c.fetch_reference(url)
        with pytest.raises(ClientRequestError):
            await c.download(url, tmp_path / "x")
    assert c.stats.requests == 0


@pytest.mark.anyio
async def test_unwritable_destination_is_not_retried(make_emulator, make_client, tmp_path: Path):
    """A destination that cannot be written raises an OutputWriteError naming it and the OS
    error, without retries."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    async with make_emulator() as emu, make_client(emu) as c:
        done = await finished_task(c)
        with pytest.raises(OutputWriteError, match="not-a-folder") as info:
            await c.download(done.result_urls[0], blocker / "job.mp4")
    assert info.value.path == str(blocker / "job.mp4") and info.value.reason
    assert c.stats.retries == 0
