"""Command-line pieces for ``batchgen emulator``: flags for every switch, and ``serve``.

``batchgen/cli.py`` wires these up; ``python -m batchgen.emulator`` uses them directly.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from typing import Any

from .config import ALL_READINGS, CHOICES, ApiKey, EmulatorConfig
from .server import is_loopback, running_emulator

DEFAULT_PORT = 8787

# config field -> help text. Every field of EmulatorConfig must be here (a test checks).
SWITCH_HELP: dict[str, str] = {
    "time_scale": "multiply every task's queue wait and run time by this (0.01: 100x faster)",
    "seed": "seed for which tasks fail, their timings and every fault decision",
    "keys": "an accepted key, KEY[,scopes=A+B][,status=active|revoked|expired][,account=NAME]; "
    "scopes default to all (*); repeat for more keys (the first is the one printed)",
    "public_api_disabled": "answer every /api/v1 call with 503 public_api_disabled",
    "public_api_disabled_retry_after_s": "the Retry-After (whole seconds) of those 503 answers",
    "rate_limit_per_s": "requests per second allowed per key (sliding window, all endpoints)",
    "rate_limit_window_s": "length of the rate-limit window in seconds",
    "retry_after_mode": "how a 429 says when to retry: seconds, none (no header) or http-date",
    "rate_limit_burst_rate": "share of requests that start a 429 burst for their key",
    "rate_limit_burst_s": "how long such a 429 burst lasts (longer than one window)",
    "starting_credits": "credits each account starts with",
    "prices": "price of a model per task, MODEL=CREDITS (repeatable; kling-3-0=90 by default)",
    "insufficient_credits_mode": "when the wallet is short: 402 at submit, 'task' (created, "
    "then fails with insufficient_credits), or 'generic' (created with reserved_credits 0, then "
    "fails with generation_failed or error: null, alternating; nothing charged)",
    "max_processing_per_account": "tasks processed at once per account; the rest queue",
    "failure_rate": "share of tasks that end failed with generation_failed",
    "failure_null_error_share": "share of those failed tasks reported with error: null",
    "result_url_ttl_s": "seconds a result URL works before answering 410 (real seconds)",
    "result_origin": "where result URLs point: api (the API's origin), or other (a second "
    "listener, like a CDN, that needs no key and records whether one was sent)",
    "end_status_rate": "share of would-be successes that end with --end-status-name instead "
    "(refunded)",
    "end_status_name": "the terminal status those tasks end with (not in the documentation)",
    "interim_status_name": "a status name shown instead of 'processing' while a task runs, "
    "e.g. paused_for_review (default: none)",
    "extra_params": "comma-separated param names accepted besides the documented five (a "
    "service that added optional params; any string value), e.g. seed,style",
    "file_ttl_s": "seconds an uploaded file stays usable (real seconds)",
    "file_id_field": "name of the id field in file objects: id, or the file_id variant",
    "files_answer": "file objects in full, or minimal (only url and duration_token)",
    "size_limit": "what '10 MB' means for images: binary (10,485,760 bytes) or decimal "
    "(10,000,000)",
    "prompt_count": "what the 2000-character prompt limit counts: codepoints, or utf16 code "
    "units (as a JavaScript backend would)",
    "extra_fields": "add unknown fields to every JSON object the API answers with (tasks, "
    "files, models, credits, errors), as the compatibility policy allows",
    "idempotency_ttl_s": "seconds an Idempotency-Key is remembered",
    "replay_in_flight": "a replay that arrives while the first request with its key is still "
    "processed: wait for it (the contract), or answer 409 idempotency_conflict (a reading "
    "the real service may take)",
    "fault_500_rate": "share of requests answered 500 internal_error",
    "fault_502_rate": "share of requests answered 502 bad_gateway",
    "fault_503_rate": "share of requests answered 503 service_unavailable",
    "drop_rate": "share of requests whose connection is closed without an answer",
    "drop_after_create_share": "share of dropped creates that are dropped after the task was "
    "created and charged",
    "slow_rate": "share of requests answered late",
    "slow_delay_s": "how late a slow answer is, in seconds",
    "create_status": "HTTP status for a new task: 201, 200, 202, or mixed",
    "admin_enabled": "serve /_emulator/ledger and /_emulator/admin/* (default: only on "
    "loopback hosts)",
    "state_file": "keep state in this JSON-lines file so it survives a restart",
}
ALL_READINGS_HELP = (
    "turn on every reading the real service may take where its documentation is silent, at "
    "once (flags given beside it win): "
    + ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in ALL_READINGS.items())
)
FLAG_NAMES = {"keys": "--key", "prices": "--price", "admin_enabled": "--admin"}
METAVARS = {
    "keys": "SPEC",
    "prices": "MODEL=CREDITS",
    "state_file": "PATH",
    "rate_limit_per_s": "N",
    "time_scale": "FACTOR",
    "interim_status_name": "NAME",
    "extra_params": "NAMES",
}


def _metavar(name: str) -> str | None:
    if name in METAVARS:
        return METAVARS[name]
    if name.endswith("_s"):
        return "SECONDS"
    if name.endswith(("_rate", "_share")):
        return "SHARE"
    if name in CHOICES:
        return None
    return "N"


def flag_for(name: str) -> str:
    """The command-line flag of config field ``name``."""
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--host``, ``--port`` and one flag per switch (all default to the config's)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)"
    )
    defaults = EmulatorConfig()
    for field in dataclasses.fields(EmulatorConfig):
        _add_switch(parser, field.name, getattr(defaults, field.name))
    parser.add_argument(
        "--all-readings", dest="all_readings", action="store_true", help=ALL_READINGS_HELP
    )


def _add_switch(parser: argparse.ArgumentParser, name: str, default: Any) -> None:
    flag, text = flag_for(name), SWITCH_HELP[name]
    shown = f" (default: {_shown(default)})"
    if name in ("keys", "prices"):
        parser.add_argument(
            flag, dest=name, action="append", metavar=_metavar(name), help=text + shown
        )
    elif isinstance(default, bool):
        parser.add_argument(flag, dest=name, action="store_true", default=None, help=text)
    elif name == "admin_enabled":
        parser.add_argument(
            flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text
        )
    else:
        kind = type(default) if default is not None else str
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            choices=CHOICES.get(name),
            metavar=_metavar(name),
            help=text + shown,
        )


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(k.key if isinstance(k, ApiKey) else str(k) for k in value)
    if isinstance(value, dict):
        return " ".join(f"{m}={p}" for m, p in value.items())
    return str(value)


def config_from_args(ns: argparse.Namespace) -> EmulatorConfig:
    """The config the parsed flags ask for (unset flags keep the defaults)."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(EmulatorConfig):
        value = getattr(ns, field.name, None)
        if value is None:
            continue
        if field.name == "prices":
            value = dict(_price(spec) for spec in value)
        changes[field.name] = value
    if getattr(ns, "all_readings", False):
        return EmulatorConfig.with_all_readings(**changes)
    return EmulatorConfig().replace(**changes)


def _price(spec: str) -> tuple[str, int]:
    model, sep, credits = spec.partition("=")
    if not sep or not credits.isdigit():
        raise ValueError(f"--price takes MODEL=CREDITS (e.g. kling-3-0=90), got {spec!r}")
    return model, int(credits)


def serve(cfg: EmulatorConfig, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> int:
    """Serve until Ctrl-C or SIGTERM; print the base URL and the export line. Exit code."""
    try:
        asyncio.run(_serve(cfg, host, port))
    except OSError as exc:
        print(
            f"Error: cannot listen on {host}:{port} ({exc.strerror or exc}). Pick another "
            "port with --port N (0 picks a free one).",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        pass
    print("emulator stopped", file=sys.stderr)
    return 0


async def _serve(cfg: EmulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_emulator(cfg, host, port) as emu:
        _announce(emu.base_url, emu.api_key, emu.admin_enabled, host, cfg)
        await stop.wait()


def _announce(base_url: str, key: str, admin: bool, host: str, cfg: EmulatorConfig) -> None:
    print(f"Rivya API emulator (kling-3-0) listening on {base_url}")
    print(f"  time scale {cfg.time_scale}, seed {cfg.seed}, {cfg.rate_limit_per_s:g} req/s per key")
    if cfg.all_readings:
        print("  every reading of the contract's silent spots is on (--all-readings)")
    if admin:
        print(f"  ledger: {base_url}/_emulator/ledger")
    elif not is_loopback(host):
        print("  admin and ledger endpoints are off on a non-loopback host (--admin turns them on)")
    print("Paste this into another shell to point batchgen at it:")
    print(f"export RIVYA_BASE_URL={base_url} RIVYA_API_KEY={key}")
    print("Stop with Ctrl-C.", flush=True)
