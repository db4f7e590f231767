"""The CSV and HTML renderers: pure functions of a Report (CSV round-trips, HTML escapes and
links local files by relative, percent-encoded paths)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.errors import BatchgenError
from batchgen.gallery import relative_src, render_html, write_atomically
from batchgen.models import JobStatus
from batchgen.report import CSV_COLUMNS, Report, build_report, render_csv
from batchgen.rows import JobRow

BASE_ROW = JobRow(
    job_key="",
    job_id="",
    request_hash="0123456789abcdef",
    status=JobStatus.SUCCEEDED,
    attempt=1,
    idempotency_key=None,
    request_body=None,
    task_id=None,
    remote_status=None,
    reserved_credits=None,
    final_credits=None,
    result_urls=(),
    outputs=(),
    error_code=None,
    error_message=None,
    request_id=None,
    polls=0,
    in_manifest=True,
    submitted_at=None,
    finished_at=None,
    created_at="2025-01-01T00:00:00Z",
    updated_at="2025-01-01T00:00:00Z",
)

HOSTILE_PROMPT = 'A "shoe", a <script>alert(1)</script> tag,\nand a new line'


def row(job_id: str, key: str, status: JobStatus = JobStatus.SUCCEEDED, **fields: Any) -> JobRow:
    return replace(BASE_ROW, job_id=job_id, job_key=key, status=status, **fields)


def sample(tmp_path: Path) -> Report:
    """Two videos for a job with awkward file names, a failed job with a formula-like error,
    a reference by path and by URL, and one superseded version."""
    out = tmp_path / "out dir"
    out.mkdir()
    videos = [out / "hero #1?.mp4", out / "hero 100%.mp4"]
    old = out / "hero~vold.mp4"
    for path in [*videos, old]:
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "hero ref.png").write_bytes(b"\x89PNG")
    rows = [
        row(
            "hero",
            "k1",
            task_id="task_1",
            reserved_credits=90,
            final_credits=90,
            outputs=tuple(str(p) for p in videos),
            prompt=HOSTILE_PROMPT,
            params={"mode": "pro", "duration": "10"},
            reference_files=("refs/hero ref.png", "https://example.com/a.png"),
            submitted_at="2025-01-01T00:00:01Z",
            finished_at="2025-01-01T00:01:00Z",
        ),
        row(
            "bad",
            "k2",
            JobStatus.FAILED,
            task_id="task_2",
            reserved_credits=90,
            final_credits=0,
            error_code="generation_failed",
            error_message='=HYPERLINK("http://evil")',
            prompt="-2+3",
        ),
        row("hero", "k0", task_id="task_0", final_credits=90, outputs=(str(old),)),
    ]
    return build_report("b", "state.db", [("hero", "k1"), ("bad", "k2")], rows)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def srcs(tags: Tags, tag: str) -> list[str]:
    return [str(a["src"]) for a in tags.named(tag)]


# -- CSV -------------------------------------------------------------------------------------


def test_csv_round_trips_through_csv_reader(tmp_path: Path) -> None:
    """One header and one row per current job; a prompt with commas, quotes and a newline
    reads back as written, lists are ;-joined and params are compact JSON."""
    report = sample(tmp_path)
    rows = list(csv.reader(io.StringIO(render_csv(report), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == ["hero", "bad"]
    hero = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert hero["prompt"] == HOSTILE_PROMPT
    assert json.loads(hero["params"]) == {"duration": "10", "mode": "pro"}
    assert " " not in hero["params"]
    assert hero["references"] == "refs/hero ref.png;https://example.com/a.png"
    assert hero["outputs"].split(";") == list(report.jobs[0].outputs)
    assert hero["final_credits"] == "90"
    assert hero["version"] == "0123456789ab"
    assert hero["error_code"] == ""


def test_csv_defuses_formulas(tmp_path: Path) -> None:
    """A cell starting with = + - @ gets a leading ' so a spreadsheet shows it as text."""
    cells = list(csv.reader(io.StringIO(render_csv(sample(tmp_path)), newline="")))[2]
    bad = dict(zip(CSV_COLUMNS, cells, strict=True))
    assert bad["error_message"] == '\'=HYPERLINK("http://evil")'
    assert bad["prompt"] == "'-2+3"
    assert bad["status"] == "failed"


@given(st.text(max_size=40))
def test_csv_keeps_any_prompt(prompt: str) -> None:
    """Any prompt reads back from the CSV as written (after the formula guard's quote)."""
    rows = [row("j", "k", prompt=prompt)]
    report = build_report("b", "s.db", [("j", "k")], rows)
    cells = list(csv.reader(io.StringIO(render_csv(report), newline="")))[1]
    got = cells[CSV_COLUMNS.index("prompt")]
    guarded = prompt.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert got == ("'" + prompt if guarded else prompt)


# -- HTML ------------------------------------------------------------------------------------


def test_html_has_one_video_per_output_and_srcs_resolve(tmp_path: Path) -> None:
    """Each succeeded job's output is a <video controls preload=metadata> whose relative src,
    decoded, names the file from the page's folder; the superseded video sits in <details>."""
    report = sample(tmp_path)
    page_dir = tmp_path / "pages" / "deep"
    page_dir.mkdir(parents=True)
    html = render_html(report, base_dir=page_dir, references_dir=tmp_path)
    tags = parse(html)
    videos = tags.named("video")
    assert len(videos) == 3  # hero's two, and the superseded version's one
    assert all("controls" in v and v["preload"] == "metadata" for v in videos)
    for src in srcs(tags, "video") + srcs(tags, "img"):
        assert not src.startswith(("/", "file:", "http")), src
        assert (page_dir / unquote(src)).resolve().is_file(), src
    expected = {str((page_dir / unquote(s)).resolve()) for s in srcs(tags, "video")}
    assert set(report.jobs[0].outputs) < expected
    assert "%23" in html and "%3F" in html and "%25" in html and "%20" in html
    assert html.index("<details") < html.index("hero~vold.mp4")


def test_html_escapes_everything_shown(tmp_path: Path) -> None:
    """A prompt holding <script> is text: no script tag, the text shows as written."""
    html = render_html(sample(tmp_path), base_dir=tmp_path, references_dir=tmp_path)
    tags = parse(html)
    assert tags.named("script") == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any("<script>alert(1)</script>" in t for t in tags.text)


def test_html_loads_nothing_from_the_network(tmp_path: Path) -> None:
    """No src or href points at http(s): a URL reference is shown as text only; no <link>,
    <script> or external stylesheet."""
    html = render_html(sample(tmp_path), base_dir=tmp_path, references_dir=tmp_path)
    tags = parse(html)
    for _, attrs in tags.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert "http" not in value, (name, value)
    assert tags.named("link") == [] and tags.named("script") == []
    assert "https://example.com/a.png" in "".join(tags.text)
    assert len(tags.named("img")) == 1


def test_html_shows_totals_and_failed_jobs(tmp_path: Path) -> None:
    """The totals (statuses, credits charged, superseded) come first; a failed job shows its
    status and error and no video."""
    html = render_html(sample(tmp_path), base_dir=tmp_path)
    text = " ".join(" ".join(parse(html).text).split())
    assert text.index("credits charged 180") < text.index("generation_failed")
    assert "superseded versions 1" in text
    assert '=HYPERLINK("http://evil")' in text
    assert len(parse(html).named("img")) == 0  # no references folder: names only


def test_relative_src_encodes_each_segment(tmp_path: Path) -> None:
    """Spaces, #, ? and : are percent-encoded; / stays the separator; .. climbs."""
    src = relative_src(tmp_path / "a b" / "c:#?.mp4", tmp_path / "x")
    assert src == "../a%20b/c%3A%23%3F.mp4"


def test_write_atomically_replaces_and_cleans_up(tmp_path: Path) -> None:
    """The file is created with its folders, then replaced whole; no temp file is left."""
    target = tmp_path / "new" / "r.csv"
    write_atomically(target, "one")
    write_atomically(target, "two\r\n")
    assert target.read_bytes() == b"two\r\n"
    assert [p.name for p in target.parent.iterdir()] == ["r.csv"]
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(BatchgenError, match="cannot write the report"):
        write_atomically(tmp_path / "dir.html", "x")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
