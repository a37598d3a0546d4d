"""YouTube (Data API v3): public counts, videos, comment threads and probe answers of channels.

Reads the public YouTube Data API v3 with an API key (Airflow connection ``youtube_default``,
its password; no OAuth, see README.md). Per account (a channel):

1. ``channels?part=snippet,statistics,contentDetails&forHandle=@<handle>`` (or ``&id=UC...``):
   the channel id, its counters (one ``account_snapshots`` row; the id is the
   ``account_id``) and its uploads playlist.
2. ``playlistItems?part=contentDetails&playlistId=UU...&maxResults=50&pageToken=...``:
   the uploads, newest first, paged until a page holds a video published before
   ``window.since`` (the window's start or ``end - lookback``, whichever is earlier: a
   backfill reads its whole window), or until the page limit (``MAX_PAGES``, account
   option ``max_pages``).
3. ``videos?part=statistics,snippet&id=<up to 50 ids>``: the counts of every upload
   published since then, in batches of 50 (``post_observations`` rows).
4. ``commentThreads?part=snippet,replies&videoId=<id>&maxResults=100`` for each of those
   videos with ``commentCount > 0``, and ``comments?part=snippet&parentId=<comment id>``
   for a top-level comment with more replies than its thread embeds: every comment
   becomes a ``thread_replies`` row.
5. The account's field-study probes: ``comments?part=snippet&id=<question>`` and the
   replies in the question's thread; the channel's earliest reply is the answer.

Every request costs 1 unit of the Google Cloud project's daily quota (10,000 units by
default, reset at midnight Pacific time). :class:`QuotaLedger` counts the units per Pacific
day and connection in a state file shared by every fetch task (``context.state_dir``,
locked, written atomically) and stops before a request that would pass the budget
(``daily_quota_units`` in the connection's extra): that account and every later one get a
``configuration`` error, as after an API answer ``quotaExceeded`` (which marks the day used
up for every later fetch too). A key the API rejects (invalid, expired, restricted, the API
not enabled) is a ``configuration`` error for every account using it, after one request.

The snapshot's ``posts_since`` is ``window.since``, or the oldest upload read when the page
limit stopped the paging before it. That cut is a warning (``FetchResult.warnings``), not an
error; so are a hidden subscriber count (``followers`` null) and a thread holding fewer
comments than the video's ``commentCount``.

An account's rows are kept only when steps 1-4 all succeed (nothing half-fetched); any other
failure (no such channel, an error answer, a broken payload, a count that is no integer, a
pagination loop, the client's limits and the account's time budget) is one ``error`` for the
account and the other accounts go on. A probe that fails is a warning of its own; a probe
whose question is gone is still emitted, unanswered.

The API key travels in the ``X-Goog-Api-Key`` header only, never in a URL, so no URL, log
line or error message holds it; every message recorded is also passed through
:func:`~socialpulse.platforms.base.redact`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from socialpulse.http import BudgetExceeded, HttpError, decode_json, snippet
from socialpulse.platforms.base import (
    CONFIGURATION,
    ERROR,
    WARNING,
    AccountRef,
    ConnectionMissing,
    FetchError,
    FetchResult,
    FetchWindow,
    Payload,
    PlatformContext,
    page_limit_warning,
    parse_time,
    probe_row,
    public_post_probes,
    redact,
    thread_short_warning,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import requests

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.googleapis.com"
API_PATH = "/youtube/v3"
#: the Airflow connection holding the API key (password), an API base (host) and the budget
CONNECTION_ID = "youtube_default"
#: the quota of a new Google Cloud project: units per day (extra ``daily_quota_units``)
DAILY_QUOTA_UNITS = 10_000
#: the quota's day: it resets at midnight Pacific time
QUOTA_TIME_ZONE = ZoneInfo("America/Los_Angeles")
#: playlistItems per page: the API's maximum
PAGE_SIZE = 50
#: video ids per ``videos`` request: the API's maximum
VIDEO_BATCH = 50
#: comment threads (and replies) per page: the API's maximum
COMMENT_PAGE_SIZE = 100
#: uploads pages per account and fetch (account option ``max_pages``): 20 x 50 videos
#: since ``window.since``; a channel with more is read that far, with a warning
MAX_PAGES = 20
#: comment pages per video (and per top-level comment's replies), account option
#: ``max_thread_pages``: 10 x 100 threads; a longer thread is cut, with a warning
MAX_THREAD_PAGES = 10
WATCH_URL = "https://www.youtube.com/watch?v="
#: what to do about a missing or rejected key (the connection's name is filled in)
KEY_HOWTO = (
    "create an API key in Google Cloud Console (APIs & Services > Credentials) in a project "
    'with the "YouTube Data API v3" enabled (APIs & Services > Library), restrict it to '
    "that API, and put it in the password of the Airflow connection {conn_id}"
)

_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com"})
_CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
# handles: 3-30 letters (any script), digits, '_', '-', '.'
_HANDLE = re.compile(r"^@?(?P<name>[\w.-]{3,30})$")
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
# a top-level comment id, or a reply's: "<top-level id>.<suffix>"
_COMMENT_ID = re.compile(r"^[A-Za-z0-9_-]{12,}(?:\.[A-Za-z0-9_-]+)?$")
_DIGITS = re.compile(r"[0-9]+")  # fullmatch: no sign, no point, no newline
_TAGS = re.compile(r"<[^>]+>")
#: error reasons (``errors[].reason``) and ``ErrorInfo`` reasons that say the key is bad,
#: restricted or its project lacks the API: no request with it can succeed
_KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "accessNotConfigured", "ipRefererBlocked"})
_KEY_INFO = frozenset(
    {
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "SERVICE_DISABLED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",
        "CONSUMER_INVALID",
    }
)
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})


# -- problems ------------------------------------------------------------------------------


class YoutubeError(ValueError):
    """Something about one account (or one probe) that keeps it from being read."""


class ApiError(HttpError):
    """An error answer of the API (400, 403, 404): ``{"error": {"code", "message", "errors"}}``."""

    def __init__(
        self,
        url: str,
        status: int,
        reason: str,
        message: str,
        domain: str = "",
        info: frozenset[str] = frozenset(),
    ) -> None:
        self.reason = reason
        self.domain = domain
        self.api_message = message
        #: the ``google.rpc.ErrorInfo`` reasons of ``error.details``
        self.info = info
        text = f"HTTP {status} {reason}" if reason else f"HTTP {status}"
        super().__init__(url, f"{text}: {message}" if message else text, status)


class ConfigurationProblem(Exception):
    """A person has to act (key, API access, quota): a ``configuration`` FetchError."""


class KeyRejected(ConfigurationProblem):
    """The API refuses the key itself: every account using it fails the same way."""


class QuotaUsedUp(ConfigurationProblem):
    """The day's quota (the budget, or the project's as the API says) is used up."""


# -- references ----------------------------------------------------------------------------


def parse_channel(handle: str) -> tuple[str, str]:
    """A registry handle as the ``channels`` filter: ``("forHandle", "@name")`` or ``("id", "UC...")``.

    Accepted: ``@name``, ``name``, ``https://www.youtube.com/@name`` (also with a tab such
    as ``/videos``), a channel id ``UC...`` and ``https://www.youtube.com/channel/UC...``.
    """
    text = (handle or "").strip()
    if text.lower().split("/", 1)[0] in _YOUTUBE_HOSTS:
        text = f"https://{text}"
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme in ("http", "https") and parts.netloc.lower() in _YOUTUBE_HOSTS:
            segments = [s for s in unquote(parts.path).split("/") if s]
            if segments and segments[0].startswith("@") and _HANDLE.match(segments[0]):
                return "forHandle", segments[0]
            if len(segments) >= 2 and segments[0] == "channel" and _CHANNEL_ID.match(segments[1]):
                return "id", segments[1]
    elif _CHANNEL_ID.match(text):
        return "id", text
    elif m := _HANDLE.match(text):
        return "forHandle", f"@{m['name']}"
    raise YoutubeError(
        f"not a YouTube channel: {handle!r}; use @handle, https://www.youtube.com/@handle, "
        "a channel id (UC...) or https://www.youtube.com/channel/UC..."
    )


def parse_comment_ref(ref: str) -> tuple[str | None, str]:
    """A probe's ``question_ref`` -> (video id if the reference names it, comment id).

    ``https://www.youtube.com/watch?v=<video>&lc=<comment>`` (the link YouTube gives a
    comment; also ``/shorts/<video>?lc=`` and ``youtu.be/<video>?lc=``) or a bare comment id.
    """
    text = (ref or "").strip()
    if _COMMENT_ID.match(text):
        return None, text
    parts = urlsplit(text)
    host = parts.netloc.lower()
    if parts.scheme in ("http", "https") and (host in _YOUTUBE_HOSTS or host == "youtu.be"):
        query = parse_qs(parts.query)
        comment = (query.get("lc") or [""])[0]
        if _COMMENT_ID.match(comment):
            segments = [s for s in parts.path.split("/") if s]
            video = (query.get("v") or [""])[0]
            if not video and segments:
                video = segments[-1]
            return (video if _VIDEO_ID.match(video) else None), comment
    raise YoutubeError(
        f"question_ref {ref!r} is not a YouTube comment; use "
        "https://www.youtube.com/watch?v=<video id>&lc=<comment id> or the comment id"
    )


def api_base(connection: dict[str, Any] | None) -> str:
    """The API's base URL from a connection's host (with or without scheme), schema and port."""
    conn = connection or {}
    host = str(conn.get("host") or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = str(conn.get("schema") or "https").strip() or "https"
        host = f"{scheme}://{host}"
    port = conn.get("port")
    if port and urlsplit(host).port is None:
        parts = urlsplit(host)
        host = f"{parts.scheme}://{parts.netloc}:{int(port)}{parts.path}"
    return host.removesuffix(API_PATH).rstrip("/")


def watch_url(video_id: str, comment_id: str | None = None) -> str:
    """The public page of a video, or of one comment under it (``&lc=``)."""
    return f"{WATCH_URL}{video_id}" + (f"&lc={comment_id}" if comment_id else "")


# -- payload checks: a field missing or malformed is the account's error, never a KeyError --


_CHECK = Payload(YoutubeError)
_dict, _time = _CHECK.obj, _CHECK.time


def _str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise YoutubeError(f"{what} has no {key!r} (got {value!r})")
    return value


def _count(obj: dict[str, Any], key: str, what: str) -> int | None:
    """A count as the API sends it (a string of digits; an integer is taken too); absent: None."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise YoutubeError(f"{what}: {key} is not an integer count: {value!r}")


def _items(data: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """A list response's ``items`` (absent when nothing matched)."""
    items = data.get("items", [])
    if not isinstance(items, list):
        raise YoutubeError(f"{what}: 'items' is not a list")
    return [_dict(item, f"an item of {what}") for item in items]


def _next_token(data: dict[str, Any], seen: set[str], what: str) -> str | None:
    """The page's ``nextPageToken`` (None: the last page); a token read before is a loop."""
    token = data.get("nextPageToken")
    if not token:
        return None
    if not isinstance(token, str):
        raise YoutubeError(f"{what}: nextPageToken is not a string: {token!r}")
    if token in seen:
        raise YoutubeError(
            f"{what}: pagination loop: nextPageToken {token!r} repeats a page already read"
        )
    seen.add(token)
    return token


def _error_of(response: requests.Response) -> ApiError:
    """The API's error answer as an :class:`ApiError` (reason, message, ErrorInfo reasons)."""
    status = response.status_code
    try:
        body = decode_json(response, dict)
    except HttpError:
        return ApiError(
            response.url, status, "", f"not an API error body: {snippet(response.content)}"
        )
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    errors = [e for e in error.get("errors") or [] if isinstance(e, dict)]
    first = errors[0] if errors else {}
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    info = frozenset(
        str(d.get("reason")) for d in details if str(d.get("@type", "")).endswith("ErrorInfo")
    )
    reason = str(first.get("reason") or error.get("status") or "")
    message = _TAGS.sub("", str(error.get("message") or first.get("message") or "")).strip()
    return ApiError(
        response.url, status, reason, message, domain=str(first.get("domain") or ""), info=info
    )


def _key_problem(exc: ApiError) -> bool:
    """Whether the API refuses the key itself (not this request's parameters)."""
    if exc.reason in _KEY_REASONS or exc.info & _KEY_INFO:
        return True
    if exc.status == 400 and "API key not valid" in exc.api_message:
        return True
    # a key restricted to other APIs or clients: 403 forbidden from the API's front door
    return (
        exc.status == 403 and exc.reason == "forbidden" and exc.domain in ("global", "usageLimits")
    )


# -- the daily quota -----------------------------------------------------------------------


class QuotaLedger:
    """Quota units used per Pacific day and connection, shared through a state file.

    ``<state_dir>/quota-<YYYY-MM-DD>.json`` (the day in Pacific time, when Google's quota
    resets) holds per connection the units used and whether the API said
    ``quotaExceeded``. Several fetch tasks may run at once: each update takes an exclusive
    ``fcntl`` lock on ``quota.lock`` and replaces the file atomically. Without a
    ``state_dir`` the units are counted for this ledger (one fetch) only.
    """

    def __init__(self, state_dir: Path | None, clock: Callable[[], dt.datetime]) -> None:
        self.state_dir = state_dir
        self.clock = clock
        #: units charged by this ledger (one fetch), per connection
        self.fetch_units: dict[str, int] = {}
        self._memory: dict[str, dict[str, Any]] = {}

    def day(self) -> dt.date:
        """Today in Pacific time (the quota's day)."""
        return self.clock().astimezone(QUOTA_TIME_ZONE).date()

    def path(self, day: dt.date) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"quota-{day:%Y-%m-%d}.json"

    def charge(self, conn_id: str, budget: int, units: int = 1) -> None:
        """Book ``units`` for the next request; :class:`QuotaUsedUp` if the day allows no more."""
        with self._day(conn_id) as (day, entry):
            used = entry["units"]
            if entry["exceeded"]:
                raise QuotaUsedUp(_exceeded_message(conn_id, day, used, entry.get("message")))
            if used + units > budget:
                raise QuotaUsedUp(
                    f"YouTube daily quota budget of {budget} units for {day} (Pacific time) "
                    f"used up ({used} units used); the rest is read tomorrow after midnight "
                    f"Pacific time, or raise daily_quota_units in connection {conn_id}'s extra "
                    "(and the project's quota in Google Cloud Console)"
                )
            entry["units"] = used + units
            entry["budget"] = budget
        self.fetch_units[conn_id] = self.fetch_units.get(conn_id, 0) + units

    def adjust(self, conn_id: str, units: int) -> None:
        """Correct the units booked (a request retried, or never sent), without a check."""
        if units:
            with self._day(conn_id) as (_, entry):
                entry["units"] = max(0, entry["units"] + units)
            self.fetch_units[conn_id] = max(0, self.fetch_units.get(conn_id, 0) + units)

    def exceeded(self, conn_id: str, api_message: str) -> QuotaUsedUp:
        """Mark the day used up (the API said ``quotaExceeded``); the problem to raise."""
        with self._day(conn_id) as (day, entry):
            entry["exceeded"] = True
            entry["message"] = api_message
            entry["exceeded_at"] = self.clock().astimezone(dt.UTC).isoformat()
            return QuotaUsedUp(_exceeded_message(conn_id, day, entry["units"], api_message))

    def today(self, conn_id: str) -> tuple[dt.date, int]:
        """(the Pacific day, units used by all fetches that day) of a connection."""
        with self._day(conn_id) as (day, entry):
            return day, entry["units"]

    @contextlib.contextmanager
    def _day(self, conn_id: str) -> Iterator[tuple[dt.date, dict[str, Any]]]:
        """The day's entry of a connection, locked; changes are written when the block ends."""
        day = self.day()
        path = self.path(day)
        if path is None:
            state = self._memory.setdefault(str(day), _new_state(day))
            yield day, _entry(state, conn_id)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / "quota.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = _read_state(path, day)
                entry = _entry(state, conn_id)
                before = json.dumps(state, sort_keys=True)
                yield day, entry
                if json.dumps(state, sort_keys=True) != before:
                    entry["updated_at"] = self.clock().astimezone(dt.UTC).isoformat()
                    _write_atomically(path, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _exceeded_message(conn_id: str, day: dt.date, used: int, api_message: str | None) -> str:
    said = f" ({api_message})" if api_message else ""
    return (
        f"YouTube daily quota for {day} (Pacific time) used up: the API answered "
        f"quotaExceeded{said} after {used} units counted for connection {conn_id}; the rest is "
        "read tomorrow after midnight Pacific time, or raise the project's quota in Google "
        f"Cloud Console (and daily_quota_units in connection {conn_id}'s extra)"
    )


def _new_state(day: dt.date) -> dict[str, Any]:
    return {"date": f"{day:%Y-%m-%d}", "time_zone": str(QUOTA_TIME_ZONE), "connections": {}}


def _entry(state: dict[str, Any], conn_id: str) -> dict[str, Any]:
    entry = state["connections"].setdefault(conn_id, {})
    entry.setdefault("units", 0)
    entry.setdefault("exceeded", False)
    return entry


def _read_state(path: Path, day: dt.date) -> dict[str, Any]:
    """The day's state (a new one when there is no file); unreadable: a ConfigurationProblem."""
    if not path.exists():
        return _new_state(day)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        connections = state["connections"]
        if not isinstance(connections, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("units", 0), int) for e in connections.values()
        ):
            raise ValueError("'connections' is not a mapping of entries with integer units")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationProblem(
            f"the YouTube quota state file {path} is unreadable ({type(exc).__name__}: {exc}): "
            "repair it, or delete it to count the day's units from 0 again"
        ) from exc
    return state


def _write_atomically(path: Path, state: dict[str, Any]) -> None:
    """Replace ``path`` by ``state`` at once: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """The key an account is read with, where it comes from and the quota it draws on."""

    conn_id: str
    key: str = field(repr=False)
    base_url: str
    budget: int


class Api:
    """GETs under ``/youtube/v3/`` with one key, each booked on the :class:`QuotaLedger`.

    Error answers come back as :class:`ApiError`; the key's own problems as
    :class:`KeyRejected` and ``quotaExceeded`` as :class:`QuotaUsedUp` (the day marked).
    """

    def __init__(self, client: HttpClient, credentials: Credentials, ledger: QuotaLedger) -> None:
        self.client = client
        self.credentials = credentials
        self.ledger = ledger

    def get(self, resource: str, params: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of ``GET /youtube/v3/<resource>?<params>`` (a unit booked first).

        Raises :class:`QuotaUsedUp` before the request when the day's budget allows no
        more, and the errors of the class docstring for an error answer.
        """
        creds = self.credentials
        self.ledger.charge(creds.conn_id, creds.budget)
        before = self.client.requests
        try:
            response = self.client.get(
                f"{creds.base_url}{API_PATH}/{resource}",
                params={k: v for k, v in params.items() if v is not None},
                # the key in a header only: no URL (and so no message quoting one) holds it
                headers={"X-Goog-Api-Key": creds.key, "Accept": "application/json"},
                ok=(200, 400, 403, 404),
            )
        finally:
            # one unit per attempt: a retried request costs more, one never sent nothing
            self.ledger.adjust(creds.conn_id, self.client.requests - before - 1)
        if response.status_code == 200:
            return decode_json(response, dict)
        exc = _error_of(response)
        if exc.reason in _QUOTA_REASONS:
            raise self.ledger.exceeded(creds.conn_id, exc.api_message)
        if _key_problem(exc):
            raise KeyRejected(
                f"YouTube rejected the API key of connection {creds.conn_id} ({exc}): "
                + KEY_HOWTO.format(conn_id=creds.conn_id)
            )
        raise exc

    def pages(
        self, resource: str, params: dict[str, Any], limit: int, what: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """The items of up to ``limit`` pages; and whether the limit cut the paging."""
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        token: str | None = None
        for page in range(1, limit + 1):
            data = self.get(resource, {**params, "pageToken": token})
            items.extend(_items(data, f"{what} (page {page})"))
            token = _next_token(data, seen, f"{what} (page {page})")
            if token is None:
                return items, False
        return items, True


# -- one account ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Video:
    """The fields of a ``videos`` item the connector uses."""

    id: str
    published_at: dt.datetime
    likes: int | None
    comments: int
    views: int | None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Video:
        vid = _str(raw, "id", "a video")
        what = f"video {vid}"
        snip = _dict(raw.get("snippet"), f"the snippet of {what}")
        stats = _dict(raw.get("statistics"), f"the statistics of {what}")
        return cls(
            id=vid,
            published_at=_time(snip, "publishedAt", f"the snippet of {what}"),
            # absent: the owner hides the likes (null) / turned comments off (none to count)
            likes=_count(stats, "likeCount", what),
            comments=_count(stats, "commentCount", what) or 0,
            views=_count(stats, "viewCount", what),
        )


@dataclass(frozen=True)
class Comment:
    """The fields of a ``comment`` resource the connector uses."""

    id: str
    author_id: str
    published_at: dt.datetime
    parent_id: str | None
    video_id: str | None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Comment:
        c = _dict(raw, f"a comment in {where}")
        cid = _str(c, "id", f"a comment in {where}")
        what = f"comment {cid} in {where}"
        snip = _dict(c.get("snippet"), f"the snippet of {what}")
        channel = snip.get("authorChannelId")
        author = channel.get("value") if isinstance(channel, dict) else None
        if not isinstance(author, str) or not author:
            # "if available": an author without a channel is known by the name shown only
            author = f"name:{snip.get('authorDisplayName') or 'unknown'}"
        parent = snip.get("parentId")
        video = snip.get("videoId")
        return cls(
            id=cid,
            author_id=author,
            published_at=_time(snip, "publishedAt", what),
            parent_id=parent if isinstance(parent, str) and parent else None,
            video_id=video if isinstance(video, str) and video else None,
        )


class _Account:
    """One account's fetch: everything or an error, never half."""

    def __init__(self, api: Api, ref: AccountRef, window: FetchWindow, now: dt.datetime) -> None:
        self.api = api
        self.ref = ref
        self.now = now
        self.since = window.since
        #: how far back the uploads were read: ``since``, later when the page limit cut it
        self.posts_since = self.since
        self.max_pages = int(ref.options.get("max_pages") or MAX_PAGES)
        self.max_thread_pages = int(ref.options.get("max_thread_pages") or MAX_THREAD_PAGES)
        self.channel_id = ""
        #: what the fetch is doing (names the step in an error message)
        self.step = ""
        #: what the account's rows lack (hidden subscribers, a page limit, a short thread)
        self.warnings: list[str] = []

    # -- 1. channel -----------------------------------------------------------------------

    def channel(self) -> tuple[dict[str, Any], str]:
        """The account's snapshot row and its uploads playlist id."""
        param, value = parse_channel(self.ref.handle)
        self.step = f"looking up channel {value}"
        data = self.api.get("channels", {"part": "snippet,statistics,contentDetails", param: value})
        items = _items(data, "the channels response")
        if not items:
            which = "with handle" if param == "forHandle" else "with id"
            raise YoutubeError(
                f"no channel {which} {value!r} (the API found none: deleted, terminated or "
                "misspelt); check the account's handle in the registry"
            )
        channel = items[0]
        cid = _str(channel, "id", "the channel")
        if param == "id" and cid != value:
            raise YoutubeError(f"the API answered with another channel ({cid!r})")
        self.channel_id = cid
        stats = _dict(channel.get("statistics"), f"the statistics of channel {cid}")
        details = _dict(channel.get("contentDetails"), f"the contentDetails of channel {cid}")
        playlists = _dict(details.get("relatedPlaylists"), f"the playlists of channel {cid}")
        uploads = _str(playlists, "uploads", f"the playlists of channel {cid}")
        followers = _count(stats, "subscriberCount", f"channel {cid}")
        if stats.get("hiddenSubscriberCount") is True or followers is None:
            followers = None
            self.warnings.append(
                f"channel {cid}: the subscriber count is hidden (statistics.hiddenSubscriberCount); "
                "followers recorded as null: the account is left out of the company's "
                "followers, growth and rates (METRICS rules 2 and 4)"
            )
        snapshot = {
            "platform": YoutubePlatform.name,
            "company_id": self.ref.company_id,
            "account_id": cid,
            "handle": self.ref.handle,
            "observed_at": self.now,
            "followers": followers,
            "following": None,  # YouTube shows no subscriptions count
            "posts_total": _count(stats, "videoCount", f"channel {cid}"),
            "posts_since": None,  # set once the uploads are read
        }
        return snapshot, uploads

    # -- 2. uploads -----------------------------------------------------------------------

    def uploads(self, playlist: str, video_count: int | None) -> list[str]:
        """The ids of the uploads published since ``posts_since`` (newest first).

        Pages are read until one holds a video published before ``since``, or the last.
        When the page limit ends the paging first, what was read is kept: ``posts_since``
        becomes the oldest upload read and a warning says what is missing.
        """
        read: list[tuple[str, dt.datetime | None]] = []
        seen: set[str] = set()
        token: str | None = None
        oldest = self.now
        for page in range(1, self.max_pages + 1):
            self.step = f"reading the uploads of channel {self.channel_id} (page {page})"
            params = {
                "part": "contentDetails",
                "playlistId": playlist,
                "maxResults": PAGE_SIZE,
                "pageToken": token,
            }
            try:
                data = self.api.get("playlistItems", params)
            except ApiError as exc:
                if exc.status == 404 and page == 1 and not video_count:
                    return []  # a channel that never uploaded has no uploads playlist yet
                raise
            older = False
            for item in _items(data, f"uploads page {page}"):
                details = _dict(item.get("contentDetails"), f"an item of uploads page {page}")
                vid = _str(details, "videoId", f"an item of uploads page {page}")
                # absent for a video not (or no longer) public: it does not end the paging
                published = (
                    _time(details, "videoPublishedAt", f"upload {vid}")
                    if details.get("videoPublishedAt") is not None
                    else None
                )
                read.append((vid, published))
                if published is not None:
                    older = older or published < self.since
                    oldest = min(oldest, published)
            token = _next_token(data, seen, f"uploads page {page}")
            if older or token is None:
                return self._since(read)
        self.posts_since = oldest
        self.warnings.append(
            page_limit_warning(
                f"uploads of channel {self.channel_id}",
                self.max_pages,
                self.since,
                oldest,
                items="videos",
            )
        )
        return self._since(read)

    def _since(self, read: list[tuple[str, dt.datetime | None]]) -> list[str]:
        ids: dict[str, None] = {}
        for vid, published in read:
            if published is None or published >= self.posts_since:
                ids.setdefault(vid)
        return list(ids)

    # -- 3. videos ------------------------------------------------------------------------

    def videos(self, ids: list[str]) -> list[Video]:
        """The videos published in ``[posts_since, now]``, in the uploads' order."""
        out: list[Video] = []
        for start in range(0, len(ids), VIDEO_BATCH):
            batch = ids[start : start + VIDEO_BATCH]
            self.step = f"reading videos {start + 1}-{start + len(batch)} of {len(ids)}"
            data = self.api.get("videos", {"part": "statistics,snippet", "id": ",".join(batch)})
            # a video made private or deleted since the playlist was read is not returned
            for raw in _items(data, "the videos response"):
                video = Video.parse(raw)
                if self.posts_since <= video.published_at <= self.now:
                    out.append(video)
        return out

    def post_row(self, video: Video) -> dict[str, Any]:
        return {
            "platform": YoutubePlatform.name,
            "post_id": video.id,
            "account_id": self.channel_id,
            "company_id": self.ref.company_id,
            "created_at": video.published_at,
            "kind": "original",
            "likes": video.likes,
            "replies": video.comments,
            "reposts": 0,  # YouTube has no reposts or quotes
            "quotes": 0,
            "views": video.views,
            "url": watch_url(video.id),
            "observed_at": self.now,
        }

    # -- 4. threads -----------------------------------------------------------------------

    def thread(self, video: Video, seen: set[str]) -> list[dict[str, Any]]:
        """Every comment under a video: the top-level ones answer the video, replies their
        top-level comment (YouTube threads are one level deep)."""
        self.step = f"reading the comments of video {video.id}"
        try:
            threads, cut = self.api.pages(
                "commentThreads",
                {
                    "part": "snippet,replies",
                    "videoId": video.id,
                    "maxResults": COMMENT_PAGE_SIZE,
                    "textFormat": "plainText",
                },
                self.max_thread_pages,
                f"the comment threads of video {video.id}",
            )
        except ApiError as exc:
            if exc.reason == "commentsDisabled":
                log.info("youtube video %s: comments are disabled; no thread", video.id)
                return []
            raise
        comments: list[Comment] = []
        where = f"the comments of video {video.id}"
        for item in threads:
            snip = _dict(item.get("snippet"), f"a comment thread of video {video.id}")
            top = Comment.parse(snip.get("topLevelComment"), where)
            comments.append(top)
            part = _dict(item.get("replies") or {}, f"the replies of thread {top.id}")
            embedded = part.get("comments") or []
            if not isinstance(embedded, list):
                raise YoutubeError(f"thread {top.id} of video {video.id}: replies is not a list")
            total = _count(snip, "totalReplyCount", f"thread {top.id}") or 0
            if total > len(embedded):  # the thread embeds a few replies: read them all
                self.step = f"reading the replies to comment {top.id} of video {video.id}"
                embedded, more = self.api.pages(
                    "comments",
                    {"part": "snippet", "parentId": top.id, "maxResults": COMMENT_PAGE_SIZE},
                    self.max_thread_pages,
                    f"the replies to comment {top.id}",
                )
                cut = cut or more
            comments.extend(Comment.parse(r, f"the replies to comment {top.id}") for r in embedded)
        self._check_coverage(video, len({c.id for c in comments}), cut)
        rows = []
        for c in comments:
            if c.id in seen or c.published_at > self.now:
                continue
            seen.add(c.id)
            rows.append(self._reply_row(video, c))
        return rows

    def _reply_row(self, video: Video, c: Comment) -> dict[str, Any]:
        return {
            "platform": YoutubePlatform.name,
            "reply_id": c.id,
            "account_id": self.channel_id,
            "company_id": self.ref.company_id,
            "root_post_id": video.id,
            "in_reply_to_id": c.parent_id or video.id,
            "author_id": c.author_id,
            "author_is_company": c.author_id == self.channel_id,
            "created_at": c.published_at,
            "observed_at": self.now,
        }

    def _check_coverage(self, video: Video, read: int, cut: bool) -> None:
        """A warning when fewer comments were read than the video's ``commentCount``."""
        if read >= video.comments:
            return
        if cut:
            why = (
                f"page limit reached (max_thread_pages {self.max_thread_pages}); raise the "
                "account option max_thread_pages"
            )
        else:
            why = (
                "commentCount counts top-level comments and replies, also those held for "
                "review or as likely spam and deleted ones until it catches up; the API "
                "returns published comments only"
            )
        self.warnings.append(thread_short_warning(video.id, read, video.comments, why))

    # -- the whole account ----------------------------------------------------------------

    def fetch(self) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        """Rows per table and the warnings (which do not cost the account its rows)."""
        snapshot, playlist = self.channel()
        ids = self.uploads(playlist, snapshot["posts_total"])
        snapshot["posts_since"] = self.posts_since
        videos = self.videos(ids)
        seen: set[str] = set()
        replies: list[dict[str, Any]] = []
        for video in videos:
            if video.comments > 0:
                replies.extend(self.thread(video, seen))
        rows = {
            "account_snapshots": [snapshot],
            "post_observations": [self.post_row(v) for v in videos],
            "thread_replies": replies,
            "probes": self.probes(),
        }
        return rows, self.warnings

    # -- 5. probes ------------------------------------------------------------------------

    def probes(self) -> list[dict[str, Any]]:
        """The channel's first answer to each field-study question (problems: warnings).

        A question that is gone (404, or no longer returned) or whose reference is no
        comment is recorded unanswered (an answer recorded by hand in the registry still
        wins); one that could not be read for now yields no row, so the last observation
        stays. The quota, the key and the account's time budget fail the account.
        """
        return public_post_probes(self.ref, YoutubePlatform.name, self._probe, self.warnings)

    def _probe(self, probe: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        self.step = f"probe {probe.get('probe_id')}"
        ref = probe.get("question_ref")
        try:
            video_hint, question_id = parse_comment_ref(str(ref or ""))
        except YoutubeError as exc:
            return probe_row(probe, self.now), f"{exc}; recorded unanswered"
        try:
            found = _items(
                self.api.get("comments", {"part": "snippet", "id": question_id}),
                f"the lookup of comment {question_id}",
            )
            if not found:
                gone = (
                    f"the question {ref} is gone (comment {question_id} is not returned: "
                    "deleted, or held for review); recorded unanswered"
                )
                return probe_row(probe, self.now), gone
            question = Comment.parse(found[0], "the question's lookup")
            # a question posted as a reply sits in its top-level comment's (flat) thread
            top = question.parent_id or question.id
            replies, _ = self.api.pages(
                "comments",
                {"part": "snippet", "parentId": top, "maxResults": COMMENT_PAGE_SIZE},
                self.max_thread_pages,
                f"the replies to comment {top}",
            )
            answers = sorted(
                (a.published_at, a.id)
                for a in (Comment.parse(r, f"the replies to comment {top}") for r in replies)
                if a.author_id == self.channel_id
                and a.id != question.id
                and question.published_at <= a.published_at <= self.now
            )
        except BudgetExceeded:
            raise  # the account's time is up: its error, not the probe's
        except HttpError as exc:
            if exc.status == 404:
                gone = f"the question {ref} is gone ({exc}); recorded unanswered"
                return probe_row(probe, self.now), gone
            # not readable for now (5xx, timeout, a broken payload): no row, the last stays
            return None, f"{type(exc).__name__}: {exc}"
        if not answers:
            return probe_row(probe, self.now), None
        when, answer_id = answers[0]
        # the registry's sent_at may be a little late; an answer never precedes its question
        when = max(when, parse_time(probe["sent_at"]))
        video = question.video_id or video_hint
        answer = watch_url(video, answer_id) if video else answer_id
        return probe_row(probe, self.now, when, answer), None


# -- the platform --------------------------------------------------------------------------


class YoutubePlatform:
    """YouTube Data API v3 connector (see the module docstring and README.md)."""

    name: ClassVar[str] = "youtube"

    def __init__(self, context: PlatformContext | None = None) -> None:
        self.context = context or PlatformContext()

    def credentials(self, ref: AccountRef) -> Credentials:
        """The key (and API base and daily budget) an account is read with.

        ``youtube_default``, or the connection the account's ``options.connection`` names;
        a connection that is missing, has no key or an unusable budget is a
        :class:`ConfigurationProblem`.
        """
        conn_id = str(ref.options.get("connection") or CONNECTION_ID)
        if conn_id == CONNECTION_ID:
            conn = self.context.connection
            if conn is None:
                raise ConfigurationProblem(
                    f"the Airflow connection {CONNECTION_ID} is not defined: "
                    + KEY_HOWTO.format(conn_id=CONNECTION_ID)
                )
        else:
            try:
                conn = self.context.named_connection(conn_id)
            except ConnectionMissing as exc:
                raise ConfigurationProblem(str(exc)) from exc
        key = str(conn.get("password") or "").strip()
        if not key:
            raise ConfigurationProblem(
                f"no YouTube API key: the Airflow connection {conn_id} has no password; "
                + KEY_HOWTO.format(conn_id=conn_id)
            )
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            try:
                extra = json.loads(extra) if extra.strip() else {}
            except ValueError as exc:
                raise ConfigurationProblem(
                    f"the extra of connection {conn_id} is not JSON ({exc})"
                ) from exc
        budget = (
            extra.get("daily_quota_units", DAILY_QUOTA_UNITS) if isinstance(extra, dict) else None
        )
        if isinstance(budget, str) and _DIGITS.fullmatch(budget.strip()):
            budget = int(budget)
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigurationProblem(
                f"daily_quota_units in connection {conn_id}'s extra is not a positive whole "
                f"number of units: {budget!r}"
            )
        base_conn = conn if conn.get("host") else self.context.connection
        return Credentials(conn_id, key, api_base(base_conn), budget)

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        now = self.context.now()  # one observation time for the whole fetch
        client = self.context.client()  # one client (one session) for the whole fetch
        ledger = QuotaLedger(self.context.state_dir, self.context.now)
        result = FetchResult()
        secrets: set[str] = set()  # every key of this fetch: no message may quote one
        rejected: dict[str, str] = {}  # connection id -> why the API refuses its key
        used: dict[str, Credentials] = {}
        for ref in accounts:
            account: _Account | None = None
            conn_id: str | None = None
            try:
                creds = self.credentials(ref)
                conn_id = creds.conn_id
                secrets.add(creds.key)
                used.setdefault(conn_id, creds)
                if conn_id in rejected:  # the same key: refused again, without a request
                    raise KeyRejected(rejected[conn_id])
                account = _Account(Api(client, creds, ledger), ref, window, now)
                with client.account_budget(f"account {ref.handle} ({ref.company_id})"):
                    rows, warnings = account.fetch()
            except ConfigurationProblem as exc:
                if isinstance(exc, KeyRejected) and conn_id is not None:
                    rejected[conn_id] = str(exc)
                self._record(result.errors, ref, redact(str(exc), secrets), CONFIGURATION)
                continue
            except Exception as exc:  # one bad account never stops the others
                text = (
                    str(exc)
                    if isinstance(exc, YoutubeError | ApiError)
                    else f"{type(exc).__name__}: {exc}"
                )
                step = account.step if account is not None else ""
                msg = redact(f"{step}: {text}" if step else text, secrets)
                self._record(result.errors, ref, msg, ERROR)
                continue
            result.extend(rows)
            for warning in warnings:  # the account's rows are fine: warnings, not errors
                self._record(result.warnings, ref, redact(warning, secrets), WARNING)
        result.drop_duplicates()  # one comment for two registry accounts on one channel: once
        self._log_quota(ledger, used)
        return result

    def _record(self, into: list[FetchError], ref: AccountRef, msg: str, severity: str) -> None:
        log.warning("youtube %s (%s): %s: %s", ref.handle, ref.company_id, severity, msg)
        into.append(FetchError(self.name, ref.company_id, ref.handle, msg, severity))

    @staticmethod
    def _log_quota(ledger: QuotaLedger, used: dict[str, Credentials]) -> None:
        """One INFO line per connection: the units of this fetch and of the day, the budget."""
        for conn_id, creds in used.items():
            try:
                day, today = ledger.today(conn_id)
            except ConfigurationProblem as exc:  # the state file broke: said per account
                log.warning("youtube quota of connection %s: %s", conn_id, exc)
                continue
            log.info(
                "youtube quota of connection %s: %d units this fetch, %d units on %s (Pacific "
                "time) of the daily budget of %d",
                conn_id,
                ledger.fetch_units.get(conn_id, 0),
                today,
                day,
                creds.budget,
            )
