"""``python -m bench.peer``: the adapted cookbook processor from the command line.

Like the original's: the input JSONL, the save file, the URL, the rate in requests per minute,
the attempts and the logging level; the key from ``RIVYA_API_KEY``. Added: ``--out_dir`` for
the videos and ``--time_scale`` for the poller against a sped-up emulator. Prints its counters
as one JSON line at the end (for the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from bench.peer.processor import POLL_INTERVAL_S, Settings, process_api_requests_from_file


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--requests_filepath", type=Path, required=True)
    parser.add_argument("--save_filepath", type=Path, default=None)
    parser.add_argument("--base_url", default=os.getenv("RIVYA_BASE_URL", "https://rivya.ai"))
    parser.add_argument("--max_requests_per_minute", type=float, default=600.0)
    parser.add_argument("--max_attempts", type=int, default=5)
    parser.add_argument("--logging_level", type=int, default=logging.INFO)
    parser.add_argument("--out_dir", type=Path, default=Path("peer-out"))
    parser.add_argument("--time_scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.logging_level)
    save = args.save_filepath or args.requests_filepath.with_suffix(".results.jsonl")
    settings = Settings(
        base_url=args.base_url,
        api_key=os.environ.get("RIVYA_API_KEY", ""),
        save_path=save,
        out_dir=args.out_dir,
        max_attempts=args.max_attempts,
        poll_interval_s=POLL_INTERVAL_S * args.time_scale,
    )
    tracker = asyncio.run(
        process_api_requests_from_file(
            args.requests_filepath, settings, args.max_requests_per_minute
        )
    )
    print(json.dumps(dataclasses.asdict(tracker)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
