"""The wallet: starting balance, charges, insufficient credits and admin top-ups."""

from __future__ import annotations

import pytest
from emulator_support import body_for


@pytest.mark.anyio
async def test_starting_balance_is_configurable(open_api):
    """GET /api/v1/credits starts at starting_credits."""
    async with open_api(starting_credits=500) as api:
        assert await api.credits() == 500


@pytest.mark.anyio
async def test_price_comes_from_the_price_table(open_api):
    """A task reserves the configured price."""
    async with open_api(prices={"kling-3-0": 40}) as api:
        task = (await api.create(body_for())).body
        credits = await api.credits()
    assert task["reserved_credits"] == 40
    assert credits == 1_000_000 - 40


@pytest.mark.anyio
async def test_short_wallet_gets_402_and_no_task(open_api):
    """When the wallet cannot cover a task, create answers 402 insufficient_credits."""
    async with open_api(starting_credits=100) as api:
        first = await api.create(body_for("a"))
        second = await api.create(body_for("b"))
        ledger = api.emu.ledger()
    assert first.status == 201
    assert (second.status, second.code) == (402, "insufficient_credits")
    assert "10 credits" in second.body["error"]["message"]
    assert len(ledger["tasks"]) == 1


@pytest.mark.anyio
async def test_short_wallet_task_variant(open_api):
    """In 'task' mode the create succeeds and the task then fails with insufficient_credits."""
    async with open_api(starting_credits=50, insufficient_credits_mode="task") as api:
        created = await api.create(body_for())
        done = await api.wait_done(created.body["id"])
        credits = await api.credits()
        ledger = api.emu.ledger()
    assert created.status == 201
    assert done["status"] == "failed"
    assert done["error"]["code"] == "insufficient_credits"
    assert done["final_credits"] == 0
    assert credits == 50
    assert ledger["charges"] == []


@pytest.mark.anyio
async def test_admin_topup_lets_submission_resume(open_api):
    """A top-up through the admin endpoint during a run makes the next create succeed."""
    async with open_api(starting_credits=0) as api:
        refused = await api.create(body_for())
        topup = await api.call("POST", "/_emulator/admin/topup", json={"credits": 200})
        accepted = await api.create(body_for())
        credits = await api.credits()
        ledger = api.emu.ledger()
    assert refused.status == 402
    assert topup.status == 200 and topup.body["current_credits"] == 200
    assert accepted.status == 201
    assert credits == 110
    assert [(t["kind"], t["amount"]) for t in ledger["topups"]] == [("topup", 200)]
    assert [c["kind"] for c in ledger["charges"]] == ["charge"]


@pytest.mark.anyio
@pytest.mark.parametrize("body", [{"credits": 0}, {"credits": "5"}, {"credits": True}, []])
async def test_topup_rejects_bad_amounts(open_api, body):
    """The top-up endpoint takes only a positive whole number of credits."""
    async with open_api() as api:
        reply = await api.call("POST", "/_emulator/admin/topup", json=body)
    assert (reply.status, reply.code) == (400, "validation_failed")
