"""The benchmark table's pure half (bench/_table.py): aggregation, verdicts, Markdown."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import _table
from bench._support import Figure, figure

META = {
    "date": "2026-12-02 03:00 UTC",
    "quick": False,
    "wall_s": 812.4,
    "machine": {
        "cores": 2,
        "cpu": "Some CPU @ 2.0GHz",
        "ram_gb": 3.8,
        "python": "3.11.9",
        "os": "Debian GNU/Linux 12 (6.1.0)",
        "load_at_start": "0.1 / 0.2 / 0.3",
    },
}


def _fig(value: float, **kw: object) -> Figure:
    args: dict[str, object] = {"unit": "x R", "target": 0.95, "better": "higher"} | kw
    return figure("m.rate", "served rate / R", value, **args)  # type: ignore[arg-type]


def _row(value: float, target: float | None, better: str) -> _table.Row:
    fig = figure("m.k", "a figure", value, unit="s", target=target, better=better)
    return _table.aggregate("m", [[fig]])[0]


def test_aggregate_takes_min_median_max_per_key_in_first_seen_order() -> None:
    """Each key becomes one row with min, median and max over the runs, keys in first order."""
    runs = [
        [_fig(0.9), figure("m.cpu", "cpu", 3.0, unit="s", better="lower")],
        [_fig(0.97), figure("m.cpu", "cpu", 1.0, unit="s", better="lower")],
        [_fig(0.93), figure("m.cpu", "cpu", 2.0, unit="s", better="lower")],
    ]
    rows = _table.aggregate("m", runs)
    assert [r.key for r in rows] == ["m.rate", "m.cpu"]
    assert rows[0].value == _table.Spread(0.9, 0.93, 0.97, 3)
    assert rows[1].value == _table.Spread(1.0, 2.0, 3.0, 3)
    assert rows[0].peer is None


def test_aggregate_keeps_the_peer_spread_and_the_median_runs_note() -> None:
    """The peer's values get their own spread; the note is the median run's."""
    runs = [
        [_fig(0.9, peer=0.07, note="low")],
        [_fig(0.95, peer=0.05, note="middle")],
        [_fig(0.99, peer=0.06, note="high")],
    ]
    (row,) = _table.aggregate("m", runs)
    assert row.peer == _table.Spread(0.05, 0.06, 0.07, 3)
    assert row.note == "middle"


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=9))
def test_spread_orders_and_matches_statistics(values: list[float]) -> None:
    """A spread's low <= median <= high, and its median is the statistics module's."""
    spread = _table.Spread.of(values)
    assert spread.low <= spread.median <= spread.high
    assert spread.median == pytest.approx(statistics.median(values))
    assert spread.runs == len(values)


def test_verdicts_judge_the_median_against_the_target_on_the_right_side() -> None:
    """Higher-is-better meets at or above its target, lower-is-better at or below; no target
    is informational; a miss says by how much, in the unit and as a share of the target."""
    assert _table.verdict(_row(0.95, 0.95, "higher"))["status"] == "met"
    assert _table.verdict(_row(2.0, 2.0, "lower"))["status"] == "met"
    assert _table.verdict(_row(1.0, None, "lower")) == {"status": "info"}
    missed = _table.verdict(_row(6.5, 2.0, "lower"))
    assert missed["status"] == "missed"
    assert missed["by"] == pytest.approx(4.5)
    assert missed["by_share"] == pytest.approx(2.25)
    low = _table.verdict(_row(0.89, 0.95, "higher"))
    assert low["by"] == pytest.approx(0.06)


@given(st.floats(0, 100), st.floats(0.01, 100), st.sampled_from(["higher", "lower"]))
def test_a_figure_either_meets_or_misses_by_a_positive_gap(
    value: float, target: float, better: str
) -> None:
    """Every judged figure is met, or missed by a gap greater than zero."""
    v = _table.verdict(_row(value, target, better))
    assert v["status"] in ("met", "missed")
    if v["status"] == "missed":
        assert v["by"] > 0


def test_the_table_has_a_row_per_figure_with_peer_target_and_verdict() -> None:
    """The Markdown table shows median (min–max), the peer, the target and the verdict."""
    runs = [
        [_fig(0.88, peer=0.07, note="small | batch")],
        [_fig(0.90, peer=0.06, note="small | batch")],
    ]
    text = _table.render(META, _table.aggregate("m", runs), {})
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| figure"))
    row = lines[header + 2]
    assert row.count(" | ") == 5  # six cells; the note's pipe is escaped
    assert "0.89 x R (0.88–0.9)" in row
    assert "0.065 x R (0.06–0.07)" in row
    assert "≥ 0.95 x R" in row
    assert "**missed** by 0.06 x R (6%)" in row
    assert "small \\| batch" in row
    assert "2026-12-02 03:00 UTC" in text
    assert "2 cores, Some CPU @ 2.0GHz, 3.8 GB RAM, Python 3.11.9" in text
    assert "812 s" in text


def test_modules_without_figures_are_listed_under_the_table() -> None:
    """A module that crashed or is not on the Figure interface is named, with why."""
    text = _table.render(META, [], {"bench_old": "not on the Figure interface yet"})
    assert "- `bench_old`: not on the Figure interface yet" in text


def test_percent_and_large_numbers_read_naturally() -> None:
    """Percentages hug their sign, thousands are separated, small values keep 3 figures."""
    assert _table.with_unit(_table.fmt(0.1234), "%") == "0.123%"
    assert _table.fmt(16234.2) == "16,234"
    assert _table.fmt(12.0) == "12"
    assert _table.fmt(0.0) == "0"
    assert _table.fmt(float("nan")) == "n/a"


def test_replace_section_rewrites_only_between_the_markers() -> None:
    """--record replaces the generated section and keeps the hand-written text around it."""
    start, end = _table.START_MARKER, _table.END_MARKER
    page = f"# Benchmarks\n\nintro\n\n{start}\nold table\n{end}\n\nend\n"
    new = _table.replace_section(page, "new table\n")
    assert new.startswith("# Benchmarks\n\nintro\n\n")
    assert "old table" not in new
    assert f"{start}\n\nnew table\n\n{end}\n\nend\n" in new
    assert _table.replace_section(new, "new table") == new


def test_replace_section_refuses_a_page_without_markers() -> None:
    """A page without the markers is not silently overwritten."""
    with pytest.raises(ValueError, match="markers"):
        _table.replace_section("# Benchmarks\n", "table")


def test_figure_refuses_an_unknown_direction() -> None:
    """better is 'higher' or 'lower', nothing else."""
    with pytest.raises(ValueError, match="better"):
        figure("k", "label", 1.0, unit="s", better="more")
