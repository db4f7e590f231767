"""Readings the real service may take where its documentation is silent: one switch each.

Each test proves the emulator offers the reading the contract's table lists, so the client's
tests can rely on it. ``all_readings`` turns every one of them on at once.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import anyio
import pytest
from emulator_support import TEST_DEFAULTS, Api, body_for, png_bytes

from batchgen.emulator import EmulatorConfig, running_emulator
from batchgen.emulator.cli import add_arguments, config_from_args
from batchgen.emulator.config import ALL_READINGS
from batchgen.emulator.extras import EXTRA_FIELDS

END_NAMES = ("succeeded", "failed", "cancelled", "expired", "canceled", "error", "timeout")


async def statuses_until_done(api: Api, task_id: str, timeout_s: float = 10.0) -> list[str]:
    """Poll a task until it reaches a terminal status; every status seen, in order, no repeats."""
    seen: list[str] = []
    with anyio.fail_after(timeout_s):
        while not seen or seen[-1] not in END_NAMES:
            reply = await api.task(task_id)
            assert reply.status == 200, reply.body
            if not seen or seen[-1] != reply.body["status"]:
                seen.append(reply.body["status"])
            await anyio.sleep(0.005)
    return seen


def reference(url: str, **extra: Any) -> dict[str, Any]:
    """One image reference item for ``url``."""
    return {"url": url, "kind": "image", **extra}


# --- out of credits: the "generic" reading


@pytest.mark.anyio
async def test_generic_credits_reading_fails_tasks_without_saying_why(open_api):
    """A short wallet creates tasks with 0 reserved that fail generation_failed / error: null."""
    async with open_api(starting_credits=100, insufficient_credits_mode="generic") as api:
        funded = await api.create(body_for("a"))
        short = [await api.create(body_for(p)) for p in ("b", "c", "d")]
        done = [await api.wait_done(r.body["id"]) for r in short]
        credits = await api.credits()
        ledger = api.emu.ledger()
    assert funded.status == 201 and funded.body["reserved_credits"] == 90
    assert [r.status for r in short] == [201, 201, 201]
    assert [r.body["reserved_credits"] for r in short] == [0, 0, 0]
    assert [d["status"] for d in done] == ["failed"] * 3
    assert [d["final_credits"] for d in done] == [0, 0, 0]
    errors = [d["error"]["code"] if d["error"] else None for d in done]
    assert errors in (
        ["generation_failed", None, "generation_failed"],
        [None, "generation_failed", None],
    )
    assert all("credit" not in d["error"]["message"] for d in done if d["error"])
    assert credits == 10
    assert [c["task_id"] for c in ledger["charges"]] == [funded.body["id"]]


# --- Files answer


@pytest.mark.anyio
async def test_minimal_files_answer_still_works_by_url(open_api):
    """With files_answer minimal an upload answers only url and duration_token; the URL works."""
    async with open_api(files_answer="minimal") as api:
        uploaded = await api.upload(png_bytes())
        url = uploaded.body["url"]
        created = await api.create(body_for(referenceMediaItems=[reference(url)]))
        served = await api.call("GET", url, key=None)
        file_id = api.emu.ledger()["files"][0]["id"]
        fetched = await api.call("GET", f"/api/v1/files/{file_id}")
    assert uploaded.status == 201
    assert uploaded.body == {"url": url, "duration_token": None}
    assert created.status == 201, created.body
    assert served.raw == png_bytes()
    assert fetched.body == uploaded.body


# --- extra fields


def has_extras(obj: Any) -> bool:
    """Whether ``obj`` carries every extra field."""
    return all(obj.get(k) == v for k, v in EXTRA_FIELDS.items())


@pytest.mark.anyio
async def test_extra_fields_on_every_object(open_api):
    """With extra_fields every object the API returns carries unknown fields."""
    async with open_api(extra_fields=True, failure_rate=1.0, failure_null_error_share=0.0) as api:
        models = (await api.call("GET", "/api/v1/models", key=None)).body
        credits = (await api.call("GET", "/api/v1/credits")).body
        uploaded = (await api.upload(png_bytes())).body
        created = (await api.create(body_for(), idem="x-1")).body
        replay = (await api.create(body_for(), idem="x-1")).body
        failed = await api.wait_done(created["id"])
        error = (await api.task("task_nope")).body
        ledger = (await api.call("GET", "/_emulator/ledger")).body
    assert has_extras(models) and all(has_extras(entry) for entry in models["data"])
    assert "tier" not in models["data"][0]["reference_media"]["kinds"]
    assert has_extras(credits) and credits["current_credits"] == 1_000_000
    assert has_extras(uploaded) and uploaded["url"]
    assert has_extras(created) and created["result"] is None and created["error"] is None
    assert has_extras(replay)
    assert has_extras(failed) and has_extras(failed["error"])
    assert failed["error"]["code"] == "generation_failed"
    assert has_extras(error) and has_extras(error["error"]) and error["error"]["code"]
    assert "tier" not in ledger  # the admin side is not the API


@pytest.mark.anyio
async def test_extra_fields_on_a_result(open_api):
    """A succeeded task's result object carries the unknown fields too."""
    async with open_api(extra_fields=True) as api:
        created = await api.create(body_for())
        done = await api.wait_done(created.body["id"])
    assert has_extras(done) and has_extras(done["result"])
    assert done["result"]["primary_url"] == done["result"]["urls"][0]


# --- result URLs on another origin


@pytest.mark.anyio
async def test_results_on_another_origin_need_no_key_and_record_it(open_api):
    """With result_origin other, result URLs point to a second origin that serves them keyless."""
    async with open_api(result_origin="other") as api:
        created = await api.create(body_for())
        done = await api.wait_done(created.body["id"])
        url = done["result"]["primary_url"]
        keyless = await api.call("GET", url, key=None)
        with_key = await api.call("GET", url)
        unknown = await api.call("GET", api.emu.result_base_url + "/results/x/1-00/x.mp4", key=None)
        elsewhere = await api.call("GET", api.emu.result_base_url + "/api/v1/credits")
        on_api = await api.call("GET", api.emu.base_url + "/" + url.split("/", 3)[3], key=None)
        ledger = api.emu.ledger()
    assert url.startswith(api.emu.result_base_url + "/results/")
    assert not url.startswith(api.emu.base_url)
    assert keyless.status == 200 and keyless.headers["Content-Type"] == "video/mp4"
    assert with_key.status == 200 and with_key.raw == keyless.raw
    assert unknown.status == 404 and elsewhere.status == 404
    assert on_api.status == 200 and on_api.raw == keyless.raw
    rows = [(r["origin"], r["status"], r["authorization"]) for r in ledger["result_requests"]]
    assert rows == [
        ("other", 200, False),
        ("other", 200, True),
        ("other", 404, False),
        ("other", 404, True),
        ("api", 200, False),
    ]
    assert ledger["result_requests"][0]["path"] == url.split(api.emu.result_base_url)[1]


@pytest.mark.anyio
async def test_expired_result_on_the_other_origin_is_403(open_api):
    """An expired URL on the second origin answers 403, like a signed CDN URL; a fresh one works."""
    async with open_api(result_origin="other", result_url_ttl_s=0.2) as api:
        created = await api.create(body_for())
        old = (await api.wait_done(created.body["id"]))["result"]["primary_url"]
        await anyio.sleep(0.25)
        expired = await api.call("GET", old, key=None)
        fresh = (await api.task(created.body["id"])).body["result"]["primary_url"]
        served = await api.call("GET", fresh, key=None)
    assert expired.status == 403 and b"expired" in expired.raw
    assert fresh != old and served.status == 200


@pytest.mark.anyio
async def test_api_origin_results_are_keyless_and_recorded(open_api):
    """By default results are on the API origin, need no key, and the ledger notes a key sent."""
    async with open_api() as api:
        created = await api.create(body_for())
        url = (await api.wait_done(created.body["id"]))["result"]["primary_url"]
        keyless = await api.call("GET", url, key=None)
        with_key = await api.call("GET", url)
        ledger = api.emu.ledger()
    assert url.startswith(api.emu.base_url + "/results/")
    assert (keyless.status, with_key.status) == (200, 200)
    rows = [(r["origin"], r["status"], r["authorization"]) for r in ledger["result_requests"]]
    assert rows == [("api", 200, False), ("api", 200, True)]


def test_second_origin_is_another_host_or_port():
    """The second origin differs from the API's (127.0.0.2 where it can be bound)."""

    async def main() -> tuple[str, str]:
        async with running_emulator(EmulatorConfig(**TEST_DEFAULTS)) as emu:
            return emu.base_url, emu.result_base_url

    api_url, result_url = anyio.run(main)
    assert api_url != result_url
    assert result_url.startswith(("http://127.0.0.2:", "http://127.0.0.1:"))


# --- prompt limit and "10 MB"


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "status"), [("codepoints", 201), ("utf16", 400)])
async def test_prompt_limit_units(open_api, mode, status):
    """1999 letters and one emoji are 2000 code points but 2001 UTF-16 code units."""
    prompt = "a" * 1999 + "\U0001f3ac"
    async with open_api(prompt_count=mode) as api:
        reply = await api.create(body_for(prompt))
        at_limit = await api.create(body_for("a" * 1998 + "\U0001f3ac"))
    assert reply.status == status
    if status == 400:
        assert "UTF-16" in reply.body["error"]["message"]
    assert at_limit.status == 201


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "limit"), [("binary", 10_485_760), ("decimal", 10_000_000)])
async def test_size_limit_readings(open_api, mode, limit):
    """An image of exactly the limit is accepted, one byte more refused; models says the limit."""
    exact = png_bytes(padding=limit - len(png_bytes()) - 16)
    async with open_api(size_limit=mode) as api:
        ok = await api.upload(exact)
        too_big = await api.upload(exact + b"\0")
        no_model = await api.upload(exact + b"\0", model=None)
        models = (await api.call("GET", "/api/v1/models", key=None)).body
    assert len(exact) == limit
    assert ok.status == 201
    assert (too_big.status, too_big.code) == (400, "validation_failed")
    assert (no_model.status, no_model.code) == (400, "validation_failed")
    assert models["data"][0]["reference_media"]["kinds"]["image"]["max_bytes"] == limit


# --- task statuses


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["cancelled", "expired", "timeout"])
async def test_tasks_can_end_with_another_terminal_status(open_api, name):
    """With end_status_rate 1 a task ends with end_status_name, no result and nothing charged."""
    async with open_api(end_status_rate=1.0, end_status_name=name) as api:
        created = await api.create(body_for())
        seen = await statuses_until_done(api, created.body["id"])
        final = (await api.task(created.body["id"])).body
        credits = await api.credits()
        ledger = api.emu.ledger()
    assert seen[-1] == name
    assert (final["result"], final["error"], final["final_credits"]) == (None, None, 0)
    assert credits == 1_000_000
    assert [c["kind"] for c in ledger["charges"]] == ["charge", "refund"]
    assert ledger["tasks"][0]["status"] == name


@pytest.mark.anyio
async def test_end_status_rate_is_a_share(open_api):
    """With end_status_rate 0.5 some tasks succeed and some end with the other name."""
    async with open_api(end_status_rate=0.5) as api:
        created = [await api.create(body_for(), idem=f"share-{n}") for n in range(12)]
        ends = {(await statuses_until_done(api, r.body["id"]))[-1] for r in created}
    assert ends == {"succeeded", "cancelled"}


@pytest.mark.anyio
async def test_interim_status_name_replaces_processing(open_api):
    """With interim_status_name a running task shows that name, never 'processing'."""
    async with open_api(time_scale=0.01, interim_status_name="paused_for_review") as api:
        created = await api.create(body_for(mode="std", duration="3"))
        seen = await statuses_until_done(api, created.body["id"])
    assert seen == ["queued", "paused_for_review", "succeeded"]


def test_interim_status_name_must_be_new():
    """interim_status_name refuses documented and terminal names."""
    for bad in ("processing", "succeeded", "cancelled", "Has Spaces"):
        with pytest.raises(ValueError, match="interim_status_name"):
            EmulatorConfig(interim_status_name=bad)


# --- reference items and Retry-After


@pytest.mark.anyio
async def test_reference_items_accept_duration_seconds(open_api):
    """durationSeconds is a documented optional field of a reference item; a bad value is named."""
    async with open_api() as api:
        url = (await api.upload(png_bytes())).body["url"]
        ok = await api.create(body_for(referenceMediaItems=[reference(url, durationSeconds=5)]))
        null = await api.create(
            body_for(referenceMediaItems=[reference(url, durationSeconds=None)])
        )
        bad = await api.create(body_for(referenceMediaItems=[reference(url, durationSeconds=-1)]))
    assert (ok.status, null.status) == (201, 201)
    assert bad.status == 400 and "durationSeconds" in bad.body["error"]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("switches", "seconds"), [({}, "5"), ({"public_api_disabled_retry_after_s": 17}, "17")]
)
async def test_public_api_disabled_carries_retry_after(open_api, switches, seconds):
    """A 503 public_api_disabled always says when to retry, in whole seconds."""
    async with open_api(public_api_disabled=True, **switches) as api:
        reply = await api.call("GET", "/api/v1/credits")
    assert (reply.status, reply.code) == (503, "public_api_disabled")
    assert reply.headers["Retry-After"] == seconds


# --- all readings at once


def test_with_all_readings_turns_every_reading_on():
    """with_all_readings sets every reading; overrides win; to_dict reports it."""
    cfg = EmulatorConfig.with_all_readings(time_scale=0.01)
    assert all(getattr(cfg, name) == value for name, value in ALL_READINGS.items())
    assert cfg.all_readings and cfg.to_dict()["all_readings"] is True
    assert cfg.time_scale == 0.01
    partial = EmulatorConfig.with_all_readings(files_answer="full")
    assert partial.files_answer == "full" and not partial.all_readings
    assert partial.result_origin == "other"
    assert not EmulatorConfig().all_readings
    assert cfg.replace(all_readings=False) == EmulatorConfig(time_scale=0.01)


def test_all_readings_flag():
    """--all-readings turns every reading on; a flag beside it wins."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--all-readings", "--create-status", "202"]))
    assert cfg.prompt_count == "utf16" and cfg.create_status == "202"
    assert config_from_args(parser.parse_args(["--all-readings"])).all_readings


@pytest.mark.anyio
async def test_all_readings_through_the_admin_endpoint(open_api):
    """POST /_emulator/admin/switches {"all_readings": true} turns every reading on."""
    async with open_api() as api:
        on = await api.call("POST", "/_emulator/admin/switches", json={"all_readings": True})
        off = await api.call("POST", "/_emulator/admin/switches", json={"all_readings": False})
    assert on.status == 200 and on.body["all_readings"] is True
    assert on.body["files_answer"] == "minimal" and on.body["seed"] == TEST_DEFAULTS["seed"]
    assert off.body["all_readings"] is False and off.body["files_answer"] == "full"


@pytest.mark.anyio
async def test_a_batch_round_trip_with_all_readings():
    """Upload, create, poll and download all work with every reading on at once."""
    cfg = EmulatorConfig.with_all_readings(**TEST_DEFAULTS | {"time_scale": 0.01})
    async with (
        running_emulator(cfg) as emu,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
    ):
        api = Api(session, emu)
        uploaded = (await api.upload(png_bytes())).body
        created = await api.create(
            body_for(referenceMediaItems=[reference(uploaded["url"])]), idem="all-1"
        )
        seen = await statuses_until_done(api, created.body["id"])
        done = (await api.task(created.body["id"])).body
        video = await api.call("GET", done["result"]["primary_url"], key=None)
        ledger = emu.ledger()
    assert set(uploaded) == {"url", "duration_token", *EXTRA_FIELDS}
    assert created.status in (200, 201, 202) and has_extras(created.body)
    assert seen == ["queued", "paused_for_review", "succeeded"]
    assert done["result"]["primary_url"].startswith(emu.result_base_url)
    assert video.status == 200
    assert not any(r["authorization"] for r in ledger["result_requests"])
