"""The public catalogue, the OpenAPI document and the error envelope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "rivya-api.md"


def contract_model_entry() -> dict:
    """The kling-3-0 entry exactly as printed in the contract."""
    text = CONTRACT.read_text()
    start = text.index('{"id": "kling-3-0"')
    end = text.index("```", start)
    return json.loads(text[start:end])


@pytest.mark.anyio
async def test_models_lists_the_contract_entry_without_a_key(open_api):
    """GET /api/v1/models is public and returns the contract's kling-3-0 entry verbatim."""
    async with open_api() as api:
        reply = await api.call("GET", "/api/v1/models", key=None)
    assert reply.status == 200
    assert reply.body["object"] == "list"
    if not CONTRACT.exists():
        pytest.skip(f"the contract is not beside the repo ({CONTRACT})")
    assert reply.body["data"] == [contract_model_entry()]


@pytest.mark.anyio
async def test_models_follow_the_configured_price(open_api):
    """base_credits in the catalogue follows the configured price table."""
    async with open_api(prices={"kling-3-0": 120}) as api:
        reply = await api.call("GET", "/api/v1/models", key=None)
    assert reply.body["data"][0]["base_credits"] == 120


@pytest.mark.anyio
async def test_unknown_endpoint_answers_with_the_envelope(open_api):
    """An unknown path is a 404 not_found envelope with a requestId."""
    async with open_api() as api:
        reply = await api.call("GET", "/api/v1/nothing-here")
    assert reply.status == 404
    error = reply.body["error"]
    assert error["code"] == "not_found"
    assert error["requestId"].startswith("req_")
    assert "GET /api/v1/nothing-here" in error["message"]


@pytest.mark.anyio
async def test_request_ids_differ_between_errors(open_api):
    """Every error carries its own requestId (also echoed as X-Request-Id)."""
    async with open_api() as api:
        first = await api.call("GET", "/api/v1/credits", key=None)
        second = await api.call("GET", "/api/v1/credits", key=None)
    assert first.body["error"]["requestId"] != second.body["error"]["requestId"]
    assert first.headers["X-Request-Id"] == first.body["error"]["requestId"]


@pytest.mark.anyio
async def test_wrong_method_is_an_envelope_too(open_api):
    """A wrong method on a known path answers 405 with the error envelope."""
    async with open_api() as api:
        reply = await api.call("DELETE", "/api/v1/credits")
    assert reply.status == 405
    assert reply.code == "method_not_allowed"


@pytest.mark.anyio
async def test_openapi_document_is_served(open_api):
    """GET /api/v1/openapi.json describes every public path of the emulated API."""
    async with open_api() as api:
        reply = await api.call("GET", "/api/v1/openapi.json", key=None)
    assert reply.status == 200
    paths = set(reply.body["paths"])
    assert {
        "/api/v1/models",
        "/api/v1/credits",
        "/api/v1/files",
        "/api/v1/files/{fileId}",
        "/api/v1/generations",
        "/api/v1/generations/{taskId}",
    } <= paths
