"""Seeded faults: 5xx answers, dropped connections, slow answers."""

from __future__ import annotations

import time

import aiohttp
import pytest
from emulator_support import body_for


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("switch", "status", "code"),
    [
        ("fault_500_rate", 500, "internal_error"),
        ("fault_502_rate", 502, "bad_gateway"),
        ("fault_503_rate", 503, "service_unavailable"),
    ],
)
async def test_5xx_answers_carry_the_envelope(open_api, switch, status, code):
    """With a 5xx rate of 1 every API call answers that status with the error envelope."""
    async with open_api(**{switch: 1.0}) as api:
        reply = await api.call("GET", "/api/v1/credits")
        ledger = api.emu.ledger()
    assert (reply.status, reply.code) == (status, code)
    assert reply.body["error"]["requestId"]
    assert {"kind": str(status), "method": "GET", "endpoint": "/api/v1/credits", "count": 1} in (
        ledger["faults"]
    )


@pytest.mark.anyio
async def test_5xx_share_follows_the_rate(open_api):
    """A 30% 500 rate answers roughly 30% of calls with 500 and the rest normally."""
    async with open_api(fault_500_rate=0.3) as api:
        statuses = [(await api.call("GET", "/api/v1/credits")).status for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 35 <= statuses.count(500) <= 85


@pytest.mark.anyio
async def test_fault_pattern_is_reproducible_with_the_seed(open_api):
    """The same seed gives the same faults for the same sequence of requests."""

    async def pattern(seed):
        async with open_api(fault_503_rate=0.5, seed=seed) as api:
            return [(await api.call("GET", "/api/v1/credits")).status for _ in range(30)]

    assert await pattern(5) == await pattern(5)
    assert await pattern(5) != await pattern(6)


@pytest.mark.anyio
async def test_dropped_connection_gets_no_answer(open_api):
    """With drop_rate 1 a poll's connection closes without any HTTP answer."""
    async with open_api(drop_rate=1.0) as api:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.call("GET", "/api/v1/credits")
        ledger = api.emu.ledger()
    # aiohttp's client silently retries an idempotent request once on a dropped connection
    dropped = [r for r in ledger["requests"] if r["status"] == 0]
    assert [(r["endpoint"], r["count"] >= 1) for r in dropped] == [("/api/v1/credits", True)]
    assert all(r["status"] == 0 for r in ledger["requests"])


@pytest.mark.anyio
async def test_create_dropped_after_creating_still_charges_once(open_api):
    """A create dropped after the task was made leaves one charged task; the retry replays it."""
    async with open_api(drop_rate=1.0, drop_after_create_share=1.0) as api:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.create(body_for(), idem="job-1")
        api.emu.set_switches(drop_rate=0.0)
        retry = await api.create(body_for(), idem="job-1")
        ledger = api.emu.ledger()
    assert retry.status == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert [t["id"] for t in ledger["tasks"]] == [retry.body["id"]]
    assert [c["kind"] for c in ledger["charges"]] == ["charge"]


@pytest.mark.anyio
async def test_create_dropped_before_creating_leaves_nothing(open_api):
    """A create dropped before processing creates no task; the retry creates it (201)."""
    async with open_api(drop_rate=1.0, drop_after_create_share=0.0) as api:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.create(body_for(), idem="job-2")
        assert api.emu.ledger()["tasks"] == []
        api.emu.set_switches(drop_rate=0.0)
        retry = await api.create(body_for(), idem="job-2")
    assert retry.status == 201


@pytest.mark.anyio
async def test_drops_of_creates_split_before_and_after(open_api):
    """With the default share, some dropped creates made their task and some did not."""
    async with open_api(drop_rate=1.0) as api:
        for n in range(20):
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await api.create(body_for(), idem=f"job-{n}")
        ledger = api.emu.ledger()
    kinds = {f["kind"]: f["count"] for f in ledger["faults"]}
    assert 3 <= len(ledger["tasks"]) <= 17
    assert kinds["drop_after_create"] == len(ledger["tasks"])
    assert kinds["drop_before"] == 20 - len(ledger["tasks"])


@pytest.mark.anyio
async def test_slow_answers_are_late(open_api):
    """With slow_rate 1 an answer arrives after slow_delay_s."""
    async with open_api(slow_rate=1.0, slow_delay_s=0.2) as api:
        started = time.monotonic()
        reply = await api.call("GET", "/api/v1/credits")
        elapsed = time.monotonic() - started
    assert reply.status == 200
    assert elapsed >= 0.2


@pytest.mark.anyio
async def test_downloads_can_fail_too(open_api):
    """Faults also hit result downloads (but never the admin endpoints)."""
    async with open_api() as api:
        done = await api.wait_done((await api.create(body_for())).body["id"])
        api.emu.set_switches(fault_502_rate=1.0)
        download = await api.call("GET", done["result"]["primary_url"], key=None)
        ledger = await api.call("GET", "/_emulator/ledger")
    assert download.status == 502
    assert ledger.status == 200
