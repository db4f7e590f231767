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
    MAX_PROMPT_UTF16_UNITS,
    MAX_REFERENCES,
    describe_value,
    native_to_text,
    normalize_param,
    param_value_message,
    utf16_units,
)
from batchgen.manifest.doc import Draft, Val
from batchgen.manifest.problems import Problems
from batchgen.manifest.template import id_problem
from batchgen.models import MODEL_ID, JobSpec, Location, Manifest, Reference, output_stem

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
    # job id -> where it was given; output stem, lower case -> (job id, where). Locations and
    # ids only, never the drafts: a million drafts held here would double a load's memory.
    ids: dict[str, Location] = field(default_factory=dict)
    files: dict[str, tuple[str, Location]] = field(default_factory=dict)
    values: dict[tuple[str, type, object], str | None] = field(default_factory=dict)
    interned: dict[Params, Params] = field(default_factory=dict)
    param_sets: dict[tuple[tuple[str, type, object], ...], Params] = field(default_factory=dict)
    ref_sets: dict[tuple[str, ...], tuple[Reference, ...]] = field(default_factory=dict)

    def spec(self, draft: Draft) -> JobSpec | None:
        before = len(self.problems)
        self.check_id(draft)
        self.check_prompt(draft)
        params = self.params(draft)
        extra = self.extra_params(draft)
        references = self.references(draft)
        if len(self.problems) != before or params is None or references is None or extra is None:
            return None
        return JobSpec(
            draft.id, draft.prompt, params, references, draft.where, MODEL_ID, extra_params=extra
        )

    def check_id(self, draft: Draft) -> None:
        problem = id_problem(draft.id)
        if problem:
            self.problems.add(draft.id_where, problem)
        first = self.ids.get(draft.id)
        if first is not None:
            self.problems.add(draft.id_where, _duplicate_message(draft, first))
            return
        self.ids[draft.id] = draft.id_where
        if problem:
            return
        stem = valid_id_stem(draft.id).lower()
        other = self.files.get(stem)
        if other is not None:
            self.problems.add(draft.id_where, _same_file_message(draft, other[0]))
            return
        self.files[draft.id if stem == draft.id else stem] = (draft.id, draft.id_where)

    def check_prompt(self, draft: Draft) -> None:
        problem = prompt_problem(draft.id, draft.prompt)
        if problem:
            self.problems.add(draft.prompt_where, problem)

    def params(self, draft: Draft) -> Params | None:
        """The draft's params merged over the defaults, once per distinct set of values and
        types (``true`` is not ``1``; a million jobs share a few dozen sets); a refused value is
        reported at each job that has it."""
        given = tuple([(name, type(v.value), v.value) for name, v in draft.params.items()])
        try:
            found = self.param_sets.get(given)
        except TypeError:  # an unhashable value (a list from a JSONL row): never a param
            found = None
        if found is not None:
            return found
        merged = dict(DEFAULT_PARAMS)
        ok = True
        for name, val in draft.params.items():
            text = self.normalize(name, val.value)
            if text is None:
                self.problems.add(val.where, param_value_message(name, val.value))
                ok = False
            else:
                merged[name] = text
        if not ok:
            return None
        params = tuple(sorted(merged.items()))
        params = self.interned.setdefault(params, params)
        self.param_sets[given] = params
        return params

    def extra_params(self, draft: Draft) -> Params | None:
        """The extra params in string form (``true`` -> ``"true"``, ``5`` -> ``"5"``), sorted."""
        if not draft.extra_params:
            return ()
        out: dict[str, str] = {}
        for name, val in draft.extra_params.items():
            text = native_to_text(val.value)
            if text is None:
                self.problems.add(val.where, _extra_value_message(name, val.value))
                return None
            out[name] = text
        params = tuple(sorted(out.items()))
        return self.interned.setdefault(params, params)

    def normalize(self, name: str, value: object) -> str | None:
        """``contract.normalize_param``, once per distinct (name, type, value)."""
        if not isinstance(value, str | int | float | bool):
            return None  # a list or mapping (from a JSONL row) is never a param value
        key = (name, type(value), value)
        if key not in self.values:
            self.values[key] = normalize_param(name, value)
        return self.values[key]

    def references(self, draft: Draft) -> tuple[Reference, ...] | None:
        """The draft's references resolved; jobs naming the same files share one tuple."""
        count = len(draft.references)
        if count > MAX_REFERENCES:
            for ref in draft.references:  # each is still checked, as before
                self.resolve(ref)
            self.problems.add(
                draft.references_where,
                f"{count} references given; kling-3-0 takes at most {MAX_REFERENCES} per job",
            )
            return None
        names = tuple([ref.value for ref in draft.references])
        found = self.ref_sets.get(names)
        if found is not None:
            return found
        refs = tuple([self.resolve(ref) for ref in draft.references])
        if None in refs:
            return None
        usable = cast(tuple[Reference, ...], refs)  # no None left
        self.ref_sets[names] = usable
        return usable


def valid_id_stem(job_id: str) -> str:
    """``output_stem`` of an id ``id_problem`` accepts, without its regex: such an id starts
    with a letter or digit, has no character the stem replaces, and is shorter than a stem
    may be, so only trailing '.' and '_' go."""
    return job_id.rstrip("._")


def manifest_warnings(manifest: Manifest) -> list[str]:
    """What a user should know before running ``manifest`` though nothing is wrong with it: one
    line per distinct ``extra_params`` name (sent unchecked), at the first job that sends it.
    ``batchgen validate`` prints these, and a run logs them at its start."""
    first: dict[str, JobSpec] = {}
    for job in manifest.jobs:
        for name, _ in job.extra_params:
            first.setdefault(name, job)
    lines = []
    for name, job in first.items():
        where = f"{job.where}: " if job.where else ""
        lines.append(f"{where}extra_params sends '{name}' unchecked; the service may refuse it")
    return lines


def prompt_problem(job_id: str, prompt: str) -> str | None:
    """Why kling-3-0 may refuse ``prompt``: empty, or over the limit counted in code points or
    in UTF-16 code units (a JavaScript backend counts those; an emoji is two)."""
    length = len(prompt)
    if not prompt.strip():
        return (
            f"the prompt of job '{job_id}' is empty; kling-3-0 needs 1 to "
            f"{MAX_PROMPT_CHARS} characters"
        )
    if length > MAX_PROMPT_CHARS:
        return (
            f"the prompt of job '{job_id}' is {length} characters after templating; "
            f"kling-3-0 allows at most {MAX_PROMPT_CHARS}: shorten it"
        )
    units = utf16_units(prompt) if length * 2 > MAX_PROMPT_UTF16_UNITS else length
    if units > MAX_PROMPT_UTF16_UNITS:
        return (
            f"the prompt of job '{job_id}' is {units:,} UTF-16 units long ({length:,} "
            "characters; emoji and other characters beyond U+FFFF count twice in UTF-16, which "
            f"the service may use); kling-3-0 allows at most {MAX_PROMPT_UTF16_UNITS}: shorten it"
        )
    return None


def _extra_value_message(name: str, value: object) -> str:
    return (
        f"extra_params '{name}' {describe_value(value)} has no documented string form; "
        f"write it as text in quotes (e.g. '{value}') if the service expects that"
    )


def _duplicate_message(draft: Draft, first: Location) -> str:
    if first == draft.id_where:
        return (
            f"job id '{draft.id}' is given to more than one job here; make the id template "
            "use every matrix axis (or make the values differ)"
        )
    return (
        f"duplicate job id '{draft.id}' (the job at {_short(first, draft.id_where)} "
        "has it too); every job needs its own id"
    )


def _same_file_message(draft: Draft, other: str) -> str:
    return (
        f"job ids '{other}' and '{draft.id}' would write the same file "
        f"{output_stem(draft.id)}.mp4 (file names drop a leading or trailing '.' or '_', and "
        "macOS and Windows disks ignore letter case); give one of them another id"
    )


def _short(where: Location, here: Location) -> str:
    if where.file != here.file:
        return str(where)
    return f"{where.line}:{where.column}" if where.column is not None else f"row {where.line}"
