"""HTTP for every platform: one session, explicit timeouts and limits, retries, clear errors.

* Connection reuse: one ``requests.Session`` per client with a pooled adapter.
* Timeouts on every request: connect, read (the longest gap between two bytes) and a total
  **deadline** per attempt (:attr:`HttpPolicy.deadline`, default 60 s) covering connect,
  headers and body. A server that drips its answer a byte at a time never trips the read
  timeout; at the deadline a watchdog shuts the socket down and the attempt counts as
  timed out (retried, then ``HttpError: deadline of 60 s exceeded after 4 attempts``).
* A **time budget per account** (:meth:`HttpClient.account_budget`, default
  :attr:`HttpPolicy.account_budget` = 10 minutes): the connectors open one around each
  account. Requests, retries and waits (backoff, rate limits) stay inside it; a request
  still running at its end is cut off, and nothing starts that would end past it:
  :class:`BudgetExceeded` names the account and the budget, the connector records it for
  that account and goes on with the next.
* A **size cap** (:attr:`HttpPolicy.max_bytes`, default 8 MiB, after decompression):
  bodies are streamed; a ``Content-Length`` above the cap is refused before reading, a
  body growing past it is refused at the cap (:class:`ResponseTooLarge` names the URL and
  the cap; the rest is not read and the connection is closed, not reused). Callers get a
  response whose ``content``, ``text`` and ``json()`` work as usual.
* Retries with exponential backoff (and jitter) for timeouts, deadlines, connection
  errors, bodies broken while being read (a reset, a truncated chunked body, a body
  shorter than its ``Content-Length``, undecodable gzip) and 5xx; after the last attempt
  an :class:`HttpError` names the URL and what went wrong.
* Rate limits: the client reads ``X-RateLimit-*`` (Mastodon), ``RateLimit-*`` (IETF draft,
  Bluesky) and ``Retry-After`` and paces requests so that a run stays under the limit; a 429
  is waited out as the server says (bounded by ``max_wait``), then the request goes on.
* No concurrency limit in the process: a connector reads its accounts one after another,
  and how many fetch tasks hit one platform at once is up to the platform's Airflow pool.
* Errors name the URL and say what was wrong (:class:`HttpError`, :class:`PayloadError`,
  :class:`ResponseTooLarge`, :class:`RateLimited`, :class:`BudgetExceeded`); a connector
  records them per account. Any other ``requests`` error (too many redirects, an invalid
  URL) is an :class:`HttpError` too, not retried: nothing but an HttpError leaves
  :meth:`HttpClient.get`.

``requests`` is imported lazily: this module may be imported at DAG parse time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import http.client
import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

log = logging.getLogger(__name__)

USER_AGENT = "socialpulse/0.1 (+https://github.com/socialpulse/socialpulse)"
#: bytes read per step of a streamed body
_CHUNK = 64 * 1024
#: query parameters that carry credentials: never shown in a message or log line
SECRET_PARAMS = frozenset({"access_token", "appsecret_proof", "key", "api_key", "token"})
#: what is kept of the body of an error response (4xx, 5xx, 429): enough for its message
_ERROR_BODY = 64 * 1024


class HttpError(RuntimeError):
    """A request failed for good (after retries where retrying made sense)."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(f"{message} ({url})")


class PayloadError(HttpError):
    """The response was not what the API promises (an HTML page, truncated JSON, ...)."""


class ResponseTooLarge(PayloadError):
    """The response is larger than :attr:`HttpPolicy.max_bytes` (not read beyond the cap)."""


class RateLimited(HttpError):
    """The server asks us to wait longer than we are allowed to."""


class BudgetExceeded(HttpError):
    """The account's time budget (:meth:`HttpClient.account_budget`) is used up."""


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 5.0
    #: the longest gap between two bytes of the response
    read_timeout: float = 30.0
    #: the longest one attempt may take, connect + headers + body (a dripping server)
    deadline: float = 60.0
    #: the longest response body accepted (bytes, after decompression); larger: refused
    max_bytes: int = 8 * 1024 * 1024
    #: the time one account may take (:meth:`HttpClient.account_budget`), retries and
    #: waits included
    account_budget: float = 600.0
    #: attempts after the first for timeouts, deadlines, connection errors, broken bodies, 5xx
    retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 30.0
    #: the longest we wait for a rate limit (Retry-After or a reset); longer -> RateLimited
    max_wait: float = 120.0
    #: 429 responses waited out per request before giving up
    max_429: int = 3
    #: requests kept in reserve below the server's limit
    reserve: int = 1


@dataclass
class _HostBudget:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # on the client's monotonic clock
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _TimeBudget:
    """An account's time budget: what it is for, how long, until when (client clock)."""

    what: str
    seconds: float
    ends_at: float
    requests_before: int


class _Retry(Exception):
    """An attempt failed in a way worth another attempt (timeout, deadline, broken body)."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


class _Cut(Exception):
    """The attempt's deadline passed while its body was being read."""


# -- the deadline watchdog ------------------------------------------------------------------

#: the attempt (its watch) running in this thread, found by the connections it uses
_current = threading.local()


class _Watch:
    """Ends one attempt at its deadline: shuts down the socket of the connection in use.

    A blocked read then returns at once (EOF), whatever the read timeout; the client sees
    ``expired`` and reports the deadline, not the broken read it caused.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.expired = False
        self.done = False
        self.timer = threading.Timer(max(0.0, seconds), self._expire)
        self.timer.daemon = True
        self.timer.start()

    def attach(self, conn: Any) -> None:
        with self.lock:
            # the socket itself, taken now: http.client lets go of it (conn.sock = None)
            # once the headers say "Connection: close", and the body still comes through it
            self.sock = getattr(conn, "sock", None)
            if self.expired:
                _shutdown(self.sock)

    def _expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            _shutdown(self.sock)

    def overdue(self) -> bool:
        """Expired, or past the deadline (where no watched connection was used)."""
        return self.expired or time.monotonic() >= self.ends_at

    def stop(self) -> bool:
        """End the watch; whether the deadline cut the attempt."""
        self.timer.cancel()
        with self.lock:
            self.done = True
            return self.expired


def _shutdown(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            # the plain socket's shutdown, also under TLS: unblocks a read in another thread
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _attach(conn: Any) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(conn)


_POOL_CLASSES: dict[str, type] = {}


def _pool_classes() -> dict[str, type]:
    """urllib3 pools whose connections report to the attempt's watch (built once, lazily)."""
    if not _POOL_CLASSES:
        from urllib3.connection import HTTPConnection as _HTTPConnection
        from urllib3.connection import HTTPSConnection as _HTTPSConnection
        from urllib3.connectionpool import HTTPConnectionPool as _HTTPConnectionPool
        from urllib3.connectionpool import HTTPSConnectionPool as _HTTPSConnectionPool

        # (urllib3's names: error messages read as they always did)
        class HTTPConnection(_HTTPConnection):
            def connect(self) -> None:
                _attach(self)
                super().connect()
                _attach(self)  # now with its socket

            def request(self, *args: Any, **kwargs: Any) -> None:
                _attach(self)  # a connection reused from the pool, or one still to connect
                super().request(*args, **kwargs)

        class HTTPSConnection(_HTTPSConnection):
            def connect(self) -> None:
                _attach(self)
                super().connect()
                _attach(self)

            def request(self, *args: Any, **kwargs: Any) -> None:
                _attach(self)
                super().request(*args, **kwargs)

        class HTTPConnectionPool(_HTTPConnectionPool):
            ConnectionCls = HTTPConnection

        class HTTPSConnectionPool(_HTTPSConnectionPool):
            ConnectionCls = HTTPSConnection

        _POOL_CLASSES.update(http=HTTPConnectionPool, https=HTTPSConnectionPool)
    return _POOL_CLASSES


def _adapter_class() -> type:
    from requests.adapters import HTTPAdapter

    class _WatchedAdapter(HTTPAdapter):
        """An HTTPAdapter whose connections the deadline watchdog can cut off."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = _pool_classes()

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS brings its own pools
                manager.pool_classes_by_scheme = _pool_classes()
            return manager

    return _WatchedAdapter


def make_session(pool_size: int = 8) -> requests.Session:
    import requests

    session = requests.Session()
    adapter = _adapter_class()(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class HttpClient:
    """GET with timeouts, limits, retries and rate-limit pacing. One per platform and fetch.

    A session of one's own (``session=``) works too; without :func:`make_session`'s
    adapter the deadline is checked between the chunks of the body only.
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session or make_session()
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        self.clock = clock
        self._budgets: dict[str, _HostBudget] = {}
        self._local = threading.local()  # the account budget of each thread
        self.requests = 0

    # -- public --------------------------------------------------------------------------

    @contextlib.contextmanager
    def account_budget(self, what: str, seconds: float | None = None) -> Iterator[None]:
        """Bound the requests made inside to ``seconds`` from now (default
        ``policy.account_budget``); past it they raise :class:`BudgetExceeded` naming
        ``what`` (the account) and the budget."""
        seconds = self.policy.account_budget if seconds is None else seconds
        previous = getattr(self._local, "budget", None)
        self._local.budget = _TimeBudget(what, seconds, self.clock() + seconds, self.requests)
        try:
            yield
        finally:
            self._local.budget = previous

    def wait(self, seconds: float, url: str, why: str) -> None:
        """Wait ``seconds`` (an API's own throttling hint) inside the account's time budget.

        Raises :class:`BudgetExceeded` instead when the wait would end past the budget.
        """
        self._wait(seconds, url, why)

    def get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """GET ``url``; returns a response whose status is in ``ok``, else raises HttpError.

        The body is read already (at most ``policy.max_bytes``) and the connection released.
        """
        host = urlsplit(url).netloc
        query = {k: v for k, v in (params or {}).items() if v is not None}
        # for messages and logs: credentials a caller put in the query are masked
        masked = {k: ("***" if k.lower() in SECRET_PARAMS else v) for k, v in query.items()}
        shown = f"{url}?{urlencode(masked, doseq=True)}" if query else url
        attempt = 0
        throttled = 0
        while True:
            self._pace(url, shown)
            self._check_budget(shown, "no time left for the next request")
            try:
                response = self._attempt(url, params, headers, ok, shown)
            except _Retry as exc:
                if attempt >= self.policy.retries:
                    raise HttpError(
                        shown, f"{exc.kind} after {attempt + 1} attempts: {exc.detail}"
                    ) from exc
                self._backoff(attempt, shown, exc.kind)
                attempt += 1
                continue
            self._remember_budget(host, response)
            if response.status_code in ok:
                return response
            if response.status_code == 429:
                throttled += 1
                wait = self._retry_after(response)
                if throttled > self.policy.max_429:
                    raise RateLimited(shown, f"HTTP 429 {throttled} times in a row", 429)
                if wait > self.policy.max_wait:
                    raise RateLimited(
                        shown,
                        f"HTTP 429: server asks to wait {wait:.0f} s (> {self.policy.max_wait:.0f} s)",
                        429,
                    )
                log.warning("HTTP 429 from %s: waiting %.1f s as told", host, wait)
                self._wait(wait, shown, "HTTP 429")
                continue
            if response.status_code >= 500:
                if attempt >= self.policy.retries:
                    raise HttpError(
                        shown,
                        f"HTTP {response.status_code} after {attempt + 1} attempts",
                        response.status_code,
                    )
                self._backoff(attempt, shown, f"HTTP {response.status_code}")
                attempt += 1
                continue
            raise HttpError(shown, _describe(response), response.status_code)

    def get_json(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        expect: type = dict,
    ) -> tuple[Any, requests.Response]:
        """GET and decode JSON of the expected top-level type, or raise PayloadError."""
        response = self.get(
            url, params=params, headers={"Accept": "application/json", **(headers or {})}
        )
        return decode_json(response, expect), response

    # -- one attempt ---------------------------------------------------------------------

    def _attempt(
        self,
        url: str,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        ok: tuple[int, ...],
        shown: str,
    ) -> requests.Response:
        """One GET with its body read, under the deadline (or the end of the budget).

        Raises :class:`_Retry` for what another attempt may cure, HttpError otherwise.
        """
        import requests

        budget = self._time_budget()
        seconds, by_budget = self.policy.deadline, False
        if budget is not None and budget.ends_at - self.clock() < seconds:
            seconds, by_budget = max(0.0, budget.ends_at - self.clock()), True
        watch = _Watch(seconds)
        _current.watch = watch
        response: requests.Response | None = None
        failure: tuple[str, BaseException] | None = None
        try:
            self.requests += 1
            response = self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                stream=True,
            )
            if response.status_code in ok:
                self._read_body(response, shown, watch, self.policy.max_bytes, strict=True)
            else:  # only for the error message: the start is enough
                self._read_body(response, shown, watch, _ERROR_BODY, strict=False)
        except HttpError:
            raise  # too large: never worth another attempt
        except Exception as exc:
            kind = _retry_kind(exc, response is not None)
            if kind is None and not watch.overdue():
                if isinstance(exc, requests.RequestException):  # too many redirects, ...
                    raise HttpError(shown, f"{type(exc).__name__}: {exc}") from exc
                raise
            failure = (kind or "deadline", exc)
        finally:
            _current.watch = None
            expired = watch.stop()
            if response is not None and (failure is not None or expired):
                response.close()  # closes the connection unless the body was read to its end
        if expired or (failure is not None and failure[0] == "deadline"):
            if by_budget:
                assert budget is not None
                raise self._over_budget(budget, shown, "a request was cut off at its end")
            raise _Retry(
                f"deadline of {seconds:g} s exceeded",
                "the response was not complete in time (connect, headers and body count; "
                "HttpPolicy.deadline)",
            )
        if failure is not None:
            kind, exc = failure
            raise _Retry(kind, f"{type(exc).__name__}: {exc}")
        assert response is not None
        return response

    def _read_body(
        self,
        response: requests.Response,
        shown: str,
        watch: _Watch,
        cap: int,
        strict: bool,
    ) -> None:
        """Stream the body into ``response._content``, at most ``cap`` bytes.

        ``strict``: a larger body is refused (ResponseTooLarge), else cut at the cap. The
        connection goes back to the pool when the body was read to its end, and is closed
        when it was not.
        """
        status = response.status_code
        length = _int(response.headers.get("Content-Length"))
        if strict and length is not None and length > cap:
            response.close()
            raise ResponseTooLarge(
                shown,
                f"response of {length} bytes (Content-Length) is larger than the cap of "
                f"{cap} bytes (HttpPolicy.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES); not read",
                status,
            )
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                if watch.overdue():
                    raise _Cut()
                size += len(chunk)
                if size > cap:
                    if strict:
                        raise ResponseTooLarge(
                            shown,
                            f"response larger than the cap of {cap} bytes "
                            f"(HttpPolicy.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES); stopped reading after {size} bytes",
                            status,
                        )
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                chunks.append(chunk)
        finally:
            # read to its end: the connection goes back to the pool; else it is closed
            response.close()
        response._content = b"".join(chunks)
        response._content_consumed = True

    # -- internals -----------------------------------------------------------------------

    def _time_budget(self) -> _TimeBudget | None:
        return getattr(self._local, "budget", None)

    def _over_budget(self, budget: _TimeBudget, url: str, why: str) -> BudgetExceeded:
        used = self.requests - budget.requests_before
        return BudgetExceeded(
            url,
            f"time budget of {budget.seconds:g} s for {budget.what} used up after {used} "
            f"request{'' if used == 1 else 's'}: {why} (HttpPolicy.account_budget)",
        )

    def _check_budget(self, url: str, why: str, wait: float = 0.0) -> None:
        budget = self._time_budget()
        if budget is not None and self.clock() + wait >= budget.ends_at:
            raise self._over_budget(budget, url, why)

    def _wait(self, seconds: float, url: str, why: str) -> None:
        if seconds > 0:
            self._check_budget(url, f"waiting {seconds:.1f} s ({why}) would pass it", seconds)
            self.sleep(seconds)

    def _backoff(self, attempt: int, url: str, why: str) -> None:
        delay = min(self.policy.backoff_max, self.policy.backoff * (2**attempt))
        delay *= 1 + random.random() * 0.25  # jitter: retries of many tasks do not align
        log.warning("%s for %s; retry %d in %.1f s", why, url, attempt + 1, delay)
        self._wait(delay, url, f"before retry {attempt + 1} after: {why}")

    def _budget(self, host: str) -> _HostBudget:
        return self._budgets.setdefault(host, _HostBudget())

    def _pace(self, url: str, shown: str) -> None:
        """Wait before a request when the host's budget says we would exceed its limit."""
        parts = urlsplit(url)
        host = parts.netloc
        budget = self._budget(host)
        with budget.lock:
            if budget.remaining is None or budget.reset_at is None:
                return
            now = self.clock()
            until_reset = budget.reset_at - now
            if until_reset <= 0:
                budget.remaining = None  # a new window: unknown until the next response
                return
            spare = budget.remaining - self.policy.reserve
            if spare <= 0:
                wait = until_reset
            elif budget.limit and budget.remaining < budget.limit * 0.1:
                # the last tenth of the budget: spread the rest evenly over the window
                wait = until_reset / spare
            else:
                return
            if wait > self.policy.max_wait:
                raise RateLimited(
                    f"{parts.scheme}://{host}/",
                    f"rate limit exhausted: the budget resets in {until_reset:.0f} s "
                    f"(> {self.policy.max_wait:.0f} s)",
                )
            budget.remaining = max(0, budget.remaining - 1)
        log.info("pacing requests to %s: waiting %.1f s (rate limit)", host, wait)
        self._wait(wait, shown, "pacing for the rate limit")

    def _remember_budget(self, host: str, response: requests.Response) -> None:
        h = response.headers
        remaining = _int(h.get("X-RateLimit-Remaining") or h.get("RateLimit-Remaining"))
        if remaining is None:
            return
        limit = _int(h.get("X-RateLimit-Limit") or h.get("RateLimit-Limit"))
        reset = _reset_seconds(h.get("X-RateLimit-Reset") or h.get("RateLimit-Reset"))
        budget = self._budget(host)
        with budget.lock:
            budget.remaining = remaining
            budget.limit = limit
            budget.reset_at = None if reset is None else self.clock() + reset

    def _retry_after(self, response: requests.Response) -> float:
        headers = response.headers
        seconds = _reset_seconds(headers.get("Retry-After"))
        if seconds is None:
            reset = headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset")
            seconds = _reset_seconds(reset)
        return max(0.0, seconds if seconds is not None else self.policy.backoff_max)


def _retry_kind(exc: BaseException, got_response: bool) -> str | None:
    """What went wrong in an attempt, when another attempt may cure it; else None."""
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(exc, _Cut):
        return "deadline"
    if isinstance(exc, requests.Timeout) or isinstance(exc.__context__, ReadTimeoutError):
        return "timed out"  # (a read timeout in the body comes as a ConnectionError)
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    ):
        return "response body broken" if got_response else "connection failed"
    if isinstance(exc, requests.RequestException):
        return None
    if isinstance(exc, Urllib3Error | http.client.HTTPException | OSError | ValueError):
        return "response body broken"  # raised past requests' wrappers
    return None


def decode_json(response: requests.Response, expect: type = dict) -> Any:
    """The response body as JSON of type ``expect``; PayloadError names what came instead."""
    url = response.url
    ctype = response.headers.get("Content-Type", "")
    body = response.content
    if "json" not in ctype.lower():
        raise PayloadError(
            url,
            f"expected JSON, got {ctype or 'no content type'}: {snippet(body)}",
            response.status_code,
        )
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PayloadError(
            url,
            f"invalid JSON ({exc.__class__.__name__}: {exc}) in {len(body)} bytes",
            response.status_code,
        ) from exc
    if not isinstance(data, expect):
        raise PayloadError(
            url,
            f"expected a JSON {expect.__name__}, got {type(data).__name__}",
            response.status_code,
        )
    return data


def _describe(response: requests.Response) -> str:
    reason = {
        400: "bad request",
        401: "unauthorized (credentials missing or wrong)",
        403: "forbidden (private, suspended or blocked)",
        404: "not found",
        410: "gone (deleted or suspended)",
    }.get(response.status_code, response.reason or "error")
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            # Mastodon: {"error": "Record not found"}; XRPC: {"error": "...", "message": "..."}
            parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
            detail = ": ".join(parts)
    except ValueError:
        pass
    return f"HTTP {response.status_code} {reason}" + (f": {detail}" if detail else "")


def snippet(body: bytes, size: int = 80) -> str:
    """The start of a response body for an error message: one line, quoted, ``...`` if cut."""
    text = body[:size].decode("utf-8", "replace").replace("\n", " ").strip()
    return repr(text + ("..." if len(body) > size else ""))


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _reset_seconds(value: str | None) -> float | None:
    """Seconds from now until a reset given as delta seconds, epoch seconds, ISO or HTTP date."""
    if value in (None, ""):
        return None
    value = value.strip()
    now = dt.datetime.now(dt.UTC)
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        # large numbers are epoch seconds (RateLimit-Reset of some servers), small ones deltas
        return max(0.0, number - now.timestamp()) if number > 1e9 else max(0.0, number)
    when: dt.datetime | None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())
