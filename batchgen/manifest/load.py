"""``load_manifest``: read, expand and validate a manifest; raise ``ManifestError`` listing all.

The steps, each its own module: YAML text -> located tree (``yamltree``) -> parsed manifest
(``read``) + rows files (``rows``) -> drafts (``expand``, pure) -> job specs (``check``, pure,
with reference files inspected by ``refs``) -> ``Manifest``. Problems from every step are
collected and reported together; nothing here touches the network or a database.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from batchgen.errors import ManifestError, Problem
from batchgen.manifest.check import build_specs
from batchgen.manifest.doc import ManifestDoc
from batchgen.manifest.expand import most_jobs, stream_drafts
from batchgen.manifest.localfile import LocalFileError, read_capped
from batchgen.manifest.problems import Problems
from batchgen.manifest.read import read_doc
from batchgen.manifest.refs import ReferenceResolver
from batchgen.manifest.rows import load_rows
from batchgen.manifest.yamltree import parse_yaml
from batchgen.models import MODEL_ID, Location, Manifest


def load_manifest(path: Path) -> Manifest:
    """The validated manifest at ``path``; raises ``ManifestError`` listing every problem."""
    with _collector_paused():
        return _load(Path(path))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading makes a few objects per job and no reference cycles; the cyclic collector's
    passes over an ever larger heap would take a quarter of a million-job load's time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load(path: Path) -> Manifest:
    file = str(path)
    text = _read_manifest(path)
    problems = Problems(first_file=file)
    root = parse_yaml(text, file, problems)
    base_dir = path.absolute().parent
    doc = read_doc(root, file, base_dir, problems) if root is not None else None
    if doc is None:
        raise problems.error()  # the top level is unusable; a problem says why
    doc = replace(doc, rows=load_rows(doc, problems))
    _check_size(doc, problems)
    found: list[tuple[Location, str]] = []
    drafts = stream_drafts(doc, found)  # checked one by one: never a million drafts at once
    jobs = build_specs(drafts, ReferenceResolver(base_dir, problems), problems)
    for where, message in found:
        problems.add(where, message)
    output_dir = _output_dir(doc, problems)
    problems.raise_if_any()
    return Manifest(
        path=path.absolute(),
        batch=doc.batch.value,
        jobs=tuple(jobs),
        output_dir=output_dir,
        limits=doc.limits,
        model=MODEL_ID,
        window=doc.window,
    )


def _check_size(doc: ManifestDoc, problems: Problems) -> None:
    """A manifest that would expand past ``limits.max_jobs`` (a typo in a matrix away from ten
    million jobs) stops here, in the time it takes to multiply the axis sizes."""
    count = most_jobs(doc)
    cap = doc.limits.max_jobs
    if count > cap:
        where = doc.matrix_where or Location(doc.file, 1, 1)
        problems.add(
            where,
            f"this manifest expands to {count:,} jobs (before exclude), more than "
            f"limits.max_jobs ({cap:,}); check the matrix and repeat for a typo, or raise "
            "limits.max_jobs if you mean it",
        )
        problems.raise_if_any()


MAX_MANIFEST_BYTES = 20_000_000  # a manifest is a page of YAML; 100,000 jobs belong in rows


def _read_manifest(path: Path) -> str:
    """The manifest's text; only a regular file is read, and at most ``MAX_MANIFEST_BYTES``."""
    try:
        data, _ = read_capped(path, MAX_MANIFEST_BYTES)
        return data.decode("utf-8-sig")
    except LocalFileError as exc:
        message = _unreadable_message(exc)
    except UnicodeDecodeError as exc:
        message = f"the manifest is not UTF-8 text (byte {exc.start}); save it as UTF-8"
    raise ManifestError([Problem(str(path), message)])


def _unreadable_message(exc: LocalFileError) -> str:
    if exc.kind == "missing":
        return "manifest file not found; check the path (try: ls jobs/)"
    if exc.kind == "folder":
        return "this is a folder; pass the manifest's .yaml file"
    if exc.kind == "special":
        return f"the manifest {exc.reason}; pass the manifest's .yaml file"
    if exc.kind == "too_large":
        return (
            f"the manifest {exc.reason}; batchgen reads manifests of at most "
            f"{MAX_MANIFEST_BYTES:,} bytes: put many jobs in a rows file (CSV or JSONL)"
        )
    return f"cannot read the manifest: {exc.reason.removeprefix('cannot be read: ')}"


def _output_dir(doc: ManifestDoc, problems: Problems) -> Path:
    """``output.dir`` (default ``out/<batch>``) made absolute, checked writable or creatable."""
    given = doc.output_dir
    shown = given.value if given else f"out/{doc.batch.value}"
    where = given.where if given else doc.batch.where
    path = Path(os.path.normpath(doc.base_dir / shown))
    problem = output_dir_problem(path)
    if problem:
        problems.add(where, f"output.dir {shown!r} {problem}")
    return path


def output_dir_problem(path: Path) -> str | None:
    """Why videos cannot be written under ``path`` (it need not exist yet), or None."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe == path and not path.is_dir():
        return "is a file, not a folder; choose a folder for the videos"
    if not probe.is_dir():
        return f"cannot be created: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"is not writable ({probe} does not allow it); choose another folder"
    return _write_problem(probe)


MIN_FREE_BYTES = 64 * 1024 * 1024  # room for at least one video (a 15 s clip is a few MB)


def _write_problem(folder: Path) -> str | None:
    """Write (and remove) a probe file in ``folder``, the output folder or its nearest existing
    parent: permissions alone do not tell (root may 'write' /proc; a read-only mount)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".batchgen-probe-"):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return f"cannot be written ({folder}: {exc.strerror or exc}); choose another folder"
    if free < MIN_FREE_BYTES:
        return (
            f"has no room for a video ({free // 1024:,} KB free on {folder}); free some space "
            "or choose another folder"
        )
    return None
