"""The import direction of docs/architecture.md holds, and the emulator stays independent."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "batchgen"

# module -> batchgen modules it must never import
FORBIDDEN = {
    "models": {"client", "store", "runner", "manifest", "cli", "commands", "emulator"},
    "errors": {"client", "store", "runner", "manifest", "cli", "commands", "emulator", "models"},
    "manifest": {"client", "store", "runner", "cli", "commands", "emulator"},
    "contract": {"client", "store", "runner", "cli", "commands", "emulator"},
    "retry": {"client", "store", "runner", "manifest", "cli", "commands", "emulator"},
    "limits": {"client", "store", "runner", "manifest", "cli", "commands", "emulator"},
    "polling": {"client", "store", "runner", "manifest", "cli", "commands", "emulator"},
    "client": {"store", "runner", "manifest", "cli", "commands", "emulator"},
    "wire": {"client", "store", "runner", "manifest", "cli", "commands", "emulator"},
    "store": {"client", "runner", "cli", "commands", "emulator"},
    "runner": {"cli", "commands", "emulator"},
    "emulator": {
        "client",
        "contract",
        "manifest",
        "models",
        "store",
        "runner",
        "cli",
        "commands",
        "retry",
        "limits",
        "polling",
        "plan",
        "report",
    },
}


def batchgen_imports(path: Path) -> set[str]:
    """The first component after ``batchgen.`` of every import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "batchgen" and len(parts) > 1:
                found.add(parts[1])
    return found


def files_of(module: str) -> list[Path]:
    folder = PKG / module
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PKG / f"{module}.py"]


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_imports_point_one_way(module: str) -> None:
    """No module imports a layer above it; the emulator imports nothing of the client side."""
    for path in files_of(module):
        bad = batchgen_imports(path) & FORBIDDEN[module]
        assert not bad, f"{path.relative_to(PKG.parent)} imports batchgen.{sorted(bad)}"
