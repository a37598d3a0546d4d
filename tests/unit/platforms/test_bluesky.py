"""The Bluesky connector against recorded XRPC responses served on loopback (pytest-httpserver).

Every request goes through ``requests`` and the shared HttpClient to a real HTTP server;
the responses are the recorded exchanges in ``tests/fixtures/bluesky/*.json`` (request path
and query, response status, headers and body). The expected rows below are worked out by
hand from those files; the comments say how.

The scene (FIXED_NOW = 2026-03-02 12:00 UTC, window [03-01, 03-02), lookback 14 days, so
posts count from 2026-02-16 00:00 UTC on):

* Bäckerei Korn (``@korn.bsky.social``, KORN): three feed pages, two threads, four probes.
* Nordbank (``nordbank.de``, NORD): the account that breaks, one way per fault test.

A backfill from 2026-02-12 also keeps page 3's post of 02-15 16:00 (OLD), whose thread
(korn_thread_old) holds one of its two replies.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug import Response

from socialpulse.platforms import get_platform
from socialpulse.platforms.base import AccountRef, FetchWindow, PlatformContext
from socialpulse.platforms.bluesky import (
    DEFAULT_BASE_URL,
    BlueskyPlatform,
    Xrpc,
    base_url,
    normalise_actor,
    split_at_uri,
    web_url,
)
from socialpulse.records import RAW_SCHEMAS, to_arrow
from tests.unit.conftest import fast_client, limited_client

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bluesky"
UTC = dt.UTC
FIXED_NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = FetchWindow(
    dt.datetime(2026, 3, 1, tzinfo=UTC),
    dt.datetime(2026, 3, 2, tzinfo=UTC),
    lookback=dt.timedelta(days=14),
)

KORN = "did:plc:korn4bakery7rye2bread5oa"
NORD = "did:plc:nordbank2savings3euro4qx"
ALICE = "did:plc:alice2customer3likes4rye"
BOB = "did:plc:bob2customer3asks4oftenx"
CAROL = "did:plc:carol2neighbour3cafe4xyz"
DAVE = "did:plc:dave2student3hungry4abcd"
RESEARCHER = "did:plc:researcher2probe3study4x"


def at(did: str, rkey: str, collection: str = "app.bsky.feed.post") -> str:
    return f"at://{did}/{collection}/{rkey}"


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# the posts of the scene, by the rkeys in the fixture files
P1 = at(KORN, "3mfreshrye2aa")  # original, 5 replies -> thread read
P2A = at(KORN, "3mselfthreada")  # self-thread root, 2 replies -> thread read
P2B = at(KORN, "3mselfthreadb")  # its continuation, 1 reply: already in P2A's thread
KR1 = at(KORN, "3mkornreply2b")  # Korn answers Bob's post
KR2 = at(KORN, "3mkornreply3b")  # Korn answers its own answer, still under Bob's post
P3 = at(KORN, "3mquietpostaa")  # original without replies -> no thread request
CAROL_POST = at(CAROL, "3mcarolcafeaa")  # reposted by Korn (old AppView: no repost uri)
KORN_PROFILE = "https://bsky.app/profile/korn.bsky.social/post"

KORN_FILES = (
    "korn_profile",
    "korn_feed_page1",
    "korn_feed_page2",
    "korn_feed_page3",
    "korn_thread_p1",
    "korn_thread_p2a",
)
PROBE_FILES = (
    "resolve_researcher",
    "korn_probe_q1",
    "korn_probe_q2",
    "korn_probe_q3_gone",
    "korn_probe_q4_notfound",
)


def _post(post_id, created, kind, likes, replies, reposts, quotes, url) -> dict:
    return {
        "platform": "bluesky",
        "post_id": post_id,
        "account_id": KORN,
        "company_id": "baeckerei-korn",
        "created_at": t(created),
        "kind": kind,
        "likes": likes,
        "replies": replies,
        "reposts": reposts,
        "quotes": quotes,
        "views": None,
        "url": url,
        "observed_at": FIXED_NOW,
    }


# korn_feed_page1..3, newest first. Left out: the pinned post (2025-11-03, reasonPin; it
# does not stop the paging either), page 3's posts of 02-15 16:00 and 02-10 (before 02-16).
KORN_POSTS = [
    # page 1: likeCount 12, replyCount 5 (Alice, Bob, Dave, a deleted and a blocked
    # reply), repostCount 2, no quoteCount -> 0
    _post(P1, "2026-03-01T07:30", "original", 12, 5, 2, 0, f"{KORN_PROFILE}/3mfreshrye2aa"),
    # page 1: reasonRepost of Alice's post with the repost record's uri -> that uri is the
    # id, reason.indexedAt the time; Alice's counts (40/5/9/3) are not Korn's -> zeros
    _post(
        at(KORN, "3mrepostalice", "app.bsky.feed.repost"),
        "2026-02-28T18:00",
        "repost",
        0,
        0,
        0,
        0,
        "https://bsky.app/profile/alice.bsky.social/post/3malicepostaa",
    ),
    # page 1: parent is Korn's own KR1 but the root is Bob's post -> a reply, not a thread
    _post(KR2, "2026-02-27T12:30", "reply", 2, 0, 0, 0, f"{KORN_PROFILE}/3mkornreply3b"),
    # page 1: parent (and root) is Bob's post -> reply; no quoteCount -> 0
    _post(KR1, "2026-02-27T12:00", "reply", 1, 1, 0, 0, f"{KORN_PROFILE}/3mkornreply2b"),
    # page 1: parent and root are Korn's P2A -> self-thread continuation -> original
    _post(P2B, "2026-02-26T09:05", "original", 4, 1, 0, 0, f"{KORN_PROFILE}/3mselfthreadb"),
    # page 2
    _post(P2A, "2026-02-26T09:00", "original", 20, 2, 3, 0, f"{KORN_PROFILE}/3mselfthreada"),
    _post(P3, "2026-02-20T10:00", "original", 5, 0, 1, 0, f"{KORN_PROFILE}/3mquietpostaa"),
    # page 2: reasonRepost without uri (an older AppView) -> "<post uri>|repost|<indexedAt>"
    _post(
        f"{CAROL_POST}|repost|2026-02-17T08:00:00.000Z",
        "2026-02-17T08:00",
        "repost",
        0,
        0,
        0,
        0,
        "https://bsky.app/profile/cafe-carol.bsky.social/post/3mcarolcafeaa",
    ),
]


def _reply(reply_id, root, to, author, created) -> dict:
    return {
        "platform": "bluesky",
        "reply_id": reply_id,
        "account_id": KORN,
        "company_id": "baeckerei-korn",
        "root_post_id": root,
        "in_reply_to_id": to,
        "author_id": author,
        "author_is_company": author == KORN,
        "created_at": t(created),
        "observed_at": FIXED_NOW,
    }


# Threads are read oldest post first (P2A, then P1), depth first in the server's order.
A1, K1, A2 = at(ALICE, "3malicereplya"), at(KORN, "3mkornanswera"), at(ALICE, "3malicefollow")
C1 = at(CAROL, "3mcarolreplya")
KORN_REPLIES = [
    # korn_thread_p2a: the continuation P2B is Korn's own reply to P2A (so P2B's own thread
    # is not requested again), Alice answers P2B, Carol asks, Dave answers Carol
    _reply(P2B, P2A, P2A, KORN, "2026-02-26T09:05"),
    _reply(at(ALICE, "3maliceonself"), P2A, P2B, ALICE, "2026-02-26T12:00"),
    _reply(C1, P2A, P2A, CAROL, "2026-02-26T10:00"),
    _reply(at(DAVE, "3mdavereplyaa"), P2A, C1, DAVE, "2026-02-26T10:30"),
    # korn_thread_p1: Alice asks, Korn answers, Alice follows up, Korn answers again; Bob
    # asks and is not answered; the notFoundPost and blockedPost nodes are skipped
    _reply(A1, P1, P1, ALICE, "2026-03-01T08:00"),
    _reply(K1, P1, A1, KORN, "2026-03-01T09:00"),
    _reply(A2, P1, K1, ALICE, "2026-03-01T09:30"),
    _reply(at(KORN, "3mkornanswerb"), P1, A2, KORN, "2026-03-01T10:15"),
    _reply(at(BOB, "3mbobreplyaaa"), P1, P1, BOB, "2026-03-01T11:00"),
    # Dave's client dated his reply 2027-01-01, after the fetch: the AppView's indexedAt
    # (2026-03-01T11:30:00.412Z) stands in
    _reply(at(DAVE, "3mdavefuturea"), P1, P1, DAVE, "2026-03-01T11:30:00.412"),
]

KORN_SNAPSHOT = {
    "platform": "bluesky",
    "company_id": "baeckerei-korn",
    "account_id": KORN,  # the DID, not the handle
    "handle": "@korn.bsky.social",  # as configured in the registry
    "observed_at": FIXED_NOW,
    "followers": 1234,
    "following": 56,
    "posts_total": 789,
    "posts_since": t("2026-02-16T00:00"),  # WINDOW.since: the feed was read back to it
}


def _probe(n: int, question: str, sent: str, quality: int | None = None) -> dict:
    return {
        "probe_id": f"bsky-korn-{n}",
        "company_id": "baeckerei-korn",
        "platform": "bluesky",
        "channel": "public_post",
        "sent_at": sent,
        "question_ref": question,
        "answered_at": None,
        "answer_ref": None,
        "quality": quality,
    }


PROBES = (
    # a bsky.app URL with a handle: resolveHandle first, then the thread
    _probe(
        1,
        "https://bsky.app/profile/researcher.bsky.social/post/3mquestionone",
        "2026-02-20T09:00:00Z",
        quality=4,
    ),
    # an at:// URI: read as is
    _probe(2, at(RESEARCHER, "3mquestiontwo"), "2026-02-25T09:00:00Z"),
    # a bsky.app URL with a DID: no resolving; the thread is a 400 NotFound
    _probe(
        3,
        f"https://bsky.app/profile/{RESEARCHER}/post/3mquestionthr",
        "2026-02-26T09:00:00Z",
    ),
    # the thread is a notFoundPost
    _probe(4, at(RESEARCHER, "3mquestionfou"), "2026-02-27T09:00:00Z"),
)


# -- serving the recorded exchanges -------------------------------------------------------


def exchange(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _response(recorded: dict, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(recorded["json"]) if "json" in recorded else recorded["text"]
    return Response(
        body, status=recorded["status"], headers={**recorded["headers"], **(headers or {})}
    )


def serve(httpserver, *names: str, once: bool = False, headers: dict | None = None) -> None:
    """Answer each recorded request with its recorded response (``once``: a single time)."""
    for name in names:
        ex = exchange(name)
        req, recorded = ex["request"], ex["response"]
        expect = httpserver.expect_oneshot_request if once else httpserver.expect_request
        expect(req["path"], method=req["method"], query_string=req["query"]).respond_with_handler(
            lambda _request, recorded=recorded: _response(recorded, headers)
        )


def requests_to(httpserver, method: str) -> list[dict[str, str]]:
    """The query strings of the requests the server saw for one XRPC method, in order."""
    out = []
    for request, _ in httpserver.log:
        if request.path == f"/xrpc/{method}":
            out.append({k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()})
    return out


@pytest.fixture
def platform(httpserver, sleeps) -> BlueskyPlatform:
    context = PlatformContext(
        connection={"host": httpserver.url_for("").rstrip("/")},
        http=fast_client(sleeps),
        clock=lambda: FIXED_NOW,
    )
    return BlueskyPlatform(context=context)


KORN_REF = AccountRef("baeckerei-korn", "@korn.bsky.social")
NORD_REF = AccountRef("nordbank", "nordbank.de")


def rows_of(result, company_id: str) -> dict[str, list[dict]]:
    return {
        table: [r for r in rows if r["company_id"] == company_id]
        for table, rows in result.rows.items()
    }


def assert_korn_exact(result) -> None:
    korn = rows_of(result, "baeckerei-korn")
    assert korn["account_snapshots"] == [KORN_SNAPSHOT]
    assert korn["post_observations"] == KORN_POSTS
    assert korn["thread_replies"] == KORN_REPLIES


def assert_converts(result) -> None:
    for table, rows in result.rows.items():
        assert to_arrow(RAW_SCHEMAS[table], rows).num_rows == len(rows)


# -- configuration ------------------------------------------------------------------------


def test_without_a_connection_the_public_appview_is_used():
    platform = BlueskyPlatform()
    assert platform.base_url == DEFAULT_BASE_URL == "https://public.api.bsky.app"
    assert (
        Xrpc(platform.context.client(), platform.base_url).url("app.bsky.actor.getProfile")
        == "https://public.api.bsky.app/xrpc/app.bsky.actor.getProfile"
    )
    # the registry's way in: "socialpulse.platforms.bluesky:BlueskyPlatform"
    assert isinstance(get_platform("bluesky"), BlueskyPlatform)


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (None, "https://public.api.bsky.app"),
        ({"host": None, "schema": None}, "https://public.api.bsky.app"),
        ({"host": "public.api.bsky.app", "schema": "https"}, "https://public.api.bsky.app"),
        ({"host": "api.bsky.app"}, "https://api.bsky.app"),
        ({"host": "http://127.0.0.1:8123/"}, "http://127.0.0.1:8123"),
        ({"host": "127.0.0.1", "schema": "http", "port": 8123}, "http://127.0.0.1:8123"),
        ({"host": "https://appview.example.org/xrpc"}, "https://appview.example.org"),
    ],
)
def test_base_url_from_the_airflow_connection(connection, expected):
    assert base_url(connection) == expected
    assert BlueskyPlatform(PlatformContext(connection=connection)).base_url == expected


def test_handles_uris_and_urls():
    assert normalise_actor("@Korn.bsky.social ") == "korn.bsky.social"
    assert normalise_actor(KORN) == KORN
    assert split_at_uri(P1) == (KORN, "app.bsky.feed.post", "3mfreshrye2aa")
    assert web_url("handle.invalid", P1) == f"https://bsky.app/profile/{KORN}/post/3mfreshrye2aa"
    with pytest.raises(ValueError, match="not an at:// record URI"):
        split_at_uri("https://bsky.app/profile/x/post/y")


# -- a full fetch -------------------------------------------------------------------------


def test_feed_threads_and_snapshot_are_exact(httpserver, platform, sleeps):
    serve(httpserver, *KORN_FILES)
    result = platform.fetch([KORN_REF], WINDOW)

    assert result.errors == []
    # P1 counts 5 direct replies: Alice, Bob, Dave, a deleted and a blocked one, all five
    # in the tree; P2A 2 of 2: no thread is short
    assert result.warnings == []
    assert_korn_exact(result)
    assert_converts(result)
    httpserver.check_assertions()  # every request had a recorded answer
    assert requests_to(httpserver, "app.bsky.actor.getProfile") == [{"actor": "korn.bsky.social"}]
    # page 3 holds 02-15 16:00 < 02-16 00:00: its cursor (2026-02-10...) is never asked for
    assert requests_to(httpserver, "app.bsky.feed.getAuthorFeed") == [
        {"actor": KORN, "limit": "100"},
        {"actor": KORN, "limit": "100", "cursor": "2026-02-26T09:05:00.000Z"},
        {"actor": KORN, "limit": "100", "cursor": "2026-02-17T08:00:00.000Z"},
    ]
    # threads only for own originals with replyCount > 0 (not P3, not the replies KR1/KR2,
    # not the reposts), oldest first; P2B came with P2A's thread
    assert requests_to(httpserver, "app.bsky.feed.getPostThread") == [
        {"uri": P2A, "depth": "100", "parentHeight": "0"},
        {"uri": P1, "depth": "100", "parentHeight": "0"},
    ]
    assert sleeps == []  # RateLimit-Remaining 2990 of 3000: no pacing


def test_the_account_can_be_registered_by_did(httpserver, platform):
    # the recorded profile answers the DID as it answers the handle
    ex = exchange("korn_profile")
    httpserver.expect_request(
        "/xrpc/app.bsky.actor.getProfile", query_string={"actor": KORN}
    ).respond_with_handler(lambda _r: _response(ex["response"]))
    serve(httpserver, *KORN_FILES[1:])
    result = platform.fetch([AccountRef("baeckerei-korn", KORN)], WINDOW)
    assert result.errors == []
    assert result.rows["account_snapshots"] == [{**KORN_SNAPSHOT, "handle": KORN}]
    assert result.rows["post_observations"] == KORN_POSTS


def test_missing_counters_are_zero_and_an_empty_feed_is_no_error(httpserver, platform):
    # nordbank_profile_new has no followersCount/followsCount/postsCount (all optional)
    serve(httpserver, "nordbank_profile_new", "nordbank_feed_empty")
    result = platform.fetch([NORD_REF], WINDOW)
    assert result.errors == []
    assert result.rows["account_snapshots"] == [
        {
            "platform": "bluesky",
            "company_id": "nordbank",
            "account_id": NORD,
            "handle": "nordbank.de",
            "observed_at": FIXED_NOW,
            "followers": 0,
            "following": 0,
            "posts_total": 0,
            "posts_since": t("2026-02-16T00:00"),
        }
    ]
    assert result.rows["post_observations"] == result.rows["thread_replies"] == []
    assert len(requests_to(httpserver, "app.bsky.feed.getAuthorFeed")) == 1


# -- how far back: a backfill, the page limit ------------------------------------------------

OLD = at(KORN, "3moldpostaaaa")


def test_a_backfill_reads_its_whole_window_and_reports_a_short_thread(httpserver, platform):
    # since = min(start 02-12, end - 14 days = 02-16) = 2026-02-12 00:00
    window = FetchWindow(t("2026-02-12T00:00"), WINDOW.end, lookback=dt.timedelta(days=14))
    serve(httpserver, *KORN_FILES, "korn_thread_old")
    result = platform.fetch([KORN_REF], window)
    assert result.errors == []
    korn = rows_of(result, "baeckerei-korn")
    assert korn["account_snapshots"] == [{**KORN_SNAPSHOT, "posts_since": t("2026-02-12T00:00")}]
    # page 3: OLD (02-15 16:00; likeCount 30, replyCount 2, repostCount 4, quoteCount 1) is
    # in; 3molderpostaa (02-10) is older than since: out, and the paging ends there
    assert korn["post_observations"] == [
        *KORN_POSTS,
        _post(OLD, "2026-02-15T16:00", "original", 30, 2, 4, 1, f"{KORN_PROFILE}/3moldpostaaaa"),
    ]
    assert len(requests_to(httpserver, "app.bsky.feed.getAuthorFeed")) == 3
    # OLD is the oldest thread: read first. Carol replies, Korn answers her
    carol = at(CAROL, "3mcarolvalent")
    assert korn["thread_replies"] == [
        _reply(carol, OLD, OLD, CAROL, "2026-02-15T17:00"),
        _reply(at(KORN, "3mkornvalenta"), OLD, carol, KORN, "2026-02-15T18:30"),
        *KORN_REPLIES,
    ]
    assert [r["uri"] for r in requests_to(httpserver, "app.bsky.feed.getPostThread")] == [
        OLD,
        P2A,
        P1,
    ]
    # OLD counts 2 direct replies, the tree holds Carol's only
    assert [(w.platform, w.company_id, w.handle, w.error) for w in result.warnings] == [
        (
            "bluesky",
            "baeckerei-korn",
            "@korn.bsky.social",
            f"thread of post {OLD}: read 1 of 2 direct replies (1 readable; replyCount also "
            "counts replies the AppView does not return, e.g. of taken-down or deactivated "
            "accounts, and it may cut very large threads)",
        )
    ]
    assert_converts(result)


def test_the_page_limit_keeps_what_was_read_and_warns(httpserver, platform):
    serve(httpserver, *KORN_FILES)
    ref = AccountRef("baeckerei-korn", "@korn.bsky.social", {"max_pages": 2})
    result = platform.fetch([ref], WINDOW)
    assert result.errors == []
    # two pages: nothing on them is older than since (02-16), so page 3 would be next; every
    # post of the window is on them anyway
    assert len(requests_to(httpserver, "app.bsky.feed.getAuthorFeed")) == 2
    korn = rows_of(result, "baeckerei-korn")
    assert korn["post_observations"] == KORN_POSTS
    assert korn["thread_replies"] == KORN_REPLIES
    # read back to the oldest item of page 2: Carol's post reposted at 02-17 08:00 (the
    # repost's time sorts the feed; the pinned post of 2025 does not count)
    assert result.rows["account_snapshots"] == [
        {**KORN_SNAPSHOT, "posts_since": t("2026-02-17T08:00")}
    ]
    assert [(w.company_id, w.error) for w in result.warnings] == [
        (
            "baeckerei-korn",
            f"author feed of {KORN}: page limit reached (max_pages 2) before 2026-02-16 "
            "00:00:00 UTC: posts before 2026-02-17 08:00:00 UTC not read; raise the account "
            "option max_pages",
        )
    ]
    assert_converts(result)


# -- the field study ----------------------------------------------------------------------


def test_probes_answered_unanswered_and_gone(httpserver, platform):
    serve(httpserver, *KORN_FILES, *PROBE_FILES)
    result = platform.fetch(
        [AccountRef("baeckerei-korn", "@korn.bsky.social", probes=PROBES)], WINDOW
    )

    sent = [t(p["sent_at"][:-1]) for p in PROBES]
    assert result.rows["probes"] == [
        # korn_probe_q1: Korn replies twice, directly at 13:00 and nested under Alice's
        # reply at 11:00; the earliest anywhere in the thread is the answer
        {
            **PROBES[0],
            "sent_at": sent[0],
            "answered_at": t("2026-02-20T11:00"),
            "answer_ref": f"{KORN_PROFILE}/3mkornonqonea",
            "observed_at": FIXED_NOW,
        },
        # korn_probe_q2: only Bob replied -> unanswered
        {**PROBES[1], "sent_at": sent[1], "observed_at": FIXED_NOW},
        # q3 (400 NotFound) and q4 (notFoundPost): gone -> unanswered, plus a warning each (the account's rows are fine)
        {**PROBES[2], "sent_at": sent[2], "observed_at": FIXED_NOW},
        {**PROBES[3], "sent_at": sent[3], "observed_at": FIXED_NOW},
    ]
    assert result.errors == []
    assert [(e.company_id, e.handle) for e in result.warnings] == [
        ("baeckerei-korn", "@korn.bsky.social")
    ] * 2
    assert result.warnings[0].error.startswith(
        f"probe bsky-korn-3: question {PROBES[2]['question_ref']} is gone"
    )
    assert result.warnings[1].error.startswith(
        f"probe bsky-korn-4: question {PROBES[3]['question_ref']} is gone"
    )
    # the account's own rows do not suffer from its probes
    assert_korn_exact(result)
    assert_converts(result)
    # one handle to resolve (probe 1); probe 3 names the DID already
    assert requests_to(httpserver, "com.atproto.identity.resolveHandle") == [
        {"handle": "researcher.bsky.social"}
    ]


def test_an_answer_never_precedes_its_question(httpserver, platform):
    # the registry says the question went out at 12:00, the company's first reply in
    # korn_probe_q1 is dated 11:00 (a late entry in the registry): answered_at = sent_at
    probe = {**PROBES[0], "sent_at": "2026-02-20T12:00:00Z"}
    serve(httpserver, *KORN_FILES, "resolve_researcher", "korn_probe_q1")
    result = platform.fetch(
        [AccountRef("baeckerei-korn", "@korn.bsky.social", probes=(probe,))], WINDOW
    )
    assert result.errors == []
    [row] = result.rows["probes"]
    assert row["sent_at"] == row["answered_at"] == t("2026-02-20T12:00")
    assert row["answer_ref"] == f"{KORN_PROFILE}/3mkornonqonea"


# -- rate limits and transient faults -----------------------------------------------------


def test_ratelimit_headers_pace_the_next_request(httpserver, platform, sleeps):
    # the profile response says: 1 request left of 3000, the window resets in 60 s (epoch)
    reset = str(int(time.time()) + 60)
    serve(
        httpserver, "korn_profile", headers={"RateLimit-Remaining": "1", "RateLimit-Reset": reset}
    )
    serve(httpserver, *KORN_FILES[1:])
    result = platform.fetch([KORN_REF], WINDOW)
    assert result.errors == []
    assert_korn_exact(result)
    # only the reserve (1) is left: wait for the reset before the first feed page; later
    # responses carry 2990 left again
    assert len(sleeps) == 1 and 55 <= sleeps[0] <= 60


def test_429_with_retry_after_is_waited_out(httpserver, platform, sleeps):
    serve(httpserver, "korn_profile_429", once=True)  # Retry-After: 7
    serve(httpserver, *KORN_FILES)
    result = platform.fetch([KORN_REF], WINDOW)
    assert result.errors == []
    assert_korn_exact(result)
    assert sleeps == [7.0]
    assert len(requests_to(httpserver, "app.bsky.actor.getProfile")) == 2


def test_502_is_retried_then_succeeds(httpserver, platform, sleeps):
    serve(httpserver, "korn_profile_502", once=True)
    serve(httpserver, *KORN_FILES)
    result = platform.fetch([KORN_REF], WINDOW)
    assert result.errors == []
    assert_korn_exact(result)
    # one backoff: 0.01 s plus up to 25 % jitter
    assert len(sleeps) == 1 and 0.01 <= sleeps[0] <= 0.0125


# -- one bad account, one good one ----------------------------------------------------------


def _slow_profile(httpserver) -> None:
    def slow(_request):
        time.sleep(0.8)  # past the 0.5 s read timeout, on both attempts
        return _response(exchange("nordbank_profile")["response"])

    httpserver.expect_request(
        "/xrpc/app.bsky.actor.getProfile", query_string={"actor": "nordbank.de"}
    ).respond_with_handler(slow)


FAULTS = {
    "unknown actor": (
        ("nordbank_profile_unknown",),
        r"^profile of 'nordbank\.de': XRPC error InvalidRequest: Profile not found \(http://.*"
        r"/xrpc/app\.bsky\.actor\.getProfile\?actor=nordbank\.de\)$",
    ),
    "taken down": (
        ("nordbank_profile_takendown",),
        r"^profile of 'nordbank\.de': XRPC error AccountTakedown: Account has been suspended",
    ),
    "html 200": (
        ("nordbank_profile_html",),
        r"^profile of 'nordbank\.de': expected JSON, got text/html; charset=utf-8: "
        r"'<!DOCTYPE html>",
    ),
    "missing did": (
        ("nordbank_profile_no_did",),
        r"^profile of 'nordbank\.de': getProfile response has no 'did'$",
    ),
    "truncated json": (
        ("nordbank_profile", "nordbank_feed_truncated"),
        r"^author feed: invalid JSON \(JSONDecodeError: .*\) in 700 bytes \(http://.*"
        r"app\.bsky\.feed\.getAuthorFeed",
    ),
    "repeating cursor": (
        ("nordbank_profile", "nordbank_feed_page1", "nordbank_feed_page2_repeat"),
        r"^author feed: page 2 returned cursor '2026-03-01T10:00:00\.000Z' again; "
        r"stopped paging \(the server is looping\)$",
    ),
    "timeout": (
        (),
        r"^profile of 'nordbank\.de': timed out after 2 attempts: .*getProfile",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_one_bad_account_does_not_block_the_other(httpserver, platform, fault):
    files, message = FAULTS[fault]
    if fault == "timeout":
        _slow_profile(httpserver)
    serve(httpserver, *files, *KORN_FILES)

    result = platform.fetch([NORD_REF, KORN_REF], WINDOW)

    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.platform, error.company_id, error.handle) == (
        "bluesky",
        "nordbank",
        "nordbank.de",
    )
    assert re.match(message, error.error), error.error
    # nothing half-fetched: not even the snapshot of a profile that was read
    assert all(not rows for rows in rows_of(result, "nordbank").values())
    assert all(r.get("account_id") != NORD for rows in result.rows.values() for r in rows)
    assert_korn_exact(result)
    assert_converts(result)


# -- the client's limits: a dripping, broken or slow account costs only itself --------------
# The client: read timeout 0.5 s, deadline 1 s per request, one retry.


def _dripping(_request):
    def body():
        yield b'{"did": '
        for _ in range(100):  # a byte every 0.1 s for 10 s: the read timeout never trips
            time.sleep(0.1)
            yield b" "

    return Response(body(), content_type="application/json")


def _cut_short(_request):
    # 600 bytes announced, 26 sent, then the end of the connection
    return Response(
        iter([b'{"did": "did:plc:nordbank2']),
        content_type="application/json",
        headers={"Content-Length": "600"},
    )


PROFILE_URL = r"\(http://.*/xrpc/app\.bsky\.actor\.getProfile\?actor=nordbank\.de\)$"
LIMIT_FAULTS = {
    "dripping profile": (
        _dripping,
        r"^profile of 'nordbank\.de': deadline of 1 s exceeded after 2 attempts: .*" + PROFILE_URL,
    ),
    "body cut short": (
        _cut_short,
        r"^profile of 'nordbank\.de': response body broken after 2 attempts: "
        r"ChunkedEncodingError: .*IncompleteRead.*" + PROFILE_URL,
    ),
}


@pytest.mark.timeout(30)  # a dripping server must not hold the batch up forever
@pytest.mark.parametrize("fault", list(LIMIT_FAULTS))
def test_a_dripping_or_broken_account_costs_only_itself(httpserver, sleeps, fault):
    handler, message = LIMIT_FAULTS[fault]
    httpserver.expect_request(
        "/xrpc/app.bsky.actor.getProfile", query_string={"actor": "nordbank.de"}
    ).respond_with_handler(handler)
    serve(httpserver, *KORN_FILES)
    context = PlatformContext(
        connection={"host": httpserver.url_for("").rstrip("/")},
        http=limited_client(sleeps, deadline=1.0),
        clock=lambda: FIXED_NOW,
    )
    result = BlueskyPlatform(context=context).fetch([NORD_REF, KORN_REF], WINDOW)
    assert [(e.company_id, e.handle) for e in result.errors] == [("nordbank", "nordbank.de")]
    assert re.match(message, result.errors[0].error), result.errors[0].error
    assert all(not rows for rows in rows_of(result, "nordbank").values())
    assert_korn_exact(result)
    assert (
        requests_to(httpserver, "app.bsky.actor.getProfile")[:2] == [{"actor": "nordbank.de"}] * 2
    )


@pytest.mark.timeout(30)
def test_an_account_past_its_time_budget_fails_even_in_its_probes(httpserver, sleeps):
    # Korn's rows are read in time; its second probe's thread drips: with 5 retries allowed,
    # the account's 1.5 s run out during the second attempt
    httpserver.expect_request(
        "/xrpc/app.bsky.feed.getPostThread",
        query_string={"uri": PROBES[1]["question_ref"], "depth": "100", "parentHeight": "0"},
    ).respond_with_handler(_dripping)
    serve(httpserver, *KORN_FILES, *PROBE_FILES, "nordbank_profile_new", "nordbank_feed_empty")
    context = PlatformContext(
        connection={"host": httpserver.url_for("").rstrip("/")},
        http=limited_client(sleeps, deadline=1.0, retries=5, account_budget=1.5),
        clock=lambda: FIXED_NOW,
    )
    korn = AccountRef("baeckerei-korn", "@korn.bsky.social", probes=PROBES)
    result = BlueskyPlatform(context=context).fetch([korn, NORD_REF], WINDOW)
    [error] = result.errors
    assert (error.company_id, error.handle) == ("baeckerei-korn", "@korn.bsky.social")
    assert re.match(
        r"^probe bsky-korn-2: time budget of 1\.5 s for account @korn\.bsky\.social "
        r"\(baeckerei-korn\) used up after \d+ requests: a request was cut off at its end "
        r"\(HttpPolicy\.account_budget\) \(http://.*getPostThread\?uri=at.*\)$",
        error.error,
    ), error.error
    # the account failed as a whole: none of its rows, not even the probes read in time
    assert all(not rows for rows in rows_of(result, "baeckerei-korn").values())
    assert result.warnings == []
    # the next account has a budget of its own
    assert [r["account_id"] for r in result.rows["account_snapshots"]] == [NORD]
    uris = [q["uri"] for q in requests_to(httpserver, "app.bsky.feed.getPostThread")]
    assert uris.count(PROBES[1]["question_ref"]) == 2 and PROBES[2]["question_ref"] not in uris


# -- one reply in the threads of two accounts' posts: delivered once ---------------------------

N1 = at(NORD, "3mnordthreada")  # nordbank_feed_shared: Nordbank's post of 03-01 09:00, 1 reply
BOB_REPLY = at(BOB, "3mbobreplyaaa")  # in korn_thread_p1 and in nordbank_thread_shared


def test_a_reply_in_the_threads_of_two_accounts_is_delivered_once(httpserver, platform, caplog):
    serve(httpserver, *KORN_FILES, "nordbank_profile", "nordbank_feed_shared")
    serve(httpserver, "nordbank_thread_shared")
    with caplog.at_level("WARNING", logger="socialpulse.platforms.base"):
        result = platform.fetch([KORN_REF, NORD_REF], WINDOW)
    assert result.errors == [] and result.warnings == []
    assert_korn_exact(result)  # Bob's reply under P1, as korn_thread_p1 has it
    nord = rows_of(result, "nordbank")
    # N1: likeCount 3, replyCount 1, repostCount 0, quoteCount 0
    assert [(r["post_id"], r["kind"], r["replies"]) for r in nord["post_observations"]] == [
        (N1, "original", 1)
    ]
    # N1's thread was read and held Bob's reply only, which came for Korn first
    assert [q["uri"] for q in requests_to(httpserver, "app.bsky.feed.getPostThread")] == [
        P2A,
        P1,
        N1,
    ]
    assert nord["thread_replies"] == []
    assert [r["reply_id"] for r in result.rows["thread_replies"]].count(BOB_REPLY) == 1
    [record] = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert record.getMessage() == (
        f"bluesky: thread_replies platform=bluesky, reply_id={BOB_REPLY}, "
        f"observed_at={FIXED_NOW} came for nordbank ({NORD}) and already for baeckerei-korn "
        f"({KORN}); kept the first, dropped the second"
    )
    assert_converts(result)
