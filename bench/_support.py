"""What more than one benchmark needs: the emulator in its own process."""

from __future__ import annotations

import subprocess
import sys


def start_emulator(*flags: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start ``batchgen emulator --port 0 FLAGS`` in a subprocess (so it has a core of its own);
    return it with the base URL and key read from the export line it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchgen.emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("export "):
            env = dict(item.split("=", 1) for item in line.split()[1:])
            return proc, env["RIVYA_BASE_URL"], env["RIVYA_API_KEY"]
    raise RuntimeError("the emulator exited before printing its export line")
