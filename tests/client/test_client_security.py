"""The API key never leaks: not in logs, exception text, reprs, nor over plain http."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from client_support import NO_RETRY, generation_body

from batchgen.client import RivyaClient
from batchgen.errors import BatchgenError, ConfigError
from batchgen.events import Event, EventBus
from batchgen.retry import RetryPolicy

SECRET = "rvya_sk_TOP_SECRET_0123456789abcdef"


def chain(exc: BaseException | None) -> list[BaseException]:
    """The exception, its causes and contexts, and any RetryExhaustedError.last, all of them."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "last", None)]
    return seen


def texts(exc: BaseException) -> str:
    return "\n".join(f"{e!s}\n{e!r}\n{vars(e)!r}" for e in chain(exc))


async def failures(c: RivyaClient, emu, tmp_path: Path) -> list[BaseException]:
    """Provoke one error of each kind the client can raise and return them."""
    caught: list[BaseException] = []

    async def expect(coro) -> None:
        try:
            await coro
        except BatchgenError as exc:
            caught.append(exc)
        else:
            raise AssertionError("expected an error")

    await expect(c.create_generation(generation_body(duration="99"), idempotency_key="k.bad"))
    await expect(c.get_generation("task_nope"))
    await c.create_generation(generation_body("a"), idempotency_key="k.same")
    await expect(c.create_generation(generation_body("b"), idempotency_key="k.same"))
    await expect(c.download(f"{emu.base_url}/results/none/1-00/x.mp4", tmp_path / "x.mp4"))
    emu.set_switches(drop_rate=1.0)
    await expect(c.get_credits())  # a TransportError chained from aiohttp's own error
    emu.set_switches(drop_rate=0.0, fault_502_rate=1.0)
    await expect(c.get_credits())
    emu.set_switches(fault_502_rate=0.0, public_api_disabled=True)
    await expect(c.get_credits())
    emu.set_switches(public_api_disabled=False, rate_limit_per_s=1.0)
    await c.get_credits()
    await c.get_credits()  # a 429 first, retried after its Retry-After
    return caught


@pytest.mark.anyio
async def test_key_never_in_logs_or_errors(make_emulator, make_client, caplog, tmp_path: Path):
    """Across errors of every kind, the key appears in no exception (nor its chain), no log
    record and no event, while the DEBUG log still carries method, path, status, requestId and
    attempt."""
    from batchgen.emulator import ApiKey

    caplog.set_level(logging.DEBUG)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.01)
    seen: list[Event] = []
    async with (
        make_emulator(keys=(ApiKey(SECRET),)) as emu,
        make_client(emu, retry=policy, events=EventBus(seen.append)) as c,
    ):
        caught = await failures(c, emu, tmp_path)
        assert SECRET not in repr(c) and SECRET not in str(c.stats.as_dict())
    assert len(caught) == 7 and c.stats.rate_limited >= 1
    for exc in caught:
        assert SECRET not in texts(exc)
    assert SECRET not in caplog.text
    assert len(seen) > len(caught) and SECRET not in repr(seen)
    assert all(SECRET not in str(r.args) for r in caplog.records)
    assert "Bearer" not in caplog.text
    client_lines = [r.getMessage() for r in caplog.records if r.name == "batchgen.client"]
    assert any("GET /api/v1/generations/task_nope -> 404 requestId=req_" in m for m in client_lines)
    assert any("attempt=2" in m for m in client_lines)


@pytest.mark.anyio
async def test_wrong_key_is_not_echoed(make_emulator, make_client):
    """A rejected key is not repeated in the AuthError the client raises."""
    async with make_emulator() as emu, make_client(emu, api_key=SECRET, retry=NO_RETRY) as c:
        with pytest.raises(BatchgenError) as info:
            await c.get_credits()
    assert SECRET not in texts(info.value)


@pytest.mark.parametrize("host", ["rivya.ai", "192.168.1.10", "example.com:8080"])
def test_key_refused_over_plain_http(host: str):
    """Plain http to anything but loopback is refused before any connection is made,
    and the refusal does not contain the key."""
    with pytest.raises(ConfigError) as info:
        RivyaClient(f"http://{host}", SECRET)
    assert "http" in str(info.value) and SECRET not in texts(info.value)
