"""The embedded Rivya Public API v1 emulator (kling-3-0), for tests, demos and rehearsals.

Self-contained on purpose: it imports nothing from the client side of batchgen, so the two
cannot share one misreading of the wire contract (``shared/rivya-api.md``).

    async with running_emulator(EmulatorConfig(time_scale=0.01), port=0) as emu:
        emu.base_url, emu.api_key, emu.ledger()

See ``docs/emulator.md`` for every switch.
"""

from __future__ import annotations

from .app import build_app
from .config import DEFAULT_API_KEY, ApiKey, EmulatorConfig
from .server import EmulatorThread, RunningEmulator, running_emulator

__all__ = [
    "DEFAULT_API_KEY",
    "ApiKey",
    "EmulatorConfig",
    "EmulatorThread",
    "RunningEmulator",
    "build_app",
    "running_emulator",
]
