"""YAML text -> a small tree of located nodes (every node knows its ``file:line:column``).

PyYAML composes the document into nodes carrying ``start_mark``; this module turns those into
:class:`YMap`, :class:`YSeq` and :class:`YScalar`, so every later message can point at the node
it is about. Scalars follow the YAML 1.2 core schema, not PyYAML's default YAML 1.1: ``16:9``
stays the text "16:9" (1.1 reads it as the base-60 number 969), and ``yes``/``no``/``on``/``off``
stay text. Keys are always their source text. Merge keys (``<<: *anchor``) are supported; a key
written twice in one mapping is a problem (YAML would silently keep the last one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchgen.manifest.problems import Problems
from batchgen.models import Location

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalar resolution (null, bool, int, float; nothing else)."""


def _core_resolvers(loader: Any) -> None:  # a SafeLoader or CSafeLoader class
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag in (_NULL, _MERGE)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    loader.add_implicit_resolver(
        _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
    )
    loader.add_implicit_resolver(
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    )


_core_resolvers(_Loader)

# libyaml's parser (ten times faster on a page of matrix values) with the same resolution; a
# document it refuses is parsed again by the pure-Python loader, whose messages users see.
_FastLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(yaml.CSafeLoader):
        """CSafeLoader with the YAML 1.2 core resolution of ``_Loader``."""

    _core_resolvers(_CLoader)
    _FastLoader = _CLoader


@dataclass(frozen=True, slots=True)
class YScalar:
    value: object  # str, int, float, bool or None
    where: Location


@dataclass(frozen=True, slots=True)
class YSeq:
    items: tuple[YNode, ...]
    where: Location


@dataclass(frozen=True, slots=True)
class YEntry:
    key: str
    key_where: Location
    value: YNode


@dataclass(frozen=True, slots=True)
class YMap:
    entries: tuple[YEntry, ...]
    where: Location

    def get(self, key: str) -> YEntry | None:
        for entry in self.entries:
            if entry.key == key:
                return entry
        return None


YNode = YScalar | YSeq | YMap


def type_name(node: YNode) -> str:
    """How a node's type is named in messages."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    value = node.value
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "text"


def parse_yaml(text: str, file: str, problems: Problems) -> YNode | None:
    """The located tree of ``text``, or None after adding a syntax problem (never raises)."""
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        problems.add(_mark_location(file, exc), _syntax_message(exc))
        return None
    except RecursionError:
        problems.add(Location(file, 1, 1), "the YAML is nested too deeply to read")
        return None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        problems.add(Location(file, line), f"the file is not readable YAML text: {exc}")
        return None
    if root is None:
        problems.add(Location(file, 1, 1), "the manifest is empty; start from jobs/demo.yaml")
        return None
    try:
        return _Converter(file, problems).convert(root)
    except RecursionError:
        problems.add(Location(file, 1, 1), "the YAML is nested too deeply to read")
        return None


def _compose(text: str) -> Node | None:
    """The composed document: by libyaml when it is there and the text is plain printable
    YAML it accepts; otherwise (and for every error) by the pure-Python loader."""
    if _FastLoader is not None and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        try:
            return yaml.compose(text, Loader=_FastLoader)
        except (yaml.YAMLError, RecursionError):
            pass  # the Python loader finds the same problem and says it in its own words
    return yaml.compose(text, Loader=_Loader)


def _mark_location(file: str, exc: yaml.MarkedYAMLError) -> Location:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return Location(file, 1, 1)
    return Location(file, mark.line + 1, mark.column + 1)


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    message = f"YAML syntax error: {exc.problem or exc.context or 'unreadable YAML'}"
    if exc.context and exc.problem and exc.context_mark is not None:
        cm = exc.context_mark
        message += f" ({exc.context} at {cm.line + 1}:{cm.column + 1})"
    return message + "; check indentation, quotes and brackets around here"


class _Converter:
    """Turns composed PyYAML nodes into located nodes; aliases are converted once."""

    def __init__(self, file: str, problems: Problems) -> None:
        self.file = file
        self.problems = problems
        self.loader = _Loader("")
        self.done: dict[int, YNode] = {}
        self.active: set[int] = set()

    def where(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def convert(self, node: Node) -> YNode:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            self.problems.add(self.where(node), "a YAML alias refers to itself")
            return YScalar(None, self.where(node))
        self.active.add(key)
        result = self._convert(node)
        self.active.discard(key)
        self.done[key] = result
        return result

    def _convert(self, node: Node) -> YNode:
        if isinstance(node, MappingNode):
            return self._mapping(node)
        if isinstance(node, SequenceNode):
            return YSeq(tuple(self.convert(item) for item in node.value), self.where(node))
        assert isinstance(node, ScalarNode)
        return YScalar(self._scalar(node), self.where(node))

    def _scalar(self, node: ScalarNode) -> object:
        text = str(node.value)
        try:
            return _core_scalar(node.tag, text, self.loader, node)
        except (ValueError, yaml.YAMLError) as exc:
            self.problems.add(self.where(node), f"cannot read this value as {node.tag}: {exc}")
            return text

    def _mapping(self, node: MappingNode) -> YMap:
        own: dict[str, YEntry] = {}
        merged: dict[str, YEntry] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge_into(merged, value_node)
                continue
            entry = self._entry(key_node, value_node)
            if entry is None:
                continue
            first = own.get(entry.key)
            if first is not None:
                self.problems.add(entry.key_where, _duplicate_key_message(entry.key, first))
                continue
            own[entry.key] = entry
        entries = [e for k, e in merged.items() if k not in own] + list(own.values())
        return YMap(tuple(entries), self.where(node))

    def _entry(self, key_node: Node, value_node: Node) -> YEntry | None:
        if not isinstance(key_node, ScalarNode):
            self.problems.add(self.where(key_node), "a key must be plain text, not a list/mapping")
            return None
        return YEntry(str(key_node.value), self.where(key_node), self.convert(value_node))

    def _merge_into(self, merged: dict[str, YEntry], value_node: Node) -> None:
        value = self.convert(value_node)
        sources = value.items if isinstance(value, YSeq) else (value,)
        for source in sources:
            if not isinstance(source, YMap):
                self.problems.add(
                    source.where,
                    "'<<' merges a mapping (an alias like *defaults) or a list of them",
                )
                continue
            for entry in source.entries:
                merged.setdefault(entry.key, entry)


def _duplicate_key_message(key: str, first: YEntry) -> str:
    w = first.key_where
    return (
        f"duplicate key '{key}' (first at {w.line}:{w.column}); "
        "YAML would silently keep only the last one: remove or rename one"
    )


def _core_scalar(tag: str, text: str, loader: _Loader, node: ScalarNode) -> object:
    if tag == _STR:
        return text
    if tag == _NULL:
        return None
    if tag == _BOOL and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if tag == _INT:
        return _core_int(text)
    if tag == _FLOAT:
        return _core_float(text)
    return loader.construct_object(node, deep=True)


def _core_int(text: str) -> int:
    digits = text.replace("_", "")
    body = digits.lstrip("+-")
    if body[:2] in ("0o", "0x", "0b"):
        return int(digits, 0)
    return int(digits, 10)


def _core_float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith((".inf", ".nan")):
        return float(lowered.replace(".", ""))
    return float(text.replace("_", ""))
