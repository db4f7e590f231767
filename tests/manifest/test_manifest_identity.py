"""Stable identity: a job's key follows its request, not the layout of the file."""

from __future__ import annotations

from pathlib import Path

from manifest_testkit import Write, png_bytes

from batchgen.manifest import load_manifest
from batchgen.models import job_key

DEMO = """
version: 1
batch: demo
model: kling-3-0
defaults:
  params: {mode: std, duration: 5, sound: false, aspect_ratio: "16:9"}
matrix:
  product: [sneaker, wristwatch, headphones]
  aspect_ratio: ["16:9", "9:16"]
prompt: "A cinematic product reveal of a {product} on a turntable"
jobs:
  - id: hero
    prompt: "The product in the photo rises slowly into frame"
    params: {mode: pro, duration: 10}
    references: [hero.png]
"""

DEMO_REORDERED = """
jobs:
  - references: [hero.png]
    params: {duration: 10, mode: pro}
    prompt: "The product in the photo rises slowly into frame"
    id: hero
prompt: "A cinematic product reveal of a {product} on a turntable"
matrix:
  aspect_ratio: ["16:9", "9:16"]
  product: [sneaker, wristwatch, headphones]
defaults:
  params: {aspect_ratio: "16:9", sound: false, duration: 5, mode: std}
model: kling-3-0
batch: demo
version: 1
"""


def _keys(path: str = "m.yaml") -> dict[str, str]:
    manifest = load_manifest(Path(path))
    return {job.id: job_key(manifest.batch, job.id, job.request_hash) for job in manifest.jobs}


def _hero(write: Write) -> None:
    write(png_bytes(8, 8, lambda x, y: (x, y, 0)), "hero.png")


def test_reordering_yaml_keys_changes_no_key(write: Write) -> None:
    """The same manifest with every mapping's keys (and the axes) reordered gives the same keys."""
    _hero(write)
    write(DEMO)
    before = _keys()
    write(DEMO_REORDERED)
    assert _keys() == before
    assert len(set(before.values())) == 7


def test_editing_one_job_changes_only_that_job(write: Write) -> None:
    """Changing the hero's prompt gives the hero a new key; the six matrix jobs keep theirs."""
    _hero(write)
    write(DEMO)
    before = _keys()
    write(DEMO.replace("rises slowly", "rises quickly"))
    after = _keys()
    assert {k for k in before if before[k] != after[k]} == {"hero"}


def test_editing_the_template_changes_every_matrix_job(write: Write) -> None:
    """A change to the shared prompt template is a change to every job made from it."""
    _hero(write)
    write(DEMO)
    before = _keys()
    write(DEMO.replace("on a turntable", "on a plinth"))
    after = _keys()
    assert {k for k in before if before[k] != after[k]} == set(before) - {"hero"}


def test_reference_identity_is_its_content(write: Write) -> None:
    """Moving a reference keeps the key; changing its bytes makes a new key."""
    _hero(write)
    write(DEMO)
    before = _keys()["hero"]
    write((Path("hero.png")).read_bytes(), "moved/hero-copy.png")
    write(DEMO.replace("[hero.png]", "[moved/hero-copy.png]"))
    assert _keys()["hero"] == before
    write(png_bytes(8, 8, lambda x, y: (255, y, 0)), "hero.png")
    write(DEMO)
    assert _keys()["hero"] != before


def test_spelling_out_a_default_param_changes_nothing(write: Write) -> None:
    """Writing a param at its contract default is the same request as leaving it out."""
    write("jobs:\n  - {id: a, prompt: p}\n")
    before = _keys()
    write("jobs:\n  - {id: a, prompt: p, params: {multi_shots: false, mode: pro}}\n")
    assert _keys() == before


def test_keys_are_deterministic_across_loads(write: Write) -> None:
    """Loading the same file twice gives identical keys (no randomness, no clock)."""
    _hero(write)
    write(DEMO)
    assert _keys() == _keys()
