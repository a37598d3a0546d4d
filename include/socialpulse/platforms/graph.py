"""Meta's Graph API, shared by the Facebook Pages and Instagram connectors.

One :class:`Graph` per access token and fetch. It wraps the shared
:class:`socialpulse.http.HttpClient` (timeouts, deadline, size cap, retries of 5xx and
broken bodies) with what the Graph API adds:

* **The token never travels in a URL.** It goes in the ``Authorization: Bearer`` header;
  ``access_token`` (and ``appsecret_proof``) are stripped from the ``paging.next`` links
  the API returns before they are followed, and every message leaving this module passes
  through :func:`socialpulse.platforms.base.redact`. ``appsecret_proof`` (HMAC-SHA256 of
  the token with the app secret, for apps with "Require App Secret") is sent when the
  connection's extra holds ``app_secret``.
* **Errors by their code**, from the JSON body (``{"error": {"message", "type", "code",
  "error_subcode", "fbtrace_id"}}``), whatever the HTTP status (Meta answers 400, 401,
  403 or 500 for them):

  - code 190 (subcodes 458, 459, 460, 463, 464, 467, ...), 102 and HTTP 401:
    :class:`TokenInvalid`, a configuration error: the token expired, was revoked or the
    password changed; the message names the connection and says what to do (code 2500
    is not one of them: Meta uses it for "Unknown path components" and for ``/me`` asked
    with an app token, neither of which a new token mends);
  - codes 10, 200-299 and 100 with subcode 33: :class:`NoAccess`, the token may not read
    that object (another company's Page without Page Public Content Access, a missing
    permission);
  - codes 4, 17, 32, 613 and 80000-80014 (80001 Pages, 80002 Instagram): rate limits,
    retried with backoff (or after ``estimated_time_to_regain_access``) up to
    :attr:`Graph.rate_limit_retries` times, then :class:`GraphRateLimited`;
  - code 100 "... must be a valid insights metric" and its variants:
    :class:`InvalidMetric` (see :meth:`Graph.get_with_metrics`);
  - anything else: :class:`GraphError` with code, subcode, message and ``fbtrace_id``.
* **Throttling before the limit.** ``X-App-Usage`` (``{"call_count": 28, "total_time":
  25, "total_cputime": 25}``, percentages of the app's hourly budget) and
  ``X-Business-Use-Case-Usage`` (``{"<id>": [{"type": "pages", "call_count": 96, ...,
  "estimated_time_to_regain_access": 3}]}``, minutes) and ``X-Page-Usage`` (like
  ``X-App-Usage``, for a Page's own budget) are read after every response. At
  :attr:`Graph.slow_at` percent (75) of any budget the next requests wait
  ``(usage - 75) / 25 * pace_seconds`` (0 s at 75 %, 60 s at 100 %); at 100 % or with a
  time to regain access they wait that long first (if it is within the client's
  ``max_wait``, else :class:`GraphRateLimited`). Waits go through the client, inside the
  account's time budget.
* **Metrics Meta removed.** One invalid insights metric fails the whole request with
  ``(#100)``. :meth:`Graph.get_with_metrics` finds the metric (by its index
  ``metric[2]``, named alone in the message, or else by asking for each metric alone),
  drops it for the rest of the fetch, records a warning, and asks again with the others.
* **JSON, whatever the label.** Bodies are JSON objects; besides ``application/json``
  the older ``text/javascript`` label of graph.facebook.com is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from socialpulse.http import HttpError, PayloadError, decode_json
from socialpulse.platforms.base import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v26.0"
#: rate-limit error codes: application (4), user (17), page (32), custom (613), business
#: use case (80000-80014: 80001 Pages, 80002 Instagram, ...)
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
#: token errors: 190 with any subcode (458 app removed, 459 checkpoint, 460 password
#: changed, 463 expired, 464 unconfirmed user, 467 invalid) and 102 (session). Not 2500:
#: Meta answers it for "Unknown path components" and for ``/me`` with an app token too
TOKEN_CODES = frozenset({190, 102})
#: query parameters that carry credentials: removed from every link the API returns
SECRET_PARAMS = frozenset({"access_token", "appsecret_proof"})
_VERSION = re.compile(r"^v\d+\.\d+$")


class GraphError(HttpError):
    """The Graph API answered with an error object."""

    def __init__(
        self,
        url: str,
        message: str,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
    ) -> None:
        self.code = code
        self.subcode = subcode
        #: the message without the URL
        self.detail = message
        super().__init__(url, message, status)


class TokenInvalid(GraphError):
    """The access token expired, was revoked or is not valid: a person has to renew it."""


class NoAccess(GraphError):
    """The token may not read this object (a permission or feature is missing)."""


class GraphRateLimited(GraphError):
    """Still throttled after the retries, or asked to wait longer than allowed."""


class InvalidMetric(GraphError):
    """An insights metric in the request is not (or no longer) valid."""


@dataclass(frozen=True)
class GraphSettings:
    """Where and how to call the Graph API: from an Airflow connection."""

    base_url: str = DEFAULT_BASE_URL
    version: str = DEFAULT_VERSION
    token: str | None = None
    app_secret: str | None = None
    conn_id: str = "facebook_default"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_connection(cls, conn: dict[str, Any] | None, conn_id: str) -> GraphSettings:
        """``host`` (default graph.facebook.com; a scheme, port or path prefix allowed),
        ``password`` = the access token, extra ``api_version`` (default v26.0) and
        ``app_secret``."""
        conn = conn or {}
        extra = connection_extra(conn, conn_id)
        version = str(extra.get("api_version") or DEFAULT_VERSION).strip()
        if not version.startswith("v"):
            version = f"v{version}"
        if not _VERSION.match(version):
            raise ValueError(
                f"connection {conn_id}: api_version {extra.get('api_version')!r} is not a "
                "Graph API version like v26.0"
            )
        return cls(
            base_url=base_url(conn),
            version=version,
            token=str(conn["password"]) if conn.get("password") else None,
            app_secret=str(extra["app_secret"]) if extra.get("app_secret") else None,
            conn_id=conn.get("conn_id") or conn_id,
            extra=dict(extra),
        )


def connection_extra(conn: dict[str, Any], conn_id: str) -> dict[str, Any]:
    """A connection's extra as a dict (Airflow hands it over as a dict or a JSON string);
    ``ValueError`` names the connection when it is not JSON."""
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra.strip() else {}
        except ValueError:
            raise ValueError(f"connection {conn_id}: extra is not valid JSON") from None
    return dict(extra) if isinstance(extra, dict) else {}


def views_metrics(extra: dict[str, Any], conn_id: str, default: tuple[str, ...]) -> list[str]:
    """The insights metrics for ``views``, in order of preference: the connection extra's
    ``views_metrics`` (a list, a JSON list or a comma list), else ``default``.

    ``ValueError`` names the connection when it is neither or names no metric.
    """
    value = extra.get("views_metrics")
    if value is None:
        return list(default)
    metrics = value
    if isinstance(value, str):
        try:
            metrics = json.loads(value) if value.strip().startswith("[") else value.split(",")
        except ValueError:
            metrics = None
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ValueError(
            f"connection {conn_id}: extra views_metrics must be a list of metric names "
            f"(e.g. {json.dumps(list(default))}), got {value!r}"
        )
    cleaned = [m.strip() for m in metrics if m.strip()]
    if not cleaned:
        raise ValueError(f"connection {conn_id}: extra views_metrics is empty")
    return cleaned


def base_url(conn: dict[str, Any]) -> str:
    """The API's base URL from a connection's host/schema/port (default graph.facebook.com)."""
    host = str(conn.get("host") or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        host = f"{conn.get('schema') or 'https'}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if conn.get("port") and parts.port is None:
        netloc = f"{netloc}:{int(conn['port'])}"
    path = re.sub(r"/v\d+\.\d+$", "", parts.path.rstrip("/"))  # a version in the host: ours wins
    return urlunsplit((parts.scheme, netloc, path, "", ""))


@dataclass
class Usage:
    """The highest budget use a response reported, in percent, and the wait it asks for."""

    percent: float = 0.0
    regain_seconds: float = 0.0
    source: str = ""

    @classmethod
    def of(cls, response: requests.Response) -> Usage:
        usage = cls()
        for name in ("X-App-Usage", "X-Page-Usage"):
            flat = _json_header(response, name)
            if isinstance(flat, dict):
                usage._take(flat, name)
        buc = _json_header(response, "X-Business-Use-Case-Usage")
        if isinstance(buc, dict):
            for owner, entries in buc.items():
                for entry in entries if isinstance(entries, list) else [entries]:
                    if isinstance(entry, dict):
                        kind = entry.get("type") or "business use case"
                        usage._take(entry, f"X-Business-Use-Case-Usage ({kind} {owner})")
        return usage

    def _take(self, entry: dict[str, Any], source: str) -> None:
        for key in ("call_count", "total_cputime", "total_time"):
            value = _number(entry.get(key))
            if value is not None and value > self.percent:
                self.percent, self.source = value, f"{source} {key} {value:g}%"
        regain = _number(entry.get("estimated_time_to_regain_access"))
        if regain and regain * 60 > self.regain_seconds:
            self.regain_seconds = regain * 60
            self.source = self.source or source


class Graph:
    """GET requests to the Graph API with one access token (see the module docstring)."""

    #: usage (percent of any budget) from which requests are spaced out
    slow_at: float = 75.0
    #: the wait before each request at 100 % usage (linear from ``slow_at``)
    pace_seconds: float = 60.0
    #: rate-limit errors retried per request before giving up
    rate_limit_retries: int = 3
    #: the first wait after a rate-limit error without a time to regain access (doubles)
    rate_limit_backoff: float = 30.0

    def __init__(self, client: HttpClient, settings: GraphSettings) -> None:
        if not settings.token:
            raise TokenInvalid(
                settings.base_url,
                f"connection {settings.conn_id} holds no access token (its password is "
                "empty): put the token there (Admin > Connections, or "
                f"AIRFLOW_CONN_{settings.conn_id.upper()})",
            )
        self.client = client
        self.settings = settings
        self.token: str = settings.token
        self.requests = 0
        #: metrics found invalid in this fetch: never asked for again
        self.dropped_metrics: set[str] = set()
        #: whether the last :meth:`pages` stopped at its ``max_pages`` with a ``next`` link
        #: left (more to read), rather than at the edge's end
        self.paging_cut = False
        #: ``appsecret_proof`` (HMAC-SHA256 of the token, key: the app secret), if any
        self.proof: str | None = (
            hmac.new(settings.app_secret.encode(), self.token.encode(), hashlib.sha256).hexdigest()
            if settings.app_secret
            else None
        )
        self._usage = Usage()

    # -- URLs ----------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"{self.settings.base_url}/{self.settings.version}"

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    def follow(self, link: str) -> tuple[str, dict[str, str]]:
        """A ``paging.next`` link as (url, params) on the configured server, credentials out.

        The API's links name graph.facebook.com and carry ``access_token`` when the token
        went in the query; the path and the other parameters are kept, the host is the
        configured one (a proxy, a test server), the credentials are dropped (they go in
        the header).
        """
        parts = urlsplit(link)
        base = urlsplit(self.settings.base_url)
        params = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        for secret in SECRET_PARAMS:
            params.pop(secret, None)
        path = parts.path
        if base.path and not path.startswith(base.path):
            path = base.path + path
        return urlunsplit((base.scheme, base.netloc, path, "", "")), params

    def redact(self, text: str) -> str:
        """``text`` with the token, the app secret and the proof replaced by ``***``."""
        return redact(text, [self.token, self.settings.app_secret, self.proof])

    # -- requests ------------------------------------------------------------------------

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One object (or page); errors raised by their code (see the module docstring)."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if self.proof:
            query["appsecret_proof"] = self.proof
        shown = f"{url}?{urlencode({k: v for k, v in query.items() if k not in SECRET_PARAMS})}"
        shown = shown.rstrip("?")
        throttled, waited = 0, 0.0
        while True:
            self._pace(shown)
            self.requests += 1
            try:
                response = self.client.get(
                    url,
                    params=query,
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "Accept": "application/json",
                    },
                    ok=(200, 400, 401, 403, 404),  # 5xx: retried by the client
                )
            except HttpError as exc:  # named by the URL without credentials
                raise type(exc)(shown, self.redact(_without_url(exc)), exc.status) from None
            self._usage = Usage.of(response)
            if response.status_code == 200:
                return self._decode(response, shown)
            error = self._error(response, shown)
            if not isinstance(error, GraphRateLimited):
                raise error
            if throttled >= self.rate_limit_retries:
                if not throttled:
                    raise error
                raise GraphRateLimited(
                    shown,
                    f"{error.detail}; still limited after {throttled} "
                    f"retr{'y' if throttled == 1 else 'ies'} ({waited:.0f} s waited): "
                    "the next run goes on",
                    error.status,
                    error.code,
                    error.subcode,
                )
            regain = self._usage.regain_seconds
            wait = regain or self.rate_limit_backoff * (2**throttled)
            throttled += 1
            if wait > self.client.policy.max_wait:
                who = "Meta asks to wait" if regain else "the next retry would wait"
                raise GraphRateLimited(
                    shown,
                    f"{error.detail}; {who} {wait:.0f} s "
                    f"(> {self.client.policy.max_wait:.0f} s): the next run goes on",
                    error.status,
                    error.code,
                    error.subcode,
                )
            log.warning(
                "Graph API rate limit (code %s) for %s: waiting %.0f s (retry %d of %d)",
                error.code,
                shown,
                wait,
                throttled,
                self.rate_limit_retries,
            )
            self.client.wait(wait, shown, f"Graph API rate limit (code {error.code})")
            waited += wait
            self._usage = Usage()  # waited: the next response says where we stand

    def pages(
        self, path: str, params: dict[str, Any], max_pages: int, what: str
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(page number, ``data``) of a cursor-paged edge, following ``paging.next``.

        Stops when a page has no ``next`` link or no data, after ``max_pages`` pages
        (:attr:`paging_cut` then says whether a ``next`` link was left), or when the caller
        stops iterating. A ``next`` link that repeats a page already read (the first one
        included) is a :class:`PayloadError` (a pagination loop).
        """
        url, query = self.url(path), {k: v for k, v in params.items() if v is not None}
        seen = {_page_key(url, query)}
        self.paging_cut = False
        for page_no in range(1, max_pages + 1):
            page = self.get(url, query)
            data = page.get("data")
            if not isinstance(data, list):
                raise PayloadError(url, f"{what} (page {page_no}): no data list in the response")
            yield page_no, data
            paging = page.get("paging")
            link = paging.get("next") if isinstance(paging, dict) else None
            if not link or not data:
                return
            if page_no == max_pages:
                self.paging_cut = True  # more to read: the caller says what is missing
                return
            url, query = self.follow(str(link))
            key = _page_key(url, query)
            if key in seen:
                raise PayloadError(
                    url, f"{what}: pagination loop, page {page_no + 1} repeats a page"
                )
            seen.add(key)

    def get_with_metrics(
        self,
        metrics: list[str],
        request: Callable[[list[str]], dict[str, Any]],
        probe: Callable[[str], Any] | None = None,
        option: str = "insights_metrics",
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """``request(metrics)`` with every invalid insights metric dropped.

        Returns (the response, or None when no metric is left; the warnings, one per
        metric dropped). A metric is found invalid by the ``(#100)`` error's message (its
        index as ``metric[2]``, or the one metric it names) or else by ``probe(metric)``
        (a request for that metric alone, by default ``request([metric])``) raising
        :class:`InvalidMetric`. Dropped metrics stay dropped for the rest of the fetch
        (one warning each); ``option`` is where the connection's extra lists them.
        """
        probe = probe or (lambda metric: request([metric]))
        warnings: list[str] = []
        while True:
            wanted = [m for m in metrics if m not in self.dropped_metrics]
            if not wanted:
                return None, warnings
            try:
                return request(wanted), warnings
            except InvalidMetric as exc:
                bad = self._invalid_in(exc, wanted, probe)
                if not bad:
                    raise
                for metric in bad:
                    self.dropped_metrics.add(metric)
                    warnings.append(
                        f"insights metric {metric} dropped: the Graph API "
                        f"{self.settings.version} no longer accepts it ({exc.detail}); "
                        f"the other metrics still load; remove it from {self.settings.conn_id}'s "
                        f"extra {option}"
                    )
                    log.warning("%s", warnings[-1])

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _invalid_in(
        exc: InvalidMetric, wanted: list[str], probe: Callable[[str], Any]
    ) -> list[str]:
        """The metrics of ``wanted`` that made the request fail (empty: none found).

        One metric asked for: that one. Else the one at ``metric[i]``, else the one metric
        the message names; a message naming several (``the impressions metric is no
        longer supported ... use views``) or none is settled by asking for each alone.
        """
        if len(wanted) == 1:
            return list(wanted)
        text = exc.detail
        index = re.search(r"metric\[(\d+)\]", text)
        if index and int(index.group(1)) < len(wanted):
            return [wanted[int(index.group(1))]]
        named = [m for m in wanted if re.search(rf"(?<![\w]){re.escape(m)}(?![\w])", text)]
        if len(named) == 1:
            return named
        bad = []
        for metric in wanted:
            try:
                probe(metric)
            except InvalidMetric:
                bad.append(metric)
        return bad

    def _error(self, response: requests.Response, shown: str) -> GraphError:
        status = response.status_code
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            # 401, or 403 without an error object: the token is not accepted at all
            cls = TokenInvalid if status in (401, 403) else GraphError
            return cls(
                shown,
                self._token_hint(f"HTTP {status}") if cls is TokenInvalid else f"HTTP {status}",
                status,
            )
        code = _int(error.get("code"))
        subcode = _int(error.get("error_subcode"))
        message = self.redact(str(error.get("message") or error.get("type") or "error"))
        user_message = error.get("error_user_msg")  # e.g. "The user with username: x ..."
        if user_message and str(user_message) not in message:
            message += f" ({self.redact(str(user_message))})"
        trace = error.get("fbtrace_id")
        detail = f"code {code}" + (f"/{subcode}" if subcode else "") + f": {message}"
        if trace:
            detail += f" (fbtrace_id {trace})"
        if code in TOKEN_CODES or status == 401:
            return TokenInvalid(shown, self._token_hint(detail), status, code, subcode)
        if code in RATE_LIMIT_CODES:
            return GraphRateLimited(shown, f"rate limit, {detail}", status, code, subcode)
        if code == 100 and re.search(
            r"insights metric|metric\[\d+\]|metric.*no longer", message, re.I
        ):
            return InvalidMetric(shown, detail, status, code, subcode)
        if (
            code == 10
            or (code is not None and 200 <= code <= 299)
            or (code == 100 and subcode == 33)
        ):
            return NoAccess(shown, detail, status, code, subcode)
        return GraphError(shown, detail, status, code, subcode)

    def _decode(self, response: requests.Response, shown: str) -> dict[str, Any]:
        """The body as a JSON object (``text/javascript`` too); PayloadError otherwise."""
        ctype = response.headers.get("Content-Type", "").lower()
        try:
            if "javascript" in ctype:
                data = json.loads(response.content)
                if not isinstance(data, dict):
                    raise PayloadError(shown, f"expected a JSON dict, got {type(data).__name__}")
                return data
            return decode_json(response, dict)
        except PayloadError as exc:
            raise PayloadError(shown, self.redact(_without_url(exc)), 200) from None
        except ValueError as exc:
            raise PayloadError(
                shown, f"invalid JSON ({type(exc).__name__}) in {len(response.content)} bytes", 200
            ) from None

    def _token_hint(self, detail: str) -> str:
        return (
            f"the access token in connection {self.settings.conn_id} is not valid ({detail}): "
            "it expired, was revoked, or the password of the user who made it changed; "
            "create a new long-lived token and put it in the connection's password"
        )

    def _pace(self, shown: str) -> None:
        usage = self._usage
        wait = 0.0
        if usage.regain_seconds or usage.percent >= 100:
            wait = usage.regain_seconds or self.pace_seconds
            if wait > self.client.policy.max_wait:
                raise GraphRateLimited(
                    shown,
                    f"rate limit reached ({usage.source}): Meta asks to wait {wait:.0f} s "
                    f"(> {self.client.policy.max_wait:.0f} s): the next run goes on",
                )
        elif usage.percent >= self.slow_at:
            wait = (usage.percent - self.slow_at) / (100 - self.slow_at) * self.pace_seconds
        if wait > 0:
            log.info(
                "Graph API usage %s: waiting %.1f s before the next request", usage.source, wait
            )
            self.client.wait(wait, shown, f"Graph API usage {usage.source}")
            if usage.regain_seconds or usage.percent >= 100:
                self._usage = Usage()  # waited for access: the next response says the rest


def _page_key(url: str, query: dict[str, Any]) -> str:
    """A page's identity for loop detection: the URL and the sorted query."""
    return f"{url}?{urlencode(sorted((k, str(v)) for k, v in query.items()))}"


def _without_url(exc: HttpError) -> str:
    """An HttpError's message without the ``(<url>)`` it ends with."""
    text = str(exc)
    suffix = f" ({exc.url})"
    return text[: -len(suffix)] if text.endswith(suffix) else text


def _json_header(response: requests.Response, name: str) -> Any:
    raw = response.headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.debug("unreadable %s header: %r", name, raw[:200])
        return None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
