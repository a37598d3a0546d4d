"""Instagram: professional accounts through the Instagram API with Facebook Login.

Reads Meta's Graph API (``graph.facebook.com``, through :class:`socialpulse.platforms.graph.Graph`)
with the access token of the Airflow connection ``instagram_default`` (or of the connection an
account names in its options); see README.md for the credential. The connection's extra
``ig_user_id`` is the id of *your* Instagram professional account, the one the token belongs
to:

* ``GET /{ig_user_id}?fields=id,username,followers_count,follows_count,media_count`` once
  per connection and fetch: the token's own account. A registry account with that username
  is **own**, any other a **peer**.
* Own: ``GET /{ig_user_id}/media?fields=...&limit=50`` and its ``paging.next`` pages, until
  a page holds media older than ``window.since`` (the window's start or ``end - lookback``,
  whichever is earlier), a page has no ``next`` link, or the page limit (``MAX_PAGES``,
  account option ``max_pages``: a warning, ``posts_since`` = the oldest media read); per
  media kept ``GET /{media-id}/insights?metric=views,...`` (views, connection extra
  ``views_metrics``); per media with ``comments_count > 0`` ``GET /{media-id}/comments`` and
  per top-level comment ``GET /{comment-id}/replies`` (the thread rows).
* Peer: business discovery through your account,
  ``GET /{ig_user_id}?fields=business_discovery.username(<peer>){...,media.limit(50){...}}``,
  then ``media.after(<cursor>)`` pages (stopping the same way). No comments, no views: the
  Graph API shows neither for accounts the token does not manage.

One fetch observes every account at one time, ``context.now()`` taken when it starts. Every
request goes through the shared :class:`socialpulse.http.HttpClient` of the fetch, one
account at a time inside :meth:`HttpClient.account_budget`; :class:`Graph` adds the token (in
the ``Authorization`` header only), the error codes and the throttling by Meta's usage headers.

What goes wrong costs one account (a :class:`FetchError` in ``FetchResult.errors``, no rows
for it), or every later account of the same connection without a further request where the
cause is the connection's (an invalid token, an app-wide rate limit, a missing
``ig_user_id``). Severity ``configuration`` where a person has to act (token, permission,
connection), ``error`` otherwise. What costs an account only a detail (a page limit, a short
thread, hidden likes, a dropped insights metric, views without permission) is a warning.
Every message passes :func:`socialpulse.platforms.base.redact` with every token of the fetch.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from socialpulse.http import HttpError
from socialpulse.platforms.base import (
    CONFIGURATION,
    ERROR,
    AccountRef,
    ConnectionMissing,
    FetchError,
    FetchResult,
    FetchWindow,
    Payload,
    PlatformContext,
    page_limit_warning,
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
    views_metrics,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

#: the connection used unless an account names its own (``options: {connection: ...}``)
DEFAULT_CONNECTION = "instagram_default"
#: media and comments per page (the edges' maximum is higher; 50 keeps pages small)
PAGE_LIMIT = 50
#: media pages per account and fetch (account option ``max_pages``): 20 x 50 = 1,000 media
MAX_PAGES = 20
#: comment (and reply) pages per media or comment: 20 x 50 = 1,000 comments
MAX_COMMENT_PAGES = 20
#: insights metrics for ``views``, in order of preference (connection extra ``views_metrics``;
#: ``impressions`` was retired for media in v22: list it after ``views`` on older versions)
DEFAULT_VIEWS_METRICS = ("views",)

PROFILE_FIELDS = "id,username,followers_count,follows_count,media_count"
MEDIA_FIELDS = "id,timestamp,like_count,comments_count,permalink,media_type,media_product_type"
PEER_MEDIA_FIELDS = "id,timestamp,like_count,comments_count,permalink,media_type"
COMMENT_FIELDS = "id,timestamp,from{id,username},username,parent_id"

#: Graph error codes of business discovery for a username that is no professional account
#: (110 "Invalid user id"; subcode 2207013 "The user with username: x cannot be found")
UNKNOWN_USER_CODE, UNKNOWN_USER_SUBCODE = 110, 2207013
#: rate limits of the whole app (4) or the token's user (17): every account of the token waits
APP_RATE_LIMIT_CODES = frozenset({4, 17})

# Instagram usernames: letters, digits, '.' and '_', at most 30 (they also make the field
# expression of business discovery safe: no brace or parenthesis gets in)
_USERNAME = r"[A-Za-z0-9._]{1,30}"
_HANDLE = re.compile(rf"^@?(?P<user>{_USERNAME})$")
_PROFILE_URL = re.compile(
    rf"^https?://(?:www\.|m\.)?instagram\.com/(?P<user>{_USERNAME})/?(?:[?#].*)?$", re.I
)
# a business discovery cursor goes into a field expression: base64 (url-safe) only
_CURSOR = re.compile(r"^[A-Za-z0-9_\-=]+$")


class InstagramError(ValueError):
    """What keeps one account from being read, with its severity.

    ``later``: what every later account of the same connection gets instead of being
    fetched (an invalid token, an app-wide rate limit); None: they go on.
    """

    def __init__(self, message: str, severity: str = ERROR, later: str | None = None) -> None:
        super().__init__(message)
        self.severity = severity
        self.later = later

    def prefixed(self, what: str) -> InstagramError:
        """The error named by its step (``later`` too where it is the same message)."""
        later = f"{what}: {self.later}" if self.later == str(self) else self.later
        return InstagramError(f"{what}: {self}", self.severity, later)


def parse_handle(handle: str) -> str:
    """``name``, ``@name`` or ``https://www.instagram.com/name/`` -> ``name`` (lower case)."""
    text = (handle or "").strip()
    m = _PROFILE_URL.match(text) or _HANDLE.match(text)
    if not m:
        raise InstagramError(
            f"not an Instagram handle: {handle!r}; use the username (name or @name) or the "
            "profile URL https://www.instagram.com/name/"
        )
    return m["user"].lower()


# -- payload checks: a required field missing is the account's error, never a KeyError ----


_CHECK = Payload(InstagramError)
_dict, _id, _time = _CHECK.obj, _CHECK.ident, _CHECK.time


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InstagramError(f"{what} has no data list (got {type(value).__name__})")
    return value


def _count(obj: dict[str, Any], key: str, what: str, required: bool = False) -> int | None:
    return _CHECK.count(obj, key, what, required)


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass(frozen=True)
class Profile:
    """An Instagram professional account's counters (own, or read by business discovery)."""

    id: str
    username: str
    followers: int
    following: int | None
    posts_total: int | None

    @classmethod
    def parse(cls, raw: Any, what: str) -> Profile:
        p = _dict(raw, what)
        username = p.get("username")
        if not isinstance(username, str) or not username:
            raise InstagramError(f"{what} has no 'username'")
        return cls(
            id=_id(p, "id", what),
            username=username.lower(),
            followers=_count(p, "followers_count", what, required=True) or 0,
            following=_count(p, "follows_count", what),
            posts_total=_count(p, "media_count", what),
        )


@dataclass(frozen=True)
class Media:
    """The fields of an IG Media the connector uses."""

    id: str
    created_at: dt.datetime
    #: ``like_count``; None when the API leaves it out (a hidden like count, v11.0+)
    likes: int | None
    #: ``comments_count``: comments *and* their replies (0 when absent)
    comments: int
    url: str | None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Media:
        m = _dict(raw, f"a media object in {where}")
        mid = _id(m, "id", f"a media object in {where}")
        what = f"media {mid} in {where}"
        return cls(
            id=mid,
            created_at=_time(m, "timestamp", what),
            likes=_count(m, "like_count", what),
            comments=_count(m, "comments_count", what) or 0,
            url=m.get("permalink") or None,
        )


@dataclass(frozen=True)
class Comment:
    """An IG Comment (a top-level comment or a reply to one)."""

    id: str
    created_at: dt.datetime
    #: ``from.id``; ``username:<name>`` where only ``username`` comes (older API versions)
    author_id: str
    username: str | None
    parent_id: str | None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Comment:
        c = _dict(raw, f"a comment in {where}")
        cid = _id(c, "id", f"a comment in {where}")
        what = f"comment {cid} in {where}"
        author = c.get("from") if isinstance(c.get("from"), dict) else {}
        name = author.get("username") or c.get("username")
        username = name.lower() if isinstance(name, str) and name else None
        if author.get("id") not in (None, ""):
            author_id = _id(author, "id", f"the author of {what}")
        elif username:
            author_id = f"username:{username}"
        else:
            raise InstagramError(f"{what} has neither 'from' nor 'username'")
        parent = c.get("parent_id")
        return cls(
            id=cid,
            created_at=_time(c, "timestamp", what),
            author_id=author_id,
            username=username,
            parent_id=str(parent) if parent not in (None, "") else None,
        )


@dataclass
class _Connection:
    """One Airflow connection (one token) in a fetch: its Graph client, its own account, and
    what every later account of it gets instead of a request once the token is unusable."""

    conn_id: str
    graph: Graph
    ig_user_id: str
    views_metrics: list[str]
    profile: Profile | None = None
    failure: InstagramError | None = None


@contextmanager
def _step(what: str, conn: _Connection, no_access: str) -> Iterator[None]:
    """Name the step in any error raised inside it, sorted by its cause (see :func:`_sort`)."""
    try:
        yield
    except InstagramError as exc:
        raise exc.prefixed(what) from exc
    except HttpError as exc:
        raise _sort(exc, what, conn, no_access) from exc


def _sort(exc: HttpError, what: str, conn: _Connection, no_access: str) -> InstagramError:
    """An HttpError of the Graph client as the account's error, with its severity and what
    the later accounts of the connection get."""
    if isinstance(exc, TokenInvalid):
        message = f"{what}: {exc.detail}"
        return InstagramError(message, CONFIGURATION, later=message)
    if isinstance(exc, GraphRateLimited):
        later = None
        if exc.code in APP_RATE_LIMIT_CODES:
            later = (
                f"not read: the Graph API rate limit of the app (code {exc.code}) was reached "
                f"with connection {conn.conn_id} earlier in this fetch, so its accounts are not "
                f"asked again until the next run ({exc.detail})"
            )
        return InstagramError(f"{what}: GraphRateLimited: {exc}", ERROR, later)
    if isinstance(exc, NoAccess):
        return InstagramError(f"{what}: {no_access} ({exc.detail})", CONFIGURATION)
    return InstagramError(f"{what}: {type(exc).__name__}: {exc}")


def _no_access(conn: _Connection, permission: str) -> str:
    return (
        f"the token of connection {conn.conn_id} may not read this: it needs {permission}; "
        "grant it to the app's user and create a new token"
    )


@dataclass
class _Thread:
    """What was read under one own media: (comment, what it answers) in thread order."""

    media: Media
    entries: list[tuple[Comment, str]] = field(default_factory=list)
    comments: int = 0
    replies: int = 0
    #: a comment or reply page limit ended a paging before its end
    cut: bool = False

    def add(self, c: Comment, in_reply_to: str, reply: bool) -> None:
        self.entries.append((c, in_reply_to))
        if reply:
            self.replies += 1
        else:
            self.comments += 1

    @property
    def read(self) -> int:
        return self.comments + self.replies


class _Account:
    """One account's fetch: everything or an error, never half."""

    def __init__(
        self,
        conn: _Connection,
        ref: AccountRef,
        username: str,
        window: FetchWindow,
        now: dt.datetime,
    ) -> None:
        self.conn = conn
        self.graph = conn.graph
        self.ref = ref
        self.username = username
        self.now = now
        self.since = window.since
        #: how far back the media were read: ``since``, later when the page limit cut it
        self.posts_since = self.since
        raw = ref.options.get("max_pages")
        try:
            self.max_pages = int(raw if raw is not None else MAX_PAGES)
        except (TypeError, ValueError):
            self.max_pages = 0
        if self.max_pages < 1:
            raise InstagramError(f"option max_pages {raw!r} is not a number of pages (1 or more)")
        #: what the account's rows lack (page limit, short thread, hidden likes): warnings
        self.warnings: list[str] = []

    # -- the whole account ---------------------------------------------------------------

    def fetch(self) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        """Rows per table and the warnings (which do not cost the account its rows)."""
        own = own_profile(self.conn)
        if self.username == own.username:
            return self._own(own), self.warnings
        if self.ref.options.get("connection"):
            self.warnings.append(
                f"connection {self.conn.conn_id} belongs to @{own.username}, not to "
                f"@{self.username}: read as a peer through business discovery (no comments, "
                "no views); name the account's own connection or none"
            )
        return self._peer(), self.warnings

    def _rows(
        self, profile: Profile, media: list[Media], views: dict[str, int | None], hide: bool
    ) -> dict[str, list[dict[str, Any]]]:
        snapshot = {
            "platform": InstagramPlatform.name,
            "company_id": self.ref.company_id,
            "account_id": profile.id,
            "handle": self.ref.handle,
            "observed_at": self.now,
            "followers": profile.followers,
            "following": profile.following,
            "posts_total": profile.posts_total,
            "posts_since": self.posts_since,
        }
        posts = [
            {
                "platform": InstagramPlatform.name,
                "post_id": m.id,
                "account_id": profile.id,
                "company_id": self.ref.company_id,
                "created_at": m.created_at,
                "kind": "original",  # media are never replies or reposts
                # business discovery says 0 (or nothing) for a hidden like count: unknown
                "likes": None if hide and not m.likes else m.likes,
                "replies": m.comments,
                "reposts": 0,
                "quotes": 0,
                "views": views.get(m.id),
                "url": m.url,
                "observed_at": self.now,
            }
            for m in media
        ]
        return {"account_snapshots": [snapshot], "post_observations": posts}

    def _keep(self, media: list[Media]) -> list[Media]:
        """The media created in ``[posts_since, now]``, each once."""
        kept: dict[str, Media] = {}
        for m in media:
            if self.posts_since <= m.created_at <= self.now:
                kept.setdefault(m.id, m)
        return list(kept.values())

    def _cut(self, account_id: str, media: list[Media]) -> None:
        """The page limit ended the paging before ``since``: keep what was read, warn."""
        oldest = min((m.created_at for m in media), default=self.now)
        self.posts_since = min(oldest, self.now)
        self.warnings.append(
            page_limit_warning(
                f"media of account {account_id}", self.max_pages, self.since, self.posts_since
            )
        )

    # -- own account ---------------------------------------------------------------------

    def _own(self, own: Profile) -> dict[str, list[dict[str, Any]]]:
        media = self._keep(self._own_media(own.id))
        rows = self._rows(own, media, self._views(media), hide=False)
        rows["thread_replies"] = self._threads(media, own)
        return rows

    def _own_media(self, own_id: str) -> list[Media]:
        graph = self.graph
        params = {"fields": MEDIA_FIELDS, "limit": PAGE_LIMIT}
        path = f"{self.conn.ig_user_id}/media"
        out: list[Media] = []
        with _step(
            f"reading the media of account {own_id}",
            self.conn,
            _no_access(self.conn, "instagram_basic and pages_show_list"),
        ):
            for page_no, data in graph.pages(path, params, self.max_pages, "the media"):
                media = [Media.parse(raw, f"page {page_no}") for raw in data]
                out.extend(media)
                if any(m.created_at < self.since for m in media):
                    return out  # newest first: the rest is older still
        if graph.paging_cut:
            self._cut(own_id, out)
        return out

    def _views(self, media: list[Media]) -> dict[str, int | None]:
        """``views`` per media from its insights, the first metric of ``views_metrics`` there.

        A metric the API version does not know is dropped for the fetch (a warning, the
        rest still load). Insights the token may not read (no instagram_manage_insights)
        cost one warning and every view; a media without insights (e.g. posted before the
        account turned professional) costs its own view and is counted in one warning.
        """
        views: dict[str, int | None] = {}
        unavailable: list[str] = []
        for m in media:
            what = f"reading the views of media {m.id}"
            try:
                found, dropped = self._insights(m.id)
            except NoAccess as exc:
                self.warnings.append(
                    f"views not read: the token of connection {self.conn.conn_id} may not read "
                    f"media insights ({exc.detail}); grant instagram_manage_insights to the "
                    "app's user and create a new token"
                )
                return {}
            except (TokenInvalid, GraphRateLimited) as exc:
                raise _sort(exc, what, self.conn, "") from exc
            except GraphError as exc:
                if exc.code is None:  # HTTP 403/404 without an error object
                    raise _sort(exc, what, self.conn, "") from exc
                views[m.id] = None
                unavailable.append(f"{m.id}: {exc.detail}")
                continue
            except HttpError as exc:  # timeouts, 5xx, broken bodies, the budget: the account's
                raise _sort(exc, what, self.conn, "") from exc
            self.warnings.extend(dropped)
            with _step(what, self.conn, ""):
                views[m.id] = self._pick(m.id, found)
        if unavailable:
            self.warnings.append(
                f"views not available for {len(unavailable)} media (the first: "
                f"{unavailable[0]}); views left empty there"
            )
        return views

    def _insights(self, media_id: str) -> tuple[dict[str, Any] | None, list[str]]:
        """``GET /{media-id}/insights?metric=...`` with the metrics still valid in this fetch."""
        graph = self.graph

        def request(metrics: list[str]) -> dict[str, Any]:
            return graph.get(f"{media_id}/insights", {"metric": ",".join(metrics)})

        def probe(metric: str) -> None:
            graph.get(f"{media_id}/insights", {"metric": metric})

        return graph.get_with_metrics(
            self.conn.views_metrics, request, probe, option="views_metrics"
        )

    def _pick(self, media_id: str, found: dict[str, Any] | None) -> int | None:
        """The value of the first metric of ``views_metrics`` the insights hold."""
        if found is None:  # every metric dropped
            return None
        values: dict[str, int] = {}
        for entry in _list(found.get("data"), f"the insights of media {media_id}"):
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                value = _insight_value(entry)
                if value is not None:
                    values.setdefault(entry["name"], value)
        return next((values[m] for m in self.conn.views_metrics if m in values), None)

    def _threads(self, media: list[Media], own: Profile) -> list[dict[str, Any]]:
        """The comments and replies under the own media that have comments, oldest media first."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for m in sorted((m for m in media if m.comments > 0), key=lambda m: (m.created_at, m.id)):
            thread = _Thread(m)
            self._read_thread(thread)
            for c, in_reply_to in thread.entries:
                if c.id in seen or c.created_at > self.now:
                    continue
                seen.add(c.id)
                rows.append(self._reply_row(c, m, in_reply_to, own))
            if thread.read < m.comments:
                why = (
                    f"{_n(thread.comments, 'comment', 'comments')} and "
                    f"{_n(thread.replies, 'reply', 'replies')} returned; "
                    "Instagram's comments_count counts both, and hidden, restricted or "
                    "deleted comments are not returned"
                )
                if thread.cut:
                    why += f"; the page limit ({MAX_COMMENT_PAGES} pages of {PAGE_LIMIT}) cut it"
                self.warnings.append(thread_short_warning(m.id, thread.read, m.comments, why))
        return rows

    def _read_thread(self, thread: _Thread) -> None:
        """A media's top-level comments, each followed by its replies (flat under it: a reply
        to a reply is filed under the top-level comment by Instagram)."""
        m, graph = thread.media, self.graph
        manage = _no_access(self.conn, "instagram_manage_comments")
        params = {"fields": COMMENT_FIELDS, "limit": PAGE_LIMIT}
        top: list[Comment] = []
        with _step(f"reading the comments of media {m.id}", self.conn, manage):
            for page_no, data in graph.pages(
                f"{m.id}/comments", params, MAX_COMMENT_PAGES, "the comments"
            ):
                for raw in data:
                    c = Comment.parse(raw, f"page {page_no}")
                    if c.parent_id:  # the edge gives top-level comments; a reply still counts
                        thread.add(c, c.parent_id, reply=True)
                    else:
                        top.append(c)
            thread.cut = graph.paging_cut
        for c in top:
            thread.add(c, m.id, reply=False)
            with _step(f"reading the replies to comment {c.id}", self.conn, manage):
                for page_no, data in graph.pages(
                    f"{c.id}/replies", params, MAX_COMMENT_PAGES, "the replies"
                ):
                    for raw in data:
                        r = Comment.parse(raw, f"page {page_no}")
                        thread.add(r, r.parent_id or c.id, reply=True)
                thread.cut = thread.cut or graph.paging_cut

    def _reply_row(self, c: Comment, m: Media, in_reply_to: str, own: Profile) -> dict[str, Any]:
        return {
            "platform": InstagramPlatform.name,
            "reply_id": c.id,
            "account_id": own.id,
            "company_id": self.ref.company_id,
            "root_post_id": m.id,
            "in_reply_to_id": in_reply_to,
            "author_id": c.author_id,
            # from.id is documented as the commenter's Instagram-scoped id: the username
            # recognises the account's own comments where the two ids differ
            "author_is_company": c.author_id == own.id or c.username == own.username,
            "created_at": c.created_at,
            "observed_at": self.now,
        }

    # -- peers: business discovery -------------------------------------------------------

    def _peer(self) -> dict[str, list[dict[str, Any]]]:
        profile, media = self._discover()
        media = self._keep(media)
        rows = self._rows(profile, media, {}, hide=True)
        rows["thread_replies"] = []
        hidden = sum(1 for m in media if not m.likes)
        if hidden:
            self.warnings.append(
                f"likes hidden or zero on {hidden} of {len(media)} media: left out of "
                "likes_per_1k (business discovery reports a hidden like count as 0 or not at "
                "all, so a real 0 is left out too)"
            )
        return rows

    def _discover(self) -> tuple[Profile, list[Media]]:
        """The peer's profile and its media back to ``since`` (``media.after`` cursors)."""
        user = self.username
        page = f"limit({PAGE_LIMIT}){{{PEER_MEDIA_FIELDS}}}"
        fields = f"business_discovery.username({user}){{{PROFILE_FIELDS},media.{page}}}"
        out: list[Media] = []
        cursors: set[str] = set()
        profile: Profile | None = None
        for page_no in range(1, self.max_pages + 1):
            found = self._discovery_page(fields, page_no)
            if profile is None:
                profile = Profile.parse(found, f"business discovery of @{user}")
                if profile.username != user:
                    raise InstagramError(
                        f"business discovery of @{user} answered with @{profile.username}"
                    )
            where = f"business discovery of @{user} (page {page_no})"
            # an account without media has no media edge at all
            edge = _dict(found.get("media") or {"data": []}, f"the media of {where}")
            media = [Media.parse(raw, where) for raw in _list(edge.get("data"), where)]
            out.extend(media)
            after = _after_cursor(edge)
            if not media or not after or any(m.created_at < self.since for m in media):
                return profile, out
            if not isinstance(after, str) or not _CURSOR.match(after):
                raise InstagramError(f"{where}: the after cursor {after!r} is not a cursor")
            if after in cursors:
                raise InstagramError(f"{where}: pagination loop, the after cursor repeats")
            cursors.add(after)
            fields = f"business_discovery.username({user}){{media.after({after}).{page}}}"
        assert profile is not None  # max_pages >= 1: the first page was read
        self._cut(profile.id, out)
        return profile, out

    def _discovery_page(self, fields: str, page_no: int) -> dict[str, Any]:
        user, conn = self.username, self.conn
        what = f"business discovery of @{user} (page {page_no})"
        permission = (
            f"business discovery is not allowed for the token of connection {conn.conn_id}: "
            "it needs instagram_basic (and pages_read_engagement or pages_show_list), and an "
            "app in Live mode needs Advanced Access to instagram_basic and the Instagram "
            "Public Content Access feature (App Review)"
        )
        with _step(what, conn, permission):
            try:
                page = self.graph.get(conn.ig_user_id, {"fields": fields})
            except GraphError as exc:
                if exc.code == UNKNOWN_USER_CODE or exc.subcode == UNKNOWN_USER_SUBCODE:
                    raise InstagramError(
                        f"@{user} was not found as an Instagram professional account "
                        f"({exc.detail}): business discovery reads only professional "
                        "(business or creator) accounts; check the handle and whether the "
                        "account is still professional"
                    ) from None
                raise
            return _dict(page.get("business_discovery"), "the business_discovery object")


def _after_cursor(edge: dict[str, Any]) -> Any:
    """``paging.cursors.after`` of an edge, None when there is none."""
    paging = edge.get("paging")
    cursors = paging.get("cursors") if isinstance(paging, dict) else None
    return cursors.get("after") if isinstance(cursors, dict) else None


def _insight_value(entry: dict[str, Any]) -> int | None:
    """An insights metric's value: ``values[0].value`` (media) or ``total_value.value``."""
    values = entry.get("values")
    first = values[0] if isinstance(values, list) and values else None
    total = entry.get("total_value")
    for holder in (first, total):
        value = holder.get("value") if isinstance(holder, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def own_profile(conn: _Connection) -> Profile:
    """The token's own Instagram account (``ig_user_id``), read once per connection and fetch.

    Found unreadable (a wrong id, no permission): a configuration error for every account
    of the connection.
    """
    if conn.profile is not None:
        return conn.profile
    what = f"reading the Instagram account {conn.ig_user_id} (connection {conn.conn_id})"
    hint = (
        f"check that ig_user_id in the extra of connection {conn.conn_id} is the id of the "
        "Instagram professional account the token belongs to (GET "
        "/me/accounts?fields=instagram_business_account gives it) and that the token has "
        "instagram_basic and pages_show_list"
    )
    with _step(what, conn, hint):
        try:
            data = conn.graph.get(conn.ig_user_id, {"fields": PROFILE_FIELDS})
        except GraphError as exc:
            # no access, or "(#100) Tried accessing nonexisting field ... on node type
            # (Page)": the id of a Page or a user, not of an Instagram account; the same
            # for every account of the connection, which is not asked again
            if isinstance(exc, NoAccess) or exc.code in (100, 803):
                message = f"{hint} ({exc.detail})"
                raise InstagramError(message, CONFIGURATION, later=message) from None
            raise
        conn.profile = Profile.parse(data, "the account")
    return conn.profile


class InstagramPlatform:
    """Instagram API with Facebook Login connector (see the module docstring and README.md)."""

    name: ClassVar[str] = "instagram"

    def __init__(self, context: PlatformContext | None = None) -> None:
        self.context = context or PlatformContext()

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        now = self.context.now()
        client = self.context.client()  # one client (one session) for the whole fetch
        result = FetchResult()
        connections: dict[str, _Connection | InstagramError] = {}
        secrets: set[str] = set()  # every token and app secret seen: out of every message
        for ref in accounts:
            conn: _Connection | None = None
            try:
                username = parse_handle(ref.handle)
                conn = self._connection(ref, client, connections, secrets)
                with client.account_budget(f"account {ref.handle} ({ref.company_id})"):
                    rows, warnings = _Account(conn, ref, username, window, now).fetch()
            except InstagramError as exc:
                if conn is not None and exc.later is not None:
                    conn.failure = InstagramError(exc.later, exc.severity)
                self._record(result.errors, ref, str(exc), exc.severity, secrets)
                continue
            except (HttpError, KeyError, TypeError, ValueError) as exc:  # a step not named
                self._record(result.errors, ref, f"{type(exc).__name__}: {exc}", ERROR, secrets)
                continue
            result.extend(rows)
            for warning in warnings:  # the account's rows are fine: a warning, not an error
                self._record(result.warnings, ref, warning, "warning", secrets)
        result.drop_duplicates()  # two registry accounts on one profile: once
        return result

    def _record(
        self,
        into: list[FetchError],
        ref: AccountRef,
        message: str,
        severity: str,
        secrets: set[str],
    ) -> None:
        message = redact(message, secrets)
        log.warning("instagram %s (%s): %s", ref.handle, ref.company_id, message)
        into.append(FetchError(self.name, ref.company_id, ref.handle, message, severity))

    def _connection(
        self,
        ref: AccountRef,
        client: HttpClient,
        connections: dict[str, _Connection | InstagramError],
        secrets: set[str],
    ) -> _Connection:
        """The account's connection, set up once per fetch; its failure raised for each account."""
        conn_id = str(ref.options.get("connection") or DEFAULT_CONNECTION)
        found = connections.get(conn_id)
        if found is None:
            try:
                found = self._open(conn_id, client, secrets)
            except InstagramError as exc:
                found = exc
            connections[conn_id] = found
        if isinstance(found, InstagramError):
            raise found
        if found.failure is not None:
            raise found.failure
        return found

    def _open(self, conn_id: str, client: HttpClient, secrets: set[str]) -> _Connection:
        conn = self.context.connection if conn_id == DEFAULT_CONNECTION else None
        if conn is None:
            try:
                conn = self.context.named_connection(conn_id)
            except ConnectionMissing as exc:
                message = str(exc)
                if conn_id == DEFAULT_CONNECTION:
                    message = (
                        f"Airflow connection {conn_id} is not defined: add it (password = the "
                        'access token, extra {"ig_user_id": "<your Instagram account id>"}) in '
                        f"the Airflow UI (Admin > Connections), as AIRFLOW_CONN_{conn_id.upper()} "
                        "or in the secrets backend; see the Instagram connector's README"
                    )
                raise InstagramError(message, CONFIGURATION) from None
        try:
            settings = GraphSettings.from_connection(conn, conn_id)
        except ValueError as exc:
            raise InstagramError(str(exc), CONFIGURATION) from None
        secrets.update(s for s in (settings.token, settings.app_secret) if s)
        conn_id = settings.conn_id
        ig_user_id = str(settings.extra.get("ig_user_id") or "").strip()
        if not ig_user_id.isdigit():
            got = f" (it holds {ig_user_id!r})" if ig_user_id else ""
            raise InstagramError(
                f"connection {conn_id} has no ig_user_id in its extra{got}: the id of your "
                "Instagram professional account, which business discovery is asked through; "
                "GET /me/accounts?fields=instagram_business_account with the token gives it "
                "(instagram_business_account.id of the Facebook Page linked to the account); "
                f'add it to the extra: {{"ig_user_id": "1784..."}}',
                CONFIGURATION,
            )
        try:
            metrics = views_metrics(settings.extra, conn_id, DEFAULT_VIEWS_METRICS)
        except ValueError as exc:
            raise InstagramError(str(exc), CONFIGURATION) from None
        try:
            graph = Graph(client, settings)
        except TokenInvalid as exc:
            raise InstagramError(exc.detail, CONFIGURATION) from None
        return _Connection(conn_id, graph, ig_user_id, metrics)
