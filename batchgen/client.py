"""``RivyaClient``: Rivya Public API v1 over one aiohttp session.

Every request to the API's own endpoints (``/api/v1``) takes a token from the shared
``RequestLimiter`` first; every request is retried per the ``RetryPolicy`` when it fails with a
``RETRYABLE`` error, and fails with the typed errors of ``batchgen.errors`` (the contract's table
lives in ``batchgen.wire.error_type``). Reading answers is ``batchgen.wire``'s job; this module
does the I/O, all of it in one transport wrapper (``_exchange``) that JSON calls, downloads and
reference fetches share.

Each HTTP exchange is noted once (``_answered``): one ``RequestAnswered`` event (status None when
no answer came), and ``client.stats`` counts those events and nothing else. A 429 is read once,
by ``wire``, into ``RateLimitedError.retry_after_s``; noted once (one ``RateLimited`` event, one
``limiter.on_rate_limited``: the rate is cut and every worker pauses until Retry-After); and
waited for once: with a limiter, the retry loop adds no sleep of its own, since the next
``acquire()`` waits out the shared pause; without one (or with no Retry-After to pause for),
the retry loop sleeps its backoff, Retry-After as its floor. Each retry emits ``RequestRetried``.

Security decisions:

* The API key goes only to the *origin* (scheme, host, port) of the base URL. Result URLs on that
  origin get it (the emulator, like the service, serves them there; sending the key back to the
  host that issued it leaks nothing); result URLs anywhere else (a CDN, a signed URL) never do,
  and aiohttp drops the header on a redirect to another origin. Reference images fetched from
  http(s) URLs never get it, whatever their host.
* A key over plain ``http://`` is refused (``ConfigError``) unless the host is loopback.
* The key is never in a log line, an exception message, an event or ``repr``: logs carry
  method, path, status, requestId and attempt, never headers; messages from the server are
  scrubbed of it; aiohttp errors that carry request headers (``ClientResponseError``) are not
  chained.
* No cookies are kept (``DummyCookieJar``) and no proxy settings are read from the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import anyio
from yarl import URL

from batchgen._version import __version__
from batchgen.errors import (
    BatchgenError,
    ClientRequestError,
    IdempotencyConflictError,
    RateLimitedError,
    ResultExpiredError,
    TransportError,
    ValidationFailedError,
)
from batchgen.events import Event, EventBus, RateLimited, RequestAnswered, RequestRetried
from batchgen.files import CHUNK_BYTES, stream_to_file
from batchgen.limits import RequestLimiter
from batchgen.models import MODEL_ID, RemoteTask, UploadedFile
from batchgen.retry import RetryPolicy, call_with_retry
from batchgen.wire import (
    ClientStats,
    check_api_key,
    check_base_url,
    error_from_answer,
    int_or_none,
    json_or_none,
    parse_task,
    parse_uploaded_file,
    result_gone,
)

log = logging.getLogger("batchgen.client")

T = TypeVar("T")

API = "/api/v1"
RESULT = "GET result"  # endpoint label of result downloads (any host)
REFERENCE = "GET reference"  # endpoint label of reference fetches (any host)
DEFAULT_USER_AGENT = f"batchgen/{__version__}"
MAX_REFERENCE_BYTES = 10 * 1024 * 1024  # the contract's image limit
CONFLICT_PATIENCE = 3  # resends of a create answered 409 (the first request may be in flight)
CONNECTION_LIMIT = 64  # sockets in the pool; the limiter, not this, sets the request rate


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class _Call:
    """One logical request (all its attempts): where, how it is labelled, what it may carry."""

    method: str
    url: URL
    endpoint: str  # a label without ids: "GET /api/v1/generations/{id}"
    scope: str | None = None  # the scope the endpoint needs (named in 403 hints)
    auth: bool = True  # send the key (only ever to the base URL's origin)
    budgeted: bool = True  # takes a limiter token and feeds its AIMD (API endpoints only)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    payload: Any


class RivyaClient:
    """Async client for Rivya Public API v1. Use as ``async with RivyaClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        limiter: RequestLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 60,
        user_agent: str = DEFAULT_USER_AGENT,
        connection_limit: int = CONNECTION_LIMIT,
        max_reference_bytes: int = MAX_REFERENCE_BYTES,
        events: EventBus | None = None,
    ) -> None:
        check_api_key(api_key)
        self._base = check_base_url(base_url, api_key)
        self._api_key = api_key
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._timeout_s = timeout_s
        self._user_agent = user_agent
        self._connection_limit = connection_limit
        self._max_reference_bytes = max_reference_bytes
        self._session: aiohttp.ClientSession | None = None
        self._events = events
        self.stats = ClientStats()  # counts this client's request events (see _emit)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"RivyaClient(base_url={str(self._base)!r}, api_key=<{key}>)"

    @property
    def base_url(self) -> str:
        return str(self._base)

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connection_limit),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            headers={"User-Agent": self._user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ------------------------------------------------------------------ endpoints

    async def list_models(self) -> list[dict[str, Any]]:
        """``GET /api/v1/models`` (public: sent without the key)."""
        call = self._api_call("GET", "/models", scope="models:read", auth=False)
        answer = await self._json_call(call)
        data = answer.payload.get("data") if isinstance(answer.payload, dict) else None
        if not isinstance(data, list):
            raise TransportError("GET /api/v1/models answered without a 'data' list")
        return [m for m in data if isinstance(m, dict)]

    async def get_credits(self) -> int:
        """``GET /api/v1/credits``: the wallet's current credits."""
        call = self._api_call("GET", "/credits", scope="credits:read")
        answer = await self._json_call(call)
        credits = (
            answer.payload.get("current_credits") if isinstance(answer.payload, dict) else None
        )
        value = int_or_none(credits)
        if value is None:
            raise TransportError("GET /api/v1/credits answered without 'current_credits'")
        return value

    async def upload_file(
        self,
        data: bytes,
        name: str,
        *,
        kind: str = "image",
        model: str | None = MODEL_ID,
        client_request_id: str | None = None,
    ) -> UploadedFile:
        """``POST /api/v1/files`` (multipart). A retried upload may store a second copy: files
        cost nothing and the caller keeps whichever answer arrives."""
        fields = {"kind": kind, "model": model, "client_request_id": client_request_id}

        def form() -> aiohttp.FormData:
            body = aiohttp.FormData()
            body.add_field("file", data, filename=name, content_type="application/octet-stream")
            for key, value in fields.items():
                if value is not None:
                    body.add_field(key, value)
            return body

        call = self._api_call("POST", "/files", scope="files:create")
        answer = await self._json_call(call, form=form)
        return parse_uploaded_file(answer.payload, name=name, size_bytes=len(data))

    async def create_generation(self, body: dict[str, Any], *, idempotency_key: str) -> RemoteTask:
        """``POST /api/v1/generations``. Any 2xx is a task; every retry sends the same key.

        409 idempotency_conflict has two readings: the key was used with another body (for
        good), or the first request with this key is still being processed (a service that
        answers a replay in flight as Stripe does). The same body is sent again after a pause,
        up to ``CONFLICT_PATIENCE`` times; a conflict that outlasts them is raised."""
        if not idempotency_key:
            raise ValueError("create_generation needs an idempotency key")
        call = self._api_call("POST", "/generations", scope="generations:create")
        headers = {"Idempotency-Key": idempotency_key}
        for tries in range(1, CONFLICT_PATIENCE + 2):
            try:
                answer = await self._json_call(call, json_body=body, headers=headers)
                break
            except IdempotencyConflictError:
                if tries > CONFLICT_PATIENCE:
                    raise
                delay = self._retry.backoff_cap(tries)
                log.debug(
                    "POST %s: 409 idempotency_conflict; same body again in %.3fs",
                    call.url.path,
                    delay,
                )
                await anyio.sleep(delay)
        replayed = answer.headers.get("Idempotent-Replayed", "").strip().lower() == "true"
        return parse_task(answer.payload, replayed=replayed)

    async def get_generation(self, task_id: str) -> RemoteTask:
        """``GET /api/v1/generations/{task_id}``."""
        if not task_id:
            raise ValueError("get_generation needs a task id")
        call = self._api_call(
            "GET",
            f"/generations/{quote(task_id, safe='')}",
            endpoint=f"GET {API}/generations/{{id}}",
            scope="generations:read",
        )
        answer = await self._json_call(call)
        return parse_task(answer.payload)

    async def download(self, url: str, dest: Path) -> int:
        """Stream a result file to ``dest`` through a temp file in its folder, fsync, rename.

        Returns the bytes written. 404/410 (and 401/403 from a host other than the API's, where
        that is how signed URLs expire) raise ``ResultExpiredError``: fetch the task again.
        """
        call = self._foreign_or_api_call("GET", url, endpoint=RESULT)
        dest = Path(dest)
        return await self._get(call, lambda resp: stream_to_file(resp, dest))

    async def fetch_reference(self, url: str) -> bytes:
        """GET an http(s) reference image, never with the key, at most ``max_reference_bytes``
        (10 MB, the contract's image limit): larger raises ``ValidationFailedError``."""
        target = self._foreign_or_api_call("GET", url, endpoint=REFERENCE)
        call = replace(target, auth=False)
        cap = self._max_reference_bytes
        return await self._get(call, lambda resp: _read_capped(resp, call, cap))

    # ------------------------------------------------------------------ request plumbing

    def _api_call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str | None = None,
        scope: str | None = None,
        auth: bool = True,
    ) -> _Call:
        url = URL(f"{self._base}{API}{path}", encoded=True)
        return _Call(method, url, endpoint or f"{method} {API}{path}", scope=scope, auth=auth)

    def _foreign_or_api_call(self, method: str, url: str, *, endpoint: str) -> _Call:
        try:
            parsed = URL(url)
        except (TypeError, ValueError) as exc:
            raise ClientRequestError(
                f"{endpoint}: not a URL", code="invalid_url", status=0
            ) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ClientRequestError(
                f"{endpoint}: only http(s) URLs can be fetched", code="invalid_url", status=0
            )
        ours = parsed.origin() == self._base.origin()
        # The per-key rate limit covers the API's endpoints (under /api/v1): a result or file
        # URL that the API host serves beside them spends no token of the request budget.
        api_prefix = f"{self._base.path.rstrip('/')}{API}/"
        budgeted = ours and parsed.path.startswith(api_prefix)
        return _Call(method, parsed, endpoint, auth=ours, budgeted=budgeted)

    def _headers(self, call: _Call, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        same_origin = call.url.origin() == self._base.origin()
        if call.auth and same_origin and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client as `async with RivyaClient(...) as client:`")
        return self._session

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _emit(self, event: Event) -> None:
        self.stats.record(event)  # the one place the client's requests are counted
        if self._events is not None:
            self._events.emit(event)

    async def _retrying(self, call: _Call, attempt_fn: Callable[[int], Awaitable[T]]) -> T:
        attempts = 0

        async def once() -> T:
            nonlocal attempts
            attempts += 1
            return await attempt_fn(attempts)

        def on_retry(attempt: int, exc: BaseException, delay_s: float) -> None:
            log.debug(
                "%s %s attempt %d failed (%s); retry in %.3fs",
                call.method,
                call.url.path,
                attempt,
                type(exc).__name__,
                delay_s,
            )
            error = self._scrub(f"{type(exc).__name__}: {exc}")
            self._emit(RequestRetried(call.endpoint, attempt, error, delay_s))

        def waited_elsewhere(exc: BaseException) -> float | None:
            # A 429 with Retry-After on a budgeted call paused the shared limiter: the next
            # attempt's acquire() waits that out, so the retry loop must not sleep it again.
            limiter = self._limiter if call.budgeted else None
            if limiter is None or not isinstance(exc, RateLimitedError):
                return None
            return None if exc.retry_after_s is None else limiter.paused_for_s

        return await call_with_retry(
            once, self._retry, on_retry=on_retry, waited_elsewhere=waited_elsewhere
        )

    async def _json_call(
        self,
        call: _Call,
        *,
        json_body: Any = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        async def read(resp: aiohttp.ClientResponse) -> _Answer:
            return _Answer(resp.status, resp.headers, self._parse_json(call, await resp.read()))

        async def attempt(number: int) -> _Answer:
            kwargs: dict[str, Any] = {"allow_redirects": False}
            if form is not None:
                kwargs["data"] = form()  # a FormData is single-use: build one per attempt
            elif json_body is not None:
                kwargs["json"] = json_body
            return await self._exchange(call, number, read, headers=headers, **kwargs)

        return await self._retrying(call, attempt)

    async def _get(
        self, call: _Call, consume: Callable[[aiohttp.ClientResponse], Awaitable[T]]
    ) -> T:
        """A plain GET of a URL (a result or a reference), retried; ``consume`` reads its 2xx."""
        # No total timeout: a big file may take long; a stalled socket may not.
        timeout = aiohttp.ClientTimeout(sock_connect=self._timeout_s, sock_read=self._timeout_s)

        async def attempt(number: int) -> T:
            return await self._exchange(call, number, consume, timeout=timeout)

        return await self._retrying(call, attempt)

    async def _exchange(
        self,
        call: _Call,
        attempt: int,
        consume: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> T:
        """One HTTP exchange, the only place a request is sent (JSON calls, downloads, references).

        Takes a token (budgeted calls), sends, notes the answer once (``_answered``), raises a
        non-2xx answer as its typed error and hands a 2xx one to ``consume``; aiohttp failures
        (before or during the body) become ``TransportError``.
        """
        session = self._session_or_fail()
        sent_at = await self._take_token(call)
        noted = False
        failure: TransportError | None = None
        try:
            async with session.request(
                call.method, call.url, headers=self._headers(call, headers), **kwargs
            ) as resp:
                if 200 <= resp.status < 300:
                    noted = True
                    self._answered(call, attempt, resp.status, resp.headers, sent_at)
                    return await consume(resp)
                err = self._refusal(call, resp.status, await resp.read(), resp.headers)
                noted = True
                self._answered(call, attempt, resp.status, resp.headers, sent_at, err)
                raise err
        except aiohttp.ClientResponseError as exc:
            # Its repr holds the request headers (the key): do not chain it.
            failure = self._transport_error(call, attempt, exc, answered=noted)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(call, attempt, exc, answered=noted) from exc
        raise failure  # outside the except block, so it carries no __context__ either

    def _transport_error(
        self, call: _Call, attempt: int, exc: BaseException, *, answered: bool
    ) -> TransportError:
        """The TransportError for an aiohttp failure; the exchange's note if nothing answered."""
        detail = str(exc) if not isinstance(exc, aiohttp.ClientResponseError) else exc.message
        what = type(exc).__name__ + (f": {detail}" if detail else "")
        if isinstance(exc, TimeoutError):
            what = f"no answer within {self._timeout_s:g}s"
        log.debug("%s %s -> no answer (%s) attempt=%d", call.method, call.url.path, what, attempt)
        if not answered:  # a body cut after its status was noted is still one exchange
            self._emit(RequestAnswered(call.endpoint, None))
        return TransportError(self._scrub(f"{call.endpoint}: {what}"))

    def _answered(
        self,
        call: _Call,
        attempt: int,
        status: int,
        headers: Mapping[str, str],
        sent_at: float | None,
        err: BaseException | None = None,
    ) -> None:
        """Note one HTTP answer, once: log it (never headers), emit ``RequestAnswered``; a 429
        cuts the limiter's rate and pauses it (budgeted calls) and emits ``RateLimited``; any
        other answer to a budgeted call feeds the limiter's additive increase."""
        request_id = getattr(err, "request_id", None) or headers.get("X-Request-Id")
        log.debug(
            "%s %s -> %d requestId=%s attempt=%d",
            call.method,
            call.url.path,
            status,
            request_id,
            attempt,
        )
        self._emit(RequestAnswered(call.endpoint, status, request_id))
        limiter = self._limiter if call.budgeted else None
        if isinstance(err, RateLimitedError):
            if limiter is not None:
                limiter.on_rate_limited(err.retry_after_s, sent_at=sent_at)
            rate = limiter.current_rate_per_s if limiter is not None else None
            self._emit(RateLimited(call.endpoint, err.retry_after_s, rate))
        elif limiter is not None:
            limiter.on_success()

    async def _take_token(self, call: _Call) -> float | None:
        if self._limiter is None or not call.budgeted:
            return None
        return await self._limiter.acquire()

    def _parse_json(self, call: _Call, body: bytes) -> Any:
        payload = json_or_none(body)
        if payload is None:
            raise TransportError(f"{call.endpoint} answered 2xx with a body that is not JSON")
        return payload

    def _error(
        self, call: _Call, status: int, body: bytes, headers: Mapping[str, str]
    ) -> BatchgenError:
        if 300 <= status < 400:
            where = self._scrub(str(URL(headers.get("Location", "")).with_query(None)))
            return ClientRequestError(
                f"{call.endpoint} answered HTTP {status}, a redirect to {where}",
                code=f"http_{status}",
                status=status,
                hint="Check RIVYA_BASE_URL: it should be the API's own address.",
            )
        if self._api_key:  # a server that echoes the key must not put it in our messages
            body = body.replace(self._api_key.encode(), b"[redacted]")
        return error_from_answer(status, body, headers, endpoint=call.endpoint, scope=call.scope)

    def _refusal(
        self, call: _Call, status: int, body: bytes, headers: Mapping[str, str]
    ) -> BatchgenError:
        """The typed error of a non-2xx answer: an expired result, an unavailable reference or a
        refusal from a foreign host (never AuthError & co), else the API's own (``_error``)."""
        where = str(call.url.with_query(None))
        refused = 400 <= status < 500 and status != 429
        foreign = call.url.origin() != self._base.origin()
        if call.endpoint == RESULT and result_gone(status, foreign=foreign):
            return ResultExpiredError(
                f"the result URL {where} answered HTTP {status}: it has expired",
                hint="Fetch the task again for fresh result URLs.",
            )
        if refused and (call.endpoint == REFERENCE or foreign):
            # Never AuthError & co: only the API's own answers may stop the whole run.
            code = "reference_unavailable" if call.endpoint == REFERENCE else f"http_{status}"
            return ClientRequestError(
                f"{call.endpoint} {where} answered HTTP {status}", code=code, status=status
            )
        return self._error(call, status, body, headers)


async def _read_capped(resp: aiohttp.ClientResponse, call: _Call, cap: int) -> bytes:
    """The whole body, refusing (``ValidationFailedError``) anything over ``cap`` bytes."""
    declared = resp.content_length
    parts: list[bytes] = []
    size = 0
    if declared is None or declared <= cap:
        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
            size += len(chunk)
            if size > cap:
                break
            parts.append(chunk)
    if (declared is not None and declared > cap) or size > cap:
        raise ValidationFailedError(
            f"the reference {call.url.with_query(None)} is larger than the {cap:,}-byte limit",
            code="reference_too_large",
            status=resp.status,
        )
    return b"".join(parts)
