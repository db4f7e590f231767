"""Run the batchgen CLI and SIGKILL it just before its K-th durable SQLite write.

Usage: ``python tests/e2e/write_killer.py ARGS...`` (the arguments of ``batchgen``).

A durable write is a ``COMMIT`` (or ``END``), or an ``INSERT``/``UPDATE``/``DELETE``/``REPLACE``
run outside a transaction (autocommit). Every ``sqlite3`` connection the process opens is traced
(``set_trace_callback`` sees each statement before SQLite runs it), so the kill lands with
exactly K-1 writes durable:

* ``BATCHGEN_KILL_AT_WRITE=K``: SIGKILL this process just before write K (1-based);
* ``BATCHGEN_WRITES_FILE=PATH``: at exit, write one JSON line per durable write, each the last
  data statement it made durable (for labelling K), e.g. ``"UPDATE jobs SET status = ?, ..."``.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sqlite3
import sys
from typing import Any

_KILL_AT = int(os.environ.get("BATCHGEN_KILL_AT_WRITE", "0"))
_WRITES_FILE = os.environ.get("BATCHGEN_WRITES_FILE")
_DATA = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_writes: list[str] = []
_pending: dict[int, str] = {}  # per connection: the last data statement of its transaction
_connect = sqlite3.connect


def _on_statement(conn: sqlite3.Connection, sql: str) -> None:
    words = sql.strip().split(None, 1)
    verb = words[0].upper() if words else ""
    if verb in _DATA:
        _pending[id(conn)] = " ".join(sql.split())[:90]
        if conn.in_transaction:
            return
    elif verb not in ("COMMIT", "END"):
        return
    if len(_writes) + 1 == _KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    _writes.append(_pending.pop(id(conn), verb))


def _traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    conn = _connect(*args, **kwargs)
    conn.set_trace_callback(lambda sql: _on_statement(conn, sql))
    return conn


def _save_writes() -> None:
    if _WRITES_FILE:
        with open(_WRITES_FILE, "w") as out:
            out.writelines(json.dumps(label) + "\n" for label in _writes)


if __name__ == "__main__":
    sqlite3.connect = _traced_connect  # type: ignore[assignment]
    atexit.register(_save_writes)
    from batchgen.cli import main

    sys.exit(main(sys.argv[1:]))
