"""Small typed readers over the located YAML tree; each adds a teaching problem on a mismatch."""

from __future__ import annotations

from collections.abc import Iterable

from batchgen.contract import PARAM_NAMES, PARAMS, extra_param_name_problem
from batchgen.manifest.doc import ParamItems, Scalar, Val
from batchgen.manifest.problems import Problems, did_you_mean
from batchgen.manifest.yamltree import YEntry, YMap, YNode, YScalar, YSeq, type_name


def as_map(node: YNode, what: str, problems: Problems) -> YMap | None:
    """The node as a mapping; an empty (null) value counts as an empty mapping."""
    if isinstance(node, YMap):
        return node
    if isinstance(node, YScalar) and node.value is None:
        return YMap((), node.where)
    problems.add(node.where, f"{what} must be a mapping (key: value lines), not {type_name(node)}")
    return None


def as_list(node: YNode, what: str, problems: Problems) -> tuple[YNode, ...] | None:
    """The items of a list node; an empty (null) value counts as an empty list."""
    if isinstance(node, YSeq):
        return node.items
    if isinstance(node, YScalar) and node.value is None:
        return ()
    problems.add(
        node.where, f"{what} must be a list (- item lines or [a, b]), not {type_name(node)}"
    )
    return None


def check_keys(
    node: YMap, allowed: Iterable[str], section: str, problems: Problems
) -> dict[str, YEntry]:
    """The entries whose keys are allowed; every other key is a problem with a suggestion."""
    allowed = tuple(allowed)
    known: dict[str, YEntry] = {}
    for entry in node.entries:
        if entry.key in allowed:
            known[entry.key] = entry
        elif not (section == "the manifest" and entry.key.startswith("x-")):
            problems.add(entry.key_where, unknown_key_message(entry.key, allowed, section))
    return known


def unknown_key_message(key: str, allowed: tuple[str, ...], section: str) -> str:
    return (
        f"unknown key '{key}' in {section}{did_you_mean(key, allowed)} "
        f"(allowed: {', '.join(allowed)})"
    )


def text(node: YNode, what: str, problems: Problems) -> Val[str] | None:
    """A text value; numbers and booleans are refused (quote them if text is meant)."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return Val(node.value, node.where)
    hint = "; put it in quotes if you mean text" if isinstance(node, YScalar) else ""
    problems.add(node.where, f"{what} must be text, not {type_name(node)}{hint}")
    return None


def scalar(node: YNode, what: str, problems: Problems) -> Val[Scalar] | None:
    """A text, number or boolean value (not null, not a list or mapping)."""
    if isinstance(node, YScalar) and isinstance(node.value, str | int | float | bool):
        return Val(node.value, node.where)
    hint = _COLON_HINT if isinstance(node, YMap) and len(node.entries) == 1 else ""
    problems.add(
        node.where, f"{what} must be text, a number or a boolean, not {type_name(node)}{hint}"
    )
    return None


_COLON_HINT = " (a ': ' inside a value starts a mapping; put the value in quotes)"


def positive_int(node: YNode, what: str, problems: Problems) -> Val[int] | None:
    """A whole number of at least 1."""
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return Val(value, node.where)
    problems.add(node.where, f"{what} must be a whole number of at least 1, not {_shown(node)}")
    return None


def positive_number(node: YNode, what: str, problems: Problems) -> Val[float] | None:
    """A number greater than 0."""
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return Val(float(value), node.where)
    problems.add(node.where, f"{what} must be a number greater than 0, not {_shown(node)}")
    return None


def _shown(node: YNode) -> str:
    if isinstance(node, YScalar) and isinstance(node.value, int | float):
        return str(node.value)
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return repr(node.value)
    return type_name(node)


def unknown_param_message(name: str) -> str:
    return (
        f"unknown param '{name}'{did_you_mean(name, PARAM_NAMES)} "
        f"(kling-3-0 params: {', '.join(PARAM_NAMES)})"
    )


def params(node: YNode, what: str, problems: Problems) -> ParamItems:
    """``params:`` entries with known names; values are checked later, after templating."""
    mapping = as_map(node, what, problems)
    if mapping is None:
        return ()
    items: list[tuple[str, Val[object]]] = []
    for entry in mapping.entries:
        if entry.key not in PARAMS:
            problems.add(entry.key_where, unknown_param_message(entry.key))
            continue
        value = scalar(entry.value, f"param {entry.key}", problems)
        if value is not None:
            items.append((entry.key, Val(value.value, value.where)))
    return tuple(items)


def extra_params(node: YNode, what: str, problems: Problems) -> ParamItems:
    """``extra_params:`` entries: names batchgen does not know, values checked after templating."""
    mapping = as_map(node, what, problems)
    if mapping is None:
        return ()
    items: list[tuple[str, Val[object]]] = []
    for entry in mapping.entries:
        problem = extra_param_name_problem(entry.key)
        if problem:
            problems.add(entry.key_where, problem)
            continue
        value = scalar(entry.value, f"extra_params '{entry.key}'", problems)
        if value is not None:
            items.append((entry.key, Val(value.value, value.where)))
    return tuple(items)


def references(node: YNode, what: str, problems: Problems) -> tuple[Val[str], ...] | None:
    """A list of reference paths/URLs (a single text value is taken as a one-item list)."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return (Val(node.value, node.where),)
    items = as_list(node, what, problems)
    if items is None:
        return None
    found = (text(item, "a reference", problems) for item in items)
    return tuple(v for v in found if v is not None)
