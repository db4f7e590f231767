"""Bearer-key authentication and scope checks.

401 codes: ``api_key_missing`` (no bearer key), ``api_key_invalid`` (unknown key),
``api_key_revoked``, ``api_key_expired``. A key without the endpoint's scope gets 403
``api_scope_denied`` whose message names the scope.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import ApiKey
from .envelope import ApiError


class KeyRing:
    """The configured keys, indexed by key string."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_key = {k.key: k for k in keys}

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The active key named by an ``Authorization`` header, or raise a 401."""
        token = bearer_token(authorization)
        if token is None:
            raise ApiError(
                401,
                "api_key_missing",
                "no API key: send the header 'Authorization: Bearer <key>'",
            )
        key = self._by_key.get(token)
        if key is None:
            raise ApiError(401, "api_key_invalid", "the API key is not valid for this service")
        if key.status == "revoked":
            raise ApiError(401, "api_key_revoked", "the API key was revoked; create a new one")
        if key.status == "expired":
            raise ApiError(401, "api_key_expired", "the API key has expired; create a new one")
        return key


def bearer_token(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` header, or None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def require_scope(key: ApiKey, scope: str) -> None:
    """Raise 403 ``api_scope_denied`` naming ``scope`` when ``key`` lacks it."""
    if scope not in key.scopes:
        raise ApiError(
            403,
            "api_scope_denied",
            f"this API key lacks the scope '{scope}'; create a key with that scope",
        )
