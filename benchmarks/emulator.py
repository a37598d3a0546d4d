"""A local Mastodon API for the ``fetch`` benchmark: synthetic accounts, a rate limit, latency.

Serves, on 127.0.0.1, the endpoints the Mastodon connector
(``socialpulse.platforms.mastodon``) reads, in Mastodon's wire format (the shapes of
``tests/fixtures/mastodon``):

* ``GET /api/v1/accounts/lookup?acct=<user>``: the Account (``company0000`` ..), else 404;
* ``GET /api/v1/accounts/<id>/statuses?limit=&max_id=``: the account's statuses, newest
  first, at most ``limit`` (default 20, at most 40) per page; a full page carries
  ``Link: <..max_id=..>; rel="next"`` (as Mastodon: only when the page is full);
* ``GET /api/v1/statuses/<id>/context``: ``{"ancestors": [], "descendants": [...]}``.

The data are deterministic (arithmetic on the account's and the status's number, no
randomness). Account ``i`` (``company{i:04d}``) has ``statuses`` statuses, one every
``every`` back from ``now`` (``OFFSET`` plus ``i`` minutes before it): the newest is
``k = 0``. Every tenth (``k % 10 == 0``) is an original with ``2 + (k // 10) % 3``
direct replies by fans, the company answering the first of them (its context holds them
all); of the others, ``k % 7 == 3`` are reblogs, ``k % 5 == 4`` replies to a fan, the rest
originals without replies. Status ids are Mastodon's: the creation time in milliseconds
shifted 16 bits, plus the account's number (unique across accounts).

**Rate limit** (Mastodon's rack-attack throttle, shared by every client): fixed windows of
``window`` seconds aligned to multiples of ``window`` since the epoch; each request counts
(a refused one too); above ``limit`` in a window the answer is HTTP 429
``{"error": "Too many requests"}``. Every response carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` (``limit`` minus the window's requests so far, at least 0) and
``X-RateLimit-Reset`` (the window's end as an ISO timestamp with microseconds, as Mastodon
sends it: ``2026-11-20T06:05:00.000000Z``). ``limit=None``: no limit, no such headers.

**Latency**: every request is answered ``latency`` seconds after it arrived (counted at
arrival, like a throttle in front of the application). HTTP/1.1 with keep-alive, as a
real server behind nginx.

``requests``, ``throttled`` (429s) and ``arrivals`` (each request's arrival time and
status, on ``clock``, default ``time.time``) are what a benchmark measures.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

#: the data's observation time (the benchmark's fixed ``now``)
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
#: the newest status of account ``i`` is this (plus ``i`` minutes) before ``now``
OFFSET = dt.timedelta(hours=3)
#: the first company's account id; company ``i`` has ``ACCOUNT_ID0 + i``
ACCOUNT_ID0 = 109_318_417_253_400_000
#: the first fan's account id; fans reply to the companies' threads
FAN_ID0 = 112_100_000_000_000_000
FANS = 97
#: statuses per page: the default and the most Mastodon gives
PAGE_DEFAULT, PAGE_MAX = 20, 40


def username(i: int) -> str:
    return f"company{i:04d}"


def iso(when: dt.datetime) -> str:
    """Mastodon's status times: milliseconds and ``Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def reset_header(epoch_seconds: float) -> str:
    """Mastodon's ``X-RateLimit-Reset``: microseconds and ``Z``."""
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def snowflake(when: dt.datetime, seq: int) -> int:
    """A Mastodon status id: milliseconds since the epoch << 16, plus a sequence number."""
    return (int(when.timestamp() * 1000) << 16) + (seq & 0xFFFF)


@dataclass(frozen=True)
class Arrival:
    at: float  # the request's arrival on the emulator's clock
    status: int  # 429 or the answer's status


class MastodonEmulator(ThreadingHTTPServer):
    """The emulated server; ``with MastodonEmulator(...) as emu:`` serves it in a thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        accounts: int = 10,
        *,
        limit: int | None = 300,
        window: float = 300.0,
        latency: float = 0.0,
        statuses: int = 100,
        every: dt.timedelta = dt.timedelta(hours=6),
        now: dt.datetime = NOW,
        clock: Callable[[], float] = time.time,
        port: int = 0,
    ) -> None:
        if limit is not None and (limit < 1 or window <= 0):
            raise ValueError(
                f"a rate limit needs limit >= 1 and window > 0 (got {limit}, {window})"
            )
        super().__init__(("127.0.0.1", port), _Handler)
        self.accounts = accounts
        self.limit = limit
        self.window = window
        self.latency = latency
        self.statuses = statuses
        self.every = every
        self.now = now
        self.clock = clock
        self.requests = 0
        self.throttled = 0
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._window_index: int | None = None
        self._window_count = 0
        self._cache: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        #: status id -> (account number, k)
        self._index: dict[int, tuple[int, int]] = {}
        self._timelines: list[list[int]] = []  # per account: its status ids, newest first
        for i in range(accounts):
            ids = [snowflake(self.created(i, k), i) for k in range(statuses)]
            self._timelines.append(ids)
            self._index.update({sid: (i, k) for k, sid in enumerate(ids)})

    # -- serving ---------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_of(self, i: int) -> str:
        """Account ``i``'s handle for the registry: its profile URL on this server."""
        return f"{self.base}/@{username(i)}"

    def prepare(self) -> None:
        """Render every answer the connector will ask for (lookups, pages, threads) now, so
        that a measured run pays the server's latency only, not its JSON encoding."""
        for i in range(self.accounts):
            self.answer("/api/v1/accounts/lookup", {"acct": [username(i)]})
            path, max_id = f"/api/v1/accounts/{ACCOUNT_ID0 + i}/statuses", None
            while True:
                query = {"limit": [str(PAGE_MAX)]}
                if max_id is not None:
                    query["max_id"] = [max_id]
                _, body, headers = self.answer(path, query)
                if 'rel="next"' not in headers.get("Link", ""):
                    break
                max_id = json.loads(body)[-1]["id"]
            for k in range(0, self.statuses, 10):
                self.answer(f"/api/v1/statuses/{self._timelines[i][k]}/context", {})

    def start(self) -> MastodonEmulator:
        serve = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        serve.start()  # (polls for shutdown every 50 ms: a quick stop)
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> MastodonEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the rate limit --------------------------------------------------------------------

    def admit(self) -> tuple[bool, dict[str, str]]:
        """Count a request now: whether it is within the limit, and the rate-limit headers."""
        with self._lock:
            at = self.clock()
            self.requests += 1
            if self.limit is None:
                self.arrivals.append(Arrival(at, 200))
                return True, {}
            index = math.floor(at / self.window)
            if index != self._window_index:
                self._window_index, self._window_count = index, 0
            self._window_count += 1
            allowed = self._window_count <= self.limit
            if not allowed:
                self.throttled += 1
            self.arrivals.append(Arrival(at, 200 if allowed else 429))
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(max(0, self.limit - self._window_count)),
                "X-RateLimit-Reset": reset_header((index + 1) * self.window),
            }
            return allowed, headers

    def windows(self, start: float, end: float) -> list[tuple[float, int, int]]:
        """The rate-limit windows lying wholly within [start, end] (emulator clock):
        (the window's start, requests answered within the limit, 429s), in order."""
        if self.limit is None:
            raise ValueError("no rate limit: no windows")
        first, last = math.ceil(start / self.window), math.floor(end / self.window)
        counts = {n: [0, 0] for n in range(first, last)}
        with self._lock:
            arrivals = list(self.arrivals)
        for a in arrivals:
            n = math.floor(a.at / self.window)
            if n in counts:
                counts[n][a.status == 429] += 1
        return [(n * self.window, ok, refused) for n, (ok, refused) in sorted(counts.items())]

    # -- the data ----------------------------------------------------------------------------

    def created(self, i: int, k: int) -> dt.datetime:
        return self.now - OFFSET - dt.timedelta(minutes=i) - k * self.every

    def account(self, i: int) -> dict[str, Any]:
        name = username(i)
        return {
            "id": str(ACCOUNT_ID0 + i),
            "username": name,
            "acct": name,
            "display_name": f"Company {i}",
            "locked": False,
            "bot": False,
            "discoverable": True,
            "indexable": True,
            "group": False,
            "created_at": "2022-11-07T00:00:00.000Z",
            "note": f"<p>Company {i}: a small business since {1900 + i % 120}.</p>",
            "url": f"{self.base}/@{name}",
            "uri": f"{self.base}/users/{name}",
            "avatar": f"{self.base}/avatars/original/missing.png",
            "avatar_static": f"{self.base}/avatars/original/missing.png",
            "header": f"{self.base}/headers/original/missing.png",
            "header_static": f"{self.base}/headers/original/missing.png",
            "followers_count": 100 + (37 * i) % 5000,
            "following_count": 10 + (13 * i) % 300,
            "statuses_count": self.statuses,
            "last_status_at": self.created(i, 0).date().isoformat(),
            "hide_collections": False,
            "noindex": False,
            "emojis": [],
            "roles": [],
            "fields": [],
        }

    def fan(self, f: int) -> dict[str, Any]:
        name = f"fan{f:03d}"
        return {
            "id": str(FAN_ID0 + f),
            "username": name,
            "acct": name,
            "display_name": f"Fan {f}",
            "locked": False,
            "bot": False,
            "discoverable": True,
            "indexable": True,
            "group": False,
            "created_at": "2023-01-01T00:00:00.000Z",
            "note": "",
            "url": f"{self.base}/@{name}",
            "uri": f"{self.base}/users/{name}",
            "avatar": f"{self.base}/avatars/original/missing.png",
            "avatar_static": f"{self.base}/avatars/original/missing.png",
            "header": f"{self.base}/headers/original/missing.png",
            "header_static": f"{self.base}/headers/original/missing.png",
            "followers_count": f,
            "following_count": 2 * f,
            "statuses_count": 10 * f,
            "last_status_at": self.now.date().isoformat(),
            "hide_collections": False,
            "noindex": False,
            "emojis": [],
            "roles": [],
            "fields": [],
        }

    def _status(
        self,
        sid: int,
        created: dt.datetime,
        author: dict[str, Any],
        content: str,
        *,
        replies: int = 0,
        reply_to: tuple[int, str] | None = None,
        counts: tuple[int, int, int] = (0, 0, 0),
        reblog: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        likes, reblogs, quotes = counts
        name = author["username"]
        return {
            "id": str(sid),
            "created_at": iso(created),
            "in_reply_to_id": None if reply_to is None else str(reply_to[0]),
            "in_reply_to_account_id": None if reply_to is None else reply_to[1],
            "sensitive": False,
            "spoiler_text": "",
            "visibility": "public",
            "language": "de",
            "uri": f"{self.base}/users/{name}/statuses/{sid}",
            "url": None if reblog else f"{self.base}/@{name}/{sid}",
            "replies_count": replies,
            "reblogs_count": reblogs,
            "favourites_count": likes,
            "quotes_count": quotes,
            "edited_at": None,
            "content": content,
            "reblog": reblog,
            "account": author,
            "media_attachments": [],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
            "quote": None,
        }

    def direct_replies(self, k: int) -> int:
        return 2 + (k // 10) % 3 if k % 10 == 0 else 0

    def status(self, i: int, k: int) -> dict[str, Any]:
        """Status ``k`` (0: the newest) of account ``i``."""
        sid, created, author = self._timelines[i][k], self.created(i, k), self.account(i)
        fan = self.fan((i + k) % FANS)
        if k % 10 == 0:
            counts = (5 + k % 40, 1 + k % 9, k % 3)
            text = f"<p>Neu bei uns, Teil {k}!</p>"
            return self._status(
                sid, created, author, text, replies=self.direct_replies(k), counts=counts
            )
        if k % 7 == 3:
            original = self._status(
                snowflake(created - dt.timedelta(hours=1), FANS + i), created, fan, "<p>Tipp!</p>"
            )
            return self._status(sid, created, author, "", reblog=original)
        if k % 5 == 4:
            to = (snowflake(created - dt.timedelta(minutes=30), 0xFFFF - i), fan["id"])
            text = f"<p>@{fan['username']} Danke!</p>"
            return self._status(sid, created, author, text, reply_to=to, counts=(1, 0, 0))
        return self._status(sid, created, author, f"<p>Angebot {k}</p>", counts=(k % 17, k % 5, 0))

    def descendants(self, i: int, k: int) -> list[dict[str, Any]]:
        """The thread under status ``k`` of account ``i``: the fans' direct replies, the
        company's answer right after the first (thread order)."""
        root_id, root_at, company = self._timelines[i][k], self.created(i, k), self.account(i)
        out: list[dict[str, Any]] = []
        for j in range(self.direct_replies(k)):
            fan = self.fan((i + k + j) % FANS)
            at = root_at + dt.timedelta(minutes=5 * (j + 1))
            rid = snowflake(at, i)
            text = f"<p>@{company['username']} Super!</p>"
            out.append(self._status(rid, at, fan, text, reply_to=(root_id, company["id"])))
            if j == 0:
                at = at + dt.timedelta(minutes=1)
                text = f"<p>@{fan['username']} Danke dir!</p>"
                answer = self._status(
                    snowflake(at, i), at, company, text, reply_to=(rid, fan["id"])
                )
                out.append(answer)
        return out

    # -- the endpoints -----------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str]]:
        """(status, JSON body, extra headers) of a GET (cached: the data never change)."""
        key = path + "?" + "&".join(f"{k}={v}" for k, vs in sorted(query.items()) for v in vs)
        hit = self._cache.get(key)
        if hit is None:
            status, data, headers = self._answer(path, query)
            hit = (status, json.dumps(data, ensure_ascii=False).encode(), headers)
            self._cache[key] = hit
        return hit

    def _answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        parts = path.strip("/").split("/")
        missing = (404, {"error": "Record not found"}, {})
        if parts[:3] != ["api", "v1", "accounts"] and parts[:3] != ["api", "v1", "statuses"]:
            return missing
        if path == "/api/v1/accounts/lookup":
            i = self._account_number((query.get("acct") or [""])[0])
            return missing if i is None else (200, self.account(i), {})
        if len(parts) == 5 and parts[2] == "accounts" and parts[4] == "statuses":
            i = _number(parts[3]) - ACCOUNT_ID0 if _number(parts[3]) is not None else None
            if i is None or not 0 <= i < self.accounts:
                return missing
            return self._timeline(i, query)
        if len(parts) == 5 and parts[2] == "statuses" and parts[4] == "context":
            found = self._index.get(_number(parts[3]) or -1)
            if found is None:
                return missing
            return 200, {"ancestors": [], "descendants": self.descendants(*found)}, {}
        return missing

    def _account_number(self, acct: str) -> int | None:
        """The number of the account ``company0003``, ``@company0003`` or ``..@<this host>``."""
        user, _, host = acct.lstrip("@").partition("@")
        i = _number(user.removeprefix("company"))
        if (
            i is None
            or i >= self.accounts
            or user != username(i)
            or host not in ("", _host(self.base))
        ):
            return None
        return i

    def _timeline(self, i: int, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        limit = min(PAGE_MAX, max(1, _number((query.get("limit") or [""])[0]) or PAGE_DEFAULT))
        max_id = _number((query.get("max_id") or [""])[0])
        ks = [k for k, sid in enumerate(self._timelines[i]) if max_id is None or sid < max_id]
        page = [self.status(i, k) for k in ks[:limit]]
        headers: dict[str, str] = {}
        if page:
            url = f"{self.base}/api/v1/accounts/{ACCOUNT_ID0 + i}/statuses?limit={limit}"
            links = []
            if len(page) == limit:  # as Mastodon: a next page only after a full one
                links.append(f'<{url}&max_id={page[-1]["id"]}>; rel="next"')
            links.append(f'<{url}&min_id={page[0]["id"]}>; rel="prev"')
            headers["Link"] = ", ".join(links)
        return 200, page, headers


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _host(base: str) -> str:
    return urlsplit(base).netloc


class _Handler(BaseHTTPRequestHandler):
    server: MastodonEmulator
    protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses its connection
    # TCP_NODELAY, as nginx: else Nagle's algorithm holds back a response's last segment
    # until the client's delayed ACK (~40 ms on Linux), more than the latency emulated
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        allowed, headers = self.server.admit()
        if self.server.latency > 0:
            time.sleep(self.server.latency)
        if not allowed:
            self._send(429, b'{"error":"Too many requests"}', headers)
            return
        parts = urlsplit(self.path)
        status, body, extra = self.server.answer(parts.path, parse_qs(parts.query))
        self._send(status, body, {**headers, **extra})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep quiet
        pass
