"""``rows:`` files: one job per CSV row or JSONL line, located as ``file:row``.

Columns (CSV) or keys (JSONL) batchgen reads: ``id``, ``prompt``, ``references`` (several
separated by ``|``, or a JSON list), ``repeat``, any kling-3-0 param, and extra params (a CSV
column ``extra_params.<name>``, or a JSONL key ``extra_params`` holding an object). Every other
column is a template variable of its row. Empty cells are "not given" (the defaults apply).
Rows without an ``id`` are named ``<file stem>-<n>`` (n counts data rows from 1): add an ``id``
column to keep ids stable when rows are inserted.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Iterator
from pathlib import Path

from batchgen.contract import PARAM_NAMES, PARAMS, extra_param_name_problem
from batchgen.manifest.doc import JobEntry, ManifestDoc, Val, scalar_text
from batchgen.manifest.localfile import LocalFileError, read_capped
from batchgen.manifest.problems import Problems
from batchgen.manifest.template import slugify
from batchgen.models import Location

ROW_KEYS = ("id", "prompt", "references", "repeat")
KNOWN_COLUMNS = ROW_KEYS + PARAM_NAMES
EXTRA = "extra_params"
EXTRA_PREFIX = EXTRA + "."
SUFFIXES = (".csv", ".jsonl", ".ndjson")
MAX_ROWS_BYTES = 200_000_000  # a million rows of prompts; more belongs in several files
Record = dict[str, object]


def load_rows(doc: ManifestDoc, problems: Problems) -> tuple[JobEntry, ...]:
    """Every row of every rows file, as job entries (problems added for unreadable ones)."""
    entries: list[JobEntry] = []
    for source in doc.rows_files:
        entries.extend(_load_file(doc, source, problems))
    return tuple(entries)


def _load_file(doc: ManifestDoc, source: Val[str], problems: Problems) -> list[JobEntry]:
    path = doc.base_dir / source.value
    display = str(Path(doc.file).parent / source.value)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        problems.add(source.where, f"rows file {source.value!r} must end in .csv or .jsonl")
        return []
    text = _read_text(path, source, problems)
    if text is None:
        return []
    if suffix == ".csv":
        records = _csv_records(text, display, problems)
    else:
        records = _jsonl_records(text, display, problems)
    reader = _RowReader(slugify(path.stem), problems)
    return [reader.entry(rec, where, n) for n, (where, rec) in enumerate(records, start=1)]


def _read_text(path: Path, source: Val[str], problems: Problems) -> str | None:
    """The file's text; only a regular file is read, and at most ``MAX_ROWS_BYTES``."""
    name = f"rows file {source.value!r}"
    try:
        data, _ = read_capped(path, MAX_ROWS_BYTES)
        return data.decode("utf-8-sig")
    except LocalFileError as exc:
        problems.add(source.where, f"{name} {_unreadable(exc, path)}")
    except UnicodeDecodeError as exc:
        problems.add(source.where, f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8")
    return None


def _unreadable(exc: LocalFileError, path: Path) -> str:
    if exc.kind == "missing":
        return f"does not exist (looked for {path})"
    if exc.kind in ("folder", "special"):
        return f"{exc.reason}; name a .csv or .jsonl file"
    if exc.kind == "too_large":
        return (
            f"{exc.reason}; batchgen reads rows files of at most {MAX_ROWS_BYTES:,} bytes: "
            "split it into several files (rows: [a.csv, b.csv])"
        )
    return exc.reason


def _csv_records(text: str, display: str, problems: Problems) -> Iterator[tuple[Location, Record]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        problems.add(Location(display, 1), "the rows file is empty; line 1 names the columns")
        return
    columns = _header(header, display, problems)
    start = reader.line_num + 1
    try:
        for cells in reader:
            where, start = Location(display, start), reader.line_num + 1
            if len(cells) > len(columns):
                problems.add(
                    where, f"this row has {len(cells)} cells but the header names {len(columns)}"
                )
                continue
            record: Record = {c: v.strip() for c, v in zip(columns, cells, strict=False) if c}
            if any(record.values()):
                yield where, {k: v for k, v in record.items() if v != ""}
    except csv.Error as exc:
        problems.add(Location(display, start), f"unreadable CSV: {exc}")


def _header(header: list[str], display: str, problems: Problems) -> list[str]:
    where = Location(display, 1)
    columns = [c.strip() for c in header]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.add(where, f"column '{name}' appears twice in the header; rename one")
        seen.add(name)
        _check_column(name, where, problems)
    return columns


def _check_column(name: str, where: Location, problems: Problems) -> None:
    """A column that is almost a known one is probably a typo, not a template variable."""
    if name in KNOWN_COLUMNS or not name or _is_extra(name):
        return
    close = difflib.get_close_matches(name, KNOWN_COLUMNS, n=1, cutoff=0.8)
    if close:
        problems.add(
            where,
            f"column '{name}' is not one batchgen reads; did you mean '{close[0]}'? "
            f"(batchgen reads {', '.join(KNOWN_COLUMNS)}; other columns are template variables)",
        )


def _jsonl_records(
    text: str, display: str, problems: Problems
) -> Iterator[tuple[Location, Record]]:
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = Location(display, number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(where, f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            problems.add(
                where, 'each line must be one JSON object, like {"id": ..., "prompt": ...}'
            )
            continue
        for key in record.keys() - seen:
            _check_column(key, where, problems)
        seen.update(record)
        yield where, {k: v for k, v in record.items() if v is not None and v != ""}


class _RowReader:
    """Turns one record into a :class:`JobEntry`, adding problems located at its row."""

    def __init__(self, stem: str, problems: Problems) -> None:
        self.stem = stem
        self.problems = problems

    def entry(self, record: Record, where: Location, number: int) -> JobEntry:
        job_id = self._text(record.get("id"), "id", where) or f"{self.stem}-{number}"
        prompt = self._text(record.get("prompt"), "prompt", where)
        return JobEntry(
            where=where,
            id=Val(job_id, where),
            prompt=Val(prompt, where) if prompt else None,
            params=tuple((k, Val(record[k], where)) for k in PARAMS if k in record),
            references=self._references(record.get("references"), where),
            references_where=where,
            repeat=self._repeat(record.get("repeat"), where),
            vars=self._vars(record, where),
            extra_params=self._extra_params(record, where),
        )

    def _extra_params(self, record: Record, where: Location) -> tuple[tuple[str, Val[object]], ...]:
        """``extra_params.<name>`` columns (CSV) and an ``extra_params`` object (JSONL)."""
        prefixed = [(k, v) for k, v in record.items() if k.startswith(EXTRA_PREFIX)]
        found = [(k.removeprefix(EXTRA_PREFIX), v) for k, v in prefixed]
        given = record.get(EXTRA)
        if isinstance(given, dict):
            found += [(str(k), v) for k, v in given.items()]
        elif given is not None:
            self.problems.add(where, 'extra_params must be an object, like {"name": "value"}')
        out: list[tuple[str, Val[object]]] = []
        for name, value in found:
            problem = extra_param_name_problem(name)
            if problem:
                self.problems.add(where, problem)
            elif isinstance(value, str | int | float | bool):
                out.append((name, Val(value, where)))
            else:
                self.problems.add(
                    where, f"extra_params '{name}' must be text, a number or a boolean"
                )
        return tuple(out)

    def _text(self, value: object, what: str, where: Location) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) or (what == "id" and isinstance(value, int | bool)):
            return scalar_text(value)
        self.problems.add(where, f"{what} must be text, not {type(value).__name__}")
        return None

    def _references(self, value: object, where: Location) -> tuple[Val[str], ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            parts = [p.strip() for p in value.split("|")]
        elif isinstance(value, list) and all(isinstance(p, str) for p in value):
            parts = [p.strip() for p in value]
        else:
            self.problems.add(where, "references must be text (paths separated by |) or a list")
            return None
        return tuple([Val(p, where) for p in parts if p])

    def _repeat(self, value: object, where: Location) -> Val[int] | None:
        if value is None:
            return None
        text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
        if text.isdigit() and int(text) >= 1:
            return Val(int(text), where)
        self.problems.add(where, f"repeat must be a whole number of at least 1, not {value!r}")
        return None

    def _vars(self, record: Record, where: Location) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for key, value in record.items():
            if key in KNOWN_COLUMNS or _is_extra(key):
                continue
            if isinstance(value, str | int | float | bool):
                out.append((key, scalar_text(value)))
            else:
                self.problems.add(where, f"'{key}' must be text, a number or a boolean")
        return tuple(out)


def _is_extra(column: str) -> bool:
    return column == EXTRA or column.startswith(EXTRA_PREFIX)
