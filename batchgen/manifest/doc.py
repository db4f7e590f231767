"""The parsed manifest: plain frozen data with a location on every value, before expansion.

``read.py`` builds a :class:`ManifestDoc` from the YAML tree (and ``rows.py`` adds the rows of
CSV/JSONL files); ``expand.py`` turns it into :class:`Draft` jobs without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from batchgen.contract import PARAMS
from batchgen.models import Limits, Location, Window

T = TypeVar("T")

Scalar = str | int | float | bool
ParamItems = tuple[tuple[str, "Val[object]"], ...]


class Val(NamedTuple, Generic[T]):
    """A value and where it was written. (A named tuple: 100,000-job manifests make many.)"""

    value: T
    where: Location


@dataclass(frozen=True)
class Axis:
    """One matrix axis: ``name: [values...]``. An axis named like a param sets that param."""

    name: str
    where: Location
    values: tuple[Val[Scalar], ...]

    @property
    def is_param(self) -> bool:
        return self.name in PARAMS


@dataclass(frozen=True)
class ExcludeRule:
    """One ``exclude`` entry: a partial combination (axis -> accepted values, as text)."""

    where: Location
    match: tuple[tuple[str, frozenset[str]], ...]


class JobEntry(NamedTuple):
    """An explicit job (``jobs:``) or one row of a rows file, before templating.

    ``references`` is None when the entry does not say (then ``defaults.references`` apply);
    ``vars`` are the entry's template variables (``vars:`` of a job, extra columns of a row).
    """

    where: Location
    id: Val[str] | None = None
    prompt: Val[str] | None = None
    params: ParamItems = ()
    references: tuple[Val[str], ...] | None = None
    references_where: Location | None = None
    repeat: Val[int] | None = None
    vars: tuple[tuple[str, str], ...] = ()
    extra_params: ParamItems = ()


@dataclass(frozen=True)
class ManifestDoc:
    """Everything the manifest says, checked for shape and types, not yet expanded."""

    file: str
    base_dir: Path
    batch: Val[str]
    defaults_params: ParamItems = ()
    defaults_extra_params: ParamItems = ()
    defaults_references: tuple[Val[str], ...] = ()
    defaults_references_where: Location | None = None
    prompt: Val[str] | None = None
    id_template: Val[str] | None = None
    axes: tuple[Axis, ...] = ()
    matrix_where: Location | None = None
    excludes: tuple[ExcludeRule, ...] = ()
    repeat: Val[int] | None = None
    jobs: tuple[JobEntry, ...] = ()
    rows_files: tuple[Val[str], ...] = ()
    rows: tuple[JobEntry, ...] = ()
    output_dir: Val[str] | None = None
    limits: Limits = field(default_factory=Limits)
    window: Window | None = None


class Draft(NamedTuple):
    """One job after expansion and templating, before its values are checked.

    ``params`` (and ``extra_params``) map a param name to its (rendered) value and where it was
    written; checking turns them into the documented string form.
    """

    id: str
    where: Location
    id_where: Location
    prompt: str
    prompt_where: Location
    params: dict[str, Val[object]]
    references: tuple[Val[str], ...]
    references_where: Location
    extra_params: dict[str, Val[object]]


def scalar_text(value: Scalar) -> str:
    """A scalar as template text: ``true``/``false`` for booleans, digits for numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
