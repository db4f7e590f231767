"""The task lifecycle: statuses over time, the processing cap, failures, result URLs."""

from __future__ import annotations

import random

import anyio
import pytest
from emulator_support import body_for

from batchgen.emulator.timemodel import median_run_s, plan_task


async def statuses_seen(api, task_id, first="queued", timeout_s=10.0):
    """Poll quickly and return the distinct statuses in the order they appeared."""
    seen: list[str] = [first]
    with anyio.fail_after(timeout_s):
        while not seen or seen[-1] not in ("succeeded", "failed"):
            status = (await api.task(task_id)).body["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            await anyio.sleep(0.005)
    return seen


@pytest.mark.anyio
async def test_task_goes_queued_processing_succeeded(open_api):
    """A task is queued, then processing, then succeeded with a charged result."""
    async with open_api(time_scale=0.01) as api:
        created = (await api.create(body_for(mode="std", duration="3"))).body
        task_id = created["id"]
        seen = await statuses_seen(api, task_id, first=created["status"])
        done = (await api.task(task_id)).body
    assert seen == ["queued", "processing", "succeeded"]
    assert done["final_credits"] == done["reserved_credits"] == 90
    assert done["result"]["primary_url"] == done["result"]["urls"][0]
    assert done["error"] is None
    assert done["updated_at"] > done["created_at"]


@pytest.mark.anyio
async def test_processing_cap_queues_the_rest(open_api):
    """With a cap of one, the second task stays queued while the first is processing."""
    async with open_api(time_scale=0.01, max_processing_per_account=1) as api:
        first = (await api.create(body_for("a", mode="std", duration="3"))).body["id"]
        second = (await api.create(body_for("b", mode="std", duration="3"))).body["id"]
        with anyio.fail_after(5):
            while (await api.task(first)).body["status"] != "processing":
                await anyio.sleep(0.005)
        assert (await api.task(second)).body["status"] == "queued"
        await api.wait_done(first)
        seen = await statuses_seen(api, second)
    assert seen[-2:] == ["processing", "succeeded"]


@pytest.mark.anyio
async def test_failed_task_is_refunded_with_final_credits_zero(open_api):
    """A task that fails reports generation_failed, final_credits 0, and its credits return."""
    async with open_api(failure_rate=1.0, failure_null_error_share=0.0) as api:
        task_id = (await api.create(body_for())).body["id"]
        done = await api.wait_done(task_id)
        credits = await api.credits()
        ledger = api.emu.ledger()
    assert done["status"] == "failed"
    assert done["final_credits"] == 0 and done["result"] is None
    assert done["error"]["code"] == "generation_failed"
    assert credits == 1_000_000
    assert [(c["kind"], c["amount"]) for c in ledger["charges"]] == [("charge", 90), ("refund", 90)]


@pytest.mark.anyio
async def test_refund_is_settled_even_if_nobody_polls(open_api):
    """A failed task's refund shows in the balance without anyone reading the task."""
    async with open_api(failure_rate=1.0) as api:
        await api.create(body_for())
        await anyio.sleep(0.5)
        credits = await api.credits()
    assert credits == 1_000_000


@pytest.mark.anyio
async def test_some_failures_have_a_null_error(open_api):
    """With failure_null_error_share 1, a failed task carries error: null."""
    async with open_api(failure_rate=1.0, failure_null_error_share=1.0) as api:
        done = await api.wait_done((await api.create(body_for())).body["id"])
    assert done["status"] == "failed" and done["error"] is None and done["final_credits"] == 0


@pytest.mark.anyio
async def test_failure_share_follows_the_seed_not_the_order(open_api):
    """Which jobs fail depends on the seed and idempotency key, not on submission order."""
    keys = [f"job-{n}" for n in range(40)]

    async def outcomes(order):
        async with open_api(failure_rate=0.3, seed=7) as api:
            ids = {k: (await api.create(body_for(k), idem=k)).body["id"] for k in order}
            return {k: (await api.wait_done(ids[k]))["status"] for k in order}

    forward = await outcomes(keys)
    backward = await outcomes(list(reversed(keys)))
    assert forward == backward
    failed = sum(s == "failed" for s in forward.values())
    assert 4 <= failed <= 20


def submit_to_done_s(mode: str, n: int = 500) -> list[float]:
    """Sorted queue+run seconds of ``n`` seeded 5 s clips in ``mode`` at time scale 1."""
    rng = random.Random(1)
    params = {"duration": "5", "mode": mode}
    plans = (plan_task(rng, params, 1.0, 0.0, 0.0) for _ in range(n))
    return sorted(plan.queue_s + plan.run_s for plan in plans)


def test_run_time_model_has_the_documented_shape():
    """A 5 s clip takes about 1-4 min at scale 1; pro and longer clips take longer."""
    pro, std = submit_to_done_s("pro"), submit_to_done_s("std")
    assert pro[0] >= 60 and pro[-1] <= 240
    assert std[0] >= 40 and std[-1] <= 180
    assert 100 <= pro[250] <= 150 and std[250] < pro[250]
    long_clip = median_run_s({"duration": "15"})
    assert long_clip > 2 * median_run_s({"duration": "5"})
    scaled = plan_task(random.Random(1), {}, 0.01, 0.0, 0.0)
    unscaled = plan_task(random.Random(1), {}, 1.0, 0.0, 0.0)
    assert scaled.run_s == pytest.approx(unscaled.run_s * 0.01)


@pytest.mark.anyio
async def test_result_is_a_deterministic_mp4(open_api):
    """The result URL serves video/mp4 whose bytes are the same on every download."""
    async with open_api() as api:
        done = await api.wait_done((await api.create(body_for())).body["id"])
        first = await api.call("GET", done["result"]["primary_url"], key=None)
        second = await api.call("GET", done["result"]["primary_url"], key=None)
    assert first.status == 200
    assert first.headers["Content-Type"] == "video/mp4"
    assert first.raw[4:8] == b"ftyp" and first.raw == second.raw
    assert done["id"].encode() in first.raw


@pytest.mark.anyio
async def test_result_urls_expire_and_come_back_fresh(open_api):
    """An expired result URL answers 410; the next GET of the task hands out a working one."""
    async with open_api(result_url_ttl_s=0.5) as api:
        task_id = (await api.create(body_for())).body["id"]
        old_url = (await api.wait_done(task_id))["result"]["primary_url"]
        await anyio.sleep(0.6)
        expired = await api.call("GET", old_url, key=None)
        new_url = (await api.task(task_id)).body["result"]["primary_url"]
        fresh = await api.call("GET", new_url, key=None)
    assert (expired.status, expired.code) == (410, "url_expired")
    assert new_url != old_url
    assert fresh.status == 200


@pytest.mark.anyio
async def test_forged_result_url_is_not_found(open_api):
    """A result URL whose signature does not match is 404."""
    async with open_api() as api:
        url = (await api.wait_done((await api.create(body_for())).body["id"]))["result"]["urls"][0]
        forged = url.replace(url.rsplit("/", 2)[1], "99999999999-0000000000000000")
        reply = await api.call("GET", forged, key=None)
    assert reply.status == 404
