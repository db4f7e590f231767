"""Collecting every problem of a manifest, so that one run lists them all, in file order."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from batchgen.errors import ManifestError, Problem
from batchgen.models import Location

MAX_SHOWN = 100  # a 100,000-row file with one mistake per row should not print 100,000 lines


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class Problems:
    """An ordered set of (location, message). Adding the same problem twice keeps one."""

    def __init__(self, first_file: str | None = None) -> None:
        self._items: dict[tuple[Location, str], None] = {}
        self._files: dict[str, int] = {first_file: 0} if first_file else {}

    def add(self, where: Location, message: str) -> None:
        self._files.setdefault(where.file, len(self._files))
        self._items.setdefault((where, message), None)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def sorted(self) -> list[tuple[Location, str]]:
        """Problems by file (in the order files were first seen), line, column, message."""

        def key(item: tuple[Location, str]) -> tuple[int, int, int, str]:
            where, message = item
            return (self._files[where.file], where.line, where.column or 0, message)

        return sorted(self._items, key=key)

    def as_problems(self) -> list[Problem]:
        ordered = self.sorted()
        shown = [Problem(str(where), message) for where, message in ordered[:MAX_SHOWN]]
        hidden = len(ordered) - len(shown)
        if hidden:
            last = ordered[MAX_SHOWN]
            shown.append(Problem(last[0].file, f"... and {hidden} more problems not shown"))
        return shown

    def error(self) -> ManifestError:
        return ManifestError(self.as_problems())

    def raise_if_any(self) -> None:
        if self._items:
            raise self.error()
