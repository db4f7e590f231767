"""The located YAML tree -> :class:`ManifestDoc`: known keys, right types, sane combinations."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from batchgen.contract import MODEL_ID
from batchgen.manifest import fields
from batchgen.manifest.doc import Axis, ManifestDoc, Val
from batchgen.manifest.problems import Problems
from batchgen.manifest.read_jobs import Defaults, read_defaults, read_jobs
from batchgen.manifest.read_matrix import read_excludes, read_matrix
from batchgen.manifest.template import ID_PATTERN, slugify
from batchgen.manifest.yamltree import YEntry, YMap, YNode, YScalar, YSeq
from batchgen.models import Limits, Location, Window, parse_window

TOP_KEYS = (
    "version",
    "batch",
    "model",
    "defaults",
    "matrix",
    "prompt",
    "id",
    "exclude",
    "repeat",
    "jobs",
    "rows",
    "output",
    "limits",
    "schedule",
)
OUTPUT_KEYS = ("dir",)
SCHEDULE_KEYS = ("window", "timezone")
LIMITS_KEYS = ("requests_per_second", "burst", "max_in_flight", "max_credits", "max_jobs")
MAX_BATCH_CHARS = 64
R = TypeVar("R")


def read_doc(root: YNode, file: str, base_dir: Path, problems: Problems) -> ManifestDoc | None:
    """Read the whole manifest, adding a problem for everything wrong in it."""
    top = fields.as_map(root, "the manifest", problems)
    if top is None:
        return None
    found = fields.check_keys(top, TOP_KEYS, "the manifest", problems)

    def read(key: str, reader: Callable[[YNode, Problems], R], default: R) -> R:
        entry = found.get(key)
        return reader(entry.value, problems) if entry else default

    read("version", _check_version, None)
    read("model", _check_model, None)
    defaults = read("defaults", read_defaults, Defaults())
    no_axes: tuple[Axis, ...] = ()
    axes = read("matrix", read_matrix, no_axes)
    doc = ManifestDoc(
        file=file,
        base_dir=base_dir,
        batch=_batch(found.get("batch"), file, problems),
        defaults_params=defaults.params,
        defaults_extra_params=defaults.extra_params,
        defaults_references=defaults.references,
        defaults_references_where=defaults.references_where,
        prompt=read("prompt", lambda n, p: fields.text(n, "prompt", p), None),
        id_template=read("id", lambda n, p: fields.text(n, "id", p), None),
        axes=axes,
        matrix_where=found["matrix"].key_where if "matrix" in found else None,
        excludes=read("exclude", lambda n, p: read_excludes(n, axes, p), ()),
        repeat=read("repeat", lambda n, p: fields.positive_int(n, "repeat", p), None),
        jobs=read("jobs", read_jobs, ()),
        rows_files=read("rows", _rows_files, ()),
        output_dir=read("output", _output_dir, None),
        limits=read("limits", _limits, Limits()),
        window=read("schedule", _schedule, None),
    )
    _check_combinations(doc, found, top, problems)
    return doc


def _check_version(node: YNode, problems: Problems) -> None:
    value = node.value if isinstance(node, YScalar) else None
    if value != 1 or isinstance(value, bool):
        shown = repr(value) if isinstance(value, str) else str(value)
        problems.add(
            node.where, f"version {shown} is not supported; this batchgen reads `version: 1`"
        )


def _check_model(node: YNode, problems: Problems) -> None:
    value = node.value if isinstance(node, YScalar) else None
    if value != MODEL_ID:
        problems.add(
            node.where,
            f"model {value!r} is not supported; batchgen runs {MODEL_ID} "
            f"(write `model: {MODEL_ID}` or leave the key out)",
        )


def _batch(entry: YEntry | None, file: str, problems: Problems) -> Val[str]:
    if entry is None:
        return Val(slugify(Path(file).stem)[:MAX_BATCH_CHARS], Location(file, 1, 1))
    value = fields.text(entry.value, "batch", problems)
    if value is None:
        return Val(slugify(Path(file).stem)[:MAX_BATCH_CHARS], entry.value.where)
    if len(value.value) > MAX_BATCH_CHARS or not ID_PATTERN.fullmatch(value.value):
        problems.add(
            value.where,
            f"batch name {value.value!r} must be 1 to {MAX_BATCH_CHARS} letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (it names the state file)",
        )
    return value


def _rows_files(node: YNode, problems: Problems) -> tuple[Val[str], ...]:
    """``rows: file.csv`` or ``rows: [a.csv, b.jsonl]``."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return (Val(node.value, node.where),)
    items = fields.as_list(node, "rows", problems) or ()
    found = (fields.text(item, "a rows file", problems) for item in items)
    return tuple(v for v in found if v is not None)


def _output_dir(node: YNode, problems: Problems) -> Val[str] | None:
    mapping = fields.as_map(node, "output", problems)
    if mapping is None:
        return None
    found = fields.check_keys(mapping, OUTPUT_KEYS, "output", problems)
    entry = found.get("dir")
    return fields.text(entry.value, "output.dir", problems) if entry else None


def _limits(node: YNode, problems: Problems) -> Limits:
    mapping = fields.as_map(node, "limits", problems)
    if mapping is None:
        return Limits()
    found = fields.check_keys(mapping, LIMITS_KEYS, "limits", problems)
    limits = Limits()
    if "requests_per_second" in found:
        rate = fields.positive_number(
            found["requests_per_second"].value, "limits.requests_per_second", problems
        )
        limits = replace(limits, rate_per_s=rate.value) if rate else limits
    for key in ("burst", "max_in_flight", "max_credits", "max_jobs"):
        if key in found:
            count = fields.positive_int(found[key].value, f"limits.{key}", problems)
            limits = replace(limits, **{key: count.value}) if count else limits
    return limits


def _schedule(node: YNode, problems: Problems) -> Window | None:
    """``schedule: {window: "22:00-06:00", timezone: "Europe/Berlin"}``: submit only inside
    the window, in that zone (default: the machine's)."""
    mapping = fields.as_map(node, "schedule", problems)
    if mapping is None:
        return None
    found = fields.check_keys(mapping, SCHEDULE_KEYS, "schedule", problems)
    window = found.get("window")
    if window is None:
        problems.add(mapping.where, 'schedule needs a `window:` like "22:00-06:00"')
        return None
    text = fields.text(window.value, "schedule.window", problems)
    if text is None:
        return None
    try:
        start, end = parse_window(text.value)
    except ValueError as exc:
        problems.add(text.where, f"schedule.window: {exc} (start-end, 24-hour clock)")
        return None
    zone = None
    if "timezone" in found:
        tz_text = fields.text(found["timezone"].value, "schedule.timezone", problems)
        if tz_text is not None:
            try:
                zoneinfo.ZoneInfo(tz_text.value)
                zone = tz_text.value
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                problems.add(
                    tz_text.where,
                    f"schedule.timezone {tz_text.value!r} is not a time zone this machine knows; "
                    "write an IANA name like Europe/Berlin or America/New_York",
                )
                return None
    return Window(start, end, zone, text.value.strip())


def _check_combinations(
    doc: ManifestDoc, found: dict[str, YEntry], top: YMap, problems: Problems
) -> None:
    """Keys that only make sense together: a matrix needs a prompt; id/exclude need a matrix."""
    jobs_entry = found.get("jobs")
    has_jobs = (
        jobs_entry is not None and isinstance(jobs_entry.value, YSeq) and jobs_entry.value.items
    )
    if not ("matrix" in found or "rows" in found or has_jobs):
        problems.add(
            top.where,
            "the manifest defines no jobs; add a `matrix:` with a `prompt:`, "
            "a `jobs:` list, or `rows:` (a CSV or JSONL file)",
        )
    if doc.axes and "prompt" not in found and "matrix" in found:
        problems.add(
            found["matrix"].key_where,
            "a matrix needs a top-level `prompt:` template that uses its axes, "
            'e.g. prompt: "A {product} on a turntable"',
        )
    for key in ("id", "exclude"):
        if key in found and "matrix" not in found:
            problems.add(
                found[key].key_where,
                f"top-level `{key}` applies to matrix jobs, but there is no `matrix:`; "
                "explicit jobs and rows carry their own",
            )
