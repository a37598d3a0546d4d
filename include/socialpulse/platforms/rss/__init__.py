"""RSS and Atom feeds as a platform: a company blog or news feed, read with conditional GETs.

One registry account is one feed. Its URL is ``options.feed_url`` when given, else the
handle (which must then be an http(s) URL); the URL is the account's ``account_id``.

A fetch observes every entry published (or, lacking a publication date, updated) in
``[window.since, now]`` as an ``original`` post (``window.since``: the window's start or
``end - lookback``, whichever is earlier, so a backfill reads its whole window). A feed has
no likes, reposts, quotes or views; WordPress and many other blog engines publish the
comment count per entry (``slash:comments``), which becomes ``replies``. Comment authors
cannot be identified reliably, so it emits no thread replies (see README.md).

Every feed read successfully gets one ``account_snapshots`` row: feeds have no followers,
followings or post totals (all null), but the row records that the feed was looked at and
how far back (``posts_since``: ``window.since`` when an entry older than it was read;
else the oldest entry read, as a feed that ends, or a page limit that stops the paging,
before ``since`` says nothing about the time before its oldest entry).

Paging (RFC 5005): while the oldest dated entry of a page is not older than ``since``, the
feed's ``<link rel="next">`` (Atom, or ``atom:link`` in RSS) is followed, up to ``max_pages``
pages (account option, default :data:`MAX_PAGES`). Stopped there, the entries read are
kept and a warning (``FetchResult.warnings``) says which are missing; a next link that
repeats a page already read is an error.

Conditional GET (the first page only): the ``ETag`` and ``Last-Modified`` of each feed's
last successfully read response are kept in ``<state_dir>/rss_http_cache.json`` with its
body, and sent back as ``If-None-Match`` / ``If-Modified-Since``. A ``304 Not Modified``
costs no download: the cached copy is parsed and observed again (posts and snapshot, as if
it had been downloaded), so a run whose batch was quarantined or retried loses nothing.

A feed that cannot be fetched (HTTP errors after the shared client's retries, timeouts,
unreachable hosts) or is no feed (an HTML page, truncated XML, an empty body), on any of its
pages, becomes a :class:`FetchError` for that account; it emits no rows and the other
accounts go on. So does one that hits the shared client's limits: a server dripping its
feed past the deadline or breaking it off while it is read (a reset, a truncated chunked
body), after the retries; a feed larger than the size cap (``HttpPolicy.max_bytes``, 8 MiB:
not read beyond it); the account's time budget used up (every feed is read inside
:meth:`HttpClient.account_budget`).

Keys are emitted once per fetch: a post id a second feed delivers again, and a second
snapshot of a feed two accounts share, are skipped with a warning in the log (and
:meth:`FetchResult.drop_duplicates` keeps every raw key once whatever the source).
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urljoin, urlsplit

from socialpulse.http import HttpError, snippet
from socialpulse.platforms.base import (
    AccountRef,
    FetchError,
    FetchResult,
    FetchWindow,
    PlatformContext,
    page_limit_warning,
    parse_time,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator
    from pathlib import Path

    import requests

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

#: the conditional-GET validators per feed URL, in the platform's state folder
CACHE_FILE = "rss_http_cache.json"
#: feed pages (RFC 5005 ``rel="next"``) per account and fetch (account option ``max_pages``)
MAX_PAGES = 10
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
#: the first element of an XML or HTML document (comments, PIs and doctypes start with ! or ?)
_FIRST_ELEMENT = re.compile(rb"<([A-Za-z_][\w:.-]*)")
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_HTML_DOCTYPE = re.compile(rb"<!doctype\s+html", re.IGNORECASE)


class FeedProblem(Exception):
    """The response is not a usable RSS or Atom feed (HTML page, truncated XML, ...)."""


def feed_url(ref: AccountRef) -> str:
    """The account's feed URL: ``options.feed_url``, else the handle; http(s) only."""
    url = str(ref.options.get("feed_url") or ref.handle).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FeedProblem(
            f"no feed URL: the handle {ref.handle!r} is not an http(s) URL and the account "
            "has no options.feed_url"
        )
    return url


# --- the HTTP cache (conditional GET) ------------------------------------------------------


class HttpCache:
    """``{feed_url: {"etag": ..., "last_modified": ...}}`` in ``<state_dir>/rss_http_cache.json``.

    Read once per fetch; the feeds parsed successfully are written back at the end of the
    fetch, merged into the file's then current content under a lock (parallel batches share
    the folder) and replaced atomically (temp file + rename). Without a state folder nothing
    is kept and every request is unconditional.
    """

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / CACHE_FILE if state_dir is not None else None
        self._entries = self._read()
        self._changed: dict[str, dict[str, str] | None] = {}

    def _read(self) -> dict[str, dict[str, str]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning(
                "ignoring unreadable %s (%s): all feeds are fetched in full", self.path, exc
            )
            return {}
        if not isinstance(data, dict):
            log.warning("ignoring %s: not a JSON object; all feeds are fetched in full", self.path)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def request_headers(self, url: str) -> dict[str, str]:
        """``If-None-Match`` / ``If-Modified-Since`` for the feed, where known."""
        if self.path is None:
            return {}
        entry = self._entries.get(url) or {}
        headers = {}
        if entry.get("etag"):
            headers["If-None-Match"] = str(entry["etag"])
        if entry.get("last_modified"):
            headers["If-Modified-Since"] = str(entry["last_modified"])
        return headers

    def _body_path(self, url: str) -> Path:
        assert self.path is not None
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.path.parent / "rss_bodies" / f"{digest}.xml"

    def body(self, url: str) -> bytes | None:
        """The feed as last downloaded (kept with its validators), or None."""
        if self.path is None:
            return None
        try:
            return self._body_path(url).read_bytes()
        except OSError:
            return None

    def remember(self, url: str, response: requests.Response) -> None:
        """Keep the validators and the body of a response whose feed parsed successfully."""
        if self.path is None:
            return
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        entry = {"etag": etag, "last_modified": modified} if etag or modified else None
        if entry is not None:
            target = self._body_path(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(response.content)
            os.replace(tmp, target)
        self._changed[url] = entry
        if entry is None:
            self._entries.pop(url, None)
        else:
            self._entries[url] = entry

    def save(self) -> None:
        if self.path is None or not self._changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path.with_name(self.path.name + ".lock")):
            current = self._read()
            for url, entry in self._changed.items():
                if entry is None:
                    current.pop(url, None)
                else:
                    current[url] = entry
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(current, f, indent=2, sort_keys=True)
                    f.write("\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        self._changed.clear()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX; a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Airflow runs on POSIX
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- parsing -------------------------------------------------------------------------------


def _first_element(body: bytes) -> bytes | None:
    m = _FIRST_ELEMENT.search(_COMMENT.sub(b"", body[:8192]))
    return m.group(1) if m else None


def _is_html(body: bytes) -> bool:
    head = body[:8192].lstrip(b"\xef\xbb\xbf \t\r\n")
    if _HTML_DOCTYPE.search(_COMMENT.sub(b"", head)[:512]):
        return True
    root = _first_element(head)
    return root is not None and root.lower() == b"html"


def _is_complete(body: bytes) -> bool:
    """Whether the document ends with the closing tag of its root element."""
    root = _first_element(body)
    if root is None:
        return False
    tail = _COMMENT.sub(b"", body[-4096:]).rstrip()
    return re.search(rb"</\s*" + re.escape(root) + rb"\s*>$", tail) is not None


def parse_feed(body: bytes, content_type: str, url: str) -> Any:
    """The feed as parsed by feedparser, or FeedProblem naming what came instead.

    feedparser is lenient (its loose parser recovers entries from broken XML and flags the
    result ``bozo``). Tolerated: bozo warnings when entries parse (a wrong declared encoding,
    a feed served as text/plain, an unescaped ``&`` in a complete document). Errors: an
    empty body, an HTML page, XML cut off before its closing root tag (the last entries
    would be partial), and anything in which feedparser finds neither entries nor a feed.
    """
    import feedparser

    what = content_type or "no content type"
    if not body.strip():
        raise FeedProblem(f"empty response ({what}), not an RSS or Atom feed")
    if _is_html(body):
        raise FeedProblem(f"got an HTML page ({what}), not an RSS or Atom feed: {snippet(body)}")
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-type": content_type, "content-location": url},
    )
    bozo = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if bozo is not None and _is_xml_error(bozo) and not _is_complete(body):
        raise FeedProblem(
            f"truncated feed: the XML ends before its closing tag after {len(body)} bytes "
            f"({type(bozo).__name__}: {bozo})"
        )
    if not parsed.entries and (
        not parsed.get("version") or (bozo is not None and not parsed.feed.get("title"))
    ):
        detail = f": {type(bozo).__name__}: {bozo}" if bozo is not None else ""
        raise FeedProblem(f"not an RSS or Atom feed ({what}){detail}: {snippet(body)}")
    if bozo is not None:
        log.info("feed %s parsed despite %s: %s", url, type(bozo).__name__, bozo)
    return parsed


def _is_xml_error(exc: BaseException) -> bool:
    from xml.sax import SAXException

    return isinstance(exc, SAXException)


def entry_time(entry: Any) -> dt.datetime | None:
    """When the entry was published, else last updated (UTC); None without a usable date."""
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:  # feedparser normalises every date format to a UTC struct_time
            return parse_time(calendar.timegm(parsed))
    return None


def comment_count(entry: Any, url: str) -> int:
    """``slash:comments`` as a count; 0 where the feed has none (or an unreadable one)."""
    raw = entry.get("slash_comments")
    if raw is None or not str(raw).strip():
        return 0
    try:
        return max(0, int(str(raw).strip()))
    except ValueError:
        log.warning("feed %s: slash:comments %r is not a count; taken as 0", url, raw)
        return 0


# --- the platform --------------------------------------------------------------------------


def next_link(parsed: Any, page_url: str) -> str | None:
    """The page's RFC 5005 ``rel="next"`` link (Atom, or atom:link in RSS), absolute; or None."""
    for link in parsed.feed.get("links") or ():
        href = (link.get("href") or "").strip()
        if link.get("rel") == "next" and href:
            url = urljoin(page_url, href)
            return url if urlsplit(url).scheme in ("http", "https") else None
    return None


def _same_page(url: str) -> str:
    """A page URL's identity for loop detection: host, path and sorted query."""
    parts = urlsplit(url)
    query = "&".join(f"{k}={v}" for k, vs in sorted(parse_qs(parts.query).items()) for v in vs)
    return f"{parts.netloc.lower()}{parts.path}?{query}"


@dataclass
class _Feed:
    """What one feed yielded: its rows, how far back it was read, what it lacks."""

    rows: list[dict[str, Any]]
    posts_since: dt.datetime
    warnings: list[str] = field(default_factory=list)


def _global_id(guid: str | None, feed: str) -> str | None:
    """Post ids are unique per platform: a guid that is not a URI is only unique in its feed."""
    if not guid:
        return None
    if urlsplit(guid).scheme in ("http", "https", "tag", "urn"):
        return guid
    return f"{feed}#{guid}"


class RssPlatform:
    """RSS 2.0, RSS 1.0 and Atom feeds (see the module docstring)."""

    name: ClassVar[str] = "rss"

    def __init__(self, context: PlatformContext | None = None) -> None:
        self.context = context or PlatformContext()

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        result = FetchResult()
        now = self.context.now()
        since = window.since
        client = self.context.client()
        cache = HttpCache(self.context.state_dir)
        seen: set[str] = set()  # post ids emitted in this fetch (the key is per platform)
        snapped: set[str] = set()  # feeds with a snapshot in this fetch (the key is per feed)
        try:
            for ref in accounts:
                try:
                    url = feed_url(ref)
                    with client.account_budget(f"feed {url} ({ref.company_id})"):
                        feed = self._fetch_feed(client, cache, ref, url, since, now)
                except HttpError as exc:
                    message = f"feed could not be fetched: {exc}"
                except FeedProblem as exc:
                    message = str(exc)
                except Exception as exc:  # one bad account never stops the others
                    log.exception("rss feed of %s (%s) failed", ref.handle, ref.company_id)
                    message = f"{type(exc).__name__}: {exc}"
                else:
                    if url in snapped:
                        log.warning(
                            "feed %s: already observed for another account in this fetch; "
                            "no second snapshot",
                            url,
                        )
                    else:
                        snapped.add(url)
                        result.add("account_snapshots", self._snapshot(ref, url, feed, now))
                    for warning in feed.warnings:  # the rows are fine: a warning, no error
                        log.warning("rss %s (%s): %s", ref.handle, ref.company_id, warning)
                        result.warnings.append(
                            FetchError(self.name, ref.company_id, ref.handle, warning)
                        )
                    for row in feed.rows:
                        if row["post_id"] in seen:
                            log.warning(
                                "feed %s: post id %s already came from another feed in this "
                                "fetch; skipped (post ids must be unique on the platform)",
                                row["account_id"],
                                row["post_id"],
                            )
                            continue
                        seen.add(row["post_id"])
                        result.add("post_observations", row)
                    continue
                result.errors.append(FetchError(self.name, ref.company_id, ref.handle, message))
        finally:
            try:
                cache.save()
            except OSError as exc:  # the rows are fine; the next run is just unconditional
                log.warning("could not save the feed validators to %s: %s", cache.path, exc)
        result.drop_duplicates()  # (the checks above keep keys unique already)
        return result

    def _snapshot(self, ref: AccountRef, url: str, feed: _Feed, now: dt.datetime) -> dict:
        return {
            "platform": self.name,
            "company_id": ref.company_id,
            "account_id": url,
            "handle": ref.handle,
            "observed_at": now,
            "followers": None,  # a feed has no followers, followings or post total
            "following": None,
            "posts_total": None,
            "posts_since": feed.posts_since,
        }

    def _fetch_feed(
        self,
        client: HttpClient,
        cache: HttpCache,
        ref: AccountRef,
        url: str,
        since: dt.datetime,
        now: dt.datetime,
    ) -> _Feed:
        """The feed's rows since ``since``: its first page, then ``rel="next"`` pages."""
        max_pages = int(ref.options.get("max_pages") or MAX_PAGES)
        conditional = cache.request_headers(url)
        first = client.get(url, headers={"Accept": ACCEPT, **conditional}, ok=(200, 304))
        if first.status_code == 304:
            if not conditional:
                raise FeedProblem(f"HTTP 304 Not Modified to an unconditional request ({url})")
            body = cache.body(url)
            if body is None:
                raise FeedProblem(f"HTTP 304 Not Modified, but no cached copy of {url}")
            # unchanged: observe the cached copy again, so that a run whose batch was
            # quarantined or retried loses nothing (the feed cost no download)
            log.info("feed %s not modified since the last fetch: observing the cached copy", url)
            content_type = "application/xml"
        else:
            body = first.content
            content_type = first.headers.get("Content-Type", "")
        feed = _Feed(rows=[], posts_since=since)
        ids: set[str] = set()  # post ids of this feed, over all its pages
        read = {_same_page(url)}
        oldest = now  # the oldest entry date read
        page_url = url
        for page_no in range(1, max_pages + 1):
            try:
                parsed = parse_feed(body, content_type, page_url)
            except FeedProblem as exc:
                raise FeedProblem(f"{exc} ({page_url})") from exc
            feed.rows.extend(self._rows(parsed, ref, url, page_url, since, now, ids))
            dates = [d for d in map(entry_time, parsed.entries) if d is not None]
            nxt = next_link(parsed, page_url)
            if dates and min(dates) < since:
                break  # since reached: the feed was read back to the window's start
            oldest = min(oldest, *dates)
            if not dates or not nxt:
                # the feed serves nothing older: it was read back to its oldest entry only
                # (a feed keeps its last n entries; older posts may exist). Periods before
                # that were not looked at, which is not the same as nothing happened.
                feed.posts_since = max(oldest, since)
                break
            if _same_page(nxt) in read:
                raise FeedProblem(
                    f"pagination loop: the next link of page {page_no} ({page_url}) is {nxt}, "
                    "a page already read"
                )
            if page_no == max_pages:
                # every dated entry read is newer than since: complete since the oldest
                feed.posts_since = oldest
                feed.warnings.append(page_limit_warning(f"feed {url}", max_pages, since, oldest))
                break
            read.add(_same_page(nxt))
            page_url = nxt
            response = client.get(page_url, headers={"Accept": ACCEPT})
            body, content_type = response.content, response.headers.get("Content-Type", "")
        if first.status_code == 200:  # only now: the whole feed was read
            cache.remember(url, first)
        return feed

    def _rows(
        self,
        parsed: Any,
        ref: AccountRef,
        url: str,
        page_url: str,
        since: dt.datetime,
        now: dt.datetime,
        ids: set[str],
    ) -> list[dict[str, Any]]:
        """The rows of one page's entries; ``ids``: the feed's post ids so far (updated)."""
        rows: list[dict[str, Any]] = []
        undated: list[str] = []
        for n, entry in enumerate(parsed.entries, start=1):
            link = (entry.get("link") or "").strip() or None
            post_id = _global_id((entry.get("id") or "").strip() or link, url)
            if link and urlsplit(link).scheme not in ("http", "https"):
                link = None  # feedparser copies a non-URL id (tag:, a bare guid) into link
            if not post_id:
                log.warning("feed %s: entry %d has neither id nor link; skipped", url, n)
                continue
            created = entry_time(entry)
            if created is None:
                undated.append(post_id)
                continue
            if not since <= created <= now or post_id in ids:
                continue
            ids.add(post_id)
            rows.append(
                {
                    "platform": self.name,
                    "post_id": post_id,
                    "account_id": url,
                    "company_id": ref.company_id,
                    "created_at": created,
                    "kind": "original",
                    "likes": 0,
                    "replies": comment_count(entry, url),
                    "reposts": 0,
                    "quotes": 0,
                    "views": None,
                    "url": link,
                    "observed_at": now,
                }
            )
        if undated:
            log.warning(
                "feed %s: %d entr%s without a publication or update date skipped: %s",
                url,
                len(undated),
                "y" if len(undated) == 1 else "ies",
                ", ".join(undated),
            )
        log.info("feed %s: %d of %d entries observed", page_url, len(rows), len(parsed.entries))
        return rows
