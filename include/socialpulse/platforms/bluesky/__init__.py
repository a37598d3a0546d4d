"""Bluesky (AT Protocol): public counters, posts, threads and probe answers via XRPC.

Reads the public AppView (``https://public.api.bsky.app`` unless the Airflow connection
``bluesky_default`` names another host); no login. Per account:

1. ``app.bsky.actor.getProfile?actor=<handle|did>``: the DID and the counters (one
   ``account_snapshots`` row; the DID is the ``account_id``).
2. ``app.bsky.feed.getAuthorFeed?actor=<did>&limit=100&cursor=...``: newest first, paged
   until an item older than ``window.since`` shows up (the window's start or
   ``end - lookback``, whichever is earlier: a backfill reads its whole window; pinned
   items do not count), or until the page limit (``MAX_PAGES``, account option
   ``max_pages``). Posts and reposts created in ``[window.since, now]`` become
   ``post_observations`` rows.
3. ``app.bsky.feed.getPostThread?uri=<at-uri>&depth=100&parentHeight=0`` for each own
   original post of that range with ``replyCount > 0``: every reply in the tree becomes a
   ``thread_replies`` row.
4. The account's field-study probes: the question post's thread (after
   ``com.atproto.identity.resolveHandle`` when its URL names a handle); the company's
   earliest reply anywhere in it is the answer (``probes`` rows).

The snapshot's ``posts_since`` is ``window.since``, or the oldest item read when the page
limit stopped the paging before it. That cut is a warning (``FetchResult.warnings``), not an
error; so is a thread whose tree holds fewer direct replies than the post's ``replyCount``.

An account's rows are kept only when steps 1-3 all succeed (nothing half-fetched); a failure
is one :class:`FetchError` and the other accounts go on. A probe that fails is a warning of
its own; a probe whose question is gone is still emitted, unanswered. The shared client's
limits fail the account the same way: a response dripping past the deadline or broken
while being read (reset, truncated), after the retries; one larger than the size cap; the
account's time budget used up (steps 1-4 run inside :meth:`HttpClient.account_budget`;
past it even the probes fail the account, not just themselves).

A key delivered twice in one fetch (the same reply in the threads of two accounts' posts,
two registry accounts on one DID) is kept once, for the first account:
:meth:`FetchResult.drop_duplicates` drops the later row and logs a warning naming both.
See README.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from socialpulse.http import BudgetExceeded, HttpError, decode_json
from socialpulse.platforms.base import (
    AccountRef,
    FetchError,
    FetchResult,
    FetchWindow,
    PlatformContext,
    page_limit_warning,
    parse_time,
    probe_row,
    thread_short_warning,
)
from socialpulse.records import EARLIEST_TIMESTAMP

if TYPE_CHECKING:
    from collections.abc import Iterator

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://public.api.bsky.app"
WEB_URL = "https://bsky.app"
#: getAuthorFeed's largest page
PAGE_LIMIT = 100
#: pages of the author feed per account and fetch (account option ``max_pages``): 50 x 100
#: posts since ``window.since``; an account with more is read that far, with a warning
MAX_PAGES = 50
#: levels of replies read below a post (the lexicon allows up to 1000)
THREAD_DEPTH = 100

POST_COLLECTION = "app.bsky.feed.post"
REASON_REPOST = "app.bsky.feed.defs#reasonRepost"
REASON_PIN = "app.bsky.feed.defs#reasonPin"
THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
NOT_FOUND = "app.bsky.feed.defs#notFoundPost"
BLOCKED = "app.bsky.feed.defs#blockedPost"

EARLIEST = EARLIEST_TIMESTAMP.replace(tzinfo=dt.UTC)
_AT_URI = re.compile(r"^at://(?P<authority>[^/?#]+)/(?P<collection>[^/?#]+)/(?P<rkey>[^/?#]+)$")
_WEB_POST = re.compile(r"^/profile/(?P<actor>[^/]+)/post/(?P<rkey>[^/]+)/?$")


class XrpcError(HttpError):
    """An XRPC error response (HTTP 400 with ``{"error": ..., "message": ...}``)."""

    def __init__(self, url: str, error: str, message: str) -> None:
        self.error = error
        super().__init__(url, f"XRPC error {error}: {message}" if message else error, 400)


class QuestionGone(ValueError):
    """A probe's question post no longer exists (or cannot be read)."""


def base_url(connection: dict[str, Any] | None) -> str:
    """The XRPC service's base URL from the Airflow connection (host, schema, port)."""
    host = str((connection or {}).get("host") or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = str((connection or {}).get("schema") or "https").strip() or "https"
        host = f"{scheme}://{host}"
    port = (connection or {}).get("port")
    if port and urlsplit(host).port is None:
        parts = urlsplit(host)
        host = f"{parts.scheme}://{parts.netloc}:{int(port)}{parts.path}"
    return host.removesuffix("/xrpc").rstrip("/")


def normalise_actor(handle: str) -> str:
    """A registry handle (``@bakery.bsky.social``, ``did:plc:...``) as an XRPC actor."""
    actor = handle.strip().removeprefix("@").strip()
    if not actor:
        raise ValueError(f"empty Bluesky handle {handle!r}")
    return actor if actor.startswith("did:") else actor.lower()


def split_at_uri(uri: str) -> tuple[str, str, str]:
    """``at://authority/collection/rkey`` -> (authority, collection, rkey)."""
    m = _AT_URI.match(uri or "")
    if not m:
        raise ValueError(f"not an at:// record URI: {uri!r}")
    return m["authority"], m["collection"], m["rkey"]


def web_url(handle: str | None, uri: str) -> str:
    """The bsky.app URL of a post (the DID stands in for an invalid or missing handle)."""
    authority, _, rkey = split_at_uri(uri)
    who = handle if handle and handle != "handle.invalid" else authority
    return f"{WEB_URL}/profile/{who}/post/{rkey}"


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object: {type(value).__name__}")
    return value


def _str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} has no {key!r}")
    return value


def _count(obj: dict[str, Any], key: str, what: str) -> int:
    """An optional counter: missing -> 0; anything but a non-negative integer is an error."""
    value = obj.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what}: {key} is not a count: {value!r}")
    return value


def _time(post: dict[str, Any], now: dt.datetime, what: str) -> dt.datetime:
    """When a post was made: ``record.createdAt``, set by the author's client.

    A client can put any time there; one in the future of the fetch (or before 2004) would
    fail the batch's validation, so then the AppView's ``indexedAt`` (its own clock,
    capped at now) stands in.
    """
    record = _obj(post.get("record"), f"{what} record")
    created = parse_time(_str(record, "createdAt", f"{what} record"))
    if EARLIEST <= created <= now:
        return created
    return min(parse_time(_str(post, "indexedAt", what)), now)


class Xrpc:
    """XRPC queries through the shared HTTP client (retries, pacing and 429s are its job)."""

    def __init__(self, client: HttpClient, base: str) -> None:
        self.client = client
        self.base = base

    def url(self, method: str) -> str:
        return f"{self.base}/xrpc/{method}"

    def query(self, method: str, **params: Any) -> dict[str, Any]:
        response = self.client.get(
            self.url(method),
            params={k: v for k, v in params.items() if v is not None},
            headers={"Accept": "application/json"},
            ok=(200, 400),
        )
        if response.status_code == 400:
            error, message = "InvalidRequest", ""
            try:
                body = response.json()
                if isinstance(body, dict):
                    error = str(body.get("error") or error)
                    message = str(body.get("message") or "")
            except ValueError:
                message = response.text[:200]
            raise XrpcError(response.url, error, message)
        return decode_json(response, dict)


class _Account:
    """One account's fetch: rows are returned only when every step succeeded."""

    def __init__(self, api: Xrpc, ref: AccountRef, window: FetchWindow, now: dt.datetime) -> None:
        self.api = api
        self.ref = ref
        self.now = now
        self.since = window.since
        #: how far back the feed was read: ``since``, later when the page limit cut it
        self.posts_since = self.since
        self.max_pages = int(ref.options.get("max_pages") or MAX_PAGES)
        self.did = ""
        self.handle = ""
        #: what the fetch is doing (names the step in an error message)
        self.step = "start"
        #: what the account's rows lack (a page limit, a thread cut short): warnings
        self.warnings: list[str] = []

    # -- 1. profile -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        actor = normalise_actor(self.ref.handle)
        self.step = f"profile of {actor!r}"
        profile = self.api.query("app.bsky.actor.getProfile", actor=actor)
        what = "getProfile response"
        self.did = _str(profile, "did", what)
        if not self.did.startswith("did:"):
            raise ValueError(f"{what}: 'did' is not a DID: {self.did!r}")
        self.handle = _str(profile, "handle", what)
        return {
            "platform": "bluesky",
            "company_id": self.ref.company_id,
            "account_id": self.did,
            "handle": self.ref.handle,
            "observed_at": self.now,
            "followers": _count(profile, "followersCount", what),
            "following": _count(profile, "followsCount", what),
            "posts_total": _count(profile, "postsCount", what),
            "posts_since": None,  # set once the feed is read
        }

    # -- 2. author feed -------------------------------------------------------------------

    def feed(self) -> list[dict[str, Any]]:
        """Feed items, newest first, down to the first (unpinned) one older than ``since``.

        When the page limit ends the paging first, the items read are kept: ``posts_since``
        becomes the oldest of them (pinned ones aside) and a warning says what is missing.
        """
        self.step = "author feed"
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        oldest = self.now
        for page in range(1, self.max_pages + 1):
            data = self.api.query(
                "app.bsky.feed.getAuthorFeed", actor=self.did, limit=PAGE_LIMIT, cursor=cursor
            )
            feed = data.get("feed")
            if not isinstance(feed, list):
                raise ValueError(f"page {page} has no 'feed' list")
            older = False
            for item in feed:
                item = _obj(item, f"page {page} item")
                items.append(item)
                if not self._pinned(item):
                    when = self._sort_time(item)
                    older = older or when < self.since
                    oldest = min(oldest, when)
            cursor = data.get("cursor")
            if older or not feed or not cursor:
                return items
            if cursor in seen:
                raise ValueError(
                    f"page {page} returned cursor {cursor!r} again; "
                    "stopped paging (the server is looping)"
                )
            seen.add(cursor)
        # every (unpinned) item read is newer than since: the feed since the oldest of them
        # is complete, the older items not read
        self.posts_since = oldest
        self.warnings.append(
            page_limit_warning(f"author feed of {self.did}", self.max_pages, self.since, oldest)
        )
        return items

    @staticmethod
    def _pinned(item: dict[str, Any]) -> bool:
        reason = item.get("reason")
        return isinstance(reason, dict) and reason.get("$type") == REASON_PIN

    def _sort_time(self, item: dict[str, Any]) -> dt.datetime:
        reason = item.get("reason")
        if isinstance(reason, dict) and reason.get("$type") == REASON_REPOST:
            return parse_time(_str(reason, "indexedAt", "repost reason"))
        post = _obj(item.get("post"), "feed item post")
        return _time(post, self.now, f"post {post.get('uri')}")

    def post_row(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The observation of one feed item, or None when it lies outside the range."""
        post = _obj(item.get("post"), "feed item post")
        uri = _str(post, "uri", "feed item post")
        what = f"post {uri}"
        author = _obj(post.get("author"), f"{what} author")
        reason = item.get("reason")
        if isinstance(reason, dict) and reason.get("$type") == REASON_REPOST:
            indexed = _str(reason, "indexedAt", f"repost of {uri}")
            created = min(parse_time(indexed), self.now)
            # the repost record's own at:// URI when the AppView gives it (stable, unique);
            # else the reposted post and the time of the repost
            post_id = reason.get("uri") or f"{uri}|repost|{indexed}"
            kind, counts = "repost", (0, 0, 0, 0)  # the reposted post's counts are not ours
        else:
            if _str(author, "did", f"{what} author") != self.did:
                return None  # not the account's post and not its repost: not ours
            created = _time(post, self.now, what)
            post_id, kind = uri, self._kind(post)
            counts = tuple(
                _count(post, k, what)
                for k in ("likeCount", "replyCount", "repostCount", "quoteCount")
            )
        if not self.since <= created <= self.now:
            return None
        likes, replies, reposts, quotes = counts
        return {
            "platform": "bluesky",
            "post_id": post_id,
            "account_id": self.did,
            "company_id": self.ref.company_id,
            "created_at": created,
            "kind": kind,
            "likes": likes,
            "replies": replies,
            "reposts": reposts,
            "quotes": quotes,
            "views": None,
            "url": web_url(author.get("handle"), uri),
            "observed_at": self.now,
        }

    def _kind(self, post: dict[str, Any]) -> str:
        """original, or reply when it answers someone else (a self-thread stays original)."""
        reply = post["record"].get("reply")
        if not reply:
            return "original"
        reply = _obj(reply, f"post {post['uri']} record.reply")
        parent = _obj(reply.get("parent"), f"post {post['uri']} reply parent")
        root = _obj(reply.get("root"), f"post {post['uri']} reply root")
        parent_did = split_at_uri(_str(parent, "uri", "reply parent"))[0]
        root_did = split_at_uri(_str(root, "uri", "reply root"))[0]
        return "original" if parent_did == root_did == self.did else "reply"

    # -- 3. threads -----------------------------------------------------------------------

    def thread(self, uri: str) -> dict[str, Any] | None:
        """The thread below ``uri`` (no parents), or None when the post is gone."""
        try:
            data = self.api.query(
                "app.bsky.feed.getPostThread", uri=uri, depth=THREAD_DEPTH, parentHeight=0
            )
        except XrpcError as exc:
            if exc.error == "NotFound":
                return None
            raise
        node = _obj(data.get("thread"), f"thread of {uri}")
        if node.get("$type") in (NOT_FOUND, BLOCKED) or node.get("notFound") or node.get("blocked"):
            return None
        _obj(node.get("post"), f"thread of {uri}: root post")
        return node

    def check_coverage(self, root_uri: str, node: dict[str, Any]) -> None:
        """A warning when the tree holds fewer direct replies than the post's ``replyCount``.

        Deleted (``#notFoundPost``) and blocked (``#blockedPost``) replies are in the tree
        and in ``replyCount``: they count as seen.
        """
        counted = _count(node["post"], "replyCount", f"thread of {root_uri}: root post")
        direct = _replies(node)
        readable = sum(1 for child in direct if _readable(child))
        if counted <= len(direct):
            return
        self.warnings.append(
            thread_short_warning(
                root_uri,
                len(direct),
                counted,
                f"{readable} readable; replyCount also counts replies the AppView does not "
                "return, e.g. of taken-down or deactivated accounts, and it may cut very large "
                "threads",
            )
        )

    def reply_rows(self, root_uri: str, node: dict[str, Any], seen: set[str]) -> list[dict]:
        """Every reply below ``node`` (depth first), skipping deleted and blocked ones."""
        rows: list[dict[str, Any]] = []
        for parent, post in _walk(node, root_uri):
            uri = _str(post, "uri", f"reply in thread of {root_uri}")
            if uri not in seen:
                seen.add(uri)
                rows.append(self._reply_row(root_uri, parent, post))
        return rows

    def _reply_row(
        self, root_uri: str, parent: dict[str, Any], post: dict[str, Any]
    ) -> dict[str, Any]:
        what = f"reply {post['uri']}"
        record = _obj(post.get("record"), f"{what} record")
        reply = record.get("reply")
        in_reply_to = None
        if isinstance(reply, dict) and isinstance(reply.get("parent"), dict):
            in_reply_to = reply["parent"].get("uri")
        author = _str(_obj(post.get("author"), f"{what} author"), "did", f"{what} author")
        return {
            "platform": "bluesky",
            "reply_id": post["uri"],
            "account_id": self.did,
            "company_id": self.ref.company_id,
            "root_post_id": root_uri,
            # the record says whom it answers; the tree says the same (and stands in)
            "in_reply_to_id": in_reply_to or parent["post"]["uri"],
            "author_id": author,
            "author_is_company": author == self.did,
            "created_at": _time(post, self.now, what),
            "observed_at": self.now,
        }

    # -- the whole account ----------------------------------------------------------------

    def fetch(self) -> dict[str, list[dict[str, Any]]]:
        snapshot = self.snapshot()
        rows: dict[str, list[dict[str, Any]]] = {
            "account_snapshots": [snapshot],
            "post_observations": [],
            "thread_replies": [],
        }
        originals: list[tuple[dt.datetime, str]] = []
        done: set[str] = set()
        items = self.feed()
        snapshot["posts_since"] = self.posts_since
        for item in items:
            self.step = "author feed"
            row = self.post_row(item)
            if row is None or row["post_id"] in done:
                continue  # out of range, or a pinned post seen again in its place
            done.add(row["post_id"])
            rows["post_observations"].append(row)
            if row["kind"] == "original" and row["replies"] > 0:
                originals.append((row["created_at"], row["post_id"]))
        seen: set[str] = set()
        # oldest first: a self-thread's root brings its continuations' replies along
        for _, uri in sorted(originals):
            if uri in seen:
                continue  # already read as part of an earlier thread
            self.step = f"thread of {uri}"
            node = self.thread(uri)
            if node is not None:
                self.check_coverage(uri, node)
                rows["thread_replies"].extend(self.reply_rows(uri, node, seen))
        return rows

    # -- 4. probes ------------------------------------------------------------------------

    def probe(self, probe: dict[str, Any]) -> dict[str, Any]:
        """The probe's row with the company's earliest reply; QuestionGone if it is gone."""
        question = str(probe.get("question_ref") or "")
        uri = self._question_uri(question)
        node = self.thread(uri)
        if node is None:
            raise QuestionGone(f"question {question} is gone (deleted, or not readable)")
        best: tuple[dt.datetime, str, str | None] | None = None
        for _, post in _walk(node, uri):
            author = _obj(post.get("author"), f"reply {post.get('uri')} author")
            if author.get("did") != self.did:
                continue
            when = _time(post, self.now, f"reply {post.get('uri')}")
            candidate = (when, _str(post, "uri", "reply"), author.get("handle"))
            if best is None or candidate[:2] < best[:2]:
                best = candidate
        if best is None:
            return probe_row(probe, self.now)
        when, reply_uri, handle = best
        # the registry's sent_at may be a little late; an answer never precedes its question
        when = max(when, parse_time(probe["sent_at"]))
        return probe_row(probe, self.now, when, web_url(handle or self.handle, reply_uri))

    def _question_uri(self, question: str) -> str:
        if question.startswith("at://"):
            authority, collection, rkey = split_at_uri(question)
        else:
            m = _WEB_POST.match(urlsplit(question).path) if question.startswith("http") else None
            if not m:
                raise ValueError(
                    f"question_ref {question!r} is neither a bsky.app post URL nor an at:// URI"
                )
            authority, collection, rkey = m["actor"], POST_COLLECTION, m["rkey"]
        if not authority.startswith("did:"):
            try:
                data = self.api.query(
                    "com.atproto.identity.resolveHandle", handle=authority.lower()
                )
            except XrpcError as exc:
                raise QuestionGone(
                    f"question {question}: handle {authority!r} does not resolve ({exc})"
                ) from exc
            authority = _str(data, "did", f"resolveHandle of {authority!r}")
        return f"at://{authority}/{collection}/{rkey}"


def _replies(node: dict[str, Any]) -> list[dict[str, Any]]:
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise ValueError(f"thread node {node.get('post', {}).get('uri')}: 'replies' is no list")
    return [r for r in replies if isinstance(r, dict)]


def _walk(node: dict[str, Any], root_uri: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(parent node, post) of every readable reply below ``node``, depth first, in order.

    Deleted and blocked replies are skipped together with the replies below them.
    """
    stack = [(node, child) for child in reversed(_replies(node))]
    while stack:
        parent, child = stack.pop()
        if not _readable(child):
            continue
        yield parent, _obj(child.get("post"), f"reply in thread of {root_uri}")
        stack.extend((child, grandchild) for grandchild in reversed(_replies(child)))


def _readable(node: dict[str, Any]) -> bool:
    """A threadViewPost (not a notFoundPost, blockedPost or an unknown union member)."""
    kind = node.get("$type")
    if kind in (NOT_FOUND, BLOCKED) or node.get("notFound") or node.get("blocked"):
        return False
    return kind in (THREAD_VIEW, None) and isinstance(node.get("post"), dict)


def _message(exc: Exception) -> str:
    if isinstance(exc, HttpError | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class BlueskyPlatform:
    """Bluesky through the public AppView's XRPC API (see the module docstring)."""

    name: ClassVar[str] = "bluesky"

    def __init__(self, context: PlatformContext | None = None) -> None:
        self.context = context or PlatformContext()
        self.base_url = base_url(self.context.connection)

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        client = self.context.client()
        api = Xrpc(client, self.base_url)
        now = self.context.now()
        result = FetchResult()
        for ref in accounts:
            account = _Account(api, ref, window, now)
            try:
                with client.account_budget(f"account {ref.handle} ({ref.company_id})"):
                    rows = account.fetch()
                    probes, probe_warnings = self._probes(account, ref)
            except Exception as exc:  # one bad account never stops the others
                log.warning("bluesky %s (%s): %s", ref.handle, ref.company_id, exc)
                result.errors.append(
                    FetchError(
                        self.name, ref.company_id, ref.handle, f"{account.step}: {_message(exc)}"
                    )
                )
                continue
            result.extend(rows)
            # the rows are fine: warnings, not errors
            for warning in account.warnings + probe_warnings:
                log.warning("bluesky %s (%s): %s", ref.handle, ref.company_id, warning)
                result.warnings.append(FetchError(self.name, ref.company_id, ref.handle, warning))
            result.extend({"probes": probes})
        result.drop_duplicates()  # a reply in the threads of two accounts' posts: once
        return result

    def _probes(self, account: _Account, ref: AccountRef) -> tuple[list[dict], list[str]]:
        """The probes' rows and their problems (a problem costs the account nothing else,
        unless it is the account's time budget running out)."""
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        for probe in ref.probes:
            pid = probe.get("probe_id")
            account.step = f"probe {pid}"
            try:
                rows.append(account.probe(probe))
            except BudgetExceeded:
                raise  # the account's time is up: its error, not the probe's
            # a probe problem costs the account nothing else: a warning, not an error
            except QuestionGone as exc:
                rows.append(probe_row(probe, account.now))
                problems.append(f"probe {pid}: {exc}")
            except Exception as exc:  # this probe stays as it was; the others go on
                problems.append(f"probe {pid}: {_message(exc)}")
        return rows, problems
