"""Fixtures for the client tests: a real emulator on loopback per test, and clients for it.

Nothing here fakes the server or aiohttp: every client test talks HTTP to ``batchgen.emulator``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from client_support import FAST_RETRY

from batchgen.client import RivyaClient

Emulator = Any  # batchgen.emulator.RunningEmulator, imported lazily inside the fixture


@pytest.fixture
def make_emulator() -> Callable[..., contextlib.AbstractAsyncContextManager[Emulator]]:
    """``async with make_emulator(**switches) as emu``: a fresh emulator on 127.0.0.1:0."""
    from batchgen.emulator import EmulatorConfig, running_emulator

    def start(**switches: Any) -> contextlib.AbstractAsyncContextManager[Emulator]:
        settings: dict[str, Any] = {"time_scale": 0.001, "seed": 7, "rate_limit_per_s": 1000.0}
        settings.update(switches)
        return running_emulator(EmulatorConfig(**settings), host="127.0.0.1", port=0)

    return start


@contextlib.asynccontextmanager
async def _client(emu: Emulator, **kwargs: Any) -> AsyncIterator[RivyaClient]:
    kwargs.setdefault("retry", FAST_RETRY)
    base_url = kwargs.pop("base_url", emu.base_url)
    api_key = kwargs.pop("api_key", emu.api_key)
    async with RivyaClient(base_url, api_key, **kwargs) as client:
        yield client


@pytest.fixture
def make_client() -> Callable[..., contextlib.AbstractAsyncContextManager[RivyaClient]]:
    """``async with make_client(emu, **kwargs) as client``: a client for that emulator."""
    return _client
