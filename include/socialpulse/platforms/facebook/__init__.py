"""Facebook Pages: counters, posts, views, comment threads and field-study answers.

Reads Meta's Graph API (:mod:`socialpulse.platforms.graph`; version from the connection's
extra ``api_version``, default v26.0) with the access token in the Airflow connection
``facebook_default`` (its password), or with the token of the connection an account names
in its options (``connection: facebook_baeckerei_nord``). One :class:`Graph` per distinct
token, one shared :class:`socialpulse.http.HttpClient` for the fetch; every account reads
inside :meth:`HttpClient.account_budget`. Per account (see README.md):

1. ``GET /{page}?fields=id,name,username,link,followers_count,fan_count``: one
   ``account_snapshots`` row (``followers_count``; ``fan_count`` as ``fans`` where the
   Page still has it).
2. ``GET /me?fields=id``, once per token: a token whose id is the page's is that page's
   own Page token. Only with it can insights and comment authors be read.
3. ``GET /{page-id}/posts?fields=...&since=<window.since>&limit=100`` and its
   ``paging.next`` pages (at most ``max_pages``, default 50): ``post_observations`` with
   reactions as likes, top-level comments as replies, shares as reposts.
4. Own page only: ``GET /{post-id}/insights?metric=<views_metrics>`` per post: ``views``
   (the first metric of the connection extra's ``views_metrics`` that comes back; one
   Meta no longer accepts is dropped with a warning, the others still load).
5. Own page only: ``GET /{post-id}/comments?filter=stream&...`` for each original post
   with comments: ``thread_replies`` (a reply's ``in_reply_to_id`` is its ``parent`` or
   the post), and the field-study questions' replies (``probes``).

Errors, by who has to act:

* **Configuration** (``severity="configuration"``): no token, an expired or revoked one
  (code 190, HTTP 401: every account of that token gets the same error and no further
  request is made with it), a Page the token may not read (Page Public Content Access
  missing, or no Page token of that page), an Airflow connection named but not defined.
* **Error**: the account's data could not be read (a rate limit still hit after the
  retries, an unknown page, a broken payload, the shared client's limits); the account
  emits nothing, the others go on. After an app- or user-level rate limit (codes 4, 17)
  the remaining accounts of that token are not read in this run.
* **Warning**: what costs the account a detail only (the page limit, a short thread,
  insights or comments the token may not read, a dropped metric, a probe's problem).

The token is never in a URL (it goes in the ``Authorization`` header; ``paging.next``
links lose their ``access_token``), and every message is redacted before it is recorded or
logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from socialpulse.http import BudgetExceeded, HttpError
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
from socialpulse.platforms.graph import (
    Graph,
    GraphError,
    GraphRateLimited,
    GraphSettings,
    NoAccess,
    TokenInvalid,
    connection_extra,
    views_metrics,
)

if TYPE_CHECKING:
    import datetime as dt

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

DEFAULT_CONNECTION = "facebook_default"
PAGE_FIELDS = "id,name,username,link,followers_count,fan_count"
POST_FIELDS = (
    "id,created_time,permalink_url,status_type,parent_id,shares,"
    "reactions.summary(total_count).limit(0),comments.summary(true).limit(0)"
)
COMMENT_FIELDS = "id,created_time,from{id,name},parent{id}"
ANSWER_FIELDS = "id,created_time,from{id},permalink_url"
#: posts and comments per page: the Graph API's maximum for these edges
PAGE_LIMIT = 100
#: pages of posts per account and fetch (account option ``max_pages``): 50 x 100 posts
MAX_PAGES = 50
#: pages of comments per thread or question: 50 x 100 comments
COMMENT_PAGES = 50
#: the views metrics asked for, in order of preference (connection extra ``views_metrics``)
DEFAULT_VIEWS_METRICS = ("post_media_view", "post_impressions")
#: rate-limit codes counted per app (4) or per user (17): every page of the token is hit
TOKEN_WIDE_LIMITS = frozenset({4, 17})

_HOSTS = re.compile(r"^(?:(?:www|m|web|business|de-de|mbasic)\.)?facebook\.com$", re.I)
_NAME = re.compile(r"^@?(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")
_NUMBER = re.compile(r"^\d+$")
_GRAPH_ID = re.compile(r"^\d+(?:_\d+)?$")
#: first path segments of facebook.com that are no Page
_RESERVED = frozenset(
    {
        "events",
        "groups",
        "hashtag",
        "help",
        "login",
        "marketplace",
        "photo.php",
        "search",
        "share",
        "sharer.php",
        "story.php",
        "watch",
    }
)
_ACCEPTED = (
    "use the page id (104512345678901), its username (baeckereinord or @baeckereinord) or "
    "its URL (https://www.facebook.com/baeckereinord, "
    "https://www.facebook.com/profile.php?id=104512345678901, "
    "https://www.facebook.com/pages/Name/104512345678901)"
)


class FacebookError(ValueError):
    """Something about one account (or one probe) that keeps it from being read."""


# -- handles and references ------------------------------------------------------------------


def parse_handle(handle: str) -> str:
    """A Page's id, username or URL -> the Graph node to ask for (its id or username).

    Accepted: ``104512345678901``, ``baeckereinord``, ``@baeckereinord``,
    ``https://www.facebook.com/baeckereinord`` (also ``facebook.com``, ``m.``, ``web.``),
    ``https://www.facebook.com/profile.php?id=<id>``, ``.../pages/<Name>/<id>`` and
    ``.../people/<Name>/<id>``.
    """
    text = (handle or "").strip()
    if "/" not in text:
        m = _NAME.match(text)
        if m and not (text.startswith("@") and _NUMBER.match(m["name"])):
            return m["name"]
        raise FacebookError(f"not a Facebook Page: {handle!r}; {_ACCEPTED}")
    parts = urlsplit(text if "://" in text else f"https://{text}")
    segments = [s for s in parts.path.split("/") if s]
    node: str | None = None
    if parts.scheme in ("http", "https") and _HOSTS.match(parts.hostname or ""):
        if segments == ["profile.php"]:
            node = (parse_qs(parts.query).get("id") or [""])[0]
            node = node if _NUMBER.match(node) else None
        elif len(segments) == 3 and segments[0] in ("pages", "people"):
            node = segments[2] if _NUMBER.match(segments[2]) else None
        elif len(segments) == 1 and segments[0].lower() not in _RESERVED:
            m = _NAME.match(segments[0])
            node = m["name"] if m and not segments[0].startswith("@") else None
    if node is None:
        raise FacebookError(f"not a Facebook Page: {handle!r}; {_ACCEPTED}")
    return node


def parse_question_ref(ref: str, page_id: str) -> str:
    """A field-study question (a comment or a visitor post) -> its Graph id.

    ``<post>_<comment>`` or a plain id as is; a comment's URL
    (``https://www.facebook.com/<page>/posts/<post>?comment_id=<id>``, also with
    ``reply_comment_id``: the thread it sits in is read); a visitor post's URL
    (``https://www.facebook.com/permalink.php?story_fbid=<post>&id=<page>`` or
    ``https://www.facebook.com/<page>/posts/<post>``; a page named by its username is
    ``page_id``).
    """
    text = (ref or "").strip()
    if _GRAPH_ID.match(text):
        return text
    parts = urlsplit(text)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    segments = [s for s in parts.path.split("/") if s]
    post: str | None = None
    page: str | None = None
    if parts.scheme in ("http", "https") and _HOSTS.match(parts.hostname or ""):
        if segments == ["permalink.php"] or segments == ["story.php"]:
            post, page = query.get("story_fbid"), query.get("id")
        elif len(segments) == 3 and segments[1] in ("posts", "videos", "photos"):
            post, page = segments[2], segments[0]
    comment = query.get("comment_id")
    if post and comment and _NUMBER.match(comment):
        return f"{post}_{comment}" if _NUMBER.match(post) else comment
    if post and _NUMBER.match(post) and not comment:
        return f"{page if page and _NUMBER.match(page) else page_id}_{post}"
    raise FacebookError(
        f"question_ref {ref!r} is not a Facebook comment or post: use its Graph id "
        "(<post>_<comment>), the comment's URL (https://www.facebook.com/<page>/posts/"
        "<post>?comment_id=<id>) or the post's URL "
        "(https://www.facebook.com/permalink.php?story_fbid=<post>&id=<page>)"
    )


# -- payload checks: a required field missing is the account's error, never a KeyError ----


_CHECK = Payload(FacebookError)
_obj, _id, _time = _CHECK.obj, _CHECK.ident, _CHECK.time


def _count(value: Any, what: str) -> int | None:
    """A non-negative integer; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FacebookError(f"{what} = {value!r}, not a count")
    return value


def _summary_count(post: dict[str, Any], edge: str, what: str) -> int:
    """``<edge>.summary.total_count``; 0 when the edge is absent (Meta omits empty ones)."""
    value = post.get(edge)
    if value is None:
        return 0
    summary = _obj(_obj(value, f"{edge} of {what}").get("summary"), f"{edge}.summary of {what}")
    return _count(summary.get("total_count"), f"{edge}.summary.total_count of {what}") or 0


def _max_pages(value: Any) -> int:
    """The account option ``max_pages`` (default :data:`MAX_PAGES`), a positive integer."""
    if value is None:
        return MAX_PAGES
    try:
        pages = int(value)
    except (TypeError, ValueError):
        pages = 0
    if pages < 1 or isinstance(value, bool | float):
        raise FacebookError(f"option max_pages must be a positive integer, got {value!r}")
    return pages


@dataclass(frozen=True)
class Post:
    """The fields of a Page post the connector uses."""

    id: str
    created_at: dt.datetime
    kind: str
    likes: int
    replies: int
    reposts: int
    url: str | None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Post:
        p = _obj(raw, f"a post in {where}")
        pid = _id(p, "id", f"a post in {where}")
        what = f"post {pid}"
        shares = p.get("shares")
        reposts = 0
        if shares is not None:
            reposts = _count(_obj(shares, f"shares of {what}").get("count"), what) or 0
        shared = p.get("status_type") == "shared_story" or bool(p.get("parent_id"))
        return cls(
            id=pid,
            created_at=_time(p, "created_time", what),
            kind="repost" if shared else "original",
            likes=_summary_count(p, "reactions", what),
            replies=_summary_count(p, "comments", what),
            reposts=reposts,
            url=p.get("permalink_url") or None,
        )


@dataclass(frozen=True)
class Comment:
    """A comment (or a reply to one): who wrote it when, and under what."""

    id: str
    created_at: dt.datetime
    author_id: str | None
    parent_id: str | None
    url: str | None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Comment:
        c = _obj(raw, f"a comment in {where}")
        cid = _id(c, "id", f"a comment in {where}")
        what = f"comment {cid} in {where}"
        author = c.get("from")
        parent = c.get("parent")
        return cls(
            id=cid,
            created_at=_time(c, "created_time", what),
            author_id=_id(_obj(author, f"from of {what}"), "id", f"from of {what}")
            if author is not None
            else None,
            parent_id=_id(_obj(parent, f"parent of {what}"), "id", f"parent of {what}")
            if parent is not None
            else None,
            url=c.get("permalink_url") or None,
        )


_UNKNOWN = object()


class _Token:
    """One access token of the fetch: its Graph client, whose it is, and whether it is done."""

    def __init__(self, graph: Graph | None, conn_id: str, stopped: FetchError | None = None):
        self.graph = graph
        self.conn_id = conn_id
        #: set once the token may not be used any more: every later account gets this
        #: error (its message and severity) without a request
        self.stopped = stopped
        self._me: Any = _UNKNOWN

    def me(self) -> str | None:
        """The id behind the token (``/me``), asked once; None when it has none (an app
        token) or it could not be told."""
        if self._me is _UNKNOWN:
            assert self.graph is not None
            try:
                me = self.graph.get("me", {"fields": "id"})
                self._me = str(me["id"]) if isinstance(me.get("id"), str | int) else None
            except (TokenInvalid, GraphRateLimited):
                raise
            except GraphError as exc:  # (#2500) with an app token: no Page of its own
                log.info("facebook: /me with connection %s: %s", self.conn_id, exc.detail)
                self._me = None
        return self._me


def _what(exc: Exception) -> str:
    if isinstance(exc, GraphError):
        return exc.detail
    if isinstance(exc, FacebookError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Page:
    """One account's fetch: everything or an error, never half."""

    def __init__(
        self,
        token: _Token,
        ref: AccountRef,
        window: FetchWindow,
        now: dt.datetime,
        metrics: list[str],
    ) -> None:
        assert token.graph is not None
        self.graph: Graph = token.graph
        self.token = token
        self.ref = ref
        self.now = now
        self.since = window.since
        #: how far back the posts were read: ``since``, later when the page limit cut it
        self.posts_since = self.since
        self.node = parse_handle(ref.handle)
        self.metrics = metrics
        self.max_pages = _max_pages(ref.options.get("max_pages"))
        #: the step running (named in an error)
        self.step = f"reading page {ref.handle}"
        self.page_id: str | None = None
        self.own = False
        #: what the account's rows lack: warnings
        self.warnings: list[str] = []
        self._insights = True  # False once the token proved it may not read them

    # -- the whole account ---------------------------------------------------------------

    def fetch(self) -> dict[str, list[dict[str, Any]]]:
        """Rows per table (warnings in :attr:`warnings`); raises for the account's error."""
        snapshot = self.snapshot()
        page_id = snapshot["account_id"]
        self.step = "asking the token whose it is (/me)"
        self.own = self.token.me() == page_id
        posts = {
            p.id: p for p in self.posts(page_id) if self.posts_since <= p.created_at <= self.now
        }
        snapshot["posts_since"] = self.posts_since
        rows: dict[str, list[dict[str, Any]]] = {
            "account_snapshots": [snapshot],
            "post_observations": [self._post_row(p) for p in posts.values()],
            "thread_replies": [],
            "probes": [],
        }
        if self.own:
            rows["thread_replies"] = self.threads(list(posts.values()))
        rows["probes"] = self.probes()
        return rows

    def snapshot(self) -> dict[str, Any]:
        page = self.graph.get(self.node, {"fields": PAGE_FIELDS})
        page_id = _id(page, "id", f"page {self.ref.handle}")
        self.page_id = page_id
        what = f"page {page_id}"
        followers = _count(page.get("followers_count"), f"followers_count of {what}")
        fans = _count(page.get("fan_count"), f"fan_count of {what}")
        if followers is None and fans is not None:
            followers = fans
            self.warnings.append(
                f"page {page_id}: no followers_count in the answer; fan_count ({fans}) is "
                "taken as followers (a classic Page: they are close, not equal)"
            )
        elif followers is None:
            self.warnings.append(
                f"page {page_id}: neither followers_count nor fan_count in the answer: "
                "followers stay null (a Page hiding its counts, or a token that may not "
                "read them)"
            )
        return {
            "platform": FacebookPlatform.name,
            "company_id": self.ref.company_id,
            "account_id": page_id,
            "handle": self.ref.handle,
            "observed_at": self.now,
            "followers": followers,
            "following": None,
            "posts_total": None,
            "posts_since": None,  # set once the posts are read
            "fans": fans,
        }

    def posts(self, page_id: str) -> list[Post]:
        """The page's posts since ``since`` (newest first), page by page.

        When the page limit ends the paging first, ``posts_since`` becomes the oldest post
        read and a warning says what is missing.
        """
        params = {"fields": POST_FIELDS, "since": int(self.since.timestamp()), "limit": PAGE_LIMIT}
        what = f"the posts of page {page_id}"
        self.step = f"reading {what} (page 1)"
        out: list[Post] = []
        for page_no, data in self.graph.pages(f"{page_id}/posts", params, self.max_pages, what):
            self.step = f"reading {what} (page {page_no})"
            posts = [Post.parse(raw, f"page {page_no}") for raw in data]
            out.extend(posts)
            if any(p.created_at < self.since for p in posts):
                break  # the API's since reached (a server ignoring it ends here too)
            self.step = f"reading {what} (page {page_no + 1})"
        if self.graph.paging_cut:
            oldest = min((p.created_at for p in out), default=self.now)
            self.posts_since = min(oldest, self.now)
            self.warnings.append(
                page_limit_warning(
                    f"posts of page {page_id}", self.max_pages, self.since, self.posts_since
                )
            )
        return out

    def _post_row(self, post: Post) -> dict[str, Any]:
        return {
            "platform": FacebookPlatform.name,
            "post_id": post.id,
            "account_id": self.page_id,
            "company_id": self.ref.company_id,
            "created_at": post.created_at,
            "kind": post.kind,
            "likes": post.likes,
            "replies": post.replies,
            "reposts": post.reposts,
            "quotes": 0,  # Facebook has no quotes
            "views": self.views(post.id) if self.own else None,
            "url": post.url,
            "observed_at": self.now,
        }

    # -- insights ------------------------------------------------------------------------

    def views(self, post_id: str) -> int | None:
        """The post's views: the first metric of ``views_metrics`` that comes back."""
        if not self._insights:
            return None
        self.step = f"reading the insights of post {post_id}"

        def request(metrics: list[str]) -> dict[str, Any]:
            return self.graph.get(f"{post_id}/insights", {"metric": ",".join(metrics)})

        try:
            answer, dropped = self.graph.get_with_metrics(
                self.metrics, request, option="views_metrics"
            )
        except NoAccess as exc:
            self._insights = False
            self.warnings.append(
                f"views of page {self.page_id} not read: the token in connection "
                f"{self.token.conn_id} may not read its insights ({exc.detail}); give the app "
                "read_insights and pages_read_engagement and put a new Page token in the "
                "connection; views stay null"
            )
            return None
        except (TokenInvalid, GraphRateLimited):
            raise
        except GraphError as exc:  # this post's insights only (a post type without them)
            self.warnings.append(f"views of post {post_id} not read: {exc.detail}")
            return None
        self.warnings.extend(dropped)
        return _first_value(answer, self.metrics)

    # -- threads -------------------------------------------------------------------------

    def comments(self, node: str, fields: str, what: str) -> tuple[list[Comment], bool]:
        """Every comment under ``node`` (replies included, oldest first) and whether the
        page limit cut them short."""
        params = {"filter": "stream", "fields": fields, "limit": PAGE_LIMIT}
        out: list[Comment] = []
        for page_no, data in self.graph.pages(f"{node}/comments", params, COMMENT_PAGES, what):
            out.extend(Comment.parse(raw, f"{what} (page {page_no})") for raw in data)
        return out, self.graph.paging_cut

    def threads(self, posts: list[Post]) -> list[dict[str, Any]]:
        """The comments under the own original posts that have comments, each once."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        roots = sorted(
            (p for p in posts if p.kind == "original" and p.replies > 0),
            key=lambda p: (p.created_at, p.id),
        )
        for root in roots:
            self.step = f"reading the comments of post {root.id}"
            try:
                comments, cut = self.comments(
                    root.id, COMMENT_FIELDS, f"comments of post {root.id}"
                )
            except NoAccess as exc:
                self.warnings.append(
                    f"comments of page {self.page_id} not read: the token in connection "
                    f"{self.token.conn_id} may not read them ({exc.detail}); give the app "
                    "pages_read_user_content and put a new Page token in the connection; "
                    "service level and response time stay null"
                )
                return []
            anonymous = [c.id for c in comments if c.author_id is None]
            if anonymous:
                self.warnings.append(
                    f"thread of post {root.id} not read: {len(anonymous)} of {len(comments)} "
                    f"comments come without their author (from), e.g. {anonymous[0]}: the "
                    f"token in connection {self.token.conn_id} is not a Page token of page "
                    f"{self.page_id}"
                )
                continue
            self._check_coverage(root, comments, cut)
            for c in comments:
                if c.id in seen or c.created_at > self.now:
                    continue
                seen.add(c.id)
                rows.append(self._reply_row(root, c))
        return rows

    def _reply_row(self, root: Post, c: Comment) -> dict[str, Any]:
        return {
            "platform": FacebookPlatform.name,
            "reply_id": c.id,
            "account_id": self.page_id,
            "company_id": self.ref.company_id,
            "root_post_id": root.id,
            "in_reply_to_id": c.parent_id or root.id,
            "author_id": c.author_id,
            "author_is_company": c.author_id == self.page_id,
            "created_at": c.created_at,
            "observed_at": self.now,
        }

    def _check_coverage(self, root: Post, comments: list[Comment], cut: bool) -> None:
        """A warning when fewer top-level comments came than the post counts."""
        read = sum(1 for c in comments if c.parent_id is None)
        if root.replies <= read:
            return
        why = (
            f"the comment page limit ({COMMENT_PAGES} x {PAGE_LIMIT}) was reached"
            if cut
            else "comments hidden, deleted or held back by Facebook's spam filter are "
            "counted but not returned"
        )
        self.warnings.append(thread_short_warning(root.id, read, root.replies, why))

    # -- field-study probes --------------------------------------------------------------

    def probes(self) -> list[dict[str, Any]]:
        """A ``probes`` row per public-post probe of the account (see :meth:`_probe`)."""
        return public_post_probes(self.ref, FacebookPlatform.name, self._probe, self.warnings)

    def _probe(self, probe: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The page's earliest reply under the question (its answer), with the problem.

        Without the page's own token the authors are unknown: the probe is emitted as the
        registry has it (an answer entered by hand is kept). A question that is gone, or
        whose reference is no comment or post, is recorded unanswered; one that could not
        be read for now yields no row, so that its last observation stays.
        """
        self.step = f"probe {probe.get('probe_id')}"
        ref = probe.get("question_ref")
        if not self.own:
            return probe_row(probe, self.now), (
                f"the answer to {ref} is not looked for: finding it needs a Page token of "
                f"page {self.ref.handle} (the token in connection {self.token.conn_id} is "
                "not one; put one in an Airflow connection and name it in the account's "
                "options: connection: <id>); an answer entered in the registry is kept"
            )
        assert self.page_id is not None
        try:
            question = parse_question_ref(str(ref or ""), self.page_id)
        except FacebookError as exc:
            return probe_row(probe, self.now), f"{exc}; recorded unanswered"
        try:
            replies, _ = self.comments(question, ANSWER_FIELDS, f"replies to {question}")
        except (TokenInvalid, GraphRateLimited, BudgetExceeded):
            raise  # the token's or the account's trouble, not the probe's
        except GraphError as exc:
            if exc.status == 404 or (exc.code == 100 and exc.subcode == 33):
                return probe_row(probe, self.now), (
                    f"the question {ref} is gone ({exc.detail}); recorded unanswered"
                )
            return None, exc.detail
        except (HttpError, FacebookError) as exc:
            return None, _what(exc)
        sent_at = parse_time(probe["sent_at"])
        answers = sorted(
            (
                r
                for r in replies
                if r.author_id == self.page_id and sent_at <= r.created_at <= self.now
            ),
            key=lambda r: (r.created_at, r.id),
        )
        if not answers:
            return probe_row(probe, self.now), None
        first = answers[0]
        return probe_row(probe, self.now, first.created_at, first.url or first.id), None


def _first_value(answer: dict[str, Any] | None, preference: list[str]) -> int | None:
    """The value of the first metric (by preference) in an insights answer, else None."""
    values: dict[str, int] = {}
    data = (answer or {}).get("data")
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
            continue
        first = entry["values"][0] if entry["values"] else None
        value = first.get("value") if isinstance(first, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            values.setdefault(str(entry.get("name")), value)
    return next((values[m] for m in preference if m in values), None)


class FacebookPlatform:
    """Facebook Pages through the Graph API (see the module docstring and README.md)."""

    name: ClassVar[str] = "facebook"

    def __init__(self, context: PlatformContext | None = None) -> None:
        self.context = context or PlatformContext()
        self._tokens: dict[tuple[Any, ...], _Token] = {}
        self._secrets: set[str] = set()

    # -- tokens --------------------------------------------------------------------------

    def _connection(self, ref: AccountRef) -> tuple[dict[str, Any], str]:
        """The account's connection (its own, else ``facebook_default``) and its id.

        A connection named in the options takes what it leaves empty (host, schema, port,
        extra keys) from ``facebook_default``: it needs no more than the token.
        """
        default = self.context.connection
        conn_id = ref.options.get("connection")
        if not conn_id:
            if default is None:
                raise _Refused(
                    f"Airflow connection {DEFAULT_CONNECTION} is not defined: add it with an "
                    "access token as its password (a Page token of the company's Page, or a "
                    "token of an app with Page Public Content Access), e.g. airflow "
                    f"connections add {DEFAULT_CONNECTION} --conn-type http --conn-password ..."
                )
            return default, DEFAULT_CONNECTION
        conn_id = str(conn_id)
        try:
            own = dict(self.context.named_connection(conn_id))
        except ConnectionMissing as exc:
            raise _Refused(str(exc)) from None
        base = default or {}
        if not own.get("host"):
            for key in ("host", "schema", "port"):
                own[key] = base.get(key)
        try:
            own["extra"] = {
                **connection_extra(base, DEFAULT_CONNECTION),
                **connection_extra(own, conn_id),
            }
        except ValueError as exc:
            raise _Refused(str(exc)) from None
        own["conn_id"] = conn_id
        return own, conn_id

    def _token(self, ref: AccountRef, client: HttpClient) -> tuple[_Token, list[str]]:
        """The account's token (one per distinct token and server) and its views metrics."""
        conn, conn_id = self._connection(ref)
        try:
            settings = GraphSettings.from_connection(conn, conn_id)
            metrics = views_metrics(settings.extra, conn_id, DEFAULT_VIEWS_METRICS)
        except ValueError as exc:
            raise _Refused(str(exc)) from None
        key = (settings.base_url, settings.version, settings.token, settings.app_secret)
        if not settings.token:
            key = ("no token", conn_id)
        token = self._tokens.get(key)
        if token is None:
            try:
                token = _Token(Graph(client, settings), settings.conn_id)
                self._secrets.update(
                    s for s in (settings.token, settings.app_secret, token.graph.proof) if s
                )
            except TokenInvalid as exc:  # no token in the connection
                token = _Token(None, conn_id, self._error(ref, exc.detail, CONFIGURATION))
            self._tokens[key] = token
        return token, metrics

    # -- the fetch -----------------------------------------------------------------------

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        now = self.context.now()
        client = self.context.client()  # one client (one session) for the whole fetch
        self._tokens.clear()
        result = FetchResult()
        for ref in accounts:
            try:
                token, metrics = self._token(ref, client)
            except _Refused as exc:
                self._record(result, self._error(ref, str(exc), CONFIGURATION))
                continue
            if token.stopped is not None:  # the token is done: no request with it
                self._record(result, self._error(ref, token.stopped.error, token.stopped.severity))
                continue
            outcome = self._read(ref, token, window, now, metrics, client)
            if isinstance(outcome, FetchError):
                self._record(result, outcome)
                continue
            rows, warnings = outcome
            result.extend(rows)
            for warning in warnings:  # the account's rows are fine: a warning, not an error
                self._record(result, self._error(ref, warning, WARNING))
        result.drop_duplicates()  # a comment delivered for two accounts: once
        return result

    def _read(
        self,
        ref: AccountRef,
        token: _Token,
        window: FetchWindow,
        now: dt.datetime,
        metrics: list[str],
        client: HttpClient,
    ) -> tuple[dict[str, list[dict[str, Any]]], list[str]] | FetchError:
        """One account's rows and warnings, or its error."""
        try:
            page = _Page(token, ref, window, now, metrics)
        except FacebookError as exc:
            return self._error(ref, str(exc), ERROR)
        with client.account_budget(f"page {ref.handle} ({ref.company_id})"):
            return self._attempt(page, token)

    def _attempt(
        self, page: _Page, token: _Token
    ) -> tuple[dict[str, list[dict[str, Any]]], list[str]] | FetchError:
        """:meth:`_Page.fetch`, its failure turned into the account's error."""
        ref = page.ref
        try:
            return page.fetch(), page.warnings
        except TokenInvalid as exc:
            token.stopped = self._error(ref, exc.detail, CONFIGURATION)
            return token.stopped
        except NoAccess as exc:
            return self._error(ref, self._no_access(page, token, exc), CONFIGURATION)
        except GraphRateLimited as exc:
            if exc.code in TOKEN_WIDE_LIMITS or exc.code is None:
                token.stopped = self._error(
                    ref,
                    f"not read: the Graph API rate limit of the token in connection "
                    f"{token.conn_id} was reached while reading page {ref.handle} "
                    f"({exc.detail}); the next run reads it",
                    ERROR,
                )
            return self._error(ref, f"{page.step}: {_what(exc)}", ERROR)
        except (HttpError, ValueError, KeyError, TypeError) as exc:
            # HttpError/PayloadError/BudgetExceeded/GraphError, FacebookError: the account's
            return self._error(ref, f"{page.step}: {_what(exc)}", ERROR)

    def _no_access(self, page: _Page, token: _Token, exc: NoAccess) -> str:
        """What a person has to do when the token may not read (part of) the page."""
        try:
            own = page.own or (page.page_id or page.node) == token.me()
        except HttpError:  # the token's id could not be told: not its own page, then
            own = False
        if own:
            return (
                f"the Page token in connection {token.conn_id} lacks a permission for page "
                f"{page.ref.handle} ({page.step}: {exc.detail}): give the app "
                "pages_read_engagement, pages_read_user_content and read_insights, then put "
                "a new Page token in the connection"
            )
        return (
            f"the token in connection {token.conn_id} cannot read page {page.ref.handle}: "
            "reading another company's Page needs the Page Public Content Access feature "
            "for the app (Meta App Review), or put a Page token of that page in an Airflow "
            "connection and name it in the account's options (connection: <id>) "
            f"(Graph API, {page.step}: {exc.detail})"
        )

    def _error(self, ref: AccountRef, message: str, severity: str) -> FetchError:
        return FetchError(
            self.name, ref.company_id, ref.handle, redact(message, self._secrets), severity
        )

    def _record(self, result: FetchResult, error: FetchError) -> None:
        log.warning(
            "facebook %s %s (%s): %s", error.severity, error.handle, error.company_id, error.error
        )
        (result.warnings if error.severity == WARNING else result.errors).append(error)


class _Refused(Exception):
    """An account's connection cannot be used (a configuration error)."""
