"""The layers of docs/architecture.md hold: every module imports only from layers below its own
(or its own layer's foundations listed first), and the emulator stays independent."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "batchgen"

# Bottom to top. A module may import modules of *lower* layers only (never its own layer, never
# a higher one). The emulator is outside the stack: it imports nothing of batchgen but itself.
LAYERS: list[set[str]] = [
    {"_version", "errors", "console", "redact", "limits"},  # no batchgen imports at all
    {"models", "files"},  # shared frozen dataclasses and enums; result files on disk
    {"outcome", "contract", "retry", "polling", "rows", "keys", "binding"},  # pure rules
    {"events", "gates", "schedule", "manifest", "signals"},  # pure, over the above
    {"wire", "store", "eventlog", "jsonlog", "progress", "plan"},  # wire, state, subscribers
    {"client", "report", "recorder", "config"},  # HTTP; report; events table; RunConfig
    {"uploads", "onfinish", "preflight", "gallery"},  # bodies; --on-finish; checks; HTML
    {"downloads"},
    {"runner"},
    {"commands"},  # one library call per CLI command
    {"live"},  # status --json and --watch, over commands
    {"cli", "__init__"},  # thin adapter; the public API
    {"__main__"},
]
OUTSIDE = {"emulator"}
LAYER_OF = {module: i for i, layer in enumerate(LAYERS) for module in layer}


def batchgen_imports(path: Path) -> set[str]:
    """The first component after ``batchgen.`` of every import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "batchgen":
                names = [f"batchgen.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "batchgen" and len(parts) > 1:
                found.add(parts[1])
    return found


def files_of(module: str) -> list[Path]:
    folder = PKG / module
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PKG / f"{module}.py"]


def all_modules() -> set[str]:
    return {p.stem for p in PKG.glob("*.py")} | {
        p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in the stack (or declared outside it) to be allowed."""
    assert all_modules() - set(LAYER_OF) - OUTSIDE == set()


@pytest.mark.parametrize("module", sorted(LAYER_OF))
def test_imports_point_down(module: str) -> None:
    """No module imports its own layer or a layer above it; only the CLI reaches the emulator
    (to serve it) and only commands start it."""
    for path in files_of(module):
        for imported in batchgen_imports(path) - {module}:
            if imported in OUTSIDE:
                assert module in ("cli", "commands"), f"{module} imports batchgen.{imported}"
                continue
            assert LAYER_OF[imported] < LAYER_OF[module], (
                f"{path.relative_to(PKG.parent)} imports batchgen.{imported}, "
                f"which is not in a lower layer"
            )


def test_emulator_imports_nothing_of_the_client_side() -> None:
    """The emulator shares no code with the client, so they cannot share one misreading."""
    for path in files_of("emulator"):
        assert batchgen_imports(path) <= {"emulator"}, path
