"""The example manifests in jobs/ load, stay small, and use real images."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.contract import sniff_image_mime
from batchgen.manifest import load_manifest

JOBS = Path(__file__).resolve().parents[2] / "jobs"
EXAMPLES = sorted(JOBS.glob("*.yaml"))


def test_the_three_documented_examples_exist() -> None:
    """jobs/ holds the demo matrix, the CSV catalog and the parameter sweep."""
    assert {p.name for p in EXAMPLES} >= {"demo.yaml", "catalog.yaml", "sweep.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_is_small(path: Path) -> None:
    """Each example is valid and small enough to run on the emulator in seconds."""
    manifest = load_manifest(path)
    assert 1 <= len(manifest.jobs) <= 12
    assert path.read_text().startswith("#"), "examples open with a comment saying what they show"


def test_sweep_uses_repeat_and_exclude() -> None:
    """The sweep is 2 modes x 3 durations, minus one combination, times 2 takes."""
    manifest = load_manifest(JOBS / "sweep.yaml")
    assert len(manifest.jobs) == (2 * 3 - 1) * 2
    assert "boat-pro-15s-1" not in {job.id for job in manifest.jobs}


def test_catalog_uses_rows_and_references() -> None:
    """The catalog comes from a CSV and uses local PNG and JPEG references."""
    manifest = load_manifest(JOBS / "catalog.yaml")
    mimes = {ref.mime_type for job in manifest.jobs for ref in job.references}
    assert mimes == {"image/png", "image/jpeg"}
    assert all(str(job.where).startswith(str(JOBS / "catalog.csv")) for job in manifest.jobs)


@pytest.mark.parametrize("path", sorted((JOBS / "refs").iterdir()), ids=lambda p: p.name)
def test_reference_images_are_whole_images(path: Path) -> None:
    """Every example reference is a complete PNG (ends with IEND) or JPEG (ends with EOI)."""
    data = path.read_bytes()
    mime = sniff_image_mime(data[:16])
    assert mime in ("image/png", "image/jpeg")
    end = b"IEND\xaeB`\x82" if mime == "image/png" else b"\xff\xd9"
    assert data.endswith(end)
