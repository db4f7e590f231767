"""The client against the real emulator on loopback: the happy path and the contract's variants."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_support import PNG, generation_body, requests_to, wait_terminal

from batchgen.limits import RequestLimiter
from batchgen.models import UploadedFile


@pytest.mark.anyio
async def test_end_to_end_upload_create_poll_download(make_emulator, make_client, tmp_path: Path):
    """Upload, create, poll and download work end to end, and the ledger shows one charged task."""
    async with make_emulator() as emu, make_client(emu, limiter=RequestLimiter(200, 10)) as c:
        models = await c.list_models()
        assert any(m["id"] == "kling-3-0" for m in models)
        before = await c.get_credits()
        upload = await c.upload_file(PNG, "ref.png", client_request_id="demo/hero")
        assert isinstance(upload, UploadedFile) and upload.mime_type == "image/png"
        refs = [{"url": upload.url, "kind": "image", "name": "ref.png", "mimeType": "image/png"}]
        body = generation_body(referenceMediaItems=refs)
        task = await c.create_generation(body, idempotency_key="batch.job.1")
        assert task.status == "queued" and task.reserved_credits == 90 and not task.replayed
        done = await wait_terminal(c, task.id)
        assert done.status == "succeeded" and done.final_credits == 90 and done.result_urls
        size = await c.download(done.result_urls[0], tmp_path / "hero.mp4")
        assert size == (tmp_path / "hero.mp4").stat().st_size > 0
        assert await c.get_credits() == before - 90
        ledger = emu.ledger()
    assert [t["idempotency_key"] for t in ledger["tasks"]] == ["batch.job.1"]
    assert ledger["files"][0]["client_request_id"] == "demo/hero"


@pytest.mark.anyio
async def test_models_are_public(make_emulator, make_client):
    """list_models works without any API key (it is sent without one)."""
    async with make_emulator() as emu, make_client(emu, api_key=None) as c:
        assert [m["id"] for m in await c.list_models()] == ["kling-3-0"]


@pytest.mark.anyio
async def test_replay_returns_the_same_task(make_emulator, make_client):
    """Sending the same body with the same key again returns the original task, marked replayed."""
    async with make_emulator() as emu, make_client(emu) as c:
        first = await c.create_generation(generation_body(), idempotency_key="k.1")
        again = await c.create_generation(generation_body(), idempotency_key="k.1")
        assert again.id == first.id and again.replayed and not first.replayed
        assert len(emu.ledger()["tasks"]) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("create_status", ["200", "202", "mixed"])
async def test_any_2xx_create_is_a_task(make_emulator, make_client, create_status: str):
    """A new task answered with 200 or 202 instead of 201 is accepted as a task."""
    async with make_emulator(create_status=create_status) as emu, make_client(emu) as c:
        tasks = [
            await c.create_generation(generation_body(f"prompt {i}"), idempotency_key=f"k.{i}")
            for i in range(6)
        ]
        assert all(t.id.startswith("task_") and not t.replayed for t in tasks)
        statuses = requests_to(emu.ledger(), "POST", "/api/v1/generations")
    expected = {"200": {200}, "202": {202}, "mixed": {200, 201, 202}}[create_status]
    assert set(statuses) <= expected


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["id", "file_id"])
async def test_upload_id_variants(make_emulator, make_client, field: str):
    """An upload answer naming its id 'id' or 'file_id' gives the same UploadedFile."""
    async with make_emulator(file_id_field=field) as emu, make_client(emu) as c:
        upload = await c.upload_file(PNG, "ref.png")
    assert upload.id.startswith("file_") and upload.url.endswith("/ref.png")
    assert upload.size_bytes == len(PNG) and upload.expires_at


@pytest.mark.anyio
@pytest.mark.parametrize(("null_share", "code"), [(1.0, None), (0.0, "generation_failed")])
async def test_failed_task_with_or_without_error(make_emulator, make_client, null_share, code):
    """A failed task parses whether its error object is present or null, with no result URLs."""
    async with (
        make_emulator(failure_rate=1.0, failure_null_error_share=null_share) as emu,
        make_client(emu) as c,
    ):
        task = await c.create_generation(generation_body(), idempotency_key="k.f")
        done = await wait_terminal(c, task.id)
    assert done.status == "failed" and done.error_code == code and done.result_urls == ()
    assert done.final_credits == 0


@pytest.mark.anyio
async def test_credits_blocked_task_variant(make_emulator, make_client):
    """In the 'task' credits variant the task is created, then fails with insufficient_credits."""
    async with (
        make_emulator(starting_credits=0, insufficient_credits_mode="task") as emu,
        make_client(emu) as c,
    ):
        task = await c.create_generation(generation_body(), idempotency_key="k.c")
        done = await wait_terminal(c, task.id)
    assert done.status == "failed" and done.error_code == "insufficient_credits"


@pytest.mark.anyio
async def test_stats_count_requests_by_endpoint_and_status(make_emulator, make_client):
    """client.stats counts every request by endpoint and status, like the emulator's ledger."""
    async with make_emulator() as emu, make_client(emu) as c:
        await c.get_credits()
        await c.get_credits()
        task = await c.create_generation(generation_body(), idempotency_key="k.s")
        await c.get_generation(task.id)
        stats = c.stats.as_dict()
        ledger_credits = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert c.stats.by_endpoint[("GET /api/v1/credits", 200)] == ledger_credits[200] == 2
    assert c.stats.by_endpoint[("GET /api/v1/generations/{id}", 200)] == 1
    assert stats["requests"] == 4 and stats["rate_limited"] == 0 and stats["retries"] == 0


@pytest.mark.anyio
async def test_calls_outside_the_context_manager_fail_clearly(make_emulator):
    """Using the client without `async with` raises a clear RuntimeError, not an aiohttp error."""
    from batchgen.client import RivyaClient

    async with make_emulator() as emu:
        client = RivyaClient(emu.base_url, emu.api_key)
        with pytest.raises(RuntimeError, match="async with"):
            await client.get_credits()
