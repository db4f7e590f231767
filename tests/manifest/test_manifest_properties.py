"""Property tests (Hypothesis) of expansion and identity over generated manifests."""

from __future__ import annotations

import itertools
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchgen.contract import PARAMS, normalize_param, param_value_message
from batchgen.errors import ManifestError
from batchgen.manifest import expand, load_manifest
from batchgen.manifest.doc import Axis, ExcludeRule, JobEntry, ManifestDoc, Val, scalar_text
from batchgen.models import Location, job_key

AXIS_NAMES = ["color", "size", "style", "mood", "mode", "duration", "aspect_ratio"]
HERE = Location("gen.yaml", 1, 1)
FILE_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class Spec:
    """A generated manifest, small enough to expand by brute force in the test."""

    axes: dict[str, list[str]]
    excludes: list[dict[str, list[str]]]
    jobs: int
    rows: int
    repeat: int
    params: dict[str, Any] = field(default_factory=dict)

    def matrix_count(self) -> int:
        names = list(self.axes)
        combos = itertools.product(*self.axes.values())
        kept = 0
        for combo in combos:
            values = dict(zip(names, combo, strict=True))
            if not any(all(values[a] in vs for a, vs in rule.items()) for rule in self.excludes):
                kept += 1
        return kept

    def expected(self) -> int:
        return (self.matrix_count() + self.jobs + self.rows) * self.repeat

    def prompt(self) -> str:
        used = [f"{{{name}}}" for name in self.axes if name not in PARAMS]
        return "A shot " + " ".join(used)

    def as_yaml_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": 1, "batch": "gen", "matrix": self.axes}
        data["prompt"] = self.prompt()
        if self.excludes:
            data["exclude"] = self.excludes
        data["repeat"] = self.repeat
        data["defaults"] = {"params": {"mode": "std", "duration": 5, "sound": False}}
        data["jobs"] = [{"id": f"job-{i}", "prompt": f"Job {i}"} for i in range(self.jobs)]
        if self.rows:
            data["rows"] = "rows.csv"
        return data


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    names = draw(st.lists(st.sampled_from(AXIS_NAMES), min_size=1, max_size=3, unique=True))
    axes: dict[str, list[str]] = {}
    for name in names:
        if name in PARAMS:
            values = st.sampled_from(PARAMS[name].options)
        else:
            values = st.text(alphabet="abcdefghi", min_size=1, max_size=4)
        axes[name] = draw(st.lists(values, min_size=1, max_size=3, unique=True))
    rules = st.fixed_dictionaries(
        {},
        optional={n: st.lists(st.sampled_from(vs), min_size=1, max_size=2, unique=True)
                  for n, vs in axes.items()},
    ).filter(bool)  # fmt: skip
    spec = Spec(
        axes=axes,
        excludes=draw(st.lists(rules, max_size=2)),
        jobs=draw(st.integers(0, 3)),
        rows=draw(st.integers(0, 3)),
        repeat=draw(st.integers(1, 3)),
    )
    assume(spec.matrix_count() > 0)
    return spec


def _doc(spec: Spec) -> ManifestDoc:
    """The parsed form of ``spec``, built directly: expansion needs no file at all."""
    axes = tuple(Axis(n, HERE, tuple(Val(v, HERE) for v in vs)) for n, vs in spec.axes.items())
    rules = tuple(
        ExcludeRule(HERE, tuple((a, frozenset(vs)) for a, vs in rule.items()))
        for rule in spec.excludes
    )
    jobs = tuple(
        JobEntry(HERE, id=Val(f"job-{i}", HERE), prompt=Val(f"Job {i}", HERE))
        for i in range(spec.jobs)
    )
    rows = tuple(
        JobEntry(Location("rows.csv", i + 2), id=Val(f"row-{i}", HERE), prompt=Val("R", HERE))
        for i in range(spec.rows)
    )
    return ManifestDoc(
        file="gen.yaml",
        base_dir=Path("/nonexistent"),
        batch=Val("gen", HERE),
        prompt=Val(spec.prompt(), HERE),
        axes=axes,
        matrix_where=HERE,
        excludes=rules,
        repeat=Val(spec.repeat, HERE),
        jobs=jobs,
        rows=rows,
    )


def _write(folder: Path, spec: Spec, data: dict[str, Any] | None = None) -> Path:
    rows = "".join(f"row-{i},Row {i},{5 + i}\n" for i in range(spec.rows))
    (folder / "rows.csv").write_text("id,prompt,duration\n" + rows)
    path = folder / "gen.yaml"
    path.write_text(yaml.safe_dump(data or spec.as_yaml_data(), sort_keys=False))
    return path


def _keys(path: Path) -> list[tuple[str, str]]:
    manifest = load_manifest(path)
    return [(j.id, job_key(manifest.batch, j.id, j.request_hash)) for j in manifest.jobs]


@settings(max_examples=200, deadline=None)
@given(specs())
def test_pure_expansion_count_is_the_formula(spec: Spec) -> None:
    """expand() makes (product of axes - excluded + jobs + rows) x repeat drafts, ids unique."""
    expansion = expand(_doc(spec))
    assert expansion.problems == ()
    assert len(expansion.drafts) == spec.expected()
    assert len({d.id for d in expansion.drafts}) == len(expansion.drafts)


@FILE_SETTINGS
@given(specs())
def test_loaded_count_and_keys_are_deterministic_and_unique(spec: Spec) -> None:
    """From YAML and CSV on disk: the count matches the formula; keys are unique and stable."""
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), spec)
        first = _keys(path)
        assert len(first) == spec.expected()
        assert len({key for _, key in first}) == len(first)
        assert _keys(path) == first


@FILE_SETTINGS
@given(specs(), st.randoms(use_true_random=False))
def test_reordering_yaml_keys_changes_no_key(spec: Spec, rnd: Any) -> None:
    """Shuffling every mapping's key order (axes included) keeps each job's id and key."""

    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rnd.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), spec)
        before = set(_keys(path))
        path = _write(Path(tmp), spec, shuffled(spec.as_yaml_data()))
        assert set(_keys(path)) == before


PRINTABLE = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))
bad_values = st.one_of(
    st.text(alphabet=PRINTABLE, max_size=12),
    st.integers(-1000, 1000),
    st.booleans(),
)


@FILE_SETTINGS
@given(st.sampled_from(sorted(PARAMS)), bad_values, st.booleans())
def test_any_invalid_param_value_is_rejected_with_its_location(
    name: str, value: object, in_defaults: bool
) -> None:
    """A generated invalid value, in defaults or in a job, is refused at its line and column."""
    assume(normalize_param(name, value) is None)
    literal = json.dumps(value, ensure_ascii=False)
    if in_defaults:
        lines = ["defaults:", f"  params: {{{name}: {literal}}}", "jobs:", "  - {id: a, prompt: p}"]
        line, column = 2, len(f"  params: {{{name}: ") + 1
    else:
        lines = ["jobs:", f"  - {{id: a, prompt: p, params: {{{name}: {literal}}}}}"]
        line, column = 2, len(f"  - {{id: a, prompt: p, params: {{{name}: ") + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            load_manifest(path)
        except ManifestError as exc:
            problems = [str(p) for p in exc.problems]
        else:
            raise AssertionError(f"{name}={value!r} was accepted")
    where = f"{path}:{line}:{column}"
    assert f"{where}: {param_value_message(name, value)}" in problems
    # a value like "{x}" is also an unknown template variable, reported at the same place
    assert all(problem.startswith(f"{where}: ") for problem in problems)


def test_scalar_text_matches_the_documented_forms() -> None:
    """Booleans become true/false and integers their digits, as the API documents them."""
    assert [scalar_text(v) for v in (True, False, 5, "16:9")] == ["true", "false", "5", "16:9"]
