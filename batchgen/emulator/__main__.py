"""``python -m batchgen.emulator``: serve the emulator (the same flags as ``batchgen emulator``)."""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, config_from_args, serve


def main(argv: list[str] | None = None) -> int:
    """Parse flags, serve until stopped, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m batchgen.emulator",
        description="Serve an emulated Rivya Public API v1 (kling-3-0) for tests and rehearsals.",
    )
    add_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        cfg = config_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    return serve(cfg, ns.host, ns.port)


if __name__ == "__main__":
    sys.exit(main())
