"""Keep the API key out of everything batchgen prints or logs.

The client never puts the key in a message in the first place; this is the second line of
defence: a logging filter that rewrites any record containing a registered secret, and
``redact()`` for text the CLI prints (error messages, reports).
"""

from __future__ import annotations

import logging

REDACTED = "<redacted>"
_secrets: set[str] = set()


def redact(text: str) -> str:
    for secret in _secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install_redaction(secret: str) -> None:
    """Register a secret; the root's and batchgen's log handlers filter it from then on."""
    if len(secret) >= 8:
        _secrets.add(secret)
    for logger in (logging.getLogger(), logging.getLogger("batchgen")):
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
