"""``manifest_json_schema``: a draft-07 schema that accepts the examples and flags mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchgen.manifest import manifest_json_schema

jsonschema_rs = pytest.importorskip("jsonschema_rs")
JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _validator() -> Any:
    return jsonschema_rs.Draft7Validator(manifest_json_schema())


def test_schema_is_valid_draft_07_json() -> None:
    """The schema is JSON-serialisable and itself valid against the draft-07 meta-schema."""
    schema = json.loads(json.dumps(manifest_json_schema()))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert jsonschema_rs.meta.is_valid(schema)


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    """Every example manifest passes the schema (what editors will check as you type)."""
    document = yaml.safe_load(path.read_text())
    assert list(_validator().iter_errors(document)) == []


@pytest.mark.parametrize(
    "document",
    [
        {"jobs": [{"id": "a", "prompt": "p", "params": {"duration": 20}}]},
        {"jobs": [{"id": "a", "prompt": "p", "params": {"aspect": "16:9"}}]},
        {"matrix": {"mode": ["std", "fast"]}, "prompt": "p"},
        {"jobs": [{"id": "a", "prompt": "p"}], "limts": {}},
        {"batch": "demo"},
    ],
    ids=["bad-duration", "unknown-param", "bad-mode-axis", "unknown-key", "no-jobs"],
)
def test_schema_flags_mistakes(document: dict[str, Any]) -> None:
    """Invalid values and unknown keys show up as schema errors in the editor."""
    assert not _validator().is_valid(document)


def test_schema_accepts_templates_and_native_forms() -> None:
    """Templated params and native YAML values (5, false) are valid."""
    document = {
        "matrix": {"ratio": ["16:9"], "duration": [5, "10"]},
        "prompt": "A {ratio}",
        "defaults": {"params": {"aspect_ratio": "{ratio}", "sound": False}},
        "x-anchors": {"anything": True},
    }
    assert list(_validator().iter_errors(document)) == []
