"""SIGINT and SIGTERM, from the moment a command starts to the moment the process exits.

One ``SignalCatcher`` per process, installed by the CLI before it reads the manifest:

* **first signal, before the run listens** (validation, job sync, opening the state): raise
  ``Interrupted`` right there. Nothing has been sent; every state write is a transaction that
  rolls back. The command exits 130 (SIGINT) or 4 (SIGTERM).
* **first signal, while a run listens**: hand it to the run on its event loop
  (``call_soon_threadsafe``); the run stops submitting and polling at once and returns with the
  signal as its stop reason.
* **any later signal**: the user wants out now. Write one line and ``os._exit`` with the
  documented code at once, whatever the process is waiting for (a cancelled task, an idle
  worker thread at interpreter shutdown). That is as safe as a SIGKILL, which batchgen is built
  to survive at any instant: the state is SQLite in WAL mode, and the idempotency keys are
  durable before their requests.

Why not ``anyio.open_signal_receiver``: it covers only the async part of a command, and when it
closes it restores Python's default handler, so a second Ctrl-C during shutdown raised
``KeyboardInterrupt`` at a random place (or hung on worker threads) instead of exiting 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from batchgen.errors import Interrupted
from batchgen.outcome import signal_exit_code

SIGNALS = (signal.SIGINT, signal.SIGTERM)
Listener = Callable[[int], object]


class SignalCatcher:
    """Turns SIGINT/SIGTERM into ``Interrupted``, a call to the run's listener, or an exit."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._listener: Listener | None = None
        self._loop: Any = None  # the run's asyncio loop while it listens
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere this does nothing)."""
        with contextlib.suppress(ValueError):  # not the main thread: signals are not ours
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def listening(self, listener: Listener) -> Iterator[None]:
        """While inside, signals go to ``listener`` on the running event loop. A signal that
        arrived before is delivered at once."""
        import asyncio  # here, not at the top: the CLI installs the catcher before loading it

        self._loop, self._listener = asyncio.get_running_loop(), listener
        try:
            if self.received:
                listener(self.received[0])
            yield
        finally:
            self._loop = self._listener = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) > 1:
            self._exit_now(signum)
        if self._listener is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._listener, signum)
            return
        raise Interrupted(signum)

    def _exit_now(self, signum: int) -> None:
        first = self.received[0]
        name = signal.Signals(signum).name
        with contextlib.suppress(OSError):
            sys.stderr.flush()
            os.write(
                2,
                f"\nbatchgen: {name} again: exiting now. Nothing is lost; run the same "
                "command again to resume.\n".encode(),
            )
        os._exit(int(signal_exit_code(first)))


_process_catcher: SignalCatcher | None = None


def install() -> SignalCatcher:
    """The process's catcher, installed now if it is not yet (the CLI calls this first)."""
    global _process_catcher
    if _process_catcher is None:
        _process_catcher = SignalCatcher()
        _process_catcher.install()
    return _process_catcher


def uninstall() -> None:
    """Give SIGINT and SIGTERM back (a host program that called ``batchgen.cli.main``)."""
    global _process_catcher
    if _process_catcher is not None:
        _process_catcher.restore()
        _process_catcher = None
