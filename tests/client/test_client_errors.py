"""Every error code of the contract, as the real emulator sends it, becomes its typed error."""

from __future__ import annotations

import pytest
from client_support import NO_RETRY, generation_body, requests_to

from batchgen.errors import (
    AuthError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NotFoundError,
    RetryExhaustedError,
    ScopeDeniedError,
    ServerError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from batchgen.outcome import error_exit_code
from batchgen.retry import RetryPolicy


def key(name: str, status: str = "active"):
    """An emulator API key with every scope."""
    from batchgen.emulator import ApiKey

    return ApiKey(name, status=status)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "client_key", "code"),
    [
        ("active", None, "api_key_missing"),
        ("active", "rvya_sk_wrong", "api_key_invalid"),
        ("revoked", "rvya_sk_old", "api_key_revoked"),
        ("expired", "rvya_sk_old", "api_key_expired"),
    ],
)
async def test_auth_errors(make_emulator, make_client, status, client_key, code):
    """Each 401 code becomes AuthError with that code, is not retried, and hints at the key."""
    async with (
        make_emulator(keys=(key("rvya_sk_old", status),)) as emu,
        make_client(emu, api_key=client_key) as c,
    ):
        with pytest.raises(AuthError) as info:
            await c.get_credits()
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert (info.value.code, info.value.status) == (code, 401)
    assert info.value.request_id and info.value.request_id.startswith("req_")
    assert "RIVYA_API_KEY" in str(info.value)
    assert counts == {401: 1}


@pytest.mark.anyio
async def test_scope_denied_names_the_scope(make_emulator, make_client):
    """A key without generations:create gets ScopeDeniedError naming that scope."""
    from batchgen.emulator import ApiKey

    readonly = ApiKey("rvya_sk_readonly", scopes=("generations:read", "credits:read"))
    async with make_emulator(keys=(readonly,)) as emu, make_client(emu) as c:
        assert await c.get_credits() > 0
        with pytest.raises(ScopeDeniedError) as info:
            await c.create_generation(generation_body(), idempotency_key="k.1")
    assert info.value.status == 403 and "generations:create" in str(info.value)


@pytest.mark.anyio
async def test_validation_failed_is_final(make_emulator, make_client):
    """An invalid body gets ValidationFailedError with the server's message, sent only once."""
    async with make_emulator() as emu, make_client(emu) as c:
        with pytest.raises(ValidationFailedError) as info:
            await c.create_generation(generation_body(duration="20"), idempotency_key="k.v")
        counts = requests_to(emu.ledger(), "POST", "/api/v1/generations")
    assert info.value.code == "validation_failed" and "duration" in str(info.value)
    assert counts == {400: 1}


@pytest.mark.anyio
async def test_unknown_task_is_not_found(make_emulator, make_client):
    """Polling a task id that is not this account's gives NotFoundError."""
    async with make_emulator() as emu, make_client(emu) as c:
        with pytest.raises(NotFoundError) as info:
            await c.get_generation("task_does_not_exist")
    assert (info.value.code, info.value.status) == ("not_found", 404)


@pytest.mark.anyio
async def test_idempotency_conflict(make_emulator, make_client):
    """The same key with a different body gives IdempotencyConflictError and no second task."""
    async with make_emulator() as emu, make_client(emu) as c:
        await c.create_generation(generation_body("first"), idempotency_key="k.same")
        with pytest.raises(IdempotencyConflictError) as info:
            await c.create_generation(generation_body("edited"), idempotency_key="k.same")
        tasks = emu.ledger()["tasks"]
    assert info.value.status == 409 and len(tasks) == 1


@pytest.mark.anyio
async def test_insufficient_credits_402(make_emulator, make_client):
    """An empty wallet answers 402, which becomes InsufficientCreditsError (exit 4), not retried."""
    async with make_emulator(starting_credits=0) as emu, make_client(emu) as c:
        with pytest.raises(InsufficientCreditsError) as info:
            await c.create_generation(generation_body(), idempotency_key="k.c")
        ledger = emu.ledger()
    assert info.value.status == 402 and error_exit_code(info.value) == 4
    assert ledger["tasks"] == [] and requests_to(ledger, "POST", "/api/v1/generations") == {402: 1}


@pytest.mark.anyio
async def test_public_api_disabled_is_retried_then_exhausted(make_emulator, make_client):
    """503 public_api_disabled is retried per the policy, then RetryExhaustedError wraps it."""
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)
    async with make_emulator(public_api_disabled=True) as emu, make_client(emu, retry=policy) as c:
        with pytest.raises(RetryExhaustedError) as info:
            await c.get_credits()
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert isinstance(info.value.last, ServiceUnavailableError)
    assert info.value.last.code == "public_api_disabled" and counts == {503: 3}
    assert c.stats.retries == 2


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_faults_are_server_errors(make_emulator, make_client, status):
    """Injected 500/502/503 answers become ServerError (retryable) with their status."""
    switches = {f"fault_{status}_rate": 1.0}
    async with make_emulator(**switches) as emu, make_client(emu, retry=NO_RETRY) as c:
        with pytest.raises(RetryExhaustedError) as info:
            await c.get_credits()
    assert isinstance(info.value.last, ServerError) and info.value.last.status == status


@pytest.mark.anyio
async def test_server_error_then_success(make_emulator, make_client):
    """A 5xx answer is retried with back-off and the call then succeeds."""
    async with make_emulator(fault_500_rate=0.2, fault_502_rate=0.1, seed=3) as emu:
        async with make_client(emu) as c:
            results = [await c.get_credits() for _ in range(20)]
        counts = requests_to(emu.ledger(), "GET", "/api/v1/credits")
    assert len(results) == 20 and counts[200] == 20
    assert counts.get(500, 0) + counts.get(502, 0) == c.stats.retries > 0


@pytest.mark.anyio
async def test_conflict_while_the_first_request_is_in_flight_is_waited_out(
    make_emulator, make_client
):
    """A service that answers 409 to a replay while the first request with its key is still
    processed (the first attempt timed out) gets the same body again after a pause, and the
    client ends with the one task, replayed."""
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.3, max_delay_s=1.0, jitter="none")
    async with (
        make_emulator(replay_in_flight="409", slow_rate=1.0, slow_delay_s=0.8) as emu,
        make_client(emu, retry=policy, timeout_s=0.3) as c,
    ):
        task = await c.create_generation(generation_body("slow"), idempotency_key="k.busy")
        ledger = emu.ledger()
    conflicts = [r for r in ledger["requests"] if r["status"] == 409]
    assert task.replayed and len(ledger["tasks"]) == 1
    assert conflicts, "the service really answered 409 while the first request was in flight"
