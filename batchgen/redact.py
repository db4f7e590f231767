"""Keep the API key out of everything batchgen prints or logs.

The client never puts the key in a message in the first place; this is the second line of
defence against a server that echoes it back (in an error message, a status, a URL) or a key
pasted into the wrong variable: one ``redact()`` step, fed with the key and the forms derived
from it, that every text passes through on its way out: the state database (``store``
encodes every value through it, so ``report`` never needs the key), log records (a filter on
the handlers), and what the CLI prints (error messages, summaries, reports).
"""

from __future__ import annotations

import logging
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
KEY_PREFIXES = ("rvya_sk_",)  # the public prefix of real keys: the rest is the secret
_secrets: set[str] = set()
_ordered: list[str] = []  # the secrets, longest first: the whole key before its tail


def _forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    for prefix in KEY_PREFIXES:
        if secret.startswith(prefix) and len(secret) - len(prefix) >= 12:
            forms.add(secret[len(prefix) :])
    return forms


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``<redacted>``."""
    for secret in _ordered:
        if secret in text:
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
    """Register a secret and the forms a server or a URL may echo it in (percent-encoded, and
    its random part without the public ``rvya_sk_`` prefix); the root's and batchgen's log
    handlers filter them from then on, and ``redact`` removes them from any text."""
    if len(secret) >= 8:
        _secrets.update(_forms(secret))
        _ordered[:] = sorted(_secrets, key=len, reverse=True)
    for logger in (logging.getLogger(), logging.getLogger("batchgen")):
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
