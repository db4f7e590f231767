"""Keys, scopes and the public-API switch."""

from __future__ import annotations

import pytest

from batchgen.emulator import ApiKey

KEYS = (
    ApiKey("rvya_sk_all"),
    ApiKey("rvya_sk_readonly", scopes=("generations:read", "credits:read")),
    ApiKey("rvya_sk_revoked", status="revoked"),
    ApiKey("rvya_sk_expired", status="expired"),
)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "api_key_missing"),
        ("rvya_sk_nobody", "api_key_invalid"),
        ("rvya_sk_revoked", "api_key_revoked"),
        ("rvya_sk_expired", "api_key_expired"),
    ],
)
async def test_bad_keys_get_401_with_their_code(open_api, key, code):
    """Missing, unknown, revoked and expired keys each get 401 with their own error code."""
    async with open_api(keys=KEYS) as api:
        reply = await api.call("GET", "/api/v1/credits", key=key)
    assert reply.status == 401
    assert reply.code == code
    assert reply.body["error"]["requestId"]


@pytest.mark.anyio
async def test_malformed_authorization_header_counts_as_missing(open_api):
    """An Authorization header that is not 'Bearer <key>' is treated as no key at all."""
    async with open_api() as api:
        reply = await api.call(
            "GET",
            "/api/v1/credits",
            key=None,
            headers={"Authorization": f"Basic {api.emu.api_key}"},
        )
    assert (reply.status, reply.code) == (401, "api_key_missing")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/api/v1/generations", "generations:create"),
        ("POST", "/api/v1/files", "files:create"),
        ("GET", "/api/v1/files/file_x", "files:read"),
    ],
)
async def test_missing_scope_is_403_naming_the_scope(open_api, method, path, scope):
    """A key without an endpoint's scope gets 403 api_scope_denied naming that scope."""
    async with open_api(keys=KEYS) as api:
        reply = await api.call(method, path, key="rvya_sk_readonly", json={})
    assert reply.status == 403
    assert reply.code == "api_scope_denied"
    assert scope in reply.body["error"]["message"]


@pytest.mark.anyio
async def test_key_with_scope_is_let_through(open_api):
    """A read-only key can read credits."""
    async with open_api(keys=KEYS) as api:
        reply = await api.call("GET", "/api/v1/credits", key="rvya_sk_readonly")
    assert reply.status == 200


@pytest.mark.anyio
async def test_public_api_disabled_answers_503_everywhere(open_api):
    """With the public API switched off, every /api/v1 call answers 503 public_api_disabled."""
    async with open_api(public_api_disabled=True) as api:
        for path in ("/api/v1/models", "/api/v1/credits", "/api/v1/generations/task_x"):
            reply = await api.call("GET", path)
            assert (reply.status, reply.code) == (503, "public_api_disabled")


@pytest.mark.anyio
async def test_revoking_a_key_at_runtime_takes_effect(open_api):
    """Replacing the key list through the switches revokes a key for the next request."""
    async with open_api() as api:
        assert (await api.call("GET", "/api/v1/credits")).status == 200
        api.emu.set_switches(keys=[f"{api.emu.api_key},status=revoked"])
        reply = await api.call("GET", "/api/v1/credits")
    assert (reply.status, reply.code) == (401, "api_key_revoked")
