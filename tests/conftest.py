"""Shared fixtures. Every test runs against the real emulator over loopback; nothing is mocked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent

# Hypothesis's per-example deadline is a timing assertion: on a busy 2-core machine (CI, or
# the emulator sharing the cores) it fails at random. Speed lives in benchmarks, not tests.
settings.register_profile("batchgen", deadline=None)
settings.load_profile("batchgen")


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp and aiolimiter need asyncio, so anyio runs every async test on it."""
    return "asyncio"


@pytest.fixture
def fast_emulator_config():
    """An emulator config for tests: fast time model, generous rate limit, fixed seed."""
    from batchgen.emulator import EmulatorConfig

    return EmulatorConfig(time_scale=0.002, seed=1234, rate_limit_per_s=1000.0)


@pytest.fixture
def emulator_thread(fast_emulator_config) -> Iterator[object]:
    """An emulator serving on 127.0.0.1 (ephemeral port) in a background thread."""
    from batchgen.emulator import EmulatorThread

    with EmulatorThread(fast_emulator_config) as emu:
        yield emu
