"""Reading ``defaults:`` and the explicit ``jobs:`` list."""

from __future__ import annotations

from dataclasses import dataclass

from batchgen.manifest import fields
from batchgen.manifest.doc import JobEntry, ParamItems, Val, scalar_text
from batchgen.manifest.problems import Problems
from batchgen.manifest.read_matrix import AXIS_NAME
from batchgen.manifest.yamltree import YEntry, YNode
from batchgen.models import Location

DEFAULTS_KEYS = ("params", "extra_params", "references")
JOB_KEYS = ("id", "prompt", "params", "extra_params", "references", "repeat", "vars")


@dataclass(frozen=True)
class Defaults:
    params: ParamItems = ()
    extra_params: ParamItems = ()
    references: tuple[Val[str], ...] = ()
    references_where: Location | None = None


def read_defaults(node: YNode, problems: Problems) -> Defaults:
    """``defaults: {params: {...}, references: [...]}``; every job starts from these."""
    mapping = fields.as_map(node, "defaults", problems)
    if mapping is None:
        return Defaults()
    found = fields.check_keys(mapping, DEFAULTS_KEYS, "defaults", problems)
    params = found.get("params")
    extra = found.get("extra_params")
    refs = found.get("references")
    refs_value = fields.references(refs.value, "defaults.references", problems) if refs else None
    return Defaults(
        params=fields.params(params.value, "defaults.params", problems) if params else (),
        extra_params=fields.extra_params(extra.value, "defaults.extra_params", problems)
        if extra
        else (),
        references=refs_value or (),
        references_where=refs.value.where if refs else None,
    )


def read_jobs(node: YNode, problems: Problems) -> tuple[JobEntry, ...]:
    """The explicit jobs, each a mapping with the keys of :data:`JOB_KEYS`."""
    items = fields.as_list(node, "jobs", problems)
    if items is None:
        return ()
    jobs = (_job(item, problems) for item in items)
    return tuple(job for job in jobs if job is not None)


def _job(node: YNode, problems: Problems) -> JobEntry | None:
    mapping = fields.as_map(node, "a job", problems)
    if mapping is None:
        return None
    found = fields.check_keys(mapping, JOB_KEYS, "a job", problems)
    refs = found.get("references")
    return JobEntry(
        where=mapping.where,
        id=_job_id(found.get("id"), problems),
        prompt=_optional(found.get("prompt"), problems),
        params=fields.params(found["params"].value, "params", problems)
        if "params" in found
        else (),
        references=fields.references(refs.value, "references", problems) if refs else None,
        references_where=refs.value.where if refs else None,
        repeat=fields.positive_int(found["repeat"].value, "repeat", problems)
        if "repeat" in found
        else None,
        vars=_vars(found["vars"].value, problems) if "vars" in found else (),
        extra_params=fields.extra_params(found["extra_params"].value, "extra_params", problems)
        if "extra_params" in found
        else (),
    )


def _job_id(entry: YEntry | None, problems: Problems) -> Val[str] | None:
    if entry is None:
        return None
    value = fields.scalar(entry.value, "id", problems)
    return Val(scalar_text(value.value), value.where) if value else None


def _optional(entry: YEntry | None, problems: Problems) -> Val[str] | None:
    return fields.text(entry.value, "prompt", problems) if entry else None


def _vars(node: YNode, problems: Problems) -> tuple[tuple[str, str], ...]:
    """``vars: {name: value}``: template variables of one job (text, numbers or booleans)."""
    mapping = fields.as_map(node, "vars", problems)
    if mapping is None:
        return ()
    out: list[tuple[str, str]] = []
    for entry in mapping.entries:
        if not AXIS_NAME.fullmatch(entry.key):
            problems.add(entry.key_where, f"variable name '{entry.key}' must be letters, digits, _")
            continue
        value = fields.scalar(entry.value, f"variable '{entry.key}'", problems)
        if value is not None:
            out.append((entry.key, scalar_text(value.value)))
    return tuple(out)
