"""Temporary result URLs: signed with the seed, valid for ``result_url_ttl_s`` from issue.

A URL carries its own issue time and a signature, so it stays valid (or expired) across a
restart without any stored state. A GET of the task re-issues a fresh URL once the last one
expired.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "/results/"
_TOKEN = re.compile(r"(\d+)-([0-9a-f]{16})")


def sign(seed: int, task_id: str, issued_ms: int) -> str:
    """The signature of a result URL."""
    text = f"{seed}|result|{task_id}|{issued_ms}".encode()
    return hashlib.sha256(text).hexdigest()[:16]


def result_path(seed: int, task_id: str, issued_at: float) -> str:
    """The path of a result URL issued at ``issued_at`` (epoch seconds)."""
    issued_ms = int(issued_at * 1000)
    return f"{PREFIX}{task_id}/{issued_ms}-{sign(seed, task_id, issued_ms)}/{task_id}.mp4"


def issued_at(seed: int, task_id: str, token: str) -> float | None:
    """When a URL token was issued, or None when it is not a genuine token."""
    match = _TOKEN.fullmatch(token)
    if match is None or sign(seed, task_id, int(match[1])) != match[2]:
        return None
    return int(match[1]) / 1000
