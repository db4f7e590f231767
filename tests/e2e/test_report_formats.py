"""`batchgen report --format csv|html --output FILE` over a real finished batch: the files are
written where asked, and every video and picture the HTML page links resolves from its folder."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from batchgen import EmulatorChoice, RunSettings, run_manifest

from .helpers import batchgen_cmd, job_count, write_manifest

PRODUCTS = ("a",)


class Links(HTMLParser):
    """The src and href of every tag, by tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [(tag, k, v or "") for k, v in attrs if k in ("src", "href")]


def links_of(html: str) -> list[tuple[str, str, str]]:
    parser = Links()
    parser.feed(html)
    parser.close()
    return parser.links


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(root folder, manifest, state) of a finished demo-shaped batch in a folder whose name
    has a space and a # (its videos' too). The state lies outside it: the store's read-only
    open takes the path as a URI, where # starts a fragment."""
    root = tmp_path_factory.mktemp("formats")
    manifest = write_manifest(root / "my batch #1", products=PRODUCTS)
    state = root / "s.db"
    settings = RunSettings(state_path=state, emulator=EmulatorChoice(time_scale=0.002))
    assert run_manifest(manifest, settings).exit_code == 0
    return root, manifest, state


def report(cwd: Path, manifest: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        batchgen_cmd("report", str(manifest), "--state", str(state), *args),
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def assert_links_resolve(html: str, folder: Path) -> None:
    links = links_of(html)
    videos = [v for tag, _, v in links if tag == "video"]
    assert len(videos) == job_count(PRODUCTS)
    assert [v for tag, _, v in links if tag == "img"], "the hero's reference thumbnail"
    for tag, attr, value in links:
        assert "http" not in value and not value.startswith("/"), (tag, attr, value)
        assert (folder / unquote(value)).is_file(), (tag, value)


def test_html_output_file_links_resolve_from_its_folder(batch: tuple[Path, Path, Path]) -> None:
    """--format html --output some/dir/r.html writes the page there (nothing on stdout, one
    line on stderr) and each src, decoded, names an existing file from some/dir."""
    root, manifest, state = batch
    done = report(root, manifest, state, "--format", "html", "--output", "some/dir/r.html")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "some/dir/r.html" in done.stderr and len(done.stderr.splitlines()) == 1
    page = root / "some" / "dir" / "r.html"
    assert_links_resolve(page.read_text(), page.parent)
    assert [p.name for p in page.parent.iterdir()] == ["r.html"]
    assert "%23" in page.read_text()  # the folder's # is encoded in every src


def test_html_on_stdout_links_from_the_current_folder(batch: tuple[Path, Path, Path]) -> None:
    """Without --output the page's paths start from the current folder."""
    root, manifest, state = batch
    done = report(root, manifest, state, "--format", "html")
    assert done.returncode == 0, done.stderr
    assert_links_resolve(done.stdout, root)


def test_csv_has_one_row_per_job(batch: tuple[Path, Path, Path]) -> None:
    """--format csv prints a header and a row per job, each naming its video file."""
    root, manifest, state = batch
    done = report(root, manifest, state, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout, newline="")))
    assert len(rows) == job_count(PRODUCTS)
    assert {r["status"] for r in rows} == {"succeeded"}
    assert all(Path(r["outputs"]).is_file() for r in rows)
    hero = next(r for r in rows if r["id"] == "hero")
    assert hero["references"].endswith("refs/hero.png")
    assert json.loads(hero["params"])["mode"] == "pro"


@pytest.mark.parametrize("fmt", ["json", "table", "csv"])
def test_every_format_writes_to_output(batch: tuple[Path, Path, Path], fmt: str) -> None:
    """--output works for every format: the file holds what stdout would have shown."""
    root, manifest, state = batch
    shown = report(root, manifest, state, "--format", fmt)
    written = report(root, manifest, state, "--format", fmt, "--output", f"r.{fmt}")
    assert written.returncode == shown.returncode == 0, written.stderr
    assert written.stdout == ""
    assert (root / f"r.{fmt}").read_text() == shown.stdout  # both with newlines translated
