"""Creating generation tasks: validation, charging, idempotency and the create variants."""

from __future__ import annotations

import anyio
import pytest
from emulator_support import body_for, png_bytes

from batchgen.emulator import ApiKey


@pytest.mark.anyio
async def test_create_returns_201_queued_task_and_charges(open_api):
    """A new task is 201 with the contract's task object, and 90 credits leave the wallet."""
    async with open_api() as api:
        before = await api.credits()
        reply = await api.create(body_for(mode="std", duration="5"), idem="job-1")
        after = await api.credits()
    assert reply.status == 201
    task = reply.body
    assert task["id"].startswith("task_")
    assert task["status"] == "queued"
    assert (task["model"], task["reserved_credits"], task["final_credits"]) == ("kling-3-0", 90, 0)
    assert task["result"] is None and task["error"] is None
    assert task["created_at"].endswith("Z") and len(task["created_at"]) == 24
    assert before - after == 90


@pytest.mark.anyio
async def test_native_json_param_forms_are_accepted(open_api):
    """Params may also be sent in native JSON form (5, false) instead of strings."""
    async with open_api() as api:
        reply = await api.create(body_for(duration=5, sound=False, multi_shots=True))
    assert reply.status == 201


BAD_BODIES = [
    ({"prompt": "x"}, "model"),
    ({"model": "kling-9", "prompt": "x"}, "model"),
    ({"model": "kling-3-0"}, "prompt"),
    ({"model": "kling-3-0", "prompt": ""}, "prompt"),
    ({"model": "kling-3-0", "prompt": "   "}, "blank"),
    ({"model": "kling-3-0", "prompt": "x" * 2001}, "2000"),
    (body_for(duration="16"), "params.duration"),
    (body_for(duration=5.0), "params.duration"),
    (body_for(mode="ultra"), "params.mode"),
    (body_for(sound="yes"), "params.sound"),
    (body_for(aspect_ratio="4:3"), "params.aspect_ratio"),
    (body_for(mode=True), "params.mode"),
    (body_for(seed="1"), "params.seed"),
    ({**body_for(), "client_request_id": "c" * 129}, "client_request_id"),
    ({**body_for(), "webhook": "x"}, "unknown fields"),
    ({**body_for(), "params": []}, "params must be"),
    (["not", "an", "object"], "JSON object"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("body", "mentions"), BAD_BODIES)
async def test_invalid_bodies_are_rejected_naming_the_problem(open_api, body, mentions):
    """Each contract violation gets 400 validation_failed whose message names the field."""
    async with open_api() as api:
        reply = await api.create(body)
        credits = await api.credits()
    assert (reply.status, reply.code) == (400, "validation_failed")
    assert mentions in reply.body["error"]["message"]
    assert credits == 1_000_000


@pytest.mark.anyio
async def test_body_that_is_not_json_is_rejected(open_api):
    """A body that is not JSON gets 400 validation_failed."""
    async with open_api() as api:
        reply = await api.call("POST", "/api/v1/generations", data=b"{nope")
    assert (reply.status, reply.code) == (400, "validation_failed")


@pytest.mark.anyio
async def test_references_must_be_this_accounts_uploads(open_api):
    """A reference URL that was not uploaded by this account fails validation."""
    keys = (ApiKey("rvya_sk_a", account="a"), ApiKey("rvya_sk_b", account="b"))
    async with open_api(keys=keys) as api:
        upload = await api.upload(png_bytes())
        item = {"url": upload.body["url"], "kind": "image"}
        own = await api.create(body_for(referenceMediaItems=[item]))
        other = await api.create(body_for(referenceMediaItems=[item]), key="rvya_sk_b")
        made_up = await api.create(
            body_for(referenceMediaItems=[{"url": "https://x.test/a.png", "kind": "image"}])
        )
    assert own.status == 201
    assert (other.status, other.code) == (400, "validation_failed")
    assert "not a file uploaded by this account" in other.body["error"]["message"]
    assert made_up.status == 400


@pytest.mark.anyio
async def test_at_most_two_references(open_api):
    """Three reference items are one too many for kling-3-0."""
    async with open_api() as api:
        url = (await api.upload(png_bytes())).body["url"]
        items = [{"url": url, "kind": "image"}] * 3
        reply = await api.create(body_for(referenceMediaItems=items))
    assert reply.status == 400
    assert "at most 2" in reply.body["error"]["message"]


@pytest.mark.anyio
async def test_reference_item_fields_are_checked(open_api):
    """A reference's kind, unknown fields and a mimeType contradicting the upload are refused."""
    async with open_api() as api:
        url = (await api.upload(png_bytes(), name="renamed.jpg")).body["url"]
        wrong_kind = await api.create(body_for(referenceMediaItems=[{"url": url, "kind": "video"}]))
        extra = await api.create(
            body_for(referenceMediaItems=[{"url": url, "kind": "image", "size": 1}])
        )
        claimed = await api.create(
            body_for(referenceMediaItems=[{"url": url, "kind": "image", "mimeType": "image/jpeg"}])
        )
        honest = await api.create(
            body_for(
                referenceMediaItems=[
                    {"url": url, "kind": "image", "mimeType": "image/png", "name": "renamed.jpg"}
                ]
            )
        )
    assert [r.status for r in (wrong_kind, extra, claimed)] == [400, 400, 400]
    assert "image/png" in claimed.body["error"]["message"]
    assert honest.status == 201


@pytest.mark.anyio
async def test_expired_reference_fails_validation(open_api):
    """Once an upload expires, a generation referencing it fails validation."""
    async with open_api(file_ttl_s=0.05) as api:
        url = (await api.upload(png_bytes())).body["url"]
        await anyio.sleep(0.1)
        reply = await api.create(body_for(referenceMediaItems=[{"url": url, "kind": "image"}]))
    assert reply.status == 400
    assert "expired" in reply.body["error"]["message"]


@pytest.mark.anyio
async def test_replay_returns_the_same_task_without_a_new_charge(open_api):
    """Same key and same JSON body (any key order) -> 200, Idempotent-Replayed, no new charge."""
    async with open_api() as api:
        first = await api.create(
            {"model": "kling-3-0", "prompt": "p", "params": {"mode": "std"}}, idem="k-1"
        )
        again = await api.create(
            {"params": {"mode": "std"}, "prompt": "p", "model": "kling-3-0"}, idem="k-1"
        )
        ledger = api.emu.ledger()
    assert (first.status, again.status) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.body["id"] == first.body["id"]
    assert len(ledger["tasks"]) == 1
    assert [c["kind"] for c in ledger["charges"]] == ["charge"]


@pytest.mark.anyio
async def test_same_key_different_body_is_409(open_api):
    """Reusing a key with a different body is 409 idempotency_conflict and creates nothing."""
    async with open_api() as api:
        await api.create(body_for("one"), idem="k-2")
        reply = await api.create(body_for("two"), idem="k-2")
        ledger = api.emu.ledger()
    assert (reply.status, reply.code) == (409, "idempotency_conflict")
    assert len(ledger["tasks"]) == 1


@pytest.mark.anyio
async def test_keys_are_scoped_to_the_account(open_api):
    """Two accounts may use the same key for different tasks."""
    keys = (ApiKey("rvya_sk_a", account="a"), ApiKey("rvya_sk_b", account="b"))
    async with open_api(keys=keys) as api:
        a = await api.create(body_for("one"), idem="shared")
        b = await api.create(body_for("two"), idem="shared", key="rvya_sk_b")
    assert (a.status, b.status) == (201, 201)
    assert a.body["id"] != b.body["id"]


@pytest.mark.anyio
async def test_invalid_body_does_not_burn_the_key(open_api):
    """A create refused by validation leaves its key free for the corrected request."""
    async with open_api() as api:
        bad = await api.create(body_for(duration="99"), idem="k-3")
        good = await api.create(body_for(duration="9"), idem="k-3")
    assert (bad.status, good.status) == (400, 201)


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "slash/key"])
async def test_malformed_idempotency_keys_are_rejected(open_api, key):
    """Idempotency keys must be 1-255 characters of [A-Za-z0-9._:-]."""
    async with open_api() as api:
        reply = await api.create(body_for(), idem=key)
    assert (reply.status, reply.code) == (400, "validation_failed")


@pytest.mark.anyio
async def test_replay_in_flight_waits_for_the_first(open_api):
    """A replay arriving while the first request is still being processed gets its task."""
    async with open_api(slow_rate=1.0, slow_delay_s=0.5) as api:
        replies = {}

        async def send(name):
            replies[name] = await api.create(body_for(), idem="slow-key")

        async with anyio.create_task_group() as tg:
            tg.start_soon(send, "first")
            with anyio.fail_after(5):  # the first is in flight once its slow fault is drawn
                while not api.emu.ledger()["faults"]:
                    await anyio.sleep(0.01)
            tg.start_soon(send, "second")
        ledger = api.emu.ledger()
    assert replies["first"].status == 201
    assert replies["second"].status == 200
    assert replies["second"].body["id"] == replies["first"].body["id"]
    assert len(ledger["tasks"]) == 1


@pytest.mark.anyio
async def test_expired_idempotency_key_creates_a_new_task(open_api):
    """After idempotency_ttl_s a key is forgotten and the same request creates a new task."""
    async with open_api(idempotency_ttl_s=0.05) as api:
        first = await api.create(body_for(), idem="old")
        await anyio.sleep(0.1)
        second = await api.create(body_for(), idem="old")
    assert (first.status, second.status) == (201, 201)
    assert first.body["id"] != second.body["id"]


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["200", "202"])
async def test_create_status_variant(open_api, mode):
    """The create_status switch answers new tasks with 200 or 202 instead of 201."""
    async with open_api(create_status=mode) as api:
        reply = await api.create(body_for())
    assert reply.status == int(mode)


@pytest.mark.anyio
async def test_mixed_create_status_uses_all_three(open_api):
    """create_status 'mixed' spreads new tasks over 200, 201 and 202."""
    async with open_api(create_status="mixed") as api:
        statuses = {(await api.create(body_for(f"p{n}"))).status for n in range(30)}
    assert statuses == {200, 201, 202}


@pytest.mark.anyio
async def test_other_accounts_task_is_not_found(open_api):
    """A task of another account, or an unknown id, is 404 not_found."""
    keys = (ApiKey("rvya_sk_a", account="a"), ApiKey("rvya_sk_b", account="b"))
    async with open_api(keys=keys) as api:
        task_id = (await api.create(body_for())).body["id"]
        other = await api.task(task_id, key="rvya_sk_b")
        unknown = await api.task("task_doesnotexist")
    assert (other.status, other.code) == (404, "not_found")
    assert (unknown.status, unknown.code) == (404, "not_found")
