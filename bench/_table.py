"""The pure half of ``python -m bench``: figures from repeated runs -> rows -> verdicts -> Markdown.

Nothing here runs a benchmark, reads a clock or touches a file; ``bench/__main__.py`` does that
and hands the figures in. A *row* is one figure key aggregated over a module's runs: the median
decides the verdict against the target, min and max show the spread.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench._support import Figure

START_MARKER = "<!-- bench:table:start (written by `python -m bench --record`) -->"
END_MARKER = "<!-- bench:table:end -->"


@dataclass(frozen=True)
class Spread:
    """min / median / max of one figure over the runs that reported it."""

    low: float
    median: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(min(values), float(statistics.median(values)), max(values), len(values))


@dataclass(frozen=True)
class Row:
    """One figure key over a module's runs, ready to judge and render."""

    module: str
    key: str
    label: str
    unit: str
    value: Spread
    peer: Spread | None
    target: float | None
    better: str
    note: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "module": self.module,
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "value": vars(self.value),
            "peer": None if self.peer is None else vars(self.peer),
            "target": self.target,
            "better": self.better,
            "note": self.note,
        }
        out["verdict"] = verdict(self)
        return out


def aggregate(module: str, runs: Sequence[Sequence[Figure]]) -> list[Row]:
    """One row per figure key, in the order keys first appear; the note (and label, unit,
    target) comes from the run whose value is the median (the lower one of an even count)."""
    by_key: dict[str, list[Figure]] = {}
    for figures in runs:
        for fig in figures:
            by_key.setdefault(fig["key"], []).append(fig)
    rows = []
    for key, figs in by_key.items():
        values = [f["value"] for f in figs]
        middle = sorted(figs, key=lambda f: f["value"])[(len(figs) - 1) // 2]
        peers = [p for p in (f.get("peer") for f in figs) if p is not None]
        rows.append(
            Row(
                module=module,
                key=key,
                label=middle.get("label", key),
                unit=middle.get("unit", ""),
                value=Spread.of(values),
                peer=Spread.of(peers) if peers else None,
                target=middle.get("target"),
                better=middle.get("better", "higher"),
                note=middle.get("note", ""),
            )
        )
    return rows


def verdict(row: Row) -> dict[str, Any]:
    """Met or missed by the median, and by how much (in the figure's unit and as a share of
    the target). A figure with no target is informational."""
    if row.target is None:
        return {"status": "info"}
    median, target = row.value.median, row.target
    gap = target - median if row.better == "higher" else median - target
    if gap <= 0:
        return {"status": "met"}
    share = gap / abs(target) if target else None
    return {"status": "missed", "by": gap, "by_share": share}


def fmt(x: float) -> str:
    """A number for a table cell: three significant figures, thousands separated."""
    if x != x:  # NaN
        return "n/a"
    if x == 0:
        return "0"
    size = abs(x)
    if size >= 1000:
        return f"{x:,.0f}"
    if size >= 100:
        return f"{x:.0f}"
    if size >= 10:
        return f"{x:.1f}".removesuffix(".0")
    return f"{x:.3g}"


def with_unit(text: str, unit: str) -> str:
    if not unit:
        return text
    return f"{text}%" if unit == "%" else f"{text} {unit}"


def spread_cell(spread: Spread | None, unit: str) -> str:
    """``median (min–max)``, or just the value when there was one run or no spread."""
    if spread is None:
        return "—"
    head = with_unit(fmt(spread.median), unit)
    if spread.runs == 1 or spread.low == spread.high:
        return head
    return f"{head} ({fmt(spread.low)}–{fmt(spread.high)})"


def target_cell(row: Row) -> str:
    if row.target is None:
        return "—"
    sign = "≥" if row.better == "higher" else "≤"
    return f"{sign} {with_unit(fmt(row.target), row.unit)}"


def verdict_cell(row: Row) -> str:
    v = verdict(row)
    if v["status"] == "info":
        return "info"
    if v["status"] == "met":
        return "met"
    share = v["by_share"]
    by = with_unit(fmt(v["by"]), row.unit)
    return f"**missed** by {by}" + ("" if share is None else f" ({share:.0%})")


def _cell(text: str) -> str:
    """Markdown table cells cannot hold a pipe or a newline."""
    return " ".join(text.replace("|", "\\|").split())


def render_table(rows: Iterable[Row]) -> str:
    """The Markdown table: figure | batchgen | peer | target | met? | note."""
    lines = [
        "| figure | batchgen: median (min–max) | peer | target | met? | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row.label} <br>`{row.key}`",
            spread_cell(row.value, row.unit),
            spread_cell(row.peer, row.unit),
            target_cell(row),
            verdict_cell(row),
            row.note,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def render_header(meta: Mapping[str, Any]) -> str:
    """The lines above the table: when, where, how long, how many repeats."""
    m = meta["machine"]
    mode = "quick (each module once, quick subset)" if meta.get("quick") else "full"
    lines = [
        f"Measured {meta['date']} · {mode} · total wall time {fmt(meta['wall_s'])} s",
        "",
        f"Machine: {m['cores']} cores, {m['cpu']}, {fmt(m['ram_gb'])} GB RAM, "
        f"Python {m['python']}, {m['os']}; load average {m['load_at_start']} at the start.",
    ]
    return "\n".join(lines)


def render_problems(problems: Mapping[str, str]) -> str:
    if not problems:
        return ""
    lines = ["", "Modules without figures in this run:", ""]
    lines += [f"- `{name}`: {_cell(why)}" for name, why in sorted(problems.items())]
    return "\n".join(lines)


def render(meta: Mapping[str, Any], rows: Sequence[Row], problems: Mapping[str, str]) -> str:
    """The whole generated Markdown: header, table, then any module that gave no figures."""
    parts = [render_header(meta), "", render_table(rows)]
    tail = render_problems(problems)
    if tail:
        parts.append(tail)
    return "\n".join(parts) + "\n"


def replace_section(page: str, generated: str) -> str:
    """``page`` with the text between the two markers replaced by ``generated``."""
    start, end = page.find(START_MARKER), page.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the page lacks the markers {START_MARKER!r} ... {END_MARKER!r}")
    head = page[: start + len(START_MARKER)]
    return f"{head}\n\n{generated.strip()}\n\n{page[end:]}"
