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
``limiter.on_rate_limited``, which eases off as ``batchgen.limits`` says); and waited for once:
with a limiter, the refused request waits its Retry-After before its retry and the next
``acquire()`` waits out whatever shared pause is left, with no backoff sleep on top; without
one (or with no Retry-After), the retry loop sleeps its backoff, Retry-After as its floor. Every
answer to an API call hands its ``X-RateLimit-*`` headers (``wire.window_hint``) to the limiter,
which learns the server's window from them. Each retry emits ``RequestRetried``.

Security decisions:

* The API key goes only to requests on the *origin* (scheme, host, port) of the base URL whose
  path is under the API's ``/api/v1/``: never to result or file URLs, on any host (the API's
  included), and never to reference images. Redirects are never followed by aiohttp: an API
  call answered 3xx is an error that says so; a result or reference URL answered 3xx is
  followed by the client itself (at most ``MAX_REDIRECTS`` hops), without the key.
* A result URL that answers 401/403/404/410, on any host, has expired (``ResultExpiredError``:
  fetch the task again), never an ``AuthError``.
* A key over plain ``http://`` is refused (``ConfigError``) unless the host is loopback.
* The key is never in a log line, an exception message, an event or ``repr``: logs carry
  method, path, status, requestId and attempt, never headers; messages from the server are
  scrubbed of it; aiohttp errors that carry request headers (``ClientResponseError``) are not
  chained. A JSON answer that echoes the key has it replaced by ``redact.REDACTED`` before
  it is parsed (so no task text or URL keeps it); a URL to fetch that carries it is a
  ``BadAnswerError``, never requested. URLs in messages are shown by ``wire.safe_url`` (no
  userinfo, query or fragment) and server text by ``wire.clean_text`` (no control characters,
  capped).
* No cookies are kept (``DummyCookieJar``) and no proxy settings are read from the environment.

Downloads are bounded (settings of the client, see ``RivyaClient``): ``max_result_bytes`` (a
result larger is refused: ``ResultRefusedError`` ``result_too_large``, nothing on disk; a body
that is not a video is ``result_not_video``), ``download_deadline_s`` for each attempt at a file
(a result or a reference) and ``download_idle_s`` without a byte (``DownloadTimeoutError``,
retried as a transport error). Reference fetches are capped at ``max_reference_bytes``.

Retry-After: a 429's is honoured (its request waits it out) and a 503 public_api_disabled's is
the floor of the next wait, up to the policy's ``max_delay_s``; both are first clamped to an
hour and to the policy's deadline (``wire.clamp_retry_after``), and a wait that would pass the
deadline gives up (``RetryExhaustedError``: the job is left resumable).
"""

from __future__ import annotations

import logging
import random
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
from batchgen.contract import sniff_image_mime
from batchgen.errors import (
    BadAnswerError,
    BatchgenError,
    ClientRequestError,
    DownloadTimeoutError,
    IdempotencyConflictError,
    RateLimitedError,
    ResultExpiredError,
    ServiceDisabledError,
    TransportError,
    ValidationFailedError,
)
from batchgen.events import Event, EventBus, RateLimited, RequestAnswered, RequestRetried
from batchgen.files import (
    CHUNK_BYTES,
    DOWNLOAD_DEADLINE_S,
    MAX_RESULT_BYTES,
    Bounds,
    stream_and_hash,
)
from batchgen.limits import RequestLimiter
from batchgen.models import MODEL_ID, RemoteTask, UploadedFile
from batchgen.redact import REDACTED
from batchgen.retry import RetryPolicy, call_with_retry
from batchgen.wire import (
    ClientStats,
    check_api_key,
    check_base_url,
    checked_id,
    clamp_retry_after,
    clean_text,
    error_from_answer,
    json_or_none,
    parse_task,
    parse_uploaded_file,
    result_gone,
    safe_url,
    safe_urls_in,
    upload_filename,
    wallet_credits,
    window_hint,
)

log = logging.getLogger("batchgen.client")

T = TypeVar("T")

API = "/api/v1"
RESULT = "GET result"  # endpoint label of result downloads (any host)
REFERENCE = "GET reference"  # endpoint label of reference fetches (any host)
DEFAULT_USER_AGENT = f"batchgen/{__version__}"
MAX_REFERENCE_BYTES = 10_000_000  # the contract's "10 MB", read as the smaller (decimal) limit
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a JSON answer larger than this is not read
MAX_ERROR_BODY_BYTES = 64 * 1024  # of an error answer's body, only this much is read
MAX_REDIRECTS = 5  # hops a result or reference URL may redirect (followed without the key)
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
    auth: bool = True  # may send the key (only ever to the base URL's origin, under /api/v1/)
    budgeted: bool = True  # takes a limiter token and feeds its AIMD (API endpoints only)

    @property
    def is_download(self) -> bool:
        return self.endpoint in (RESULT, REFERENCE)


class _Redirected(Exception):
    """A result or reference URL answered 3xx: the client follows it (never aiohttp)."""

    def __init__(self, location: str) -> None:
        super().__init__("redirect")
        self.location = location


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    payload: Any


class RivyaClient:
    """Async client for Rivya Public API v1. Use as ``async with RivyaClient(...) as client``.

    Settings besides the base URL and key: ``timeout_s`` (a whole API call; also the connect
    timeout of downloads), ``max_reference_bytes`` (10,000,000), ``max_result_bytes``
    (500,000,000: a larger result is refused, nothing is written past it),
    ``download_deadline_s`` (600: one attempt at one file, however slowly it trickles) and
    ``download_idle_s`` (seconds without a byte before a download is given up; default
    ``timeout_s``).
    """

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
        max_result_bytes: int = MAX_RESULT_BYTES,
        download_deadline_s: float = DOWNLOAD_DEADLINE_S,
        download_idle_s: float | None = None,
        events: EventBus | None = None,
    ) -> None:
        check_api_key(api_key)
        self._base = check_base_url(base_url, api_key)
        self._origin = self._base.origin()  # asked for every request: computed once
        self._api_prefix = f"{self._base.path.rstrip('/')}{API}/"
        self._api_key = api_key
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._timeout_s = timeout_s
        self._user_agent = user_agent
        self._connection_limit = connection_limit
        self._max_reference_bytes = max_reference_bytes
        self._max_result_bytes = max_result_bytes
        self._download_deadline_s = download_deadline_s
        self._download_idle_s = download_idle_s if download_idle_s is not None else timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._events = events
        self._rng = random.Random()  # the retry jitter of every call
        self._key_bytes = api_key.encode() if api_key else None
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
        return wallet_credits(answer.payload)

    async def upload_file(
        self,
        data: bytes,
        name: str,
        *,
        kind: str = "image",
        model: str | None = MODEL_ID,
        client_request_id: str | None = None,
        mime_type: str | None = None,
    ) -> UploadedFile:
        """``POST /api/v1/files`` (multipart). A retried upload may store a second copy: files
        cost nothing and the caller keeps whichever answer arrives.

        The part is sent as the detected type (``mime_type``, else sniffed from ``data``) under
        a name with that type's extension (``hero.jpg`` holding PNG bytes goes as ``hero.png``);
        the answer's missing fields are filled from what was sent (``parse_uploaded_file``)."""
        fields = {"kind": kind, "model": model, "client_request_id": client_request_id}
        mime = mime_type or sniff_image_mime(data[:16]) or "application/octet-stream"
        filename = upload_filename(name, mime)

        def form() -> aiohttp.FormData:
            body = aiohttp.FormData()
            body.add_field("file", data, filename=filename, content_type=mime)
            for key, value in fields.items():
                if value is not None:
                    body.add_field(key, value)
            return body

        call = self._api_call("POST", "/files", scope="files:create")
        answer = await self._json_call(call, form=form)
        up = parse_uploaded_file(
            answer.payload, name=filename, size_bytes=len(data), mime_type=mime
        )
        self._refuse_echoed_key(up.url, "the uploaded file's url")
        return up

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
        return self._task(answer.payload, replayed=replayed)

    async def get_generation(self, task_id: str) -> RemoteTask:
        """``GET /api/v1/generations/{task_id}``."""
        if not task_id:
            raise ValueError("get_generation needs a task id")
        checked_id(task_id, "task")  # never a path segment like ".." (quoted as well)
        call = self._api_call(
            "GET",
            f"/generations/{quote(task_id, safe='')}",
            endpoint=f"GET {API}/generations/{{id}}",
            scope="generations:read",
        )
        answer = await self._json_call(call)
        return self._task(answer.payload)

    async def download(self, url: str, dest: Path) -> int:
        """Stream a result file to ``dest`` through a temp file in its folder, fsync, rename.

        Returns the bytes written. 401/403/404/410 (on any host) raise ``ResultExpiredError``:
        fetch the task again. A result over ``max_result_bytes`` or not a video raises
        ``ResultRefusedError``; a body cut short, a stall or the deadline a (retried)
        ``TransportError``. Nothing is left on disk but a whole, accepted file.
        """
        return (await self.download_hashed(url, dest))[0]

    async def download_hashed(self, url: str, dest: Path) -> tuple[int, str]:
        """``download``, also returning the hex sha256 of the file, computed while it streamed
        (no second read of the file)."""
        call = self._foreign_or_api_call("GET", url, endpoint=RESULT)
        dest = Path(dest)
        label = f"the result {self._say(safe_url(url))}"
        bounds = Bounds(max_bytes=self._max_result_bytes, video_only=True, label=label)
        return await self._get(call, lambda resp: stream_and_hash(resp, dest, bounds))

    async def fetch_reference(self, url: str) -> bytes:
        """GET an http(s) reference image, never with the key, at most ``max_reference_bytes``
        (10,000,000, the contract's image limit read as the smaller): larger raises
        ``ValidationFailedError``. Same deadline and idle rules as ``download``."""
        target = self._foreign_or_api_call("GET", url, endpoint=REFERENCE)
        call = replace(target, auth=False)
        cap = self._max_reference_bytes
        return await self._get(call, lambda resp: _read_capped(resp, cap))

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
        self._refuse_echoed_key(url, f"the URL of {endpoint}")
        parsed = parsed.with_user(None)  # userinfo would go as Basic auth: never sent
        ours = parsed.origin() == self._origin
        # The per-key rate limit covers the API's endpoints (under /api/v1): a result or file
        # URL that the API host serves beside them spends no token of the request budget.
        budgeted = ours and parsed.path.startswith(self._api_prefix)
        # Never the key: a result or file URL is a bearer link of its own, on any host.
        return _Call(method, parsed, endpoint, auth=False, budgeted=budgeted)

    def _keyed(self, call: _Call) -> bool:
        """Whether ``call`` carries the key: only to the base URL's origin, under /api/v1/."""
        return (
            call.auth
            and self._api_key is not None
            and call.url.origin() == self._origin
            and call.url.path.startswith(self._api_prefix)
        )

    def _headers(self, call: _Call, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._keyed(call) and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client as `async with RivyaClient(...) as client:`")
        return self._session

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, REDACTED) if self._api_key else text

    def _say(self, text: str) -> str:
        """Text fit for an exception or event: no key, URLs shown safe, cleaned and capped."""
        return clean_text(safe_urls_in(self._scrub(text)), 1000)

    def _refuse_echoed_key(self, url: str, what: str) -> None:
        if self._api_key and self._api_key in url:
            raise BadAnswerError(f"{what} carries the API key; it is neither fetched nor kept")

    def _task(self, payload: Any, *, replayed: bool = False) -> RemoteTask:
        """The task of an answer (``parse_task``; the key was scrubbed from the JSON body)."""
        return parse_task(payload, replayed=replayed)

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
            error = self._say(f"{type(exc).__name__}: {exc}")
            self._emit(RequestRetried(call.endpoint, attempt, error, delay_s))

        pending_s = 0.0  # a 503's Retry-After, waited out before the next attempt

        def waited_elsewhere(exc: BaseException) -> float | None:
            nonlocal pending_s
            # A 503 with Retry-After: the next attempt first waits that out (below), at most
            # the policy's max_delay_s, instead of the loop's shorter jittered backoff.
            if isinstance(exc, ServiceDisabledError) and exc.retry_after_s:
                pending_s = min(exc.retry_after_s, self._retry.max_delay_s)
                return pending_s
            # A 429 with Retry-After on a budgeted call: this request waits its Retry-After
            # (below) and then the limiter's shared pause, if any is left (the next acquire());
            # the other workers wait only that pause. The retry loop sleeps neither again.
            limiter = self._limiter if call.budgeted else None
            if limiter is None or not isinstance(exc, RateLimitedError):
                return None
            if exc.retry_after_s is None:
                return None
            pending_s = exc.retry_after_s
            return max(pending_s, limiter.paused_for_s)

        async def after_pending() -> T:
            nonlocal pending_s
            wait, pending_s = pending_s, 0.0
            if wait > 0:
                await anyio.sleep(wait)
            return await once()

        return await call_with_retry(
            after_pending,
            self._retry,
            on_retry=on_retry,
            waited_elsewhere=waited_elsewhere,
            rng=self._rng,  # one per client: a Random per call costs a seeding and 2.5 KB
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
            body = await _read_at_most(resp, MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise TransportError(
                    f"{call.endpoint} answered more than {MAX_ANSWER_BYTES:,} bytes of JSON"
                )
            return _Answer(resp.status, resp.headers, self._parse_json(call, body))

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
        """A plain GET of a URL (a result or a reference), retried; ``consume`` reads its 2xx.

        Each attempt follows redirects itself (without the key, at most ``MAX_REDIRECTS``) and
        must end within ``download_deadline_s``; a socket silent for ``download_idle_s`` fails
        it too (``DownloadTimeoutError``, retried)."""
        timeout = aiohttp.ClientTimeout(
            sock_connect=self._timeout_s, sock_read=self._download_idle_s
        )
        deadline = self._download_deadline_s

        async def hops(number: int) -> T:
            target = call
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    return await self._exchange(
                        target, number, consume, timeout=timeout, allow_redirects=False
                    )
                except _Redirected as hop:
                    target = self._redirect_target(target, hop.location)
            raise TransportError(f"{call.endpoint}: more than {MAX_REDIRECTS} redirects")

        async def attempt(number: int) -> T:
            try:
                with anyio.fail_after(deadline):
                    return await hops(number)
            except TimeoutError as exc:
                raise DownloadTimeoutError(
                    f"{call.endpoint} {safe_url(str(call.url))} was not done within "
                    f"{deadline:g}s (download_deadline_s)"
                ) from exc

        return await self._retrying(call, attempt)

    def _redirect_target(self, call: _Call, location: str) -> _Call:
        """Where a redirect of a result or reference leads: never with the key, never budgeted."""
        try:
            url = call.url.join(URL(location)).with_user(None)
        except (TypeError, ValueError) as exc:
            raise TransportError(f"{call.endpoint}: a redirect to an unreadable URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise TransportError(f"{call.endpoint}: a redirect to a non-http(s) URL")
        return replace(call, url=url, auth=False, budgeted=False)

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
                body = await _read_at_most(resp, MAX_ERROR_BODY_BYTES)
                err = self._refusal(call, resp.status, body, resp.headers)
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
        stalled = isinstance(exc, TimeoutError) and call.is_download
        if stalled:
            what = f"no data for {self._download_idle_s:g}s (download_idle_s)"
        elif isinstance(exc, TimeoutError):
            what = f"no answer within {self._timeout_s:g}s"
        what = self._say(what)
        log.debug("%s %s -> no answer (%s) attempt=%d", call.method, call.url.path, what, attempt)
        if not answered:  # a body cut after its status was noted is still one exchange
            self._emit(RequestAnswered(call.endpoint, None))
        kind = DownloadTimeoutError if stalled else TransportError
        return kind(f"{call.endpoint}: {what}")

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
        goes to the limiter's ``on_rate_limited`` (budgeted calls) and emits ``RateLimited``;
        any other answer to a budgeted call to its ``on_success``; both with the answer's
        ``X-RateLimit-*`` headers."""
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
        hint = window_hint(headers) if limiter is not None else None
        if isinstance(err, RateLimitedError):
            if limiter is not None:
                limiter.on_rate_limited(err.retry_after_s, sent_at=sent_at, hint=hint)
            rate = limiter.current_rate_per_s if limiter is not None else None
            self._emit(RateLimited(call.endpoint, err.retry_after_s, rate))
        elif limiter is not None:
            limiter.on_success(hint)

    async def _take_token(self, call: _Call) -> float | None:
        if self._limiter is None or not call.budgeted:
            return None
        return await self._limiter.acquire()

    def _parse_json(self, call: _Call, body: bytes) -> Any:
        if self._key_bytes and self._key_bytes in body:
            # A server that echoes the key must not put it in anything we keep or show: it is
            # replaced before the body is parsed (once: a body without it is parsed as is).
            body = body.replace(self._key_bytes, REDACTED.encode())
        payload = json_or_none(body)
        if payload is None:
            raise TransportError(f"{call.endpoint} answered 2xx with a body that is not JSON")
        if self._api_key and b"\\u" in body:
            # JSON escapes can spell the key in other bytes (every character as \\uXXXX): the
            # parsed strings are scrubbed as well (only bodies with escapes pay for the walk).
            try:
                payload = _scrubbed(payload, self._api_key)
            except RecursionError:
                raise TransportError(f"{call.endpoint} answered JSON nested too deeply") from None
        return payload

    def _error(
        self, call: _Call, status: int, body: bytes, headers: Mapping[str, str]
    ) -> BatchgenError:
        if 300 <= status < 400:
            where = self._say(safe_url(headers.get("Location", "") or "(no Location)"))
            return ClientRequestError(
                f"{call.endpoint} answered HTTP {status}, a redirect to {where}; API calls are "
                "never redirected (the key would follow)",
                code=f"http_{status}",
                status=status,
                hint="Check RIVYA_BASE_URL: it should be the API's own address "
                f"({safe_url(str(self._base))} answered with a redirect).",
            )
        if self._api_key:  # a server that echoes the key must not put it in our messages
            body = body.replace(self._api_key.encode(), REDACTED.encode())
        err = error_from_answer(status, body, headers, endpoint=call.endpoint, scope=call.scope)
        if isinstance(err, RateLimitedError | ServiceDisabledError):
            err.retry_after_s = clamp_retry_after(err.retry_after_s, self._retry.deadline_s)
        err.message = self._say(err.message)
        err.args = (err.message,)
        return err

    def _refusal(
        self, call: _Call, status: int, body: bytes, headers: Mapping[str, str]
    ) -> BatchgenError | _Redirected:
        """The typed error of a non-2xx answer: an expired result, an unavailable reference or a
        refusal from a foreign host (never AuthError & co), else the API's own (``_error``)."""
        where = self._say(safe_url(str(call.url)))
        refused = 400 <= status < 500 and status != 429
        foreign = call.url.origin() != self._origin
        if call.is_download and 300 <= status < 400 and "Location" in headers:
            return _Redirected(headers["Location"])
        if call.endpoint == RESULT and result_gone(status):
            return ResultExpiredError(
                f"the result URL {where} answered HTTP {status}: it has expired or no longer holds",
                hint="Fetch the task again for fresh result URLs.",
            )
        if refused and (call.is_download or foreign):
            # Never AuthError & co: only the API's own answers may stop the whole run.
            code = "reference_unavailable" if call.endpoint == REFERENCE else f"http_{status}"
            return ClientRequestError(
                f"{call.endpoint} {where} answered HTTP {status}", code=code, status=status
            )
        return self._error(call, status, body, headers)


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (an endless body cannot fill the memory)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(min(limit, CHUNK_BYTES)):
        parts.append(chunk[: limit - size])
        size += len(parts[-1])
        if size >= limit:
            break
    return b"".join(parts)


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
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
            f"the reference {safe_url(str(resp.url))} is larger than the {cap:,}-byte limit",
            code="reference_too_large",
            status=resp.status,
        )
    return b"".join(parts)


def _scrubbed(value: Any, secret: str) -> Any:
    """``value`` (parsed JSON) with ``secret`` replaced in every string, keys included."""
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, list):
        return [_scrubbed(item, secret) for item in value]
    if isinstance(value, dict):
        return {_scrubbed(k, secret): _scrubbed(v, secret) for k, v in value.items()}
    return value
