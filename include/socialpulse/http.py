"""HTTP for every platform: one session, explicit timeouts, retries, rate limits, clear errors.

* Connection reuse: one ``requests.Session`` per client with a pooled adapter.
* Timeouts on every request (connect, read).
* Retries with exponential backoff (and jitter) for timeouts, connection errors and 5xx.
* Rate limits: the client reads ``X-RateLimit-*`` (Mastodon), ``RateLimit-*`` (IETF draft,
  Bluesky) and ``Retry-After`` and paces requests so that a run stays under the limit; a 429
  is waited out as the server says (bounded by ``max_wait``), then the request goes on.
* Bounded concurrency per host (a semaphore shared by all clients in the process).
* Errors name the URL and say what was wrong (:class:`HttpError`, :class:`PayloadError`,
  :class:`RateLimited`); a connector records them per account.

``requests`` is imported lazily: this module may be imported at DAG parse time.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

    import requests

log = logging.getLogger(__name__)

USER_AGENT = "socialpulse/0.1 (+https://github.com/socialpulse/socialpulse)"


class HttpError(RuntimeError):
    """A request failed for good (after retries where retrying made sense)."""

    def __init__(self, url: str, message: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(f"{message} ({url})")


class PayloadError(HttpError):
    """The response was not what the API promises (an HTML page, truncated JSON, ...)."""


class RateLimited(HttpError):
    """The server asks us to wait longer than we are allowed to."""


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: attempts after the first for timeouts, connection errors and 5xx
    retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 30.0
    #: the longest we wait for a rate limit (Retry-After or a reset); longer -> RateLimited
    max_wait: float = 120.0
    #: 429 responses waited out per request before giving up
    max_429: int = 3
    #: requests kept in reserve below the server's limit
    reserve: int = 1
    #: simultaneous requests per host
    per_host: int = 4


@dataclass
class _HostBudget:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # on the client's monotonic clock
    lock: threading.Lock = field(default_factory=threading.Lock)


_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _host_semaphore(host: str, size: int) -> threading.BoundedSemaphore:
    with _SEMAPHORES_LOCK:
        if host not in _SEMAPHORES:
            _SEMAPHORES[host] = threading.BoundedSemaphore(size)
        return _SEMAPHORES[host]


def make_session(pool_size: int = 8) -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class HttpClient:
    """GET with timeouts, retries and rate-limit pacing. One per platform and fetch."""

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
        self.requests = 0

    # -- public --------------------------------------------------------------------------

    def get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """GET ``url``; returns a response whose status is in ``ok``, else raises HttpError."""
        import requests

        host = urlsplit(url).netloc
        query = {k: v for k, v in (params or {}).items() if v is not None}
        shown = f"{url}?{urlencode(query, doseq=True)}" if query else url  # for messages
        attempt = 0
        throttled = 0
        while True:
            self._pace(url)
            try:
                with _host_semaphore(host, self.policy.per_host):
                    self.requests += 1
                    response = self.session.get(
                        url,
                        params=params,
                        headers=headers,
                        timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                    )
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                if attempt >= self.policy.retries:
                    raise HttpError(shown, f"{kind} after {attempt + 1} attempts: {exc}") from exc
                self._backoff(attempt, shown, kind)
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
                self._wait(wait)
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

    # -- internals -----------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)

    def _backoff(self, attempt: int, url: str, why: str) -> None:
        delay = min(self.policy.backoff_max, self.policy.backoff * (2**attempt))
        delay *= 1 + random.random() * 0.25  # jitter: retries of many tasks do not align
        log.warning("%s for %s; retry %d in %.1f s", why, url, attempt + 1, delay)
        self._wait(delay)

    def _budget(self, host: str) -> _HostBudget:
        return self._budgets.setdefault(host, _HostBudget())

    def _pace(self, url: str) -> None:
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
        self._wait(wait)

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
