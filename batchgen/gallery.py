"""The HTML report: one self-contained page (inline CSS, no script, no external asset: it works
offline from ``file://``) with the batch's totals and a gallery of its jobs, rendered from a
``Report`` with Jinja2 (``templates/report.html.j2``).

Every text shown (prompts, params, errors, ids) passes through Jinja2's autoescaping, so a
prompt holding ``<script>`` shows as text. The pictures and videos are the local files: each
``src`` is the file's path relative to ``base_dir`` (the folder the HTML file is written to, or
the current folder for standard output), percent-encoded, so names with spaces, ``#`` or ``?``
work. A reference given as a URL is shown as text, never fetched: the page loads nothing from
the network.

``write_atomically`` writes any report to a file (temp file in the same folder, then rename),
so a reader never sees half a report.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePath
from urllib.parse import quote

import jinja2

from batchgen.errors import BatchgenError
from batchgen.report import JobReport, Report, ReportStatus

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Media:
    """A file a card shows: its name, and its ``src`` (None when it is no local file)."""

    name: str
    src: str | None


@dataclass(frozen=True)
class Card:
    """One job version in the gallery: the job, its videos and its references."""

    job: JobReport
    videos: tuple[Media, ...]
    references: tuple[Media, ...]

    @property
    def succeeded(self) -> bool:
        return self.job.status is ReportStatus.SUCCEEDED


def render_html(report: Report, *, base_dir: Path, references_dir: Path | None = None) -> str:
    """``batchgen report --format html``: the page, its ``src`` paths relative to
    ``base_dir``. ``references_dir`` is the folder relative reference paths start from (the
    manifest's); without it such references are named but not shown."""
    cards = [card(job, base_dir, references_dir) for job in report.jobs]
    superseded = [card(job, base_dir, references_dir) for job in report.superseded]
    template = _environment().get_template(TEMPLATE)
    return template.render(
        report=report,
        totals=report.totals,
        cards=cards,
        superseded=superseded,
        succeeded=sum(1 for c in cards if c.succeeded),
    )


def card(job: JobReport, base_dir: Path, references_dir: Path | None) -> Card:
    """The gallery card of ``job``."""
    videos = tuple(Media(Path(p).name, relative_src(Path(p), base_dir)) for p in job.outputs)
    references = tuple(_reference(ref, base_dir, references_dir) for ref in job.references)
    return Card(job, videos, references)


def relative_src(path: Path, base_dir: Path) -> str:
    """``path`` as a relative URL from ``base_dir``: ``/``-separated, every segment
    percent-encoded (a ``:`` too, so no segment reads as a URL scheme)."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(base_dir))
    return quote(PurePath(relative).as_posix(), safe="/")


def _reference(ref: str, base_dir: Path, references_dir: Path | None) -> Media:
    if ref.startswith(("http://", "https://")):
        return Media(ref, None)
    path = Path(ref)
    if not path.is_absolute():
        if references_dir is None:
            return Media(ref, None)
        path = references_dir / path
    return Media(ref, relative_src(path, base_dir))


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("batchgen", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (its folder created if missing) through a temp file in the
    same folder, fsynced and renamed over it: the file is the old one or the whole new one."""
    folder = path.parent
    temp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        why = exc.strerror or str(exc)
        raise BatchgenError(
            f"cannot write the report to {path}: {why}; choose another --output file"
        ) from exc
