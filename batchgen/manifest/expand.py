"""Expansion: a parsed manifest -> one :class:`Draft` per job. Pure: no files, no network.

Jobs come from three sources, in this order: the matrix (the cartesian product of its axes, in
the order written, minus ``exclude``), the explicit ``jobs``, then the rows of ``rows:`` files.
Each job starts from ``defaults`` and overrides them; ``repeat: N`` turns a job into N variations
named ``<id>-1`` ... ``<id>-N`` (the manifest's ``repeat`` applies to every job unless the job or
row sets its own). The count is therefore
``(product of axis sizes - excluded + jobs + rows) x repeat``.

A matrix job's default id joins the slugs of its axis values: the non-param axes in alphabetical
order, then the param axes in the contract's order (``sneaker-16x9``). That order, not the order
the axes are written in, so that reordering YAML keys never renames (and so never re-runs) a job.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from batchgen.contract import PARAM_NAMES
from batchgen.manifest.doc import Axis, Draft, JobEntry, ManifestDoc, Scalar, Val, scalar_text
from batchgen.manifest.template import compile_template, slugify
from batchgen.models import Location

Variables = Mapping[str, str]


@dataclass(frozen=True)
class Expansion:
    """The drafts of every job, in order, and the problems templating found."""

    drafts: tuple[Draft, ...]
    problems: tuple[tuple[Location, str], ...]


def most_jobs(doc: ManifestDoc) -> int:
    """How many jobs ``doc`` expands to at most (``exclude`` not subtracted), computed without
    expanding: what the sanity cap is checked against before any job is built."""
    repeat = doc.repeat.value if doc.repeat else 1
    matrix = math.prod(len(axis.values) for axis in doc.axes) if doc.axes else 0
    entries = sum(
        entry.repeat.value if entry.repeat else repeat for entry in (*doc.jobs, *doc.rows)
    )
    return matrix * repeat + entries


def expand(doc: ManifestDoc) -> Expansion:
    """Every job the manifest describes, templated, excluded and repeated. Never raises."""
    problems: list[tuple[Location, str]] = []
    drafts = tuple(stream_drafts(doc, problems))
    return Expansion(drafts, tuple(dict.fromkeys(problems)))


def stream_drafts(doc: ManifestDoc, problems: list[tuple[Location, str]]) -> Iterator[Draft]:
    """``expand``, one draft at a time (a million-job manifest is never held as drafts): the
    same drafts in the same order; templating's problems are appended to ``problems`` as they
    are found (all of them by the time the iterator is exhausted)."""
    expander = _Expander(doc, problems)
    yield from expander.matrix()
    for entry in doc.jobs:
        expander.entry(entry, "job")
        yield from expander.drain()
    for entry in doc.rows:
        expander.entry(entry, "row")
        yield from expander.drain()


def id_axis_order(axes: Iterable[Axis]) -> list[str]:
    """Axis names in default-id order: other axes alphabetically, then params in contract order."""
    names = {axis.name for axis in axes}
    return sorted(names - set(PARAM_NAMES)) + [p for p in PARAM_NAMES if p in names]


def unknown_variable_message(name: str, available: Iterable[str]) -> str:
    """What is wrong with ``{name}``, the closest known variable, and every variable known here."""
    options = sorted(available)
    if not options:
        return (
            f"unknown template variable {{{name}}}: nothing defines it here "
            "(give the job `vars:`, or write {{ and }} for literal braces)"
        )
    close = difflib.get_close_matches(name, options, n=1)
    hint = f"; did you mean {{{close[0]}}}?" if close else ""
    listed = ", ".join("{" + option + "}" for option in options)
    return f"unknown template variable {{{name}}}{hint} (variables here: {listed})"


class _Expander:
    def __init__(self, doc: ManifestDoc, problems: list[tuple[Location, str]]) -> None:
        self.doc = doc
        self.drafts: list[Draft] = []  # emitted and not yet drained
        self.emitted = 0
        self.problems = problems
        self.param_axes = [(i, axis.name) for i, axis in enumerate(doc.axes) if axis.is_param]
        self.repeat = doc.repeat.value if doc.repeat else 1

    def render(
        self,
        source: Val[str],
        variables: Variables,
        *,
        at: Location | None = None,
        note: str = "",
        transform: Callable[[str], str] | None = None,
    ) -> str:
        """Render a template, adding a problem for each unknown variable (at ``at`` if given)."""
        text = source.value
        if "{" not in text and "}" not in text:  # a row's own literal id or prompt: no cache
            return text  # (``transform`` applies to variable values only)
        template = compile_template(source.value)
        for name in template.names:
            if name not in variables:
                message = unknown_variable_message(name, variables)
                self.problems.append((at or source.where, message + note))
        return template.render(variables, transform)

    def params(
        self, items: Iterable[tuple[str, Val[object]]], variables: Variables
    ) -> dict[str, Val[object]]:
        out: dict[str, Val[object]] = {}
        for name, val in items:
            if isinstance(val.value, str) and "{" in val.value:
                val = Val(self.render(Val(val.value, val.where), variables), val.where)
            out[name] = val
        return out

    def references(self, refs: tuple[Val[str], ...], variables: Variables) -> tuple[Val[str], ...]:
        if not any("{" in r.value for r in refs):
            return refs
        return tuple(Val(self.render(r, variables), r.where) for r in refs)

    def drain(self) -> list[Draft]:
        drafts, self.drafts = self.drafts, []
        return drafts

    def emit(self, draft: Draft, repeat: int) -> None:
        self.emitted += repeat
        if repeat == 1:
            self.drafts.append(draft)
            return
        for n in range(1, repeat + 1):
            self.drafts.append(draft._replace(id=f"{draft.id}-{n}"))

    # -- the matrix ------------------------------------------------------------------------

    def matrix(self) -> Iterator[Draft]:
        doc = self.doc
        if not doc.axes or doc.prompt is None or doc.matrix_where is None:
            return
        self._check_matrix_templates()
        before = self.emitted
        names = [axis.name for axis in doc.axes]
        id_positions = [names.index(n) for n in id_axis_order(doc.axes)]
        choices = [[(scalar_text(v.value), v) for v in axis.values] for axis in doc.axes]
        slugs = {text: slugify(text) for axis in choices for text, _ in axis}
        prompt = compile_template(doc.prompt.value)
        id_template = compile_template(doc.id_template.value) if doc.id_template else None
        for combo in itertools.product(*choices):
            texts = [text for text, _ in combo]
            variables = dict(zip(names, texts, strict=True))
            if doc.excludes and self._excluded(variables):
                continue
            if id_template is None:
                job_id = "-".join([slugs[texts[i]] for i in id_positions])
            else:
                job_id = id_template.render(variables, slugify)
            self._matrix_job(variables, job_id, prompt.render(variables), combo)
            yield from self.drain()
        if doc.excludes and self.emitted == before:
            self.problems.append(
                (doc.excludes[0].where, "exclude removes every matrix combination")
            )

    def _excluded(self, variables: Variables) -> bool:
        return any(
            all(variables[axis] in values for axis, values in rule.match)
            for rule in self.doc.excludes
        )

    def _matrix_job(
        self,
        variables: Variables,
        job_id: str,
        prompt: str,
        combo: tuple[tuple[str, Val[Scalar]], ...],
    ) -> None:
        doc = self.doc
        assert doc.prompt is not None and doc.matrix_where is not None
        template = doc.id_template
        params = self.params(doc.defaults_params, variables)
        extra = self.params(doc.defaults_extra_params, variables)
        for index, name in self.param_axes:
            params[name] = cast("Val[object]", combo[index][1])  # the same value, no copy
        draft = Draft(
            id=job_id,
            where=doc.matrix_where,
            id_where=template.where if template else doc.matrix_where,
            prompt=prompt,
            prompt_where=doc.prompt.where,
            params=params,
            references=self.references(doc.defaults_references, variables),
            references_where=doc.defaults_references_where or doc.matrix_where,
            extra_params=extra,
        )
        self.emit(draft, self.repeat)

    def _check_matrix_templates(self) -> None:
        """Unknown variables are reported once per template (not once per job); unused axes too."""
        doc = self.doc
        names = {axis.name: "" for axis in doc.axes}
        texts = [doc.prompt, doc.id_template, *doc.defaults_references]
        texts += [
            Val(v.value, v.where)
            for _, v in (*doc.defaults_params, *doc.defaults_extra_params)
            if isinstance(v.value, str)
        ]
        used: set[str] = set()
        before = len(self.problems)
        for source in texts:
            if source is not None:
                self.render(source, names)
                used.update(compile_template(source.value).names)
        if len(self.problems) != before:
            return  # a misspelt {variable} also leaves its axis unused: one message is enough
        for axis in doc.axes:
            if not axis.is_param and axis.name not in used:
                self.problems.append((axis.where, _unused_axis_message(axis.name)))

    # -- explicit jobs and rows -------------------------------------------------------------

    def entry(self, entry: JobEntry, noun: str) -> None:
        doc = self.doc
        variables = dict(entry.vars)
        prompt = self._entry_prompt(entry, noun, variables)
        if entry.id is None:
            self.problems.append((entry.where, f"this {noun} has no `id`; give it a unique id"))
            return
        if prompt is None:
            return
        refs = doc.defaults_references if entry.references is None else entry.references
        draft = Draft(
            id=self.render(entry.id, variables, transform=slugify),
            where=entry.where,
            id_where=entry.id.where,
            prompt=prompt,
            prompt_where=entry.prompt.where if entry.prompt else entry.where,
            params=self.params(itertools.chain(doc.defaults_params, entry.params), variables),
            references=self.references(refs, variables),
            references_where=entry.references_where or doc.defaults_references_where or entry.where,
            extra_params=self.params(
                itertools.chain(doc.defaults_extra_params, entry.extra_params), variables
            ),
        )
        self.emit(draft, entry.repeat.value if entry.repeat else self.repeat)

    def _entry_prompt(self, entry: JobEntry, noun: str, variables: Variables) -> str | None:
        if entry.prompt is not None:
            return self.render(entry.prompt, variables)
        shared = self.doc.prompt
        if shared is None:
            self.problems.append((entry.where, _NO_PROMPT[noun]))
            return None
        note = f" (in the top-level prompt template at line {shared.where.line})"
        return self.render(shared, variables, at=entry.where, note=note)


_NO_PROMPT = {
    "job": "this job has no `prompt`; add one (1 to 2000 characters)",
    "row": "this row has no prompt; fill its prompt cell, or give the manifest a top-level "
    "`prompt:` template that uses the row's columns",
}


def _unused_axis_message(name: str) -> str:
    return (
        f"matrix axis '{name}' is not used: it is not a param and no template mentions "
        f"{{{name}}}, so its jobs would be identical; use it in the prompt, or use `repeat:` "
        "for variations"
    )
