"""Drafts -> validated :class:`JobSpec`: ids, prompts, params and reference counts. Pure.

References are resolved through a callable the caller passes in (``refs.ReferenceResolver``
reads files; tests may pass a pure stand-in), so this module never touches the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from batchgen.contract import (
    DEFAULT_PARAMS,
    MAX_PROMPT_CHARS,
    MAX_REFERENCES,
    normalize_param,
    param_value_message,
)
from batchgen.manifest.doc import Draft, Val
from batchgen.manifest.problems import Problems
from batchgen.manifest.template import id_problem
from batchgen.models import MODEL_ID, JobSpec, Location, Reference, output_stem

Resolve = Callable[[Val[str]], Reference | None]
Params = tuple[tuple[str, str], ...]


def build_specs(drafts: Iterable[Draft], resolve: Resolve, problems: Problems) -> list[JobSpec]:
    """A JobSpec per draft; every problem found is added (a job with problems is left out)."""
    checker = _Checker(resolve, problems)
    specs = (checker.spec(draft) for draft in drafts)
    return [spec for spec in specs if spec is not None]


@dataclass
class _Checker:
    resolve: Resolve
    problems: Problems
    ids: dict[str, Draft] = field(default_factory=dict)
    files: dict[str, Draft] = field(default_factory=dict)  # output stem, lower case -> job
    values: dict[tuple[str, type, object], str | None] = field(default_factory=dict)
    interned: dict[Params, Params] = field(default_factory=dict)

    def spec(self, draft: Draft) -> JobSpec | None:
        before = len(self.problems)
        self.check_id(draft)
        self.check_prompt(draft)
        params = self.params(draft)
        references = self.references(draft)
        if len(self.problems) != before or params is None or references is None:
            return None
        return JobSpec(draft.id, draft.prompt, params, references, draft.where, MODEL_ID)

    def check_id(self, draft: Draft) -> None:
        problem = id_problem(draft.id)
        if problem:
            self.problems.add(draft.id_where, problem)
        first = self.ids.setdefault(draft.id, draft)
        if first is not draft:
            self.problems.add(draft.id_where, _duplicate_message(draft, first))
            return
        if problem:
            return
        other = self.files.setdefault(output_stem(draft.id).lower(), draft)
        if other is not draft:
            self.problems.add(draft.id_where, _same_file_message(draft, other))

    def check_prompt(self, draft: Draft) -> None:
        length = len(draft.prompt)
        if not draft.prompt.strip():
            self.problems.add(
                draft.prompt_where,
                f"the prompt of job '{draft.id}' is empty; kling-3-0 needs 1 to "
                f"{MAX_PROMPT_CHARS} characters",
            )
        elif length > MAX_PROMPT_CHARS:
            self.problems.add(
                draft.prompt_where,
                f"the prompt of job '{draft.id}' is {length} characters after templating; "
                f"kling-3-0 allows at most {MAX_PROMPT_CHARS}: shorten it",
            )

    def params(self, draft: Draft) -> Params | None:
        merged = dict(DEFAULT_PARAMS)
        ok = True
        for name, val in draft.params.items():
            text = self.normalize(name, val.value)
            if text is None:
                self.problems.add(val.where, param_value_message(name, val.value))
                ok = False
            else:
                merged[name] = text
        params = tuple(sorted(merged.items()))
        return self.interned.setdefault(params, params) if ok else None

    def normalize(self, name: str, value: object) -> str | None:
        """``contract.normalize_param``, once per distinct (name, type, value)."""
        if not isinstance(value, str | int | float | bool):
            return None  # a list or mapping (from a JSONL row) is never a param value
        key = (name, type(value), value)
        if key not in self.values:
            self.values[key] = normalize_param(name, value)
        return self.values[key]

    def references(self, draft: Draft) -> tuple[Reference, ...] | None:
        count = len(draft.references)
        refs = tuple(self.resolve(ref) for ref in draft.references)
        if count > MAX_REFERENCES:
            self.problems.add(
                draft.references_where,
                f"{count} references given; kling-3-0 takes at most {MAX_REFERENCES} per job",
            )
            return None
        if None in refs:
            return None
        return cast(tuple[Reference, ...], refs)  # no None left


def _duplicate_message(draft: Draft, first: Draft) -> str:
    if first.id_where == draft.id_where:
        return (
            f"job id '{draft.id}' is given to more than one job here; make the id template "
            "use every matrix axis (or make the values differ)"
        )
    return (
        f"duplicate job id '{draft.id}' (the job at {_short(first.id_where, draft.id_where)} "
        "has it too); every job needs its own id"
    )


def _same_file_message(draft: Draft, other: Draft) -> str:
    return (
        f"job ids '{other.id}' and '{draft.id}' would write the same file "
        f"{output_stem(draft.id)}.mp4 (file names drop a leading or trailing '.' or '_', and "
        "macOS and Windows disks ignore letter case); give one of them another id"
    )


def _short(where: Location, here: Location) -> str:
    if where.file != here.file:
        return str(where)
    return f"{where.line}:{where.column}" if where.column is not None else f"row {where.line}"
