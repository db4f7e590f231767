"""Running the emulator: in the caller's event loop, or in a thread with its own loop.

``running_emulator`` serves until its ``async with`` block ends; ``EmulatorThread`` does the
same in a background thread (for tests that run batchgen as a subprocess). Both offer
``base_url``, ``api_key``, ``ledger()`` and admin helpers (``topup``, ``set_switches``,
``restart``).

Beside the API, a second listener serves result files as another origin (``result_base_url``:
127.0.0.2 when the API is on 127.0.0.1 and that address can be bound, else the API's host on
another port). Result URLs point there when the ``result_origin`` switch is ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import anyio
from aiohttp import web

from .app import build_app
from .cdn import build_result_app
from .config import EmulatorConfig
from .ledger import build_ledger
from .state import EmulatorState

T = TypeVar("T")
SHUTDOWN_TIMEOUT_S = 1.0
OTHER_LOOPBACK = "127.0.0.2"  # the second origin's host when the API is on 127.0.0.1


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RunningEmulator:
    """A live emulator server; create it with ``running_emulator``."""

    def __init__(self, config: EmulatorConfig, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.state = EmulatorState(config)
        enabled = config.admin_enabled
        self.admin_enabled = is_loopback(host) if enabled is None else enabled
        self._runner: web.AppRunner | None = None
        self._result_runner: web.AppRunner | None = None
        self._result_hosts = (OTHER_LOOPBACK, host) if host == "127.0.0.1" else (host,)
        self.result_port = 0
        self._restarts: anyio.abc.ObjectSendStream[float] | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (IPv6 hosts in brackets)."""
        return _url(self.host, self.port)

    @property
    def result_base_url(self) -> str:
        """``http://HOST:PORT`` of the second origin that serves result files."""
        return _url(self._result_hosts[0], self.result_port)

    @property
    def api_key(self) -> str:
        """A key with every scope (the first configured key)."""
        return self.state.config.api_key

    @property
    def config(self) -> EmulatorConfig:
        """The switches in force now."""
        return self.state.config

    def ledger(self) -> dict[str, Any]:
        """The same dict ``GET /_emulator/ledger`` returns."""
        return build_ledger(self.state, self.state.clock.now())

    def topup(self, credits: int, account: str | None = None) -> int:
        """Add credits; returns the new balance."""
        account = account or self.state.config.keys[0].account
        self.state.topup(account, credits)
        return self.state.wallet.balance(account)

    def set_switches(self, **changes: Any) -> EmulatorConfig:
        """Flip switches at runtime; returns the config now in force."""
        self.state.apply_config(self.state.config.replace(**changes))
        return self.state.config

    async def restart(self, downtime_s: float = 0.0) -> None:
        """Stop serving (every connection drops), keep state, serve again on the same port."""
        await self._stop_site()
        if self.state.journal is not None:  # a real restart: state comes back from the file
            self.state.close()
            self.state = EmulatorState(self.state.config)
        await anyio.sleep(downtime_s)
        await self._start_site()

    async def _request_restart(self, downtime_s: float) -> None:
        assert self._restarts is not None
        await self._restarts.send(downtime_s)

    async def _start_site(self) -> None:
        app = build_app(
            self.state.config,
            admin_enabled=self.admin_enabled,
            state=self.state,
            restart=self._request_restart,
        )
        self._runner, self.port = await _listen(app, self.host, self.port)
        try:
            await self._start_result_site()
        except BaseException:
            await self._stop_site()
            raise

    async def _start_result_site(self) -> None:
        *fallbacks, last = self._result_hosts
        for host in fallbacks:
            try:
                listening = await _listen(build_result_app(self.state), host, self.result_port)
            except OSError:  # 127.0.0.2 is not bound everywhere (e.g. macOS): use the API's host
                continue
            self._result_hosts = (host,)
            break
        else:
            listening = await _listen(build_result_app(self.state), last, self.result_port)
            self._result_hosts = (last,)
        self._result_runner, self.result_port = listening
        self.state.result_origin = self.result_base_url

    async def _stop_site(self) -> None:
        for name in ("_runner", "_result_runner"):
            runner = getattr(self, name)
            if runner is not None:
                setattr(self, name, None)
                await runner.cleanup()

    async def _serve_restarts(self, requests: anyio.abc.ObjectReceiveStream[float]) -> None:
        async for downtime_s in requests:
            await anyio.sleep(0.05)  # let the admin call's answer leave first
            await self.restart(downtime_s)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); return its runner and the port."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


@contextlib.asynccontextmanager
async def running_emulator(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on ``host:port`` (0: an ephemeral port) for the ``async with`` block."""
    emu = RunningEmulator(config or EmulatorConfig(), host, port)
    try:
        await emu._start_site()
    except BaseException:
        emu.state.close()
        raise
    send, receive = anyio.create_memory_object_stream[float](1)
    emu._restarts = send
    # One supervised task serves admin restart requests. It is not a task group around the
    # ``yield`` because that would wrap every exception of the caller's block in a group.
    supervisor = asyncio.ensure_future(emu._serve_restarts(receive))
    try:
        yield emu
    finally:
        supervisor.cancel()
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            await emu._stop_site()
            emu.state.close()
            send.close()
            receive.close()


class EmulatorThread:
    """``running_emulator`` in a background thread with its own event loop."""

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._config = config or EmulatorConfig()
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._emu: RunningEmulator | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> EmulatorThread:
        self._thread = threading.Thread(target=self._run, name="batchgen-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the thread that entered the context
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with running_emulator(self._config, self._host, self._port) as emu:
            self._emu = emu
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "the emulator thread is not running"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    @property
    def emulator(self) -> RunningEmulator:
        """The server running in the thread (use its methods only through this class)."""
        assert self._emu is not None, "the emulator thread is not running"
        return self._emu

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.emulator.base_url

    @property
    def api_key(self) -> str:
        """A key with every scope."""
        return self.emulator.api_key

    @property
    def result_base_url(self) -> str:
        """``http://HOST:PORT`` of the second origin that serves result files."""
        return self.emulator.result_base_url

    def ledger(self) -> dict[str, Any]:
        """The ledger, read safely from the server's own thread."""
        return self._call(_call_soon(self.emulator.ledger))

    def topup(self, credits: int, account: str | None = None) -> int:
        """Add credits; returns the new balance."""
        balance: int = self._call(_call_soon(self.emulator.topup, credits, account))
        return balance

    def set_switches(self, **changes: Any) -> EmulatorConfig:
        """Flip switches at runtime."""
        config: EmulatorConfig = self._call(_call_soon(self.emulator.set_switches, **changes))
        return config

    def restart(self, downtime_s: float = 0.0) -> None:
        """Restart the server (connections drop, state is kept)."""
        self._call(self.emulator.restart(downtime_s))


async def _call_soon(func: Any, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)
