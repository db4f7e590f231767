"""Reading ``matrix:`` (axes of values) and ``exclude:`` (partial combinations to skip)."""

from __future__ import annotations

import re

from batchgen.manifest import fields
from batchgen.manifest.doc import Axis, ExcludeRule, Scalar, Val, scalar_text
from batchgen.manifest.problems import Problems, did_you_mean
from batchgen.manifest.yamltree import YEntry, YNode, YScalar, YSeq

AXIS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_matrix(node: YNode, problems: Problems) -> tuple[Axis, ...]:
    """The axes, in the order written. A single value is taken as a one-value axis."""
    mapping = fields.as_map(node, "matrix", problems)
    if mapping is None:
        return ()
    if not mapping.entries:
        problems.add(node.where, "matrix has no axes; add e.g. `product: [sneaker, watch]`")
    axes = (_axis(entry, problems) for entry in mapping.entries)
    return tuple(axis for axis in axes if axis is not None)


def _axis(entry: YEntry, problems: Problems) -> Axis | None:
    if not AXIS_NAME.fullmatch(entry.key):
        problems.add(
            entry.key_where,
            f"matrix axis '{entry.key}' cannot be used as a template variable; "
            "name axes with letters, digits and '_' (e.g. camera_move)",
        )
        return None
    what = f"a value of matrix axis '{entry.key}'"
    if isinstance(entry.value, YScalar) and entry.value.value is not None:
        items: tuple[YNode, ...] | None = (entry.value,)
    else:
        items = fields.as_list(entry.value, f"matrix axis '{entry.key}'", problems)
    if items is None:
        return None
    if not items:
        problems.add(
            entry.value.where, f"matrix axis '{entry.key}' has no values; add at least one"
        )
    values = _distinct_values(items, entry.key, what, problems)
    return Axis(entry.key, entry.key_where, values)  # kept even if empty: its name is known


def _distinct_values(
    items: tuple[YNode, ...], axis: str, what: str, problems: Problems
) -> tuple[Val[Scalar], ...]:
    seen: dict[str, Val[Scalar]] = {}
    for item in items:
        value = fields.scalar(item, what, problems)
        if value is None:
            continue
        key = scalar_text(value.value)
        first = seen.get(key)
        if first is not None:
            problems.add(
                value.where,
                f"'{key}' appears twice in matrix axis '{axis}' "
                f"(first at {first.where.line}:{first.where.column}); remove one",
            )
            continue
        seen[key] = value
    return tuple(seen.values())


def read_excludes(
    node: YNode, axes: tuple[Axis, ...], problems: Problems
) -> tuple[ExcludeRule, ...]:
    """Each entry is ``{axis: value}`` or ``{axis: [values]}``; all its axes must match to skip."""
    items = fields.as_list(node, "exclude", problems)
    if items is None:
        return ()
    by_name = {axis.name: axis for axis in axes}
    rules = (_exclude_rule(item, by_name, problems) for item in items)
    return tuple(rule for rule in rules if rule is not None)


def _exclude_rule(item: YNode, axes: dict[str, Axis], problems: Problems) -> ExcludeRule | None:
    mapping = fields.as_map(item, "an exclude entry", problems)
    if mapping is None:
        return None
    if not mapping.entries:
        problems.add(item.where, "an exclude entry needs at least one `axis: value`")
        return None
    match: list[tuple[str, frozenset[str]]] = []
    for entry in mapping.entries:
        axis = axes.get(entry.key)
        if axis is None:
            problems.add(entry.key_where, _unknown_axis_message(entry.key, axes))
            continue
        values = _exclude_values(entry, axis, problems)
        if values is not None:
            match.append((entry.key, values))
    if len(match) != len(mapping.entries):
        return None
    return ExcludeRule(mapping.where, tuple(match))


def _unknown_axis_message(name: str, axes: dict[str, Axis]) -> str:
    listed = ", ".join(axes) or "none"
    hint = did_you_mean(name, axes)
    return f"exclude names '{name}', which is not a matrix axis{hint} (axes: {listed})"


def _exclude_values(entry: YEntry, axis: Axis, problems: Problems) -> frozenset[str] | None:
    node = entry.value
    items = node.items if isinstance(node, YSeq) else (node,)
    known = [scalar_text(v.value) for v in axis.values]
    if not items:
        problems.add(node.where, f"exclude gives no values for '{axis.name}'; list at least one")
        return None
    texts: set[str] = set()
    ok = True
    for item in items:
        value = fields.scalar(item, f"an exclude value of '{axis.name}'", problems)
        if value is None:
            ok = False
            continue
        text = scalar_text(value.value)
        if text not in known:
            problems.add(
                value.where,
                f"'{text}' is not a value of matrix axis '{axis.name}'{did_you_mean(text, known)} "
                f"(values: {', '.join(known)})",
            )
            ok = False
        texts.add(text)
    return frozenset(texts) if ok and texts else None
