"""The Instagram connector against recorded Graph API exchanges served on 127.0.0.1.

The fixtures (``tests/fixtures/instagram``) are exchanges in the Graph API's wire format:
the request (path, query, and where it matters the ``Authorization`` header) and the
response (status, headers with ``X-App-Usage`` / ``X-Business-Use-Case-Usage`` as JSON
strings, body). ``own/`` is what the token of Bäckerei Nord's own account reads, ``peers/``
business discovery through it, ``faults/`` what goes wrong. The ``paging.next`` links name
graph.facebook.com and carry ``access_token=`` as the real API's do; the connector follows
them on the configured server, without the token. pytest-httpserver serves them (real
HTTP through requests); a query must match exactly, so a token in a URL would not be
answered.

The expected rows were worked out by hand from the fixture files (the reasoning is in the
comments next to them), not copied from the connector's output.

The world at the fixed observation time FIXED_NOW = 2026-11-20 06:00 UTC, for the window
[2026-11-19, 2026-11-20) with 28 days lookback: media created since the cutoff
2026-11-20 - 28 days = 2026-10-23 00:00 UTC (up to FIXED_NOW) are observed.

* baeckerei_nord (own: the connection's ig_user_id 17841452719930012): profile.json,
  media_page1/2.json (page 2's last media is older than the cutoff), insights_<media>.json,
  comments_<media>.json, replies_<comment>.json.
* konditorei_sued, cafe_hafen (peers): business discovery, two pages each; cafe_hafen hides
  its like counts.
* gibtsnicht_xyz (no professional account) and baeckerei_west (business discovery refused).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse.platforms import get_platform
from socialpulse.platforms.base import AccountRef, FetchWindow, PlatformContext
from socialpulse.platforms.instagram import InstagramError, InstagramPlatform, parse_handle
from socialpulse.records import RAW_SCHEMAS, to_arrow
from tests.unit.conftest import Sleeps, fast_client
from tests.unit.platforms.recorded import Recordings

if TYPE_CHECKING:
    from pytest_httpserver import HTTPServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "instagram"
UTC = dt.UTC
TOKEN = "IGQVJtokenSECRET456"  # distinctive: searched for in every row, message and log line
EXPIRED = "EAAGexpiredTOKEN789"  # faults/profile_token_expired.json answers this one only


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


FIXED_NOW = t("2026-11-20T06:00:00")
WINDOW = FetchWindow(
    start=t("2026-11-19T00:00:00"), end=t("2026-11-20T00:00:00"), lookback=dt.timedelta(days=28)
)
# cutoff = WINDOW.since = min(start, end - 28 days) = 2026-10-23 00:00
CUTOFF = t("2026-10-23T00:00:00")

OWN_ID = "17841452719930012"  # the connection's ig_user_id; profile.json "id"
KONDITOREI_ID = "17841463002718844"  # discovery_konditorei_sued_page1.json business_discovery.id
HAFEN_ID = "17841470115562233"  # discovery_cafe_hafen_page1.json business_discovery.id

# the own media (media_page1/2.json), newest first
M1 = "18060411223344551"  # 2026-11-19 17:30 reel, 85 likes, 0 comments
M2 = "18059322334455662"  # 2026-11-18 09:00, 42 likes, 5 comments (3 + 2 replies)
M3 = "18058233445566773"  # 2026-11-12 12:00, 0 likes (own: a real 0), 0 comments
M4 = "18056144556677884"  # 2026-11-02 08:15, 61 likes, 4 comments (3 returned)
M5 = "18054055667788995"  # 2026-10-23 00:00 exactly the cutoff, 17 likes
M6 = "18051966778899006"  # 2026-10-20 10:00 before the cutoff: ends the paging
# comments (comments_<media>.json) and replies (replies_<comment>.json)
C1, R1 = "17986512340017101", "17986512340017102"  # anna 11-18 10:00; the bakery 11:00
C2, R2 = "18023456780017201", "18023456780017202"  # bob 11-18 12:00; the bakery 15:00
C3 = "17951234560017301"  # carla 11-19 08:00, no answer
C4, R3, R4 = "18002345670017401", "18002345670017402", "18002345670017403"
# C4 dave 11-02 09:00; R3 the bakery 09:30 (no `from`: username only); R4 anna's follow-up 10:00
ANNA, BOB, CARLA, DAVE = (
    "17858893269000101",
    "17858893269000202",
    "17858893269000303",
    "17858893269000404",
)

V = "/v26.0"
PROFILE_FIELDS = "id,username,followers_count,follows_count,media_count"
MEDIA_FIELDS = "id,timestamp,like_count,comments_count,permalink,media_type,media_product_type"
PEER_MEDIA_FIELDS = "id,timestamp,like_count,comments_count,permalink,media_type"
COMMENT_FIELDS = "id,timestamp,from{id,username},username,parent_id"
# media_page1.json's paging.cursors.after (in its next link)
OWN_AFTER_1 = "QVFIUk1ZAZAFc5RWZAXRnhyRXJXUy1Cc1ZAPN3JDeE9tSGdzaTdZAQ2hsT0RfZAVRVZAVZAqLU5wYmlRZAEJ0dEk4ZAHRzbk"
KONDITOREI_AFTER_1 = "QVFIUmtvbmRpdG9yZAWVfc3VlZF9wYWdlMV9hZAnRlcgZDZD"
HAFEN_AFTER_1 = "QVFIUmNhZAmVfaGFmZAW5fcGFnZAV8xX2FmdGVy"


def discovery_first(user: str) -> str:
    return (
        f"business_discovery.username({user}){{{PROFILE_FIELDS},"
        f"media.limit(50){{{PEER_MEDIA_FIELDS}}}}}"
    )


def discovery_next(user: str, after: str) -> str:
    return f"business_discovery.username({user}){{media.after({after}).limit(50){{{PEER_MEDIA_FIELDS}}}}}"


# -- serving the recordings ----------------------------------------------------------------


RECORDED = Recordings(FIXTURES)
load, serve, serve_folder = RECORDED.load, RECORDED.serve, RECORDED.serve_folder


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """graph.facebook.com, served on 127.0.0.1."""
    return httpserver_ipv4


def connection(server: HTTPServer, token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    """An Airflow connection as the pipeline hands it over (``extra`` already a dict)."""
    return {
        "conn_id": "instagram_default",
        "host": "127.0.0.1",
        "schema": "http",
        "port": server.port,
        "login": None,
        "password": token,
        # views, then impressions (as on an older API version): impressions gets dropped
        "extra": {"ig_user_id": OWN_ID, "views_metrics": ["views", "impressions"], **extra},
    }


def platform(
    server: HTTPServer,
    sleeps: Sleeps,
    conn: dict[str, Any] | None = None,
    others: dict[str, dict[str, Any]] | None = None,
) -> InstagramPlatform:
    context = PlatformContext(
        connection=conn if conn is not None else connection(server),
        http=fast_client(sleeps),
        clock=lambda: FIXED_NOW,
        connections=(others or {}).get,
    )
    return InstagramPlatform(context=context)


NORD = AccountRef("baeckerei-nord", "https://www.instagram.com/baeckerei_nord/")
KONDITOREI = AccountRef("konditorei-sued", "@konditorei_sued")
HAFEN = AccountRef("cafe-hafen", "Cafe_Hafen")  # case-insensitive
UNKNOWN = AccountRef("gibtsnicht", "gibtsnicht_xyz")
WEST = AccountRef("baeckerei-west", "@baeckerei_west")


def requested(s: HTTPServer) -> list[str]:
    """path?query of every request the server saw, in order (query decoded for reading)."""
    out = []
    for request, _ in s.log:
        query = "&".join(f"{k}={v}" for k, v in request.args.items(multi=True))
        out.append(request.path + (f"?{query}" if query else ""))
    return out


def rows_of(result, table: str, company_id: str | None = None) -> list[dict[str, Any]]:
    return [r for r in result.rows[table] if company_id in (None, r["company_id"])]


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows]


def assert_arrow(result) -> None:
    for name, rows in result.rows.items():
        assert to_arrow(RAW_SCHEMAS[name], rows).num_rows == len(rows)


# -- what the rows must be (worked out from the fixtures) ----------------------------------

SNAPSHOT_COLUMNS = ("account_id", "followers", "following", "posts_total", "posts_since")
# profile.json: followers_count 2480, follows_count 180, media_count 412; read back to the cutoff
NORD_SNAPSHOT = (OWN_ID, 2480, 180, 412, CUTOFF)

POST_COLUMNS = (
    "post_id",
    "created_at",
    "kind",
    "likes",
    "replies",
    "reposts",
    "quotes",
    "views",
    "url",
)
P = "https://www.instagram.com/p/"
NORD_POSTS = [
    # page 1. views: insights_<media>.json, "views" (impressions was dropped, see below);
    # M2's insights give total_value.value instead of values[0].value
    (
        M1,
        t("2026-11-19T17:30:00"),
        "original",
        85,
        0,
        0,
        0,
        1520,
        "https://www.instagram.com/reel/DRa1KxYiQ2b/",
    ),
    (M2, t("2026-11-18T09:00:00"), "original", 42, 5, 0, 0, 930, P + "DRXk3mTCe7N/"),
    # own media keep a like count of 0: the owner sees the real count
    (M3, t("2026-11-12T12:00:00"), "original", 0, 0, 0, 0, 410, P + "DRG9pLwCv4s/"),
    # page 2: M4, M5 (exactly at the cutoff: inside [cutoff, now]); M6 (10-20) is before the
    # cutoff: no row, and it ends the paging (page 2's next link is not followed)
    (M4, t("2026-11-02T08:15:00"), "original", 61, 4, 0, 0, 1210, P + "DQs2Hn0iK8d/"),
    (M5, t("2026-10-23T00:00:00"), "original", 17, 0, 0, 0, 388, P + "DQU7rYbCf1m/"),
]

THREAD_COLUMNS = (
    "reply_id",
    "root_post_id",
    "in_reply_to_id",
    "author_id",
    "author_is_company",
    "created_at",
)
NORD_THREADS = [
    # threads of the media with comments_count > 0, oldest media first: M4, then M2.
    # M4: dave's comment answers the media; its replies (flat under it) answer the comment
    (C4, M4, M4, DAVE, False, t("2026-11-02T09:00:00")),
    # R3 comes without `from` (older API versions): "username:<name>", and the username
    # baeckerei_nord is the own account's
    (R3, M4, C4, "username:baeckerei_nord", True, t("2026-11-02T09:30:00")),
    (R4, M4, C4, ANNA, False, t("2026-11-02T10:00:00")),
    # M2: the comments edge lists newest first (C3, C2, C1); each comment's replies follow it
    (C3, M2, M2, CARLA, False, t("2026-11-19T08:00:00")),
    (C2, M2, M2, BOB, False, t("2026-11-18T12:00:00")),
    (R2, M2, C2, OWN_ID, True, t("2026-11-18T15:00:00")),
    (C1, M2, M2, ANNA, False, t("2026-11-18T10:00:00")),
    (R1, M2, C1, OWN_ID, True, t("2026-11-18T11:00:00")),
]


def is_insights_warning(text: str) -> bool:
    """Graph.get_with_metrics' warning that impressions was dropped (metric[1] of
    "views,impressions"), naming the connection's extra key of this connector."""
    return (
        text.startswith("insights metric impressions dropped: the Graph API v26.0")
        and "(#100) metric[1] must be one of the following values: reach" in text
        and "(fbtrace_id AvX8nQ2LkP0)" in text
        and text.endswith("instagram_default's extra views_metrics")
    )


SHORT_THREAD_WARNING = (
    # M4 counts 4 comments (comments_count includes replies); C4 + R3 + R4 = 3 were returned
    f"thread of post {M4}: read 3 of 4 direct replies (1 comment and 2 replies returned; "
    "Instagram's comments_count counts both, and hidden, restricted or deleted comments are "
    "not returned)"
)

NORD_REQUESTS = [
    f"{V}/{OWN_ID}?fields={PROFILE_FIELDS}",
    f"{V}/{OWN_ID}/media?fields={MEDIA_FIELDS}&limit=50",
    # page 1's next link without its access_token; page 2 holds M6 (< cutoff): no page 3
    f"{V}/{OWN_ID}/media?fields={MEDIA_FIELDS}&limit=50&after={OWN_AFTER_1}",
    # views: views_metrics views, impressions; impressions refused once, then views alone
    f"{V}/{M1}/insights?metric=views,impressions",
    f"{V}/{M1}/insights?metric=views",
    f"{V}/{M2}/insights?metric=views",
    f"{V}/{M3}/insights?metric=views",
    f"{V}/{M4}/insights?metric=views",
    f"{V}/{M5}/insights?metric=views",
    # threads, oldest media first; one replies request per top-level comment
    f"{V}/{M4}/comments?fields={COMMENT_FIELDS}&limit=50",
    f"{V}/{C4}/replies?fields={COMMENT_FIELDS}&limit=50",
    f"{V}/{M2}/comments?fields={COMMENT_FIELDS}&limit=50",
    f"{V}/{C3}/replies?fields={COMMENT_FIELDS}&limit=50",
    f"{V}/{C2}/replies?fields={COMMENT_FIELDS}&limit=50",
    f"{V}/{C1}/replies?fields={COMMENT_FIELDS}&limit=50",
]

PEER_POST_COLUMNS = ("post_id", "created_at", "likes", "replies", "views", "url")
KONDITOREI_POSTS = [
    # page 1, then page 2 by media.after(<page 1's after cursor>); page 2 holds 10-15 media
    # (< cutoff): no row, no page 3. Peers: views null (no insights), likes as reported
    ("18049887766554401", t("2026-11-19T15:00:00"), 233, 12, None, P + "DRc4TnBCy2A/"),
    ("18047776655443302", t("2026-11-10T18:30:00"), 198, 7, None, P + "DRB8wQxC0pL/"),
    ("18045665544332203", t("2026-10-28T07:45:00"), 120, 3, None, P + "DQi5LmNCa7R/"),
]
HAFEN_POSTS = [
    # like_count left out (hidden, v11.0+) -> null; like_count 0 (hidden, as older versions
    # say) -> null; 57 real likes kept. Page 2 has no after cursor: the end of the account
    ("18052211009988701", t("2026-11-17T11:00:00"), None, 4, None, P + "DRPq7sUCk3V/"),
    ("18050099887766502", t("2026-11-05T16:20:00"), None, 1, None, P + "DQ1nB6vC9eT/"),
    ("18048877665544303", t("2026-10-30T09:10:00"), 57, 2, None, P + "DQm3KpWCe8S/"),
]
HIDDEN_LIKES_WARNING = (
    # 2 of the 3 media kept have like_count 0 or none
    "likes hidden or zero on 2 of 3 media: left out of likes_per_1k (business discovery "
    "reports a hidden like count as 0 or not at all, so a real 0 is left out too)"
)
PEER_REQUESTS = [
    f"{V}/{OWN_ID}?fields={discovery_first('konditorei_sued')}",
    f"{V}/{OWN_ID}?fields={discovery_next('konditorei_sued', KONDITOREI_AFTER_1)}",
    f"{V}/{OWN_ID}?fields={discovery_first('cafe_hafen')}",
    f"{V}/{OWN_ID}?fields={discovery_next('cafe_hafen', HAFEN_AFTER_1)}",
    f"{V}/{OWN_ID}?fields={discovery_first('gibtsnicht_xyz')}",
    f"{V}/{OWN_ID}?fields={discovery_first('baeckerei_west')}",
]


def service_facts(threads: list[dict[str, Any]], roots: set[str]) -> tuple[float, float, int]:
    """(service_level, response_hours_median, unique_interactors) by METRICS.md rule 5."""
    company_replies = {r["reply_id"] for r in threads if r["author_is_company"]}
    direct = [
        r
        for r in threads
        if not r["author_is_company"]
        and (r["in_reply_to_id"] in roots or r["in_reply_to_id"] in company_replies)
    ]
    hours = []
    for r in direct:
        answers = [
            a["created_at"]
            for a in threads
            if a["author_is_company"] and a["in_reply_to_id"] == r["reply_id"]
        ]
        if answers:
            hours.append((min(answers) - r["created_at"]).total_seconds() / 3600)
    authors = {r["author_id"] for r in threads if not r["author_is_company"]}
    return len(hours) / len(direct), statistics.median(hours), len(authors)


def assert_nord_rows(result) -> None:
    snaps = rows_of(result, "account_snapshots", "baeckerei-nord")
    assert table(snaps, SNAPSHOT_COLUMNS) == [NORD_SNAPSHOT]
    assert snaps[0]["handle"] == NORD.handle
    posts = rows_of(result, "post_observations", "baeckerei-nord")
    assert table(posts, POST_COLUMNS) == NORD_POSTS
    threads = rows_of(result, "thread_replies", "baeckerei-nord")
    assert table(threads, THREAD_COLUMNS) == NORD_THREADS
    for row in snaps + posts + threads:
        assert row["platform"] == "instagram" and row["observed_at"] == FIXED_NOW
    for row in posts + threads:
        assert row["account_id"] == OWN_ID


# -- handles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handle", "user"),
    [
        ("baeckerei_nord", "baeckerei_nord"),
        ("@Baeckerei_Nord", "baeckerei_nord"),
        (" @carla.kocht ", "carla.kocht"),
        ("https://www.instagram.com/baeckerei_nord/", "baeckerei_nord"),
        ("https://instagram.com/Baeckerei_Nord", "baeckerei_nord"),
        ("https://www.instagram.com/baeckerei_nord/?hl=de", "baeckerei_nord"),
    ],
)
def test_handles_name_the_username(handle, user):
    assert parse_handle(handle) == user


@pytest.mark.parametrize(
    "handle",
    [
        "",
        "baeckerei nord",
        "https://www.instagram.com/p/DRXk3mTCe7N/",
        "https://example.com/baeckerei_nord",
        "baeckerei_nord){id}",  # would escape business discovery's field expression
        "a" * 31,
    ],
)
def test_other_handles_are_refused_clearly(handle):
    with pytest.raises(InstagramError, match=r"not an Instagram handle.*instagram\.com/name/"):
        parse_handle(handle)


def test_the_platform_is_registered():
    p = get_platform("instagram", PlatformContext())
    assert isinstance(p, InstagramPlatform) and p.name == "instagram"


# -- the whole world: own account and peers ------------------------------------------------


def test_own_account_and_peers(server, sleeps):
    serve_folder(server, "own")
    serve_folder(server, "peers")
    accounts = [NORD, KONDITOREI, HAFEN, UNKNOWN, WEST]
    result = platform(server, sleeps).fetch(accounts, WINDOW)

    assert_nord_rows(result)
    # the own account's service facts by METRICS.md rule 5 from its thread rows: direct
    # third-party replies = the comments on its media, C1, C2, C3, C4 (R4 answers dave's C4,
    # not the bakery); answered C1 after 1 h (10:00 -> R1 11:00), C2 after 3 h (12:00 -> R2
    # 15:00), C4 after 0.5 h (09:00 -> R3 09:30): service level 3 / 4 = 0.75, median of
    # (1, 3, 0.5) = 1 h; interactors anna (C1, R4), bob, carla, dave = 4
    threads = rows_of(result, "thread_replies", "baeckerei-nord")
    assert service_facts(threads, {M1, M2, M3, M4, M5}) == (0.75, 1.0, 4)

    # peers: discovery_*.json business_discovery counters
    snaps = {r["company_id"]: r for r in result.rows["account_snapshots"]}
    assert table([snaps["konditorei-sued"]], SNAPSHOT_COLUMNS) == [
        (KONDITOREI_ID, 5310, 402, 1288, CUTOFF)
    ]
    assert table([snaps["cafe-hafen"]], SNAPSHOT_COLUMNS) == [(HAFEN_ID, 860, 512, 3, CUTOFF)]
    assert set(snaps) == {"baeckerei-nord", "konditorei-sued", "cafe-hafen"}
    konditorei = rows_of(result, "post_observations", "konditorei-sued")
    assert table(konditorei, PEER_POST_COLUMNS) == KONDITOREI_POSTS
    hafen = rows_of(result, "post_observations", "cafe-hafen")
    assert table(hafen, PEER_POST_COLUMNS) == HAFEN_POSTS
    for row in konditorei + hafen:  # media are originals; Instagram has no reposts or quotes
        assert (row["kind"], row["reposts"], row["quotes"]) == ("original", 0, 0)
    # no comments for peers: the Graph API does not show them
    assert {r["company_id"] for r in result.rows["thread_replies"]} == {"baeckerei-nord"}
    assert result.rows["probes"] == []

    insights, short, hidden = result.warnings
    assert is_insights_warning(insights.error), insights.error
    assert [(w.company_id, w.severity) for w in result.warnings] == [
        ("baeckerei-nord", "warning"),
        ("baeckerei-nord", "warning"),
        ("cafe-hafen", "warning"),
    ]
    assert (short.error, hidden.error) == (SHORT_THREAD_WARNING, HIDDEN_LIKES_WARNING)
    errors = [(e.platform, e.company_id, e.handle, e.severity) for e in result.errors]
    assert errors == [
        ("instagram", "gibtsnicht", "gibtsnicht_xyz", "error"),
        ("instagram", "baeckerei-west", "@baeckerei_west", "configuration"),
    ]
    unknown, west = (e.error for e in result.errors)
    assert unknown == (
        "business discovery of @gibtsnicht_xyz (page 1): @gibtsnicht_xyz was not found as an "
        "Instagram professional account (code 110/2207013: Invalid user id (The user with "
        "username: gibtsnicht_xyz cannot be found.) (fbtrace_id AqP3sLk9XyZ)): business discovery reads only professional (business or creator) "
        "accounts; check the handle and whether the account is still professional"
    )
    assert west.startswith(
        "business discovery of @baeckerei_west (page 1): business discovery is not allowed for "
        "the token of connection instagram_default: it needs instagram_basic"
    )
    assert "Instagram Public Content Access feature (App Review)" in west
    assert "(code 10: (#10) To use 'Instagram Public Content Access'" in west

    assert requested(server) == NORD_REQUESTS + PEER_REQUESTS
    # every response reports 2 % usage and no time to regain access: nothing waited
    assert sleeps == []
    assert_arrow(result)


def test_the_token_goes_in_the_header_only_and_never_into_rows_messages_or_logs(
    server, sleeps, caplog
):
    # the comments of M2 fail with a message quoting the token (Graph quotes parameters)
    serve(server, load(f"faults/comments_{M2}_echoes_token.json"))
    serve_folder(server, "own")
    serve_folder(server, "peers")
    with caplog.at_level(logging.DEBUG):
        result = platform(server, sleeps).fetch([NORD, KONDITOREI, HAFEN, UNKNOWN], WINDOW)
    [nord_error, unknown_error] = result.errors
    assert nord_error.company_id == "baeckerei-nord"
    assert nord_error.error.startswith(
        f"reading the comments of media {M2}: GraphError: code 100: (#100) Invalid parameter: "
        "the value *** of access_token must not be sent"
    )
    assert rows_of(result, "post_observations", "baeckerei-nord") == []  # nothing half
    assert rows_of(result, "post_observations", "cafe-hafen")  # the others go on
    texts = [repr(row) for rows in result.rows.values() for row in rows]
    texts += [repr(e) for e in result.errors + result.warnings]
    texts += [record.getMessage() for record in caplog.records]
    assert texts and not [text for text in texts if TOKEN in text]
    for request, _ in server.log:  # the next links' access_token was dropped
        assert TOKEN not in request.query_string.decode()
        assert "access_token" not in request.args
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"


# -- the token: expired, refused, missing ----------------------------------------------------


def test_an_expired_token_costs_its_accounts_one_request_and_the_others_go_on(server, sleeps):
    # instagram_default holds an expired token (faults/profile_token_expired.json answers
    # that token only: code 190/463); baeckerei_nord names its own connection, with a good one
    serve(server, load("faults/profile_token_expired.json"))
    serve_folder(server, "own")
    serve_folder(server, "peers")
    nord_conn = {**connection(server), "conn_id": "instagram_baeckerei_nord"}
    nord = AccountRef(NORD.company_id, NORD.handle, {"connection": "instagram_baeckerei_nord"})
    p = platform(
        server,
        sleeps,
        conn=connection(server, token=EXPIRED),
        others={"instagram_baeckerei_nord": nord_conn},
    )
    result = p.fetch([KONDITOREI, nord, HAFEN, UNKNOWN], WINDOW)

    # every account of the expired token: the same configuration error, naming the step,
    # the connection, Meta's words (code 190/463) and what to do (Graph's hint)
    assert [(e.company_id, e.severity) for e in result.errors] == [
        ("konditorei-sued", "configuration"),
        ("cafe-hafen", "configuration"),
        ("gibtsnicht", "configuration"),
    ]
    assert len({e.error for e in result.errors}) == 1
    message = result.errors[0].error
    assert message.startswith(
        f"reading the Instagram account {OWN_ID} (connection instagram_default): the access "
        "token in connection instagram_default is not valid (code 190/463: Error validating "
        "access token: Session has expired on Thursday, 19-Nov-26 14:00:00 PST."
    )
    assert "create a new long-lived token and put it in the connection's password" in message
    # exactly one request with the expired token; the own account read everything
    with_expired = [r for r, _ in server.log if r.headers["Authorization"] == f"Bearer {EXPIRED}"]
    assert len(with_expired) == 1
    assert requested(server) == [NORD_REQUESTS[0], *NORD_REQUESTS]
    assert_nord_rows(result)
    assert [w.company_id for w in result.warnings] == ["baeckerei-nord"] * 2


def test_a_403_without_a_body_is_the_tokens_configuration_error(server, sleeps):
    server.expect_request(f"{V}/{OWN_ID}").respond_with_data("", status=403)
    result = platform(server, sleeps).fetch([NORD, KONDITOREI], WINDOW)
    assert [(e.company_id, e.severity) for e in result.errors] == [
        ("baeckerei-nord", "configuration"),
        ("konditorei-sued", "configuration"),
    ]
    # Graph: a 403 without an error object is the token refused (TokenInvalid)
    assert "the access token in connection instagram_default is not valid (HTTP 403)" in (
        result.errors[1].error
    )
    assert len(server.log) == 1  # the second account asked nothing


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        (
            {"extra": {}},
            "connection instagram_default has no ig_user_id in its extra: the id of your "
            "Instagram professional account, which business discovery is asked through; GET "
            "/me/accounts?fields=instagram_business_account with the token gives it",
        ),
        (
            {"password": None},
            "connection instagram_default holds no access token (its password is empty)",
        ),
        (
            {"extra": {"ig_user_id": OWN_ID, "api_version": "latest"}},
            "connection instagram_default: api_version 'latest' is not a Graph API version",
        ),
    ],
)
def test_a_connection_that_cannot_work_is_every_accounts_configuration_error(
    server, sleeps, conn, message
):
    result = platform(server, sleeps, conn={**connection(server), **conn}).fetch(
        [NORD, KONDITOREI], WINDOW
    )
    assert [(e.company_id, e.severity) for e in result.errors] == [
        ("baeckerei-nord", "configuration"),
        ("konditorei-sued", "configuration"),
    ]
    assert all(message in e.error for e in result.errors), result.errors[0].error
    assert server.log == []


def test_an_ig_user_id_that_is_no_instagram_account_is_every_accounts_configuration_error(
    server, sleeps
):
    # the extra names the Facebook Page's id: "(#100) Tried accessing nonexisting field
    # (followers_count) on node type (Page)"
    serve(server, load("faults/profile_page_id.json"))
    result = platform(server, sleeps).fetch([NORD, KONDITOREI, HAFEN], WINDOW)
    assert [(e.company_id, e.severity) for e in result.errors] == [
        ("baeckerei-nord", "configuration"),
        ("konditorei-sued", "configuration"),
        ("cafe-hafen", "configuration"),
    ]
    assert len({e.error for e in result.errors}) == 1
    assert result.errors[0].error == (
        f"reading the Instagram account {OWN_ID} (connection instagram_default): check that "
        "ig_user_id in the extra of connection instagram_default is the id of the Instagram "
        "professional account the token belongs to (GET "
        "/me/accounts?fields=instagram_business_account gives it) and that the token has "
        "instagram_basic and pages_show_list (code 100: (#100) Tried accessing nonexisting "
        "field (followers_count) on node type (Page) (fbtrace_id AfD5gH8jK2m))"
    )
    assert len(server.log) == 1  # asked once for the whole connection


def test_no_connection_and_an_undefined_named_one_are_configuration_errors(server, sleeps):
    context = PlatformContext(http=fast_client(sleeps), clock=lambda: FIXED_NOW)
    named = AccountRef("baeckerei-nord", "baeckerei_nord", {"connection": "instagram_nord"})
    result = InstagramPlatform(context=context).fetch([KONDITOREI, named], WINDOW)
    assert [(e.company_id, e.severity, e.error) for e in result.errors] == [
        (
            "konditorei-sued",
            "configuration",
            "Airflow connection instagram_default is not defined: add it (password = the "
            'access token, extra {"ig_user_id": "<your Instagram account id>"}) in the Airflow '
            "UI (Admin > Connections), as AIRFLOW_CONN_INSTAGRAM_DEFAULT or in the secrets "
            "backend; see the Instagram connector's README",
        ),
        (
            "baeckerei-nord",
            "configuration",
            "Airflow connection 'instagram_nord' (named in the account's options) is not "
            "defined: add it in the Airflow UI (Admin > Connections), as "
            "AIRFLOW_CONN_INSTAGRAM_NORD or in the secrets backend",
        ),
    ]


def test_a_named_connection_of_another_account_reads_it_as_a_peer(server, sleeps):
    serve_folder(server, "own")
    serve_folder(server, "peers")
    # konditorei_sued names the bakery's connection: its token belongs to @baeckerei_nord
    ref = AccountRef(KONDITOREI.company_id, KONDITOREI.handle, {"connection": "instagram_x"})
    others = {"instagram_x": {**connection(server), "conn_id": "instagram_x"}}
    result = platform(server, sleeps, others=others).fetch([ref], WINDOW)
    assert result.errors == []
    assert table(rows_of(result, "post_observations"), PEER_POST_COLUMNS) == KONDITOREI_POSTS
    assert [w.error for w in result.warnings] == [
        "connection instagram_x belongs to @baeckerei_nord, not to @konditorei_sued: read as "
        "a peer through business discovery (no comments, no views); name the account's own "
        "connection or none"
    ]


# -- rate limits -----------------------------------------------------------------------------


def test_an_80002_rate_limit_is_waited_out_then_the_request_succeeds(server, sleeps):
    # M2's insights answer once with 80002 (BUC call_count 100, no time to regain access
    # given): Graph waits its first backoff, 30 s, and asks again
    serve(server, load(f"faults/insights_{M2}_rate_limited.json"), once=True)
    serve_folder(server, "own")
    result = platform(server, sleeps).fetch([NORD], WINDOW)
    assert result.errors == []
    assert_nord_rows(result)
    assert sleeps == [30.0]
    assert requested(server).count(f"{V}/{M2}/insights?metric=views") == 2


def test_a_time_to_regain_access_is_waited_before_the_next_request(server, sleeps):
    # the profile's response says: instagram budget at 96 %, 2 minutes to regain access ->
    # the next request (media page 1) waits 2 x 60 = 120 s; its answer (2 %) ends the waiting
    buc = {OWN_ID: [{"type": "instagram", "call_count": 96, "total_cputime": 20,
                     "total_time": 31, "estimated_time_to_regain_access": 2}]}  # fmt: skip
    serve(
        server,
        load("own/profile.json"),
        headers={"X-Business-Use-Case-Usage": json.dumps(buc)},
    )
    serve_folder(server, "own", skip={"profile"})
    result = platform(server, sleeps).fetch([NORD], WINDOW)
    assert result.errors == []
    assert_nord_rows(result)
    assert sleeps == [120.0]


def test_an_app_rate_limit_stops_the_tokens_other_accounts_without_requests(server, sleeps):
    # media page 1 answers code 4 (X-App-Usage call_count 100) every time: Graph waits 30,
    # 60, 120 s (its backoff doubling, no time to regain access given) and gives up after
    # 3 retries; the peers of the same token then get an error without a request
    serve(server, load("faults/media_page1_app_limit.json"))
    serve_folder(server, "own")
    serve_folder(server, "peers")
    result = platform(server, sleeps).fetch([NORD, KONDITOREI, HAFEN], WINDOW)
    assert sleeps == [30.0, 60.0, 120.0]
    assert requested(server) == [NORD_REQUESTS[0]] + [NORD_REQUESTS[1]] * 4
    assert [(e.company_id, e.severity) for e in result.errors] == [
        ("baeckerei-nord", "error"),
        ("konditorei-sued", "error"),
        ("cafe-hafen", "error"),
    ]
    assert result.errors[0].error.startswith(
        f"reading the media of account {OWN_ID}: GraphRateLimited: rate limit, code 4: (#4) "
        "Application request limit reached"
    )
    assert result.errors[1].error == result.errors[2].error
    assert result.errors[1].error.startswith(
        "not read: the Graph API rate limit of the app (code 4) was reached with connection "
        "instagram_default earlier in this fetch, so its accounts are not asked again until the "
        "next run (rate limit, code 4: (#4) Application request limit reached"
    )
    assert all(rows == [] for rows in result.rows.values())


# -- what costs an account a detail: warnings ------------------------------------------------


def test_the_page_limit_keeps_what_was_read_and_warns(server, sleeps):
    serve_folder(server, "own")
    serve_folder(server, "peers")
    nord = AccountRef(NORD.company_id, NORD.handle, {"max_pages": 1})
    konditorei = AccountRef(KONDITOREI.company_id, KONDITOREI.handle, {"max_pages": 1})
    result = platform(server, sleeps).fetch([nord, konditorei], WINDOW)
    assert result.errors == []
    # one page each: M1, M2, M3 (page 1 has a next link: not followed) read back to M3
    # (2026-11-12 12:00); konditorei's page 1 back to 2026-11-10 18:30
    snaps = table(rows_of(result, "account_snapshots"), SNAPSHOT_COLUMNS)
    assert snaps == [
        (*NORD_SNAPSHOT[:4], t("2026-11-12T12:00:00")),
        (KONDITOREI_ID, 5310, 402, 1288, t("2026-11-10T18:30:00")),
    ]
    assert (
        table(rows_of(result, "post_observations", "baeckerei-nord"), POST_COLUMNS)
        == (NORD_POSTS[:3])
    )
    # M2's thread only (M4 was not read)
    assert table(rows_of(result, "thread_replies"), THREAD_COLUMNS) == NORD_THREADS[3:]
    assert (
        table(rows_of(result, "post_observations", "konditorei-sued"), PEER_POST_COLUMNS)
        == (KONDITOREI_POSTS[:2])
    )
    # the page limit is found while reading the media, the dropped metric after it
    assert is_insights_warning(result.warnings[1].error)
    del result.warnings[1]
    assert [(w.company_id, w.error) for w in result.warnings] == [
        (
            "baeckerei-nord",
            f"media of account {OWN_ID}: page limit reached (max_pages 1) before 2026-10-23 "
            "00:00:00 UTC: posts before 2026-11-12 12:00:00 UTC not read; raise the account "
            "option max_pages",
        ),
        (
            "konditorei-sued",
            f"media of account {KONDITOREI_ID}: page limit reached (max_pages 1) before "
            "2026-10-23 00:00:00 UTC: posts before 2026-11-10 18:30:00 UTC not read; raise the "
            "account option max_pages",
        ),
    ]
    assert f"after={OWN_AFTER_1}" not in "".join(requested(server))
    assert_arrow(result)


def test_insights_without_permission_cost_the_views_only(server, sleeps):
    serve(server, load(f"faults/insights_{M1}_no_permission.json"))
    serve_folder(server, "own")
    result = platform(server, sleeps).fetch([NORD], WINDOW)
    assert result.errors == []
    posts = rows_of(result, "post_observations")
    # the rows as before, without views
    assert table(posts, POST_COLUMNS) == [(*p[:7], None, p[8]) for p in NORD_POSTS]
    assert table(rows_of(result, "thread_replies"), THREAD_COLUMNS) == NORD_THREADS
    assert [w.error for w in result.warnings] == [
        "views not read: the token of connection instagram_default may not read media "
        "insights (code 10: (#10) Application does not have permission for this action "
        "(fbtrace_id AhN6vB3xC7d)); grant instagram_manage_insights to the app's user and "
        "create a new token",
        SHORT_THREAD_WARNING,
    ]
    # one insights request, then none
    assert [r for r in requested(server) if "/insights" in r] == [
        f"{V}/{M1}/insights?metric=views,impressions"
    ]


def test_views_metrics_come_from_the_connection(server, sleeps):
    serve_folder(server, "own")
    result = platform(server, sleeps, conn=connection(server, views_metrics="views")).fetch(
        [NORD], WINDOW
    )
    assert result.errors == []
    assert table(rows_of(result, "post_observations"), POST_COLUMNS) == NORD_POSTS
    # views alone: nothing dropped, no warning about it
    assert [w.error for w in result.warnings] == [SHORT_THREAD_WARNING]
    assert f"{V}/{M1}/insights?metric=views,impressions" not in requested(server)


# -- what costs an account everything: errors ------------------------------------------------


def test_a_media_without_timestamp_costs_only_its_account(server, sleeps):
    serve(server, load("faults/media_page1_no_timestamp.json"))
    serve_folder(server, "own")
    serve_folder(server, "peers")
    result = platform(server, sleeps).fetch([NORD, KONDITOREI], WINDOW)
    assert [(e.company_id, e.severity, e.error) for e in result.errors] == [
        (
            "baeckerei-nord",
            "error",
            f"reading the media of account {OWN_ID}: media {M1} in page 1 has no valid "
            "'timestamp' (not a timestamp: None)",
        )
    ]
    for name in ("account_snapshots", "post_observations", "thread_replies"):
        assert rows_of(result, name, "baeckerei-nord") == []
    assert table(rows_of(result, "post_observations"), PEER_POST_COLUMNS) == KONDITOREI_POSTS


def test_a_repeated_discovery_cursor_is_a_pagination_loop(server, sleeps):
    # cafe_hafen's page 2 answers with page 1's after cursor again
    serve(server, load("faults/discovery_cafe_hafen_page2_loop.json"))
    serve_folder(server, "own")
    serve_folder(server, "peers")
    result = platform(server, sleeps).fetch([HAFEN, KONDITOREI], WINDOW)
    [error] = result.errors
    assert (error.company_id, error.severity) == ("cafe-hafen", "error")
    assert re.fullmatch(
        r"business discovery of @cafe_hafen \(page 2\): pagination loop, the after cursor "
        "repeats",
        error.error,
    ), error.error
    assert rows_of(result, "post_observations", "cafe-hafen") == []
    assert table(rows_of(result, "post_observations"), PEER_POST_COLUMNS) == KONDITOREI_POSTS


def test_an_unusable_handle_is_the_accounts_error(server, sleeps):
    serve_folder(server, "own")
    serve_folder(server, "peers")
    result = platform(server, sleeps).fetch([AccountRef("x", "instagram.com/p/1"), NORD], WINDOW)
    assert [(e.company_id, e.severity) for e in result.errors] == [("x", "error")]
    assert result.errors[0].error.startswith("not an Instagram handle: 'instagram.com/p/1'")
    assert_nord_rows(result)


def test_two_registry_accounts_on_one_profile_deliver_it_once(server, sleeps):
    serve_folder(server, "own")
    serve_folder(server, "peers")
    twice = AccountRef("konditorei-sued-2", "konditorei_sued")
    result = platform(server, sleeps).fetch([KONDITOREI, twice], WINDOW)
    assert result.errors == []
    # the second account's rows have the same keys (platform, id, observed_at): dropped
    assert [r["company_id"] for r in result.rows["account_snapshots"]] == ["konditorei-sued"]
    assert len(result.rows["post_observations"]) == 3
