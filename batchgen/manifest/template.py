"""``{name}`` templates and id slugs. Pure.

A placeholder is ``{`` + an identifier + ``}``; ``{{`` and ``}}`` are literal braces. Any other
brace is kept as written, so prompts like "a sign reading { OPEN }" need no escaping.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_ID_CHARS = 100


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: ``parts`` alternates literal text and variable names (odd length)."""

    parts: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.parts[1::2]

    @property
    def is_literal(self) -> bool:
        return len(self.parts) == 1

    def render(
        self, variables: Mapping[str, str], transform: Callable[[str], str] | None = None
    ) -> str:
        """The text with each placeholder replaced; an unknown name stays as ``{name}``."""
        if len(self.parts) == 1:
            return self.parts[0]
        out = []
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                out.append(part)
            elif part in variables:
                value = variables[part]
                out.append(transform(value) if transform else value)
            else:
                out.append("{" + part + "}")
        return "".join(out)


@lru_cache(maxsize=8192)
def compile_template(text: str) -> Template:
    """Compile once, render many times (a 100,000-job matrix shares a handful of templates)."""
    if "{" not in text and "}" not in text:
        return Template((text,))
    parts: list[str] = []
    literal: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[last : match.start()])
        last = match.end()
        token = match.group(0)
        if match.group(1) is None:
            literal.append(token[0])  # "{{" -> "{", "}}" -> "}"
            continue
        parts.append("".join(literal))
        parts.append(match.group(1))
        literal = []
    literal.append(text[last:])
    parts.append("".join(literal))
    return Template(tuple(parts))


@lru_cache(maxsize=65536)
def slugify(value: str) -> str:
    """An id-safe form of a value: ``"16:9"`` -> ``16x9``, ``"Café Noir"`` -> ``cafe-noir``.

    Text with no ASCII letters or digits at all becomes ``v`` + 8 hex digits of its hash, so that
    different values still give different ids.
    """
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"(?<=\d):(?=\d)", "x", ascii_text.lower())
    slug = re.sub(r"[^a-z0-9._]+", "-", slug).strip("-._")
    if slug:
        return slug
    return "v" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def id_problem(job_id: str) -> str | None:
    """Why ``job_id`` cannot name a job (it becomes a file name), or None if it can."""
    if not job_id:
        return "job id is empty; give the job an id of letters, digits, '.', '_' or '-'"
    if len(job_id) > MAX_ID_CHARS:
        return f"job id '{job_id[:40]}...' is {len(job_id)} characters; the limit is {MAX_ID_CHARS}"
    if not ID_PATTERN.fullmatch(job_id):
        return (
            f"job id '{job_id}' may contain only letters, digits, '.', '_' and '-' "
            "and must start with a letter or digit (it names the output file)"
        )
    return None
