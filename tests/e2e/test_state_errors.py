"""A state database that cannot be used is a clear StateError (what, where, what to do) with
exit 1, never "a bug in batchgen" and never a traceback."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import run_cli, write_manifest


def run_with_state(tmp_path: Path, state: Path, command: str = "run") -> tuple[int, str]:
    manifest = write_manifest(tmp_path, products=("a",))
    extra = ("--emulator", "-q") if command == "run" else ()
    done = run_cli(command, str(manifest), "--state", str(state), *extra, env={}, timeout=60)
    return done.returncode, done.stderr


def assert_clear(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    assert err.startswith("Error: "), err
    assert "bug in batchgen" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """A folder this process may not write into: mode 0500, or for root (who ignores modes)
    the immutable attribute (chattr +i); skipped where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


@pytest.mark.parametrize("command", ["run", "status", "report", "plan"])
def test_empty_state_file(tmp_path: Path, command: str) -> None:
    """An existing empty state file is refused: SQLite would quietly start a new state."""
    state = tmp_path / "s.db"
    state.touch()
    code, err = run_with_state(tmp_path, state, command)
    assert_clear(code, err, str(state), "is empty", "restore it")
    assert state.stat().st_size == 0, "nothing was written into it"


@pytest.mark.parametrize("command", ["run", "status"])
def test_state_path_is_a_folder(tmp_path: Path, command: str) -> None:
    """A state path that is a folder names the folder and asks for a file name."""
    state = tmp_path / "s.db"
    state.mkdir()
    code, err = run_with_state(tmp_path, state, command)
    assert_clear(code, err, str(state), "is a folder", "--state FILE")


@pytest.mark.parametrize("command", ["run", "report"])
def test_state_file_that_is_not_sqlite(tmp_path: Path, command: str) -> None:
    """A state file that is not SQLite says so, where, and what to do."""
    state = tmp_path / "s.db"
    state.write_text("these are notes, not a database\n" * 20)
    code, err = run_with_state(tmp_path, state, command)
    assert_clear(code, err, str(state), "not an SQLite database", "--state FILE")


def test_sqlite_file_that_is_not_a_batchgen_state(tmp_path: Path) -> None:
    """Another program's SQLite database is not read as an empty batch."""
    state = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(state)) as conn:
        conn.execute("CREATE TABLE notes (text)")
    code, err = run_with_state(tmp_path, state, "status")
    assert_clear(code, err, str(state), "not a batchgen state database")


def test_state_folder_that_is_a_file(tmp_path: Path) -> None:
    """A state path under a regular file names the file in the way."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    code, err = run_with_state(tmp_path, blocker / "s.db")
    assert_clear(code, err, str(blocker), "is a file, not a folder")


def test_read_only_state_folder_for_a_new_state(tmp_path: Path) -> None:
    """A new state in a folder that cannot be written says which folder and what to do."""
    folder = tmp_path / "ro"
    folder.mkdir()
    with immutable(folder):
        code, err = run_with_state(tmp_path, folder / "s.db")
    assert_clear(code, err, str(folder / "s.db"), "writable")


def test_read_only_state_folder_for_an_existing_state(tmp_path: Path) -> None:
    """An existing state in a folder that became read-only cannot be opened for a run (SQLite
    needs its -wal and -shm files beside it): a clear message, exit 1."""
    folder = tmp_path / "ro"
    folder.mkdir()
    code, err = run_with_state(tmp_path, folder / "s.db")
    assert code == 0, err
    with immutable(folder):
        code, err = run_with_state(tmp_path, folder / "s.db")
    assert_clear(code, err, str(folder / "s.db"), "writable")
