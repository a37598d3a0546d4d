"""Mastodon: public counters, posts, threads and field-study answers of company accounts.

Reads the public REST API of the account's own server (no login needed; see README.md):

* ``GET /api/v1/accounts/lookup?acct=<user>``: the Account (id and counters);
* ``GET /api/v1/accounts/<id>/statuses?limit=40``, then the ``Link: rel="next"`` pages,
  until a (non-pinned) status is older than ``window.since`` (the window's start or
  ``end - lookback``, whichever is earlier: a backfill reads its whole window), or until
  the page limit (``MAX_PAGES``, account option ``max_pages``);
* ``GET /api/v1/statuses/<id>/context`` for every own original post since then that has
  replies (``replies_count > 0``), and for every field-study question.

Every request goes through the shared :class:`socialpulse.http.HttpClient` (timeouts, a
deadline per request, a size cap, retries, ``X-RateLimit-*`` pacing, 429). One fetch observes every account at one time,
``context.now()`` taken when the fetch starts.

The account's snapshot says how far back the fetch read (``posts_since``): ``window.since``,
or the oldest status read when the page limit stopped the paging before it; that cut is a
warning (``FetchResult.warnings``), not an error. So is a thread whose context holds fewer
direct replies than the post's ``replies_count`` (anonymous context requests are capped).

An account whose data cannot be read completely (unknown, suspended, private, an HTML page,
truncated JSON, a pagination loop, a status without id ...) yields a :class:`FetchError` and
no rows at all; the other accounts go on. So does one that hits the client's limits: a
response dripping past the deadline or broken while being read (reset, truncated), after
the retries; a response larger than the size cap; the account's time budget used up (each
account reads inside :meth:`HttpClient.account_budget`, ``HttpPolicy.account_budget``).

A reply delivered for two accounts (a status in the contexts of both, e.g. under a company's
self-reply continuing its answer in another company's thread) is kept once, for the first:
:meth:`FetchResult.drop_duplicates` drops the second and logs a warning naming both.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from socialpulse.http import BudgetExceeded, HttpError
from socialpulse.platforms.base import (
    AccountRef,
    FetchError,
    FetchResult,
    FetchWindow,
    Payload,
    PlatformContext,
    page_limit_warning,
    probe_row,
    public_post_probes,
    thread_short_warning,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator

    from socialpulse.http import HttpClient

log = logging.getLogger(__name__)

#: statuses per page: the API's maximum for account timelines
PAGE_LIMIT = 40
#: timeline pages per account and fetch (account option ``max_pages``): 40 x 250 = 10,000
#: statuses; an account with more since ``window.since`` is read that far, with a warning
MAX_PAGES = 250
#: descendants of an anonymous ``/context`` request (and 40 ancestors, depth 20); a token
#: raises both to 4096 (API docs, GET /api/v1/statuses/:id/context)
ANONYMOUS_DESCENDANTS = 60

# Mastodon usernames: letters, digits, '_', with '.' or '-' inside (never at the ends)
_USER = r"[A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?"
_PROFILE_URL = re.compile(rf"^(?P<scheme>https?)://(?P<host>{_HOST})/@(?P<user>{_USER})/?$")
_ACCT = re.compile(rf"^@?(?P<user>{_USER})@(?P<host>{_HOST})$")
# a status as a public page (/@user/<id>, also /@user@remote/<id>), its ActivityPub id
# (/users/<user>/statuses/<id>) or an API URL (/api/v1/statuses/<id>)
_STATUS_PATH = re.compile(
    r"^/(?:@[^/]+|users/[^/]+/statuses|api/v1/statuses)/(?P<id>[0-9A-Za-z]+)/?$"
)


class MastodonError(ValueError):
    """Something about one account (or one probe) that keeps it from being read."""


@dataclass(frozen=True)
class Location:
    """Where an account lives: its server's API base (``scheme://host``) and username."""

    base_url: str
    username: str


def parse_handle(handle: str, api_base: str | None = None) -> Location:
    """``https://host/@user``, ``@user@host`` or ``user@host`` -> (API base, username).

    ``api_base`` (account option) overrides the server derived from the handle, for
    servers whose web domain differs from the domain in their handles.
    """
    text = (handle or "").strip()
    m = _PROFILE_URL.match(text)
    if m:
        base = f"{m['scheme']}://{m['host']}"
    else:
        m = _ACCT.match(text)
        if not m:
            raise MastodonError(
                f"not a Mastodon handle: {handle!r}; use the profile URL "
                "(https://host/@user), @user@host or user@host"
            )
        base = f"https://{m['host']}"
    if api_base:
        parts = urlsplit(api_base.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise MastodonError(f"option api_base is not an http(s) URL: {api_base!r}")
        base = f"{parts.scheme}://{parts.netloc}"
    return Location(base.lower(), m["user"])


def parse_status_ref(ref: str) -> tuple[str, str]:
    """A status URL (public page, ActivityPub id or API URL) -> (API base, status id)."""
    parts = urlsplit((ref or "").strip())
    m = _STATUS_PATH.match(parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or not m:
        raise MastodonError(
            f"question_ref {ref!r} is not a Mastodon status URL "
            "(https://host/@user/<id> or https://host/api/v1/statuses/<id>)"
        )
    return f"{parts.scheme}://{parts.netloc}".lower(), m["id"]


# -- payload checks: a required field missing is the account's error, never a KeyError ----


_CHECK = Payload(MastodonError)
_dict, _id, _time = _CHECK.obj, _CHECK.ident, _CHECK.time


def _opt_id(obj: dict[str, Any], key: str, what: str) -> str | None:
    return None if obj.get(key) is None else _id(obj, key, what)


def _count(obj: dict[str, Any], key: str, what: str, required: bool = True) -> int | None:
    return _CHECK.count(obj, key, what, required)


def _req_count(obj: dict[str, Any], key: str, what: str) -> int:
    return _count(obj, key, what) or 0  # required: _count raises when it is missing


@dataclass(frozen=True)
class Status:
    """The fields of a Status entity the connector uses."""

    id: str
    created_at: dt.datetime
    account_id: str
    in_reply_to_id: str | None
    in_reply_to_account_id: str | None
    is_reblog: bool
    pinned: bool
    likes: int
    replies: int
    reposts: int
    quotes: int
    url: str | None
    account_url: str | None
    account_uri: str | None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Status:
        s = _dict(raw, f"a status in {where}")
        sid = _id(s, "id", f"a status in {where}")
        what = f"status {sid} in {where}"
        account = _dict(s.get("account"), f"the account of {what}")
        reblog = s.get("reblog")
        if reblog is not None:
            _dict(reblog, f"the reblogged status of {what}")
        return cls(
            id=sid,
            created_at=_time(s, "created_at", what),
            account_id=_id(account, "id", f"the account of {what}"),
            in_reply_to_id=_opt_id(s, "in_reply_to_id", what),
            in_reply_to_account_id=_opt_id(s, "in_reply_to_account_id", what),
            is_reblog=reblog is not None,
            pinned=s.get("pinned") is True,
            likes=_req_count(s, "favourites_count", what),
            replies=_req_count(s, "replies_count", what),
            reposts=_req_count(s, "reblogs_count", what),
            # quotes arrived in Mastodon 4.5; older servers (and other software) lack them
            quotes=_count(s, "quotes_count", what, required=False) or 0,
            url=s.get("url") or s.get("uri") or None,
            account_url=account.get("url") or None,
            account_uri=account.get("uri") or None,
        )

    def kind(self, own_id: str) -> str:
        if self.is_reblog:
            return "repost"
        if self.in_reply_to_id is not None and self.in_reply_to_account_id != own_id:
            return "reply"
        return "original"  # a self-reply continues the company's own thread


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Name the step in any error raised inside it."""
    try:
        yield
    except MastodonError as exc:
        raise MastodonError(f"{what}: {exc}") from exc
    except HttpError as exc:
        raise MastodonError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _same_page(url: str) -> str:
    """A URL's identity for loop detection: host, path and sorted query."""
    parts = urlsplit(url)
    query = "&".join(f"{k}={v}" for k, vs in sorted(parse_qs(parts.query).items()) for v in vs)
    return f"{parts.netloc.lower()}{parts.path}?{query}"


def _norm_url(url: str | None) -> str | None:
    return url.strip().rstrip("/").lower() if url else None


class _Account:
    """One account's fetch: everything or an error, never half."""

    def __init__(
        self,
        client: HttpClient,
        ref: AccountRef,
        window: FetchWindow,
        now: dt.datetime,
        token: tuple[str, str] | None,
    ) -> None:
        self.client = client
        self.ref = ref
        self.now = now
        self.since = window.since
        #: how far back the statuses were read: ``since``, later when the page limit cut it
        self.posts_since = self.since
        self.token = token
        self.where = parse_handle(ref.handle, ref.options.get("api_base"))
        self.max_pages = int(ref.options.get("max_pages") or MAX_PAGES)
        #: what the account's rows lack (a page limit, a thread cut short): warnings
        self.warnings: list[str] = []

    # -- HTTP ----------------------------------------------------------------------------

    def _authorised(self, url: str) -> bool:
        """Whether requests to ``url`` carry the connection's token (its own server only)."""
        return bool(self.token) and urlsplit(url).netloc.lower() == self.token[0]

    def _get(self, url: str, params: dict[str, Any] | None = None, expect: type = dict) -> Any:
        headers = None
        if self.token and self._authorised(url):
            headers = {"Authorization": f"Bearer {self.token[1]}"}
        return self.client.get_json(url, params=params, headers=headers, expect=expect)

    # -- steps ---------------------------------------------------------------------------

    def lookup(self) -> tuple[dict[str, Any], str]:
        """The account (checked: the one asked for, not suspended, limited or moved) and its id."""
        user, base = self.where.username, self.where.base_url
        with _step(f"looking up @{user} on {base}"):
            account, _ = self._get(f"{base}/api/v1/accounts/lookup", {"acct": user})
            own_id = _id(account, "id", "the account")
            if account.get("suspended") is True:
                raise MastodonError(f"account {own_id} is suspended by its server")
            if account.get("limited") is True:
                raise MastodonError(f"account {own_id} is limited (hidden) by its server")
            username = account.get("username")
            if not isinstance(username, str) or username.lower() != user.lower():
                raise MastodonError(f"the server answered with another account ({username!r})")
            if account.get("moved"):
                log.warning("mastodon %s has moved to another account", self.ref.handle)
            return account, own_id

    def timeline(self, own_id: str) -> list[Status]:
        """The account's statuses back to ``since`` (page by page, newest first).

        When the page limit ends the paging first, the statuses read are kept: ``posts_since``
        becomes the oldest of them (pinned ones aside) and a warning says what is missing.
        """
        base = self.where.base_url
        url: str = f"{base}/api/v1/accounts/{own_id}/statuses"
        params: dict[str, Any] | None = {"limit": PAGE_LIMIT}
        seen_pages: set[str] = set()
        seen_max_ids: set[str] = set()
        out: list[Status] = []
        for page_no in range(1, self.max_pages + 1):
            with _step(f"reading the statuses of account {own_id} (page {page_no})"):
                page, response = self._get(url, params, expect=list)
                seen_pages.add(_same_page(response.url))
                statuses = [Status.parse(raw, f"page {page_no}") for raw in page]
                out.extend(statuses)
                # newest first; pinned statuses are shown first whatever their age
                if not statuses or any(s.created_at < self.since for s in statuses if not s.pinned):
                    return out
                nxt = (response.links.get("next") or {}).get("url")
                if not nxt:
                    return out
                # follow the link on the server we were told to use (the server names
                # its public domain, which a proxy or a test setup may not be reached at)
                parts = urlsplit(nxt)
                nxt = urlunsplit((*urlsplit(base)[:2], parts.path, parts.query, ""))
                max_id = (parse_qs(parts.query).get("max_id") or [None])[0]
                if _same_page(nxt) in seen_pages or (max_id and max_id in seen_max_ids):
                    raise MastodonError(
                        f"pagination loop: the next link {nxt} repeats a page already read"
                        f" (max_id={max_id})"
                    )
                if max_id:
                    seen_max_ids.add(max_id)
                url, params = nxt, None
        # every (unpinned) status read is newer than since: the statuses since the oldest
        # of them are complete, the older ones not read
        oldest = min((s.created_at for s in out if not s.pinned), default=self.now)
        self.posts_since = min(oldest, self.now)
        self.warnings.append(
            page_limit_warning(
                f"statuses of account {own_id}", self.max_pages, self.since, self.posts_since
            )
        )
        return out

    def context(self, base: str, status_id: str) -> list[Status]:
        data, _ = self._get(f"{base}/api/v1/statuses/{status_id}/context")
        descendants = data.get("descendants")
        if not isinstance(descendants, list):
            raise MastodonError(f"the context of status {status_id} has no descendants list")
        where = f"the context of status {status_id}"
        replies = [Status.parse(raw, where) for raw in descendants]
        for r in replies:
            if r.in_reply_to_id is None:
                raise MastodonError(f"reply {r.id} in {where} has no in_reply_to_id")
        return replies

    # -- the whole account ---------------------------------------------------------------

    def fetch(self) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        """Rows per table and the probe problems (which do not cost the account its rows)."""
        ref, now = self.ref, self.now
        account, own_id = self.lookup()
        with _step("reading the account's counters"):
            snapshot = {
                "platform": MastodonPlatform.name,
                "company_id": ref.company_id,
                "account_id": own_id,
                "handle": ref.handle,
                "observed_at": now,
                "followers": _req_count(account, "followers_count", "the account"),
                "following": _count(account, "following_count", "the account", False),
                "posts_total": _count(account, "statuses_count", "the account", False),
                "posts_since": None,  # set once the timeline is read
            }
        rows: dict[str, list[dict[str, Any]]] = {
            "account_snapshots": [snapshot],
            "post_observations": [],
            "thread_replies": [],
            "probes": [],
        }
        posts: dict[str, Status] = {}
        for s in self.timeline(own_id):
            if self.since <= s.created_at <= now:  # pinned old statuses, clock skew stay out
                posts.setdefault(s.id, s)  # a pinned status also shown in its place: once
        snapshot["posts_since"] = self.posts_since
        rows["post_observations"] = [self._post_row(s, own_id) for s in posts.values()]
        rows["thread_replies"] = self._threads(list(posts.values()), own_id)
        problems = self.warnings
        rows["probes"] = self._probes(account, own_id, problems)
        return rows, problems

    def _post_row(self, s: Status, own_id: str) -> dict[str, Any]:
        return {
            "platform": MastodonPlatform.name,
            "post_id": s.id,
            "account_id": own_id,
            "company_id": self.ref.company_id,
            "created_at": s.created_at,
            "kind": s.kind(own_id),
            "likes": s.likes,
            "replies": s.replies,
            "reposts": s.reposts,
            "quotes": s.quotes,
            "views": None,  # Mastodon counts no views
            "url": s.url,
            "observed_at": self.now,
        }

    def _threads(self, posts: list[Status], own_id: str) -> list[dict[str, Any]]:
        """Every reply under the own original posts that have replies, each once.

        Roots are read oldest first: a reply in the thread of an older post and of a
        self-reply continuing it belongs to the older post (the thread's start).
        """
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        roots = sorted(
            (
                s
                for s in posts
                if s.kind(own_id) == "original" and s.replies > 0 and s.account_id == own_id
            ),
            key=lambda s: (s.created_at, s.id),
        )
        for root in roots:
            with _step(f"reading the thread of status {root.id}"):
                replies = self.context(self.where.base_url, root.id)
            self._check_coverage(root, replies)
            for r in replies:
                if r.id in seen or r.created_at > self.now:
                    continue
                seen.add(r.id)
                rows.append(
                    {
                        "platform": MastodonPlatform.name,
                        "reply_id": r.id,
                        "account_id": own_id,
                        "company_id": self.ref.company_id,
                        "root_post_id": root.id,
                        "in_reply_to_id": r.in_reply_to_id,
                        "author_id": r.account_id,
                        "author_is_company": r.account_id == own_id,
                        "created_at": r.created_at,
                        "observed_at": self.now,
                    }
                )
        return rows

    def _check_coverage(self, root: Status, replies: list[Status]) -> None:
        """A warning when the context holds fewer direct replies than ``replies_count``."""
        seen = sum(1 for r in replies if r.in_reply_to_id == root.id)
        if root.replies <= seen:
            return
        base = self.where.base_url
        if self._authorised(base):
            why = (
                f"{len(replies)} descendants returned to the mastodon_default token, which "
                "may read up to 4096: the others are not visible to it (deleted, private, "
                "or from servers this one blocks)"
            )
        else:
            why = (
                f"{len(replies)} descendants returned; anonymous context requests are capped "
                f"at {ANONYMOUS_DESCENDANTS} descendants (depth 20): a token for "
                f"{urlsplit(base).netloc} in the Airflow connection mastodon_default lifts "
                "the cap"
            )
        self.warnings.append(thread_short_warning(root.id, seen, root.replies, why))

    def _probes(
        self, account: dict[str, Any], own_id: str, problems: list[str]
    ) -> list[dict[str, Any]]:
        """The company's first answer in the thread under each field-study question.

        A question that is gone (404/410) or whose reference is no status URL is recorded
        unanswered (an answer recorded by hand in the registry still wins); one that could
        not be read for now (5xx, timeout, broken payload) yields no row, so the last
        observation stays. Each problem is reported, and costs the account nothing else.
        """
        own_urls = {_norm_url(account.get("url")), _norm_url(account.get("uri"))} - {None}
        return public_post_probes(
            self.ref,
            MastodonPlatform.name,
            lambda probe: self._probe(probe, own_id, own_urls),
            problems,
        )

    def _probe(
        self, probe: dict[str, Any], own_id: str, own_urls: set[str | None]
    ) -> tuple[dict[str, Any] | None, str | None]:
        ref = probe.get("question_ref")
        try:
            base, question_id = parse_status_ref(str(ref or ""))
        except MastodonError as exc:
            return probe_row(probe, self.now), f"{exc}; recorded unanswered"
        try:
            replies = self.context(base, question_id)
        except BudgetExceeded:
            raise  # the account's time is up: its error, not the probe's
        except HttpError as exc:
            if exc.status in (404, 410):
                return (
                    probe_row(probe, self.now),
                    f"the question {ref} is gone ({exc}); recorded unanswered",
                )
            return None, f"{type(exc).__name__}: {exc}"
        except MastodonError as exc:
            return None, str(exc)
        same_server = base == self.where.base_url

        def by_company(r: Status) -> bool:
            # account ids are per server: on the company's server compare ids; elsewhere
            # the company's account is a remote copy, known by its profile URL or URI
            if same_server:
                return r.account_id == own_id
            return bool({_norm_url(r.account_url), _norm_url(r.account_uri)} & own_urls)

        answers = sorted(
            (r for r in replies if by_company(r) and r.created_at <= self.now),
            key=lambda r: (r.created_at, r.id),
        )
        if not answers:
            return probe_row(probe, self.now), None
        return probe_row(probe, self.now, answers[0].created_at, answers[0].url), None


class MastodonPlatform:
    """Public Mastodon API connector (see the module docstring and README.md)."""

    name: ClassVar[str] = "mastodon"

    def __init__(self, context: PlatformContext | None = None) -> None:
        self.context = context or PlatformContext()

    def _token(self) -> tuple[str, str] | None:
        """(host, access token) from the ``mastodon_default`` connection, if it has one."""
        conn = self.context.connection or {}
        token, host = conn.get("password"), conn.get("host")
        if not token or not host:
            return None
        host = str(host).strip().lower()
        if "://" in host:
            host = urlsplit(host).netloc
        if conn.get("port") and urlsplit(f"//{host}").port is None:
            host = f"{host}:{int(conn['port'])}"
        return host, str(token)

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult:
        now = self.context.now()
        client = self.context.client()  # one client (one session) for the whole fetch
        token = self._token()
        result = FetchResult()
        for ref in accounts:
            try:
                with client.account_budget(f"account {ref.handle} ({ref.company_id})"):
                    rows, problems = _Account(client, ref, window, now, token).fetch()
            except (HttpError, ValueError, KeyError, TypeError) as exc:
                # HttpError/PayloadError/RateLimited, MastodonError: the account's fault
                msg = str(exc) if isinstance(exc, MastodonError) else f"{type(exc).__name__}: {exc}"
                log.warning("mastodon %s (%s): %s", ref.handle, ref.company_id, msg)
                result.errors.append(FetchError(self.name, ref.company_id, ref.handle, msg))
                continue
            result.extend(rows)
            for problem in problems:  # the account's rows are fine: a warning, not an error
                log.warning("mastodon %s (%s): %s", ref.handle, ref.company_id, problem)
                result.warnings.append(FetchError(self.name, ref.company_id, ref.handle, problem))
        result.drop_duplicates()  # a status in the contexts of two accounts: once
        return result
