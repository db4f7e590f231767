"""Fixtures of the manifest tests: a temporary working folder and a manifest writer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from manifest_testkit import Write


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder that is also the working directory, so locations read ``m.yaml:L:C``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write(workdir: Path) -> Write:
    """``write(text, name="m.yaml")`` writes dedented text into the working folder."""

    def _write(text: str | bytes, name: str = "m.yaml") -> Path:
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
