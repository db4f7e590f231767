"""The ``open_api`` fixture: a real emulator on loopback plus a tiny client for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from emulator_support import TEST_DEFAULTS, Api

from batchgen.emulator import EmulatorConfig, running_emulator


@pytest.fixture
def open_api() -> Callable[..., contextlib.AbstractAsyncContextManager[Api]]:
    """``async with open_api(**switches) as api``: an emulator with test defaults + a client."""

    @contextlib.asynccontextmanager
    async def start(**switches: Any) -> AsyncIterator[Api]:
        cfg = EmulatorConfig(**{**TEST_DEFAULTS, **switches})
        timeout = aiohttp.ClientTimeout(total=20)
        async with (
            running_emulator(cfg) as emu,
            aiohttp.ClientSession(timeout=timeout) as session,
        ):
            yield Api(session, emu)

    return start
