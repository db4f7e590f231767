"""Preflight: a few quick requests before a run uploads or submits anything.

``run`` asks three things, each with a short policy of its own (``PREFLIGHT_RETRY``: two
attempts within about three seconds, ``PREFLIGHT_TIMEOUT_S`` per request), so that a dead
address fails in seconds instead of after the run's minutes of retries:

1. **Does the address answer?** ``GET /api/v1/models`` (public). No answer at all (connection
   refused, DNS failure, timeout) is a ``ConfigError`` naming ``RIVYA_BASE_URL`` and its host
   (exit 1). An error answer (a 404 from a web server that is not the API, a 5xx) or a
   dropped connection is only a warning here: the price is then the contract's estimate, and
   the run's own retry policy deals with a flaky service.
2. **Is the key good?** ``GET /api/v1/credits`` (scope ``credits:read``). A 401 is the run's
   ``AuthError`` (exit 1); a 403 for ``credits:read`` is a warning, since a run does not need
   that scope. Whether the key holds the generations scopes is known only at the first create.
3. **Does the wallet cover this run?** The credits the run would reserve (``plan.make_plan``
   over the state: new, changed and blocked jobs, and those mid-submit; failed ones too with
   ``--retry-failed``) at the models endpoint's price, against the wallet. Short is a warning
   line, or with ``require_funds`` an ``InsufficientCreditsError`` before anything is sent
   (exit 4: top up, then run the same command).

Nothing here writes to the state; the answers are returned as a ``Preflight``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from batchgen.client import RivyaClient
from batchgen.errors import (
    ApiError,
    AuthError,
    ConfigError,
    InsufficientCreditsError,
    RetryExhaustedError,
    ScopeDeniedError,
    TransportError,
)
from batchgen.events import EventBus
from batchgen.models import Manifest
from batchgen.plan import make_plan
from batchgen.retry import RetryPolicy
from batchgen.wire import safe_url

log = logging.getLogger("batchgen.preflight")

ENV_BASE_URL = "RIVYA_BASE_URL"  # named in messages (config.py owns reading it)
PREFLIGHT_TIMEOUT_S = 3.0
PREFLIGHT_RETRY = RetryPolicy(max_attempts=2, base_delay_s=0.2, max_delay_s=0.5, deadline_s=3.0)


@dataclass(frozen=True)
class Preflight:
    """What the preflight learnt. ``None``: not known (no answer, no scope, no key)."""

    price: int | None  # the model's base_credits from the models endpoint
    wallet: int | None  # the wallet's current credits
    need: int  # credits this run would reserve (the plan's upper bound)
    warnings: tuple[str, ...] = ()

    @property
    def shortfall(self) -> int:
        """Credits missing to cover ``need`` (0 when covered or the wallet is unknown)."""
        return 0 if self.wallet is None else max(0, self.need - self.wallet)


async def run_preflight(
    base_url: str,
    api_key: str,
    manifest: Manifest,
    state: Mapping[str, tuple[str, str]] | None,
    *,
    retry_failed: bool = False,
    require_funds: bool = False,
    events: EventBus | None = None,
) -> Preflight:
    """Check the address, the key and the wallet (see the module docstring). Logs each
    warning; raises ``ConfigError`` (no answer), ``AuthError`` (401) or, with
    ``require_funds``, ``InsufficientCreditsError`` (a short wallet)."""
    warnings: list[str] = []
    async with _short_client(base_url, api_key, events) as client:
        price = await _price(client, manifest.model, warnings)
        wallet = await _wallet(client, warnings)
    need = credits_needed(manifest, state, price, retry_failed=retry_failed)
    found = Preflight(price, wallet, need)
    if found.shortfall:
        message = shortfall_message(found)
        if require_funds:
            raise InsufficientCreditsError(
                f"{message}; nothing was submitted (--require-funds)",
                code="insufficient_credits",
                status=402,
                hint="Top up the wallet, then run the same command again.",
            )
        warnings.append(f"{message}; the run goes on and stops resumably when the credits run out")
    for line in warnings:
        log.warning("%s", line)
    return Preflight(price, wallet, need, tuple(warnings))


def credits_needed(
    manifest: Manifest,
    state: Mapping[str, tuple[str, str]] | None,
    price: int | None,
    *,
    retry_failed: bool = False,
) -> int:
    """The credits a run would reserve now: the plan's, plus failed jobs with --retry-failed."""
    plan = make_plan(manifest, state=state, base_credits=price)
    failed = plan.changes.failed if retry_failed and plan.changes is not None else 0
    return plan.credits + failed * plan.base_credits


def shortfall_message(found: Preflight) -> str:
    """``the wallet holds 270 credits; this run may reserve 450; 180 short``."""
    return (
        f"the wallet holds {found.wallet:,} credits; this run may reserve {found.need:,}; "
        f"{found.shortfall:,} short"
    )


def _short_client(base_url: str, api_key: str | None, events: EventBus | None) -> RivyaClient:
    return RivyaClient(
        base_url, api_key, retry=PREFLIGHT_RETRY, timeout_s=PREFLIGHT_TIMEOUT_S, events=events
    )


async def _price(client: RivyaClient, model: str, warnings: list[str]) -> int | None:
    """The model's price from the models endpoint; a dead address raises ``ConfigError``."""
    try:
        models = await client.list_models()
    except (TransportError, RetryExhaustedError) as exc:
        if _no_answer(exc):
            raise unreachable(client.base_url, exc) from exc
        warnings.append(f"the models endpoint did not answer usefully ({_last(exc)})")
        return None
    except ApiError as exc:
        warnings.append(f"the models endpoint refused ({exc.message}); the price is an estimate")
        return None
    return price_of(models, model)


async def _wallet(client: RivyaClient, warnings: list[str]) -> int | None:
    """The wallet's credits; a 401 raises (the run cannot go on), anything else warns."""
    try:
        return await client.get_credits()
    except AuthError:
        raise
    except ScopeDeniedError:
        warnings.append("the API key lacks the credits:read scope: the wallet is not checked")
    except (ApiError, TransportError, RetryExhaustedError) as exc:
        warnings.append(f"the wallet could not be read ({_last(exc)}); it is not checked")
    return None


def price_of(models: list[dict[str, object]], model: str) -> int | None:
    """``base_credits`` of ``model`` in a models answer (None when absent or not a number)."""
    for entry in models:
        credits = entry.get("base_credits")
        if entry.get("id") == model and isinstance(credits, int) and not isinstance(credits, bool):
            return credits
    return None


def unreachable(base_url: str, exc: BaseException) -> ConfigError:
    """The error for an address that gave no answer: names RIVYA_BASE_URL and its host."""
    host = urlsplit(base_url).hostname or "?"
    return ConfigError(
        f"the Rivya API at {safe_url(base_url)} ({ENV_BASE_URL}, host {host}) gave no usable "
        f"answer: {_last(exc)}; nothing was sent",
        hint=f"Check {ENV_BASE_URL} and the network, then run the same command again.",
    )


def _no_answer(exc: BaseException) -> bool:
    """Whether ``exc`` (or the last error it gave up on) means the address never answered: the
    connection could not be made (refused, DNS, TLS) or nothing came back in time. Decided by
    the type of the aiohttp error the client chained, never by message text. A server that
    took the connection and dropped it is flaky, not absent: the run's own retries decide."""
    last = exc.last if isinstance(exc, RetryExhaustedError) else exc
    if not isinstance(last, TransportError):
        return False
    return isinstance(last.__cause__, aiohttp.ClientConnectorError | TimeoutError)


def _last(exc: BaseException) -> str:
    last = exc.last if isinstance(exc, RetryExhaustedError) and exc.last is not None else exc
    return str(getattr(last, "message", None) or last)


@dataclass(frozen=True)
class OnlineFacts:
    """What ``plan --online`` shows: the price, the wallet, and why the wallet is unknown."""

    price: int | None
    wallet: int | None
    note: str  # "" when the wallet is known: "no key", "the key was refused: ...", ...


async def online_facts(base_url: str, api_key: str | None, model: str) -> OnlineFacts:
    """The price and (with a key) the wallet, with the preflight's short policy: a dead
    address raises ``ConfigError`` in seconds; a refused key only leaves the wallet unknown."""
    warnings: list[str] = []
    async with _short_client(base_url, api_key, None) as client:
        price = await _price(client, model, warnings)
        if api_key is None:
            return OnlineFacts(price, None, "no key")
        try:
            wallet = await _wallet(client, warnings)
        except AuthError as exc:
            return OnlineFacts(price, None, f"the key was refused: {exc.code}")
    for line in warnings:
        log.warning("%s", line)
    return OnlineFacts(price, wallet, "" if wallet is not None else "not readable")
