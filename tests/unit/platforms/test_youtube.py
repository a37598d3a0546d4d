"""The YouTube connector against recorded Data API v3 responses served on 127.0.0.1.

The fixtures (``tests/fixtures/youtube``, see its README.md) are recorded exchanges: the
request (path and query) and the response (status, headers, body) in the API's wire format.
``korn/`` is a channel read by handle with threads and field-study questions,
``stadtwerke/`` a channel read by id (its 100 uploads and 53 videos are generated below, in
the same format: more than one page and one batch), ``nordbank/`` the account that breaks,
``errors/`` error answers any request may get. pytest-httpserver serves them; every request
goes through ``requests`` and the shared HttpClient.

The expected rows, units and messages below were worked out by hand from the fixture files
(the reasoning is in the comments), not copied from the connector's output.

The world: FIXED_NOW = 2026-03-02 06:00 UTC, which is 2026-03-01 22:00 in Los Angeles (PST,
UTC-8): the quota's day is 2026-03-01. The window [2026-03-01, 2026-03-02) with 14 days of
lookback reads videos published since 2026-02-16 00:00 UTC (``since``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest

from socialpulse.platforms.base import AccountRef, FetchWindow, PlatformContext
from socialpulse.platforms.youtube import (
    DEFAULT_BASE_URL,
    QuotaLedger,
    QuotaUsedUp,
    YoutubeError,
    YoutubePlatform,
    api_base,
    parse_channel,
    parse_comment_ref,
)
from socialpulse.records import RAW_SCHEMAS, to_arrow
from tests.unit.conftest import Sleeps, fast_client
from tests.unit.platforms.recorded import Recordings

if TYPE_CHECKING:
    from pytest_httpserver import HTTPServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "youtube"
UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


FIXED_NOW = t("2026-03-02T06:00:00")
DAY = "2026-03-01"  # FIXED_NOW in Pacific time: 2026-03-01 22:00 PST
WINDOW = FetchWindow(t("2026-03-01T00:00:00"), t("2026-03-02T00:00:00"), dt.timedelta(days=14))
SINCE = t("2026-02-16T00:00:00")  # min(start 03-01, end 03-02 - 14 days = 02-16)
# an API key as Google makes them ("AIza" + 35 characters); never in a URL, log or message
KEY = "AIzaSyD-k0rnTestKey_0123456789abcdefgh"
KORN_KEY = "AIzaSyB-k0rnOwnProject_9876543210zyxwv"

KORN = "UCk0rnBaeckerei7Rye2Brot"  # korn/channels.json items[0].id
STADT = "UCstadtwerkeNord4Energy0"  # stadtwerke/channels.json items[0].id
NORD = "UCn0rdbankSparen2Euro4qx"
ANNA, BOB = "UCanna2Kundin3Roggen4xyz", "UCbob2Kunde3fragt4oftenq"
CARLA, DAVE = "UCcarla2Cafe3Nachbarin4x", "UCdave2Student3hungrig4a"
EMIL, FRIDA = "UCemil2Rentner3Brotfan4b", "UCfrida2Koechin3Backen4c"

# Korn's uploads (korn/playlist.json, newest first; videoPublishedAt)
V1 = "kRn01Brezel"  # 2026-03-02 05:00: after the window's end, before FIXED_NOW: observed
V2 = "kRn02Kruste"  # 2026-03-01 08:00
V3 = "kRn03Sauert"  # 2026-02-27 12:00
V4 = "kRn04Ofenfr"  # 2026-02-24 09:00
VX = "kRn0XPrivat"  # 2026-02-22 10:00: requested, but videos does not return it (private)
V5 = "kRn05Zimtsn"  # 2026-02-20 15:00
V6 = "kRn06Dinkel"  # 2026-02-16 00:00: exactly since, so in
V7 = "kRn07Roggen"  # 2026-02-10 11:00: before since (not requested); the probes' video

# comments (korn/threads_*.json, comments_*.json)
T1, T2 = "UgzT1annaKrusteFrage4AaABAg", "UgwT2bobOeffnungszeit4AaABAg"
T3, T4 = "UgxT3carlaSauerteigTag4AaABAg", "UgyT4daveMehlfrage004AaABAg"
T5, T6 = "UgzT5ohneKanal0000000004AaABAg", "UgwT6kornRezeptHinweis4AaABAg"
V3_TOKEN = (
    "Z2V0X25ld2VzdF9maXJzdC0tQ2dnSWdBUVZGN2ZST0JJRkNJZ2dHQUFTQlFpb0lCZ0FFZ1VJaVNBWUFCSUZDSjBn"
    "R0FFU0JRaUhJQmdBR0FBaURnb01DTnluOUpRR0VLRHVpcDRC"
)

# field-study questions under V7 (korn/probe_*.json)
Q1, Q2 = "UgxQ1studieRoggenFrage4AaABAg", "UgyQ2studieGlutenFrei4AaABAg"
Q3, Q4 = "UgzQ3studieGeloescht04AaABAg", "UgwQ4studieNichtDa0004AaABAg"
C5 = "UgxC5annaRoggenMischung4AaABAg"
Q5 = f"{C5}.Q5studieNachfrage00000"

CHANNEL_PARTS = "part=snippet,statistics,contentDetails"
BUDGET_HOWTO = (
    "the rest is read tomorrow after midnight Pacific time, or raise daily_quota_units in "
    "connection youtube_default's extra (and the project's quota in Google Cloud Console)"
)
KEY_HOWTO = (
    "create an API key in Google Cloud Console (APIs & Services > Credentials) in a project "
    'with the "YouTube Data API v3" enabled (APIs & Services > Library), restrict it to '
    "that API, and put it in the password of the Airflow connection youtube_default"
)


# -- serving the recordings ----------------------------------------------------------------


RECORDED = Recordings(FIXTURES)
load = RECORDED.load


def serve(
    server: HTTPServer, exchange: dict[str, Any], *, once: bool = False, key: str | None = None
) -> None:
    """Answer the recorded request with the recorded response (``key``: only when sent)."""
    RECORDED.serve(server, exchange, once=once, match={"X-Goog-Api-Key": key} if key else {})


def serve_folder(
    server: HTTPServer, folder: str, skip: frozenset[str] = frozenset(), key: str | None = None
) -> None:
    RECORDED.serve_folder(server, folder, skip, match={"X-Goog-Api-Key": key} if key else {})


def error_exchange(name: str, request: dict[str, Any]) -> dict[str, Any]:
    """An error answer of ``errors/`` to a recorded request."""
    return {"request": request, "response": load(f"errors/{name}.json")["response"]}


def requested(server: HTTPServer) -> list[str]:
    """path?query (decoded) of every request the server saw, in order."""
    out = []
    for request, _ in server.log:
        q = unquote(request.query_string.decode())
        out.append(request.path + (f"?{q}" if q else ""))
    return out


def connection(server: HTTPServer, **extra: Any) -> dict[str, Any]:
    return {
        "host": f"http://127.0.0.1:{server.port}",
        "schema": None,
        "port": None,
        "login": None,
        "password": KEY,
        "extra": extra,
    }


def context(
    server: HTTPServer,
    state_dir: Path | None,
    sleeps: Sleeps,
    *,
    now: dt.datetime = FIXED_NOW,
    **kwargs: Any,
) -> PlatformContext:
    kwargs.setdefault("connection", connection(server))
    return PlatformContext(
        state_dir=state_dir, http=fast_client(sleeps), clock=lambda: now, **kwargs
    )


def platform(server: HTTPServer, state_dir: Path | None, sleeps: Sleeps, **kwargs: Any):
    return YoutubePlatform(context=context(server, state_dir, sleeps, **kwargs))


def quota_file(state_dir: Path, day: str = DAY) -> dict[str, Any]:
    return json.loads((state_dir / f"quota-{day}.json").read_text(encoding="utf-8"))


def units(state_dir: Path, conn_id: str = "youtube_default", day: str = DAY) -> int:
    return quota_file(state_dir, day)["connections"][conn_id]["units"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "youtube"


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows]


def rows_of(result, name: str, company_id: str) -> list[dict[str, Any]]:
    return [r for r in result.rows[name] if r["company_id"] == company_id]


def assert_arrow(result) -> None:
    for name, rows in result.rows.items():
        assert to_arrow(RAW_SCHEMAS[name], rows).num_rows == len(rows)


# -- Bäckerei Korn: what its rows must be -------------------------------------------------

KORN_REF = AccountRef("baeckerei-korn", "https://www.youtube.com/@BaeckereiKorn")
SNAPSHOT_COLUMNS = ("account_id", "handle", "followers", "following", "posts_total", "posts_since")
# korn/channels.json: subscriberCount "1230", videoCount "10" (strings); no following count;
# the single uploads page reaches back before since: read back to since
KORN_SNAPSHOT = (KORN, KORN_REF.handle, 1230, None, 10, SINCE)

POST_COLUMNS = ("post_id", "created_at", "kind", "likes", "replies", "reposts", "quotes", "views")
KORN_POSTS = [
    # korn/videos.json, in its order; counts are strings: likeCount -> likes,
    # commentCount -> replies, viewCount -> views; YouTube has no reposts and quotes (0)
    (V1, t("2026-03-02T05:00:00"), "original", 12, 0, 0, 0, 340),
    # no likeCount: the likes are hidden -> null (not 0)
    (V2, t("2026-03-01T08:00:00"), "original", None, 6, 0, 0, 1520),
    (V3, t("2026-02-27T12:00:00"), "original", 45, 11, 0, 0, 2210),
    # no commentCount: comments are turned off -> 0 replies (and no thread request)
    (V4, t("2026-02-24T09:00:00"), "original", 21, 0, 0, 0, 780),
    # VX was asked for but not returned: no row
    (V5, t("2026-02-20T15:00:00"), "original", 3, 2, 0, 0, 410),
    (V6, t("2026-02-16T00:00:00"), "original", 0, 0, 0, 0, 95),
    # V7 .. V9 (before since) were not even asked for
]

THREAD_COLUMNS = (
    "reply_id",
    "root_post_id",
    "in_reply_to_id",
    "author_id",
    "author_is_company",
    "created_at",
)
R3 = [  # korn/comments_<T3>.json: the seven replies to Carla's comment, as listed
    (f"{T3}.B1kornDankeCarla00000", KORN, "2026-02-27T13:30:00"),
    (f"{T3}.B2carlaBlasenNormal000", CARLA, "2026-02-27T14:00:00"),
    (f"{T3}.B3emilAuchFrage0000000", EMIL, "2026-02-27T14:10:00"),
    (f"{T3}.B4kornJaGanzNormal0000", KORN, "2026-02-27T15:00:00"),
    (f"{T3}.B5fridaRoggenOderWeiz", FRIDA, "2026-02-27T16:00:00"),
    (f"{T3}.B6emilHatGeklappt00000", EMIL, "2026-02-28T08:00:00"),
    (f"{T3}.B7kornWeizenGehtAuch00", KORN, "2026-02-28T09:00:00"),
]
KORN_THREADS = [
    # Threads are read for the videos with commentCount > 0 in the videos' order: V2, V3,
    # V5. A top-level comment answers the video; a reply its top-level comment (parentId).
    # V2 (threads_kRn02Kruste.json, one page, newest first): Bob, then Anna with both her
    # replies embedded (totalReplyCount 2 = 2 embedded: no comments request)
    (T2, V2, V2, BOB, False, t("2026-03-01T11:00:00")),
    (T1, V2, V2, ANNA, False, t("2026-03-01T09:00:00")),
    (f"{T1}.A1kornDampf20Minuten00", V2, T1, KORN, True, t("2026-03-01T09:30:00")),
    (f"{T1}.A2annaDankeSchoen0000", V2, T1, ANNA, False, t("2026-03-01T10:00:00")),
    # V3 page 1: Carla's thread embeds 5 of its totalReplyCount 7: all 7 are read with
    # comments?parentId and replace the embedded ones; Dave's has none
    (T3, V3, V3, CARLA, False, t("2026-02-27T13:00:00")),
    *[(rid, V3, T3, who, who == KORN, t(at)) for rid, who, at in R3],
    (T4, V3, V3, DAVE, False, t("2026-02-27T12:30:00")),
    # V3 page 2 (its nextPageToken): an author without a channel (no authorChannelId) is
    # known by the name shown; the bakery's own top-level comment is the company's
    (T5, V3, V3, "name:Konrad K.", False, t("2026-02-27T12:20:00")),
    (T6, V3, V3, KORN, True, t("2026-02-27T12:05:00")),
    # V5: 403 commentsDisabled -> no rows, no error
]
# V2 counts 6 comments; its thread holds 2 top-level comments + 2 replies = 4 (V3: 4 + 7 =
# 11 of 11: complete; V5 is disabled: not compared)
V2_SHORT = (
    f"thread of post {V2}: read 4 of 6 direct replies (commentCount counts top-level "
    "comments and replies, also those held for review or as likely spam and deleted ones "
    "until it catches up; the API returns published comments only)"
)

CT = "part=snippet,replies&videoId={}&maxResults=100&textFormat=plainText"
KORN_REQUESTS = [
    f"/youtube/v3/channels?{CHANNEL_PARTS}&forHandle=@BaeckereiKorn",
    "/youtube/v3/playlistItems?part=contentDetails&playlistId=UUk0rnBaeckerei7Rye2Brot"
    "&maxResults=50",
    # the uploads since 02-16 (V1 .. V6 with VX), one batch; never V7 .. V9
    f"/youtube/v3/videos?part=statistics,snippet&id={V1},{V2},{V3},{V4},{VX},{V5},{V6}",
    "/youtube/v3/commentThreads?" + CT.format(V2),
    "/youtube/v3/commentThreads?" + CT.format(V3),
    "/youtube/v3/commentThreads?" + CT.format(V3) + f"&pageToken={V3_TOKEN}",
    f"/youtube/v3/comments?part=snippet&parentId={T3}&maxResults=100",
    "/youtube/v3/commentThreads?" + CT.format(V5),
]
# 1 unit per request: 1 channels + 1 uploads page + 1 videos batch + 5 comment reads = 8
KORN_UNITS = 8


def assert_korn_rows(result) -> None:
    snaps = rows_of(result, "account_snapshots", "baeckerei-korn")
    assert table(snaps, SNAPSHOT_COLUMNS) == [KORN_SNAPSHOT]
    posts = rows_of(result, "post_observations", "baeckerei-korn")
    assert table(posts, POST_COLUMNS) == KORN_POSTS
    assert [r["url"] for r in posts] == [
        f"https://www.youtube.com/watch?v={p[0]}" for p in KORN_POSTS
    ]
    threads = rows_of(result, "thread_replies", "baeckerei-korn")
    assert table(threads, THREAD_COLUMNS) == KORN_THREADS
    for row in snaps + posts + threads:
        assert row["platform"] == "youtube" and row["observed_at"] == FIXED_NOW
    for row in posts + threads:
        assert row["account_id"] == KORN
    assert_arrow(result)


# -- Stadtwerke Nord: 100 uploads on two pages, 53 of them since ``since`` ------------------
# Upload n (n = 1, 2, ...) is swNord<nnn>_v, published 2026-03-01 00:00 - (n - 1) x 6 h:
# n = 53 at 03-01 - 312 h = 03-01 - 13 days = 2026-02-16 00:00 = since (in),
# n = 54 at 02-15 18:00 (out). Page 1 holds n = 1..50, page 2 n = 51..100 (it holds n = 54,
# older than since: the paging stops; its nextPageToken is not followed). The videos are
# asked for in two batches: n = 1..50 and n = 51..53.
# Counts: viewCount 100 n, likeCount n (hidden, i.e. absent, when n is a multiple of 10),
# commentCount 0 (no thread requests).

STADT_REF = AccountRef("stadtwerke-nord", f"https://www.youtube.com/channel/{STADT}")
STADT_UPLOADS = "UUstadtwerkeNord4Energy0"
PAGE2, PAGE3 = "EAAaBlBUOkNESQ", "EAAaBlBUOkNHUQ"
GOOGLE_HEADERS = load("korn/channels.json")["response"]["headers"]


def sw_id(n: int) -> str:
    return f"swNord{n:03d}_v"


def sw_published(n: int) -> dt.datetime:
    return t("2026-03-01T00:00:00") - (n - 1) * dt.timedelta(hours=6)


def _z(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def sw_page(numbers: range, token: str | None, next_token: str | None) -> dict[str, Any]:
    """An uploads page in the API's format."""
    query = {"part": "contentDetails", "playlistId": STADT_UPLOADS, "maxResults": "50"}
    if token:
        query["pageToken"] = token
    body: dict[str, Any] = {"kind": "youtube#playlistItemListResponse", "etag": f"sw{token}"}
    if next_token:
        body["nextPageToken"] = next_token
    if token:
        body["prevPageToken"] = "EAEaBlBUOkNESQ"
    body["items"] = [
        {
            "kind": "youtube#playlistItem",
            "etag": f"swItem{n}",
            "id": f"VVVzdGFkdHdlcmtl{n:03d}",
            "contentDetails": {"videoId": sw_id(n), "videoPublishedAt": _z(sw_published(n))},
        }
        for n in numbers
    ]
    body["pageInfo"] = {"totalResults": 412, "resultsPerPage": 50}
    return {
        "request": {"method": "GET", "path": "/youtube/v3/playlistItems", "query": query},
        "response": {"status": 200, "headers": GOOGLE_HEADERS, "body": body},
    }


def sw_video(n: int) -> dict[str, Any]:
    stats = {"viewCount": str(100 * n), "likeCount": str(n), "favoriteCount": "0"}
    if n % 10 == 0:
        del stats["likeCount"]
    stats["commentCount"] = "0"
    title = f"Baustelle Nordstraße, Woche {n}"
    return {
        "kind": "youtube#video",
        "etag": f"swVideo{n}",
        "id": sw_id(n),
        "snippet": {
            "publishedAt": _z(sw_published(n)),
            "channelId": STADT,
            "title": title,
            "description": "Was sich auf der Baustelle diese Woche tut.",
            "thumbnails": {
                "default": {
                    "url": f"https://i.ytimg.com/vi/{sw_id(n)}/default.jpg",
                    "width": 120,
                    "height": 90,
                }
            },
            "channelTitle": "Stadtwerke Nord",
            "categoryId": "25",
            "liveBroadcastContent": "none",
            "localized": {"title": title, "description": "Was sich auf der Baustelle tut."},
        },
        "statistics": stats,
    }


def sw_videos(numbers: range) -> dict[str, Any]:
    ids = ",".join(sw_id(n) for n in numbers)
    return {
        "request": {
            "method": "GET",
            "path": "/youtube/v3/videos",
            "query": {"part": "statistics,snippet", "id": ids},
        },
        "response": {
            "status": 200,
            "headers": GOOGLE_HEADERS,
            "body": {
                "kind": "youtube#videoListResponse",
                "etag": f"swVideos{numbers.start}",
                "items": [sw_video(n) for n in numbers],
                "pageInfo": {"totalResults": len(numbers), "resultsPerPage": len(numbers)},
            },
        },
    }


def serve_stadtwerke(server: HTTPServer, page2: dict[str, Any] | None = None) -> None:
    serve(server, load("stadtwerke/channels.json"))
    serve(server, sw_page(range(1, 51), None, PAGE2))
    serve(server, page2 or sw_page(range(51, 101), PAGE2, PAGE3))
    serve(server, sw_videos(range(1, 51)))
    serve(server, sw_videos(range(51, 54)))


def sw_post(n: int) -> tuple:
    likes = None if n % 10 == 0 else n
    return (sw_id(n), sw_published(n), "original", likes, 0, 0, 0, 100 * n)


STADT_HIDDEN = (
    f"channel {STADT}: the subscriber count is hidden (statistics.hiddenSubscriberCount); "
    "followers recorded as null: the account is left out of the company's followers, "
    "growth and rates (METRICS rules 2 and 4)"
)
STADT_REQUESTS = [
    f"/youtube/v3/channels?{CHANNEL_PARTS}&id={STADT}",
    f"/youtube/v3/playlistItems?part=contentDetails&playlistId={STADT_UPLOADS}&maxResults=50",
    f"/youtube/v3/playlistItems?part=contentDetails&playlistId={STADT_UPLOADS}&maxResults=50"
    f"&pageToken={PAGE2}",
    "/youtube/v3/videos?part=statistics,snippet&id=" + ",".join(sw_id(n) for n in range(1, 51)),
    "/youtube/v3/videos?part=statistics,snippet&id=" + ",".join(sw_id(n) for n in range(51, 54)),
]
# 1 channels + 2 uploads pages + 2 videos batches = 5
STADT_UNITS = 5

NORD_REF = AccountRef("nordbank", "@nordbank")


# -- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handle", "expected"),
    [
        ("@BaeckereiKorn", ("forHandle", "@BaeckereiKorn")),
        ("BaeckereiKorn", ("forHandle", "@BaeckereiKorn")),
        (" https://www.youtube.com/@BaeckereiKorn ", ("forHandle", "@BaeckereiKorn")),
        ("https://youtube.com/@baeckerei.korn/videos", ("forHandle", "@baeckerei.korn")),
        ("m.youtube.com/@b-korn_1", ("forHandle", "@b-korn_1")),
        ("https://www.youtube.com/@B%C3%A4ckerei", ("forHandle", "@Bäckerei")),
        (STADT, ("id", STADT)),
        (f"https://www.youtube.com/channel/{STADT}", ("id", STADT)),
        (f"https://www.youtube.com/channel/{STADT}/featured", ("id", STADT)),
    ],
)
def test_channel_handles_and_ids(handle, expected):
    assert parse_channel(handle) == expected


@pytest.mark.parametrize(
    "handle",
    [
        "",
        "@x",  # handles have 3 to 30 characters
        "https://www.youtube.com/c/BaeckereiKorn",  # legacy custom URLs name no handle
        "https://www.youtube.com/user/baeckerei",
        "https://www.youtube.com/channel/UCshort",
        "https://vimeo.com/@BaeckereiKorn",
        "Bäckerei Korn",
    ],
)
def test_other_handles_are_refused_clearly(handle):
    with pytest.raises(YoutubeError, match=r"not a YouTube channel: .* use @handle"):
        parse_channel(handle)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (f"https://www.youtube.com/watch?v={V7}&lc={Q1}", (V7, Q1)),
        (f"https://www.youtube.com/watch?lc={Q5}&v={V7}", (V7, Q5)),
        (f"https://youtu.be/{V7}?lc={Q1}", (V7, Q1)),
        (f"https://www.youtube.com/shorts/{V7}?lc={Q1}", (V7, Q1)),
        (Q2, (None, Q2)),
        (f" {Q5} ", (None, Q5)),
    ],
)
def test_question_refs(ref, expected):
    assert parse_comment_ref(ref) == expected


@pytest.mark.parametrize(
    "ref", ["", f"https://www.youtube.com/watch?v={V7}", "https://social.example/@x/1", "mail#1"]
)
def test_other_question_refs_are_refused_clearly(ref):
    with pytest.raises(YoutubeError, match=r"is not a YouTube comment"):
        parse_comment_ref(ref)


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (None, DEFAULT_BASE_URL),
        ({"host": None}, "https://www.googleapis.com"),
        ({"host": "www.googleapis.com"}, "https://www.googleapis.com"),
        ({"host": "http://127.0.0.1:8123/"}, "http://127.0.0.1:8123"),
        ({"host": "127.0.0.1", "schema": "http", "port": 8123}, "http://127.0.0.1:8123"),
        ({"host": "https://proxy.example/youtube/v3"}, "https://proxy.example"),
    ],
)
def test_api_base_from_the_connection(conn, expected):
    assert api_base(conn) == expected


# -- the happy paths -------------------------------------------------------------------------


def test_a_channel_by_handle_is_read_exactly(httpserver, state, sleeps):
    serve_folder(httpserver, "korn")
    result = platform(httpserver, state, sleeps).fetch([KORN_REF], WINDOW)
    assert result.errors == []
    assert_korn_rows(result)
    assert [(w.company_id, w.severity, w.error) for w in result.warnings] == [
        ("baeckerei-korn", "warning", V2_SHORT)
    ]
    assert requested(httpserver) == KORN_REQUESTS
    assert units(state) == KORN_UNITS
    assert sleeps == []


def test_a_channel_by_id_pages_its_uploads_and_batches_its_videos(httpserver, state, sleeps):
    serve_stadtwerke(httpserver)
    result = platform(httpserver, state, sleeps).fetch([STADT_REF], WINDOW)
    assert result.errors == []
    # stadtwerke/channels.json: hiddenSubscriberCount true and no subscriberCount -> null
    # and a warning; videoCount "412"
    snaps = result.rows["account_snapshots"]
    assert table(snaps, SNAPSHOT_COLUMNS) == [(STADT, STADT_REF.handle, None, None, 412, SINCE)]
    assert [w.error for w in result.warnings] == [STADT_HIDDEN]
    posts = table(result.rows["post_observations"], POST_COLUMNS)
    # 53 videos: both batches, in the uploads' order
    assert len(posts) == 53
    assert posts[0] == (sw_id(1), t("2026-03-01T00:00:00"), "original", 1, 0, 0, 0, 100)
    # n = 10 at 03-01 - 54 h = 02-26 18:00; likeCount absent -> None
    assert posts[9] == (sw_id(10), t("2026-02-26T18:00:00"), "original", None, 0, 0, 0, 1000)
    # n = 50, the last of batch 1: 03-01 - 294 h = 2026-02-16 18:00
    assert posts[49] == (sw_id(50), t("2026-02-16T18:00:00"), "original", None, 0, 0, 0, 5000)
    # n = 51 .. 53 from batch 2; n = 53 at exactly since
    assert posts[50:] == [
        (sw_id(51), t("2026-02-16T12:00:00"), "original", 51, 0, 0, 0, 5100),
        (sw_id(52), t("2026-02-16T06:00:00"), "original", 52, 0, 0, 0, 5200),
        (sw_id(53), t("2026-02-16T00:00:00"), "original", 53, 0, 0, 0, 5300),
    ]
    assert posts == [sw_post(n) for n in range(1, 54)]
    assert sum(1 for p in posts if p[3] is None) == 5  # n = 10, 20, 30, 40, 50
    assert result.rows["thread_replies"] == []  # commentCount 0 everywhere
    # page 2's nextPageToken (page 3) is never followed: page 2 holds n = 54 < since
    assert requested(httpserver) == STADT_REQUESTS
    assert units(state) == STADT_UNITS
    assert_arrow(result)


def _probe(n: int, ref: str, sent: str, quality: int | None = None, **kw: Any) -> dict:
    return {
        "probe_id": f"yt-korn-{n}",
        "company_id": "baeckerei-korn",
        "platform": "youtube",
        "channel": "public_post",
        "sent_at": sent,
        "question_ref": ref,
        "answered_at": None,
        "answer_ref": None,
        "quality": quality,
        **kw,
    }


WATCH = f"https://www.youtube.com/watch?v={V7}"
PROBES = (
    # Q1's replies: anna 10:00, the bakery 12:00, the bakery 11:00 -> its earliest, 11:00
    _probe(1, f"{WATCH}&lc={Q1}", "2026-02-18T09:00:00Z", quality=4),
    # Q2 (a bare comment id; the lookup names the video): only bob replied -> unanswered
    _probe(2, Q2, "2026-02-20T09:00:00Z"),
    # Q3's lookup returns no item: gone -> unanswered, warning
    _probe(3, f"{WATCH}&lc={Q3}", "2026-02-21T09:00:00Z"),
    # Q4's lookup is a 404 commentNotFound: gone -> unanswered, warning
    _probe(4, f"{WATCH}&lc={Q4}", "2026-02-22T09:00:00Z"),
    # Q5 is a reply in anna's thread C5 (10:00): the bakery's reply of 09:00 answered anna
    # before the question; its 10:20 reply is the answer. The registry says sent 10:30 (a
    # little late): the answer is recorded at 10:30, never before its question.
    _probe(5, f"{WATCH}&lc={Q5}", "2026-02-25T10:30:00Z"),
    # no comment in the reference: recorded unanswered, warning, no request
    _probe(6, WATCH, "2026-02-26T09:00:00Z"),
    # not a public post on YouTube: left to the registry's own batch (no row here)
    _probe(7, "mail#7", "2026-02-26T09:00:00Z", channel="email", platform=None),
    _probe(8, "https://social.example/@researcher/1", "2026-02-26T09:00:00Z", platform="mastodon"),
)
# lookup + replies for Q1, Q2, Q5 (2 each), the lookup only for Q3 and Q4: 8 units
PROBE_REQUESTS = [
    f"/youtube/v3/comments?part=snippet&id={Q1}",
    f"/youtube/v3/comments?part=snippet&parentId={Q1}&maxResults=100",
    f"/youtube/v3/comments?part=snippet&id={Q2}",
    f"/youtube/v3/comments?part=snippet&parentId={Q2}&maxResults=100",
    f"/youtube/v3/comments?part=snippet&id={Q3}",
    f"/youtube/v3/comments?part=snippet&id={Q4}",
    f"/youtube/v3/comments?part=snippet&id={Q5}",
    f"/youtube/v3/comments?part=snippet&parentId={C5}&maxResults=100",
]


def test_probes_answered_unanswered_and_gone(httpserver, state, sleeps):
    serve_folder(httpserver, "korn")
    ref = AccountRef(KORN_REF.company_id, KORN_REF.handle, probes=PROBES)
    result = platform(httpserver, state, sleeps).fetch([ref], WINDOW)
    assert result.errors == []
    assert_korn_rows(result)  # the probe problems cost the account nothing
    got = {
        r["probe_id"]: (r["answered_at"], r["answer_ref"], r["quality"])
        for r in result.rows["probes"]
    }
    assert got == {
        "yt-korn-1": (t("2026-02-18T11:00:00"), f"{WATCH}&lc={Q1}.C2kornFuenfTage00000000", 4),
        "yt-korn-2": (None, None, None),
        "yt-korn-3": (None, None, None),
        "yt-korn-4": (None, None, None),
        "yt-korn-5": (t("2026-02-25T10:30:00"), f"{WATCH}&lc={C5}.E2kornAntwortStudie0000", None),
        "yt-korn-6": (None, None, None),
    }
    p1 = next(r for r in result.rows["probes"] if r["probe_id"] == "yt-korn-1")
    assert (p1["platform"], p1["channel"], p1["sent_at"]) == (
        "youtube",
        "public_post",
        t("2026-02-18T09:00:00"),
    )
    assert p1["observed_at"] == FIXED_NOW
    assert [w.error for w in result.warnings] == [
        V2_SHORT,
        f"probe yt-korn-3: the question {WATCH}&lc={Q3} is gone (comment {Q3} is not "
        "returned: deleted, or held for review); recorded unanswered",
        f"probe yt-korn-4: the question {WATCH}&lc={Q4} is gone (HTTP 404 commentNotFound: "
        "The comment identified by the id parameter could not be found. "
        f"(http://127.0.0.1:{httpserver.port}/youtube/v3/comments?part=snippet&id={Q4})); "
        "recorded unanswered",
        f"probe yt-korn-6: question_ref {WATCH!r} is not a YouTube comment; use "
        "https://www.youtube.com/watch?v=<video id>&lc=<comment id> or the comment id; "
        "recorded unanswered",
    ]
    assert all(w.severity == "warning" for w in result.warnings)
    assert requested(httpserver) == KORN_REQUESTS + PROBE_REQUESTS
    assert units(state) == KORN_UNITS + 8  # 16
    assert_arrow(result)


# -- the daily quota ------------------------------------------------------------------------


def test_quota_units_are_counted_per_fetch_and_per_pacific_day(httpserver, state, sleeps, caplog):
    serve_folder(httpserver, "korn")
    serve_stadtwerke(httpserver)
    korn = AccountRef(KORN_REF.company_id, KORN_REF.handle, probes=PROBES)
    with caplog.at_level(logging.INFO, logger="socialpulse.platforms.youtube"):
        result = platform(httpserver, state, sleeps).fetch([korn, STADT_REF], WINDOW)
    assert result.errors == []
    # Korn 8 + its probes 8 + Stadtwerke 5 = 21 units, one per request made
    assert len(httpserver.log) == 21
    # the file of the Pacific day 2026-03-01 (UTC says 03-02 already)
    assert sorted(p.name for p in state.glob("quota-*.json")) == [f"quota-{DAY}.json"]
    saved = quota_file(state)
    assert saved["date"] == DAY and saved["time_zone"] == "America/Los_Angeles"
    assert saved["connections"]["youtube_default"] == {
        "units": 21,
        "budget": 10000,
        "exceeded": False,
        "updated_at": FIXED_NOW.isoformat(),
    }
    quota_lines = [
        r.getMessage() for r in caplog.records if "quota of connection" in r.getMessage()
    ]
    assert quota_lines == [
        "youtube quota of connection youtube_default: 21 units this fetch, 21 units on "
        f"{DAY} (Pacific time) of the daily budget of 10000"
    ]
    # a second fetch task the same day adds its own: 5 this fetch, 26 that day
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="socialpulse.platforms.youtube"):
        platform(httpserver, state, sleeps).fetch([STADT_REF], WINDOW)
    assert units(state) == 26
    assert [r.getMessage() for r in caplog.records if "quota of" in r.getMessage()] == [
        "youtube quota of connection youtube_default: 5 units this fetch, 26 units on "
        f"{DAY} (Pacific time) of the daily budget of 10000"
    ]


def test_the_budget_stops_the_fetch_and_later_fetches_the_same_day(httpserver, state, sleeps):
    serve_folder(httpserver, "korn")
    serve_stadtwerke(httpserver)
    conn = connection(httpserver, daily_quota_units=7)
    # Stadtwerke: units 1..5; Korn: channels 6, uploads 7, videos: 7 + 1 > 7 -> stop
    result = platform(httpserver, state, sleeps, connection=conn).fetch(
        [STADT_REF, KORN_REF], WINDOW
    )
    budget_used = (
        f"YouTube daily quota budget of 7 units for {DAY} (Pacific time) used up (7 units "
        f"used); {BUDGET_HOWTO}"
    )
    assert [(e.company_id, e.severity, e.error) for e in result.errors] == [
        ("baeckerei-korn", "configuration", budget_used)
    ]
    assert requested(httpserver) == STADT_REQUESTS + KORN_REQUESTS[:2]
    assert units(state) == 7
    # Korn has no rows at all (nothing half-fetched); Stadtwerke is complete
    for name in ("account_snapshots", "post_observations", "thread_replies"):
        assert rows_of(result, name, "baeckerei-korn") == []
    assert len(rows_of(result, "post_observations", "stadtwerke-nord")) == 53

    # another fetch task the same Pacific day (its own context, the same state folder):
    # every account gets the error without a request
    httpserver.clear_log()
    later = platform(httpserver, state, sleeps, connection=conn).fetch(
        [KORN_REF, STADT_REF], WINDOW
    )
    assert [(e.company_id, e.severity, e.error) for e in later.errors] == [
        ("baeckerei-korn", "configuration", budget_used),
        ("stadtwerke-nord", "configuration", budget_used),
    ]
    assert requested(httpserver) == []
    assert all(rows == [] for rows in later.rows.values())

    # after midnight Pacific time (2026-03-02 09:00 UTC = 01:00 PST) a new day begins
    next_day = platform(
        httpserver, state, sleeps, connection=conn, now=t("2026-03-02T09:00:00")
    ).fetch([STADT_REF], WINDOW)
    assert next_day.errors == []
    assert units(state, day="2026-03-02") == STADT_UNITS
    assert units(state) == 7  # the day before, as it was


def test_quota_exceeded_stops_later_accounts_and_later_fetches(httpserver, state, sleeps):
    serve_folder(httpserver, "korn")
    stadt_channel = load("stadtwerke/channels.json")["request"]
    serve(httpserver, error_exchange("quota_exceeded", stadt_channel))
    nord = AccountRef("nordbank", "@nordbank")  # nothing served: it must not be asked
    result = platform(httpserver, state, sleeps).fetch([KORN_REF, STADT_REF, nord], WINDOW)
    # Korn: 8 units; Stadtwerke's channels request is the 9th and answered quotaExceeded
    exceeded = (
        f"YouTube daily quota for {DAY} (Pacific time) used up: the API answered "
        "quotaExceeded (The request cannot be completed because you have exceeded your "
        "quota.) after 9 units counted for connection youtube_default; the rest is read "
        "tomorrow after midnight Pacific time, or raise the project's quota in Google Cloud "
        "Console (and daily_quota_units in connection youtube_default's extra)"
    )
    assert [(e.company_id, e.severity, e.error) for e in result.errors] == [
        ("stadtwerke-nord", "configuration", exceeded),
        ("nordbank", "configuration", exceeded),
    ]
    assert_korn_rows(result)  # read before: kept
    assert requested(httpserver) == [
        *KORN_REQUESTS,
        f"/youtube/v3/channels?{CHANNEL_PARTS}&id={STADT}",
    ]
    saved = quota_file(state)["connections"]["youtube_default"]
    assert (saved["units"], saved["exceeded"]) == (9, True)
    # a later fetch task the same Pacific day asks nothing, whatever its budget says
    httpserver.clear_log()
    later = platform(httpserver, state, sleeps).fetch([KORN_REF], WINDOW)
    assert [(e.severity, e.error) for e in later.errors] == [("configuration", exceeded)]
    assert requested(httpserver) == []


def test_without_a_state_folder_the_budget_holds_for_the_fetch(httpserver, sleeps):
    serve_folder(httpserver, "korn")
    conn = connection(httpserver, daily_quota_units="3")  # a string from the UI is fine
    result = platform(httpserver, None, sleeps, connection=conn).fetch([KORN_REF], WINDOW)
    # channels 1, uploads 2, videos 3, the first thread: 3 + 1 > 3
    assert [e.error for e in result.errors] == [
        f"YouTube daily quota budget of 3 units for {DAY} (Pacific time) used up (3 units "
        f"used); {BUDGET_HOWTO}"
    ]
    assert requested(httpserver) == KORN_REQUESTS[:3]


def test_the_ledger_is_shared_under_a_lock(state):
    # four fetch tasks at once, each trying 50 requests against a budget of 150: exactly
    # 150 are booked, 50 refused (a lost update or a check outside the lock breaks this)
    booked: list[int] = []
    refused: list[int] = []

    def task() -> None:
        ledger = QuotaLedger(state, lambda: FIXED_NOW)
        for _ in range(50):
            try:
                ledger.charge("youtube_default", 150)
            except QuotaUsedUp:
                refused.append(1)
            else:
                booked.append(1)

    threads = [threading.Thread(target=task) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert (len(booked), len(refused)) == (150, 50)
    assert units(state) == 150
    assert not list(state.glob(".quota-*.tmp"))  # every write replaced the file


def test_an_unreadable_state_file_is_a_configuration_error(httpserver, state, sleeps):
    state.mkdir(parents=True)
    (state / f"quota-{DAY}.json").write_text('{"connections": ', encoding="utf-8")
    result = platform(httpserver, state, sleeps).fetch([KORN_REF], WINDOW)
    [error] = result.errors
    assert error.severity == "configuration"
    assert error.error.startswith(
        f"the YouTube quota state file {state}/quota-{DAY}.json is unreadable (JSONDecodeError"
    )
    assert error.error.endswith("repair it, or delete it to count the day's units from 0 again")
    assert requested(httpserver) == []


# -- the key ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "said"),
    [
        ("key_invalid", "HTTP 400 badRequest: API key not valid. Please pass a valid API key."),
        ("key_invalid_legacy", "HTTP 400 keyInvalid: Bad Request"),
        (
            "access_not_configured",
            "HTTP 403 accessNotConfigured: YouTube Data API v3 has not been used in project "
            "123456789012 before or it is disabled.",
        ),
        (
            "key_service_blocked",
            "HTTP 403 forbidden: Requests to this API youtube method "
            "youtube.api.v3.V3DataChannelService.List are blocked.",
        ),
    ],
)
def test_a_rejected_key_fails_every_account_after_one_request(
    httpserver, state, sleeps, fixture, said
):
    answer = load(f"errors/{fixture}.json")["response"]
    httpserver.expect_request(re.compile("^/youtube/v3/")).respond_with_data(
        json.dumps(answer["body"]), status=answer["status"], content_type="application/json"
    )
    result = platform(httpserver, state, sleeps).fetch([KORN_REF, STADT_REF, NORD_REF], WINDOW)
    assert [(e.company_id, e.severity) for e in result.errors] == [
        ("baeckerei-korn", "configuration"),
        ("stadtwerke-nord", "configuration"),
        ("nordbank", "configuration"),
    ]
    # the same message for all: what the API said (for the one request made) and what to do
    messages = {e.error for e in result.errors}
    assert len(messages) == 1
    [message] = messages
    assert message.startswith(
        f"YouTube rejected the API key of connection youtube_default ({said}"
    ), message
    assert message.endswith(
        f"/youtube/v3/channels?part=snippet%2Cstatistics%2CcontentDetails&forHandle=%40BaeckereiKorn)): {KEY_HOWTO}"
    )
    assert requested(httpserver) == [KORN_REQUESTS[0]]
    assert units(state) == 1
    assert all(rows == [] for rows in result.rows.values())


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        (
            None,
            f"the Airflow connection youtube_default is not defined: {KEY_HOWTO}",
        ),
        (
            {"host": "{host}", "password": None},
            "no YouTube API key: the Airflow connection youtube_default has no password; "
            + KEY_HOWTO,
        ),
        (
            {"host": "{host}", "password": "  "},
            "no YouTube API key: the Airflow connection youtube_default has no password; "
            + KEY_HOWTO,
        ),
        (
            {"host": "{host}", "password": KEY, "extra": {"daily_quota_units": 0}},
            "daily_quota_units in connection youtube_default's extra is not a positive whole "
            "number of units: 0",
        ),
        (
            {"host": "{host}", "password": KEY, "extra": '{"daily_quota_units": "lots"}'},
            "daily_quota_units in connection youtube_default's extra is not a positive whole "
            "number of units: 'lots'",
        ),
    ],
)
def test_a_missing_key_or_bad_budget_is_a_configuration_error(
    httpserver, state, sleeps, conn, message
):
    if conn is not None:
        conn = {
            k: (f"http://127.0.0.1:{httpserver.port}" if v == "{host}" else v)
            for k, v in conn.items()
        }
    result = platform(httpserver, state, sleeps, connection=conn).fetch(
        [KORN_REF, STADT_REF], WINDOW
    )
    assert [(e.company_id, e.severity, e.error) for e in result.errors] == [
        ("baeckerei-korn", "configuration", message),
        ("stadtwerke-nord", "configuration", message),
    ]
    assert requested(httpserver) == []


def test_an_account_with_a_connection_of_its_own(httpserver, state, sleeps):
    # youtube_default's key is refused; Korn's connection youtube_korn has a key of its own
    # (another Google Cloud project, with its own quota) and no host: the default's is used
    serve_folder(httpserver, "korn", key=KORN_KEY)
    refused = load("errors/key_invalid.json")["response"]
    httpserver.expect_request(re.compile("^/youtube/v3/")).respond_with_data(
        json.dumps(refused["body"]), status=refused["status"], content_type="application/json"
    )
    named = {"youtube_korn": {"password": KORN_KEY, "extra": {"daily_quota_units": 100}}}
    korn = AccountRef(KORN_REF.company_id, KORN_REF.handle, {"connection": "youtube_korn"})
    gone = AccountRef("blumen-ada", "@blumenada", {"connection": "youtube_blumen"})
    result = platform(httpserver, state, sleeps, connections=named.get).fetch(
        [STADT_REF, korn, NORD_REF, gone], WINDOW
    )
    assert_korn_rows(result)
    errors = [(e.company_id, e.severity, e.error.split(":")[0]) for e in result.errors]
    assert errors == [
        (
            "stadtwerke-nord",
            "configuration",
            "YouTube rejected the API key of connection youtube_default (HTTP 400 badRequest",
        ),
        # the same key: refused without a request
        (
            "nordbank",
            "configuration",
            "YouTube rejected the API key of connection youtube_default (HTTP 400 badRequest",
        ),
        (
            "blumen-ada",
            "configuration",
            "Airflow connection 'youtube_blumen' (named in the account's options) is not defined",
        ),
    ]
    assert result.errors[2].error.endswith(
        "add it in the Airflow UI (Admin > Connections), as AIRFLOW_CONN_YOUTUBE_BLUMEN or in the secrets backend"
    )
    # Stadtwerke's one request with the default key, then Korn's eight with its own
    assert requested(httpserver) == [STADT_REQUESTS[0], *KORN_REQUESTS]
    sent = [request.headers.get("X-Goog-Api-Key") for request, _ in httpserver.log]
    assert sent == [KEY] + [KORN_KEY] * KORN_UNITS
    # neither key in what is recorded
    recorded = json.dumps([result.rows, [e.__dict__ for e in result.errors]], default=str)
    assert KEY not in recorded and KORN_KEY not in recorded
    # each connection draws on its own day's budget
    connections = quota_file(state)["connections"]
    assert {c: (e["units"], e["budget"]) for c, e in connections.items()} == {
        "youtube_default": (1, 10000),
        "youtube_korn": (KORN_UNITS, 100),
    }


def test_the_key_goes_in_a_header_only_and_never_leaks(httpserver, state, sleeps, caplog):
    serve_folder(httpserver, "korn")
    # constructed: a server that quotes the key in an error message (Google does not, but
    # the message is recorded and logged: the last guard must catch it)
    echo = {
        "error": {
            "code": 400,
            "message": f"Request contains an invalid argument: key {KEY} was sent with it",
            "errors": [{"message": "Bad Request", "domain": "global", "reason": "badRequest"}],
            "status": "INVALID_ARGUMENT",
        }
    }
    httpserver.expect_request(
        "/youtube/v3/channels",
        query_string={"part": "snippet,statistics,contentDetails", "forHandle": "@nordbank"},
    ).respond_with_data(json.dumps(echo), status=400, content_type="application/json")
    korn = AccountRef(KORN_REF.company_id, KORN_REF.handle, probes=PROBES)
    with caplog.at_level(logging.DEBUG):  # urllib3's request lines included
        result = platform(httpserver, state, sleeps).fetch([NORD_REF, korn], WINDOW)
    assert_korn_rows(result)
    [error] = result.errors
    assert error.severity == "error"  # not a key problem: this account's error only
    assert error.error.startswith(
        "looking up channel @nordbank: HTTP 400 badRequest: Request contains an invalid "
        "argument: key *** was sent with it"
    )
    # every request carried the key in its header, none in its URL
    assert len(httpserver.log) == 1 + KORN_UNITS + 8
    for request, _ in httpserver.log:
        assert request.headers.get("X-Goog-Api-Key") == KEY
        assert KEY not in request.url and "key=" not in request.query_string.decode()
    recorded = json.dumps(
        {"rows": result.rows, "errors": [e.__dict__ for e in result.errors + result.warnings]},
        default=str,
    )
    assert KEY not in recorded
    assert KEY not in caplog.text
    assert "key *** was sent" in caplog.text  # the message was logged, redacted
    assert KEY not in (state / f"quota-{DAY}.json").read_text(encoding="utf-8")


# -- how far back: the page limits -------------------------------------------------------------


def test_the_page_limit_keeps_what_was_read_and_warns(httpserver, state, sleeps):
    serve_stadtwerke(httpserver)
    ref = AccountRef(STADT_REF.company_id, STADT_REF.handle, {"max_pages": 1})
    result = platform(httpserver, state, sleeps).fetch([ref], WINDOW)
    assert result.errors == []
    # page 1 (n = 1..50) holds nothing older than since, page 2 is not read: posts_since is
    # page 1's oldest, n = 50 at 2026-02-16 18:00; all 50 in one batch
    snaps = result.rows["account_snapshots"]
    assert [r["posts_since"] for r in snaps] == [t("2026-02-16T18:00:00")]
    assert table(result.rows["post_observations"], POST_COLUMNS) == [
        sw_post(n) for n in range(1, 51)
    ]
    assert [w.error for w in result.warnings] == [
        STADT_HIDDEN,
        f"uploads of channel {STADT}: page limit reached (max_pages 1) before 2026-02-16 "
        "00:00:00 UTC: videos before 2026-02-16 18:00:00 UTC not read; raise the account "
        "option max_pages",
    ]
    assert requested(httpserver) == [STADT_REQUESTS[0], STADT_REQUESTS[1], STADT_REQUESTS[3]]
    assert units(state) == 3


def test_the_thread_page_limit_cuts_a_long_thread_with_a_warning(httpserver, state, sleeps):
    serve_folder(httpserver, "korn")
    ref = AccountRef(KORN_REF.company_id, KORN_REF.handle, {"max_thread_pages": 1})
    result = platform(httpserver, state, sleeps).fetch([ref], WINDOW)
    assert result.errors == []
    # V3's page 2 (T5, T6) is not read: T3 + its 7 replies + T4 = 9 of 11
    assert table(result.rows["thread_replies"], THREAD_COLUMNS) == KORN_THREADS[:-2]
    assert [w.error for w in result.warnings] == [
        V2_SHORT,
        f"thread of post {V3}: read 9 of 11 direct replies (page limit reached "
        "(max_thread_pages 1); raise the account option max_thread_pages)",
    ]
    assert requested(httpserver) == KORN_REQUESTS[:5] + KORN_REQUESTS[6:]
    assert units(state) == KORN_UNITS - 1


# -- faults of one account: it has an error and no rows, the other account is intact ---------


def _korn_videos_with(likes: str) -> dict[str, Any]:
    exchange = load("korn/videos.json")
    exchange["response"]["body"]["items"][0]["statistics"]["likeCount"] = likes
    return exchange


def _stadtwerke_loop(server: HTTPServer) -> None:
    # page 2 (n = 51..53, all since since) names page 1's token again as its next page
    serve_stadtwerke(server, page2=sw_page(range(51, 54), PAGE2, PAGE2))


def _nordbank_502(server: HTTPServer) -> None:
    server.expect_request(
        "/youtube/v3/channels",
        query_string={"part": "snippet,statistics,contentDetails", "forHandle": "@nordbank"},
    ).respond_with_data("<html>Bad Gateway</html>", status=502, content_type="text/html")


FAULTS = {
    # name: (the bad account, how it is served, the error, the units it costs)
    "no channel": (
        NORD_REF,
        lambda s: serve(s, load("nordbank/channels_none.json")),
        "looking up channel @nordbank: no channel with handle '@nordbank' (the API found "
        "none: deleted, terminated or misspelt); check the account's handle in the registry",
        1,
    ),
    "count not an integer": (
        NORD_REF,
        lambda s: serve(s, load("nordbank/channels_bad_count.json")),
        f"looking up channel @nordbank: channel {NORD}: subscriberCount is not an integer "
        "count: '1.2K'",
        1,
    ),
    "unusable handle": (
        AccountRef("nordbank", "https://www.youtube.com/c/Nordbank"),
        lambda s: None,
        "not a YouTube channel: 'https://www.youtube.com/c/Nordbank'; use @handle, "
        "https://www.youtube.com/@handle, a channel id (UC...) or "
        "https://www.youtube.com/channel/UC...",
        0,
    ),
    "pagination loop": (
        STADT_REF,
        _stadtwerke_loop,
        f"reading the uploads of channel {STADT} (page 2): uploads page 2: pagination loop: "
        f"nextPageToken '{PAGE2}' repeats a page already read",
        3,
    ),
    # the shared client retries once (fast_client): two attempts, two units
    "persistent 502": (
        NORD_REF,
        _nordbank_502,
        "looking up channel @nordbank: HttpError: HTTP 502 after 2 attempts (http://127.0.0.1:"
        "{port}/youtube/v3/channels?part=snippet%2Cstatistics%2CcontentDetails&forHandle=%40nordbank)",
        2,
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_bad_account_costs_only_itself(httpserver, state, sleeps, fault):
    bad, install, message, cost = FAULTS[fault]
    install(httpserver)
    serve_folder(httpserver, "korn")
    result = platform(httpserver, state, sleeps).fetch([bad, KORN_REF], WINDOW)
    assert_korn_rows(result)
    assert [(e.company_id, e.severity, e.error) for e in result.errors] == [
        (bad.company_id, "error", message.replace("{port}", str(httpserver.port)))
    ]
    for rows in result.rows.values():
        assert [r for r in rows if r.get("company_id") == bad.company_id] == []
    assert units(state) == cost + KORN_UNITS


def test_a_count_that_is_no_integer_in_a_video_fails_the_account(httpserver, state, sleeps):
    serve(httpserver, _korn_videos_with("12.0"))
    serve_folder(httpserver, "korn", skip=frozenset({"videos"}))
    serve_stadtwerke(httpserver)
    result = platform(httpserver, state, sleeps).fetch([KORN_REF, STADT_REF], WINDOW)
    assert [(e.company_id, e.error) for e in result.errors] == [
        (
            "baeckerei-korn",
            f"reading videos 1-7 of 7: video {V1}: likeCount is not an integer count: '12.0'",
        )
    ]
    assert rows_of(result, "post_observations", "baeckerei-korn") == []
    assert len(rows_of(result, "post_observations", "stadtwerke-nord")) == 53


def test_a_new_channel_without_uploads_is_no_error(httpserver, state, sleeps):
    # videoCount "0" and the uploads playlist a 404 playlistNotFound: nothing uploaded yet
    serve_folder(httpserver, "nordbank", skip=frozenset({"channels_none", "channels_bad_count"}))
    result = platform(httpserver, state, sleeps).fetch([NORD_REF], WINDOW)
    assert result.errors == [] and result.warnings == []
    assert table(result.rows["account_snapshots"], SNAPSHOT_COLUMNS) == [
        (NORD, "@nordbank", 3, None, 0, SINCE)
    ]
    assert result.rows["post_observations"] == []
    assert units(state) == 2
