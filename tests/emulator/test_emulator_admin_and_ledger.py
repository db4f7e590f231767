"""The ledger, the admin switches, restarts that keep state, and the threaded server."""

from __future__ import annotations

import aiohttp
import anyio
import pytest
from emulator_support import TEST_DEFAULTS, body_for, png_bytes

from batchgen.emulator import EmulatorConfig, EmulatorThread, running_emulator


@pytest.mark.anyio
async def test_ledger_records_tasks_charges_files_and_requests(open_api):
    """The ledger lists each task with key and body, each charge, each file and request counts."""
    async with open_api() as api:
        await api.upload(png_bytes())
        body = body_for(duration="7")
        created = await api.create(body, idem="job-a")
        await api.create(body, idem="job-a")
        http_ledger = (await api.call("GET", "/_emulator/ledger")).body
        direct = api.emu.ledger()
    assert http_ledger == direct | {"requests": http_ledger["requests"]}
    (task,) = http_ledger["tasks"]
    assert (task["id"], task["idempotency_key"], task["body"]) == (
        created.body["id"],
        "job-a",
        body,
    )
    assert {"status", "reserved_credits", "final_credits", "created_at"} <= set(task)
    assert http_ledger["charges"][0] | {"at": None} == {
        "task_id": task["id"],
        "kind": "charge",
        "amount": 90,
        "account": "acct_emulator",
        "at": None,
    }
    assert len(http_ledger["files"]) == 1
    counts = {
        (r["method"], r["endpoint"], r["status"]): r["count"] for r in http_ledger["requests"]
    }
    assert counts[("POST", "/api/v1/generations", 201)] == 1
    assert counts[("POST", "/api/v1/generations", 200)] == 1
    assert counts[("POST", "/api/v1/files", 201)] == 1
    assert http_ledger["wallet"]["current_credits"] == 1_000_000 - 90


@pytest.mark.anyio
async def test_switches_can_be_read_and_flipped(open_api):
    """POST /_emulator/admin/switches changes a switch; bad names and values are refused."""
    async with open_api() as api:
        flipped = await api.call(
            "POST", "/_emulator/admin/switches", json={"fault_503_rate": 1.0, "create_status": 202}
        )
        failing = await api.call("GET", "/api/v1/credits")
        unknown = await api.call("POST", "/_emulator/admin/switches", json={"nope": 1})
        bad = await api.call("POST", "/_emulator/admin/switches", json={"drop_rate": 7})
        fixed = await api.call("POST", "/_emulator/admin/switches", json={"seed": 99})
        current = await api.call("GET", "/_emulator/admin/switches")
    assert flipped.status == 200 and flipped.body["create_status"] == "202"
    assert failing.status == 503
    assert unknown.status == 400 and "unknown switches" in unknown.body["error"]["message"]
    assert bad.status == 400 and "drop_rate" in bad.body["error"]["message"]
    assert fixed.status == 400 and "restart" in fixed.body["error"]["message"]
    assert current.body["fault_503_rate"] == 1.0 and current.body["seed"] == 1234


@pytest.mark.anyio
async def test_admin_can_be_switched_off(open_api):
    """With admin disabled the ledger and admin paths are 404, like any unknown path."""
    async with open_api(admin_enabled=False) as api:
        ledger = await api.call("GET", "/_emulator/ledger")
        topup = await api.call("POST", "/_emulator/admin/topup", json={"credits": 5})
    assert (ledger.status, topup.status) == (404, 404)


@pytest.mark.anyio
async def test_admin_is_off_by_default_on_non_loopback_hosts():
    """Binding a non-loopback address leaves admin off unless it is asked for explicitly."""
    from batchgen.emulator.server import RunningEmulator

    assert RunningEmulator(EmulatorConfig(), "0.0.0.0", 0).admin_enabled is False
    assert RunningEmulator(EmulatorConfig(), "::1", 0).admin_enabled is True
    assert RunningEmulator(EmulatorConfig(admin_enabled=True), "0.0.0.0", 0).admin_enabled


async def until_serving(api, task_id, timeout_s=10.0):
    """Poll the task until the server answers again."""
    with anyio.fail_after(timeout_s):
        while True:
            try:
                return await api.task(task_id)
            except aiohttp.ClientConnectionError:
                await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_restart_drops_connections_and_keeps_state(open_api):
    """An admin restart answers 202, the port goes away briefly, and tasks survive it."""
    async with open_api() as api:
        task_id = (await api.create(body_for())).body["id"]
        reply = await api.call("POST", "/_emulator/admin/restart", json={"downtime_s": 1.0})
        await anyio.sleep(0.3)
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.call("GET", "/api/v1/credits")
        after = await until_serving(api, task_id)
    assert reply.status == 202
    assert after.status == 200


@pytest.mark.anyio
async def test_state_file_survives_a_full_restart(tmp_path):
    """With a state file, a new emulator process remembers tasks, keys, charges and files."""
    cfg = EmulatorConfig(**TEST_DEFAULTS, state_file=str(tmp_path / "emu.jsonl"))
    body = body_for()
    async with running_emulator(cfg) as emu, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {emu.api_key}", "Idempotency-Key": "job-1"}
        async with http.post(f"{emu.base_url}/api/v1/generations", json=body, headers=headers) as r:
            first = await r.json()
        emu.topup(10)
    async with running_emulator(cfg) as emu, aiohttp.ClientSession() as http:
        async with http.post(f"{emu.base_url}/api/v1/generations", json=body, headers=headers) as r:
            replay_status, replay = r.status, await r.json()
        ledger = emu.ledger()
    assert replay_status == 200 and replay["id"] == first["id"]
    assert len(ledger["tasks"]) == 1
    assert ledger["wallet"]["current_credits"] == 1_000_000 - 90 + 10


@pytest.mark.anyio
async def test_in_process_restart_with_state_file_reloads_it(tmp_path):
    """A restart with a state file rebuilds the state from the file (same tasks, files)."""
    cfg = EmulatorConfig(**TEST_DEFAULTS, state_file=str(tmp_path / "emu.jsonl"))
    async with running_emulator(cfg) as emu, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        form = aiohttp.FormData()
        form.add_field("file", png_bytes(), filename="a.png")
        form.add_field("kind", "image")
        async with http.post(f"{emu.base_url}/api/v1/files", data=form, headers=headers) as r:
            url = (await r.json())["url"]
        before = emu.state
        await emu.restart()
        ref = {"url": url, "kind": "image"}
        body = body_for(referenceMediaItems=[ref])
        async with http.post(f"{emu.base_url}/api/v1/generations", json=body, headers=headers) as r:
            status = r.status
        async with http.get(url) as r:
            served = await r.read()
    assert emu.state is not before
    assert status == 201
    assert served == png_bytes()


def test_thread_serves_and_reads_the_ledger_safely():
    """EmulatorThread serves from its own loop and its ledger() is safe from this thread."""
    import json
    import urllib.request

    with EmulatorThread(EmulatorConfig(**TEST_DEFAULTS)) as emu:
        req = urllib.request.Request(
            f"{emu.base_url}/api/v1/credits", headers={"Authorization": f"Bearer {emu.api_key}"}
        )
        with urllib.request.urlopen(req) as resp:
            credits = json.load(resp)["current_credits"]
        assert emu.topup(5) == credits + 5
        ledger = emu.ledger()
    assert credits == 1_000_000
    assert ledger["requests"][0]["endpoint"] == "/api/v1/credits"


def test_thread_reports_a_port_in_use():
    """Starting a second emulator on a taken port raises instead of hanging."""
    with EmulatorThread(EmulatorConfig()) as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError), EmulatorThread(EmulatorConfig(), port=port):
            pass
