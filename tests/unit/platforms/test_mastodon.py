"""The Mastodon connector against recorded API responses served on 127.0.0.1.

The fixtures (``tests/fixtures/mastodon``) are recorded exchanges: the request (path and
query) and the server's response (status, headers, body) in Mastodon's wire format.
``social.example/`` is the companies' server, ``other.example/`` a second server where a
field-study question was posted, ``faults/`` responses of misbehaving servers,
``shared_reply/`` a scene in which one reply is in the contexts of both accounts. The tests
serve them with pytest-httpserver (real HTTP through requests); the Link headers name the
recorded domain, which the connector follows on the server it was configured with. A
server that drips, resets or overflows is written by hand (``RawServer`` in conftest).

The expected rows below were worked out by hand from the fixture files (the reasoning is
in the comments next to each), not copied from the connector's output.

The world at the fixed observation time (FIXED_NOW = 2026-11-20 06:00 UTC), for the
window [2026-11-19, 2026-11-20) with 28 days lookback, i.e. posts created since the
cutoff 2026-10-23 00:00 UTC (up to FIXED_NOW):

* bakery (Bäckerei Korn, account id 109318417253410822): lookup_bakery.json,
  statuses_bakery_page1/2/3.json, context_<id>.json of its threads and of the questions.
* blumenada (Blumen Ada, account id 109330512994120033): lookup_blumenada.json,
  statuses_blumenada.json; the faults replace one of these.

Further back (a backfill, the default 35-day lookback: since 2026-10-16): page 2's S_H
(2026-10-22, "Kürbisbrot", 4 replies: context_<S_H>.json) and page 3's S_I (2026-10-20, a
giveaway with 62 direct replies). An anonymous context request gets the first 60 of its 64
descendants (context_<S_I>.json); with the token of mastodon_default all 64
(with_token/context_<S_I>.json, answered only to ``Authorization: Bearer T0K``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from socialpulse.platforms import get_platform
from socialpulse.platforms.base import AccountRef, FetchWindow, PlatformContext
from socialpulse.platforms.mastodon import (
    MastodonError,
    MastodonPlatform,
    parse_handle,
    parse_status_ref,
)
from socialpulse.records import RAW_SCHEMAS, to_arrow
from tests.unit.conftest import Sleeps, fast_client, http_head, http_json, limited_client, reset
from tests.unit.platforms.recorded import Recordings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mastodon"
UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


FIXED_NOW = t("2026-11-20T06:00:00")
WINDOW = FetchWindow(
    start=t("2026-11-19T00:00:00"), end=t("2026-11-20T00:00:00"), lookback=dt.timedelta(days=28)
)
# cutoff = WINDOW.since = end - 28 days = 2026-10-23 00:00
CUTOFF = t("2026-10-23T00:00:00")

BAKERY_ID = "109318417253410822"  # lookup_bakery.json "id"
FLORIST_ID = "109330512994120033"  # lookup_blumenada.json "id"

# the bakery's statuses (statuses_bakery_page*.json), newest first
PINNED = "117030754713651218"  # 2026-08-03, "pinned": true, 5 replies: before the cutoff
S_A = "117647120793618619"  # 2026-11-20 05:30 original, fav 12 / reblogs 3 / replies 0 / quotes 1
S_B = "117642520166400157"  # 2026-11-19 10:00 reblog wrapper (counts 0, url null)
S_C = "117638352076861382"  # 2026-11-18 16:20 original, fav 25 / reblogs 4 / replies 2 / quotes 0
S_D = "117630959616063716"  # 2026-11-17 09:00 reply to carla, fav 2 / reblogs 0 / replies 1
S_F = "117620126515261713"  # 2026-11-15 11:05 self-reply to S_E, fav 3 / reblogs 1 / replies 1
S_E = "117620106854428138"  # 2026-11-15 11:00 original without quotes_count, fav 40 / 9 / 1
S_G = "117487278489665065"  # 2026-10-23 00:00 exactly the cutoff, fav 7 / reblogs 1 / 0
S_H = "117483739545645347"  # 2026-10-22 09:00 before the cutoff: ends the paging; 4 replies
# page 3 (no Link header), read only by a fetch reaching back before S_H
S_I = "117472178995226071"  # 2026-10-20 08:00 giveaway, fav 48 / reblogs 15 / replies 62

ANNA = "109320000000000101"
BOB = "109400000000000303"  # bob@mastodon.example as known on social.example
DAVE = "111000000000000505"

# field-study questions (context_<id>.json)
Q1 = "117625297305617355"  # social.example: answered twice, the earlier answer comes last
Q2 = "117630959616026593"  # social.example: only a customer replied
Q3 = "117636621926453905"  # social.example: answered below the asker's own follow-up
Q4 = "117636857856062058"  # social.example: 404, the question was deleted
Q5 = "117642048307213835"  # other.example: answered from the bakery's own server


# -- serving the recordings ----------------------------------------------------------------


RECORDED = Recordings(FIXTURES)
load, serve, serve_folder = RECORDED.load, RECORDED.serve, RECORDED.serve_folder


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """social.example, served on 127.0.0.1."""
    return httpserver_ipv4


@pytest.fixture
def other() -> HTTPServer:
    """other.example: a second server on 127.0.0.1 (another port: another host)."""
    s = HTTPServer(host="127.0.0.1", port=0)
    s.start()
    serve_folder(s, "other.example")
    yield s
    s.clear()
    s.stop()


def platform(sleeps: Sleeps) -> MastodonPlatform:
    client = fast_client(sleeps)
    return MastodonPlatform(context=PlatformContext(http=client, clock=lambda: FIXED_NOW))


def base(s: HTTPServer) -> str:
    return f"http://127.0.0.1:{s.port}"


def bakery(server: HTTPServer, probes: tuple[dict[str, Any], ...] = ()) -> AccountRef:
    return AccountRef("baeckerei-korn", f"{base(server)}/@bakery", probes=probes)


def florist(server: HTTPServer) -> AccountRef:
    # a probe too: a failed account must not emit it either
    probe = _probe("fl-1", f"{base(server)}/@researcher/{Q2}", "2026-11-17T09:00:00Z")
    return AccountRef("blumen-ada", f"{base(server)}/@blumenada", probes=(dict(probe),))


def _probe(pid: str, question_ref: str, sent_at: str, quality: int | None = None) -> dict:
    return {
        "probe_id": pid,
        "company_id": "baeckerei-korn" if not pid.startswith("fl") else "blumen-ada",
        "platform": "mastodon",
        "channel": "public_post",
        "sent_at": sent_at,
        "question_ref": question_ref,
        "answered_at": None,
        "answer_ref": None,
        "quality": quality,
    }


def requested(s: HTTPServer) -> list[str]:
    """path?query of every request the server saw, in order."""
    out = []
    for request, _ in s.log:
        q = request.query_string.decode()
        out.append(request.path + (f"?{q}" if q else ""))
    return out


def rows_of(result, table: str, company_id: str | None = None) -> list[dict[str, Any]]:
    return [r for r in result.rows[table] if company_id in (None, r["company_id"])]


def assert_arrow(result) -> None:
    for table, rows in result.rows.items():
        assert to_arrow(RAW_SCHEMAS[table], rows).num_rows == len(rows)


# -- what the bakery's rows must be (worked out from the fixtures) -------------------------

SNAPSHOT_COLUMNS = ("account_id", "followers", "following", "posts_total", "posts_since")
# lookup_bakery.json: followers_count 1234, following_count 210, statuses_count 842; the
# timeline was read back to the cutoff
BAKERY_SNAPSHOT = (BAKERY_ID, 1234, 210, 842, CUTOFF)

POST_COLUMNS = ("post_id", "created_at", "kind", "likes", "replies", "reposts", "quotes", "url")
U = "https://social.example/@bakery/"
BAKERY_POSTS = [
    # page 1: PINNED (2026-08-03) is before the cutoff: no row, and being pinned it does not
    # stop the paging either.
    # S_A: in_reply_to_id null, reblog null -> original; created after the window's end but
    # before the observation time: observed. quotes_count 1.
    (S_A, t("2026-11-20T05:30:00"), "original", 12, 0, 3, 1, U + S_A),
    # S_B: reblog not null -> repost, with the wrapper's id, time and (zero) counts; the
    # wrapper's url is null, so its uri is the url.
    (
        S_B,
        t("2026-11-19T10:00:00"),
        "repost",
        0,
        0,
        0,
        0,
        f"https://social.example/users/bakery/statuses/{S_B}/activity",
    ),
    (S_C, t("2026-11-18T16:20:00"), "original", 25, 2, 4, 0, U + S_C),
    # page 2: S_D replies to carla (in_reply_to_account_id 109500000000000404) -> reply
    (S_D, t("2026-11-17T09:00:00"), "reply", 2, 1, 0, 0, U + S_D),
    # S_F replies to the bakery's own S_E (in_reply_to_account_id = own id) -> original
    (S_F, t("2026-11-15T11:05:00"), "original", 3, 1, 1, 0, U + S_F),
    # S_E has no quotes_count (a pre-4.5 server): quotes 0
    (S_E, t("2026-11-15T11:00:00"), "original", 40, 1, 9, 0, U + S_E),
    # S_G is created exactly at the cutoff: inside [cutoff, now]
    (S_G, t("2026-10-23T00:00:00"), "original", 7, 0, 1, 0, U + S_G),
    # S_H (2026-10-22) is before the cutoff: no row; it ends the paging (no page 3)
]

THREAD_COLUMNS = (
    "reply_id",
    "root_post_id",
    "in_reply_to_id",
    "author_id",
    "author_is_company",
    "created_at",
)
BAKERY_THREADS = [
    # Roots are the own originals with replies_count > 0 in the window, oldest first:
    # S_E (11:00), S_F (11:05, a self-reply: original), S_C. Not S_A, S_G (0 replies), S_D
    # (a reply), S_B (a repost), PINNED and S_H (before the cutoff).
    # context of S_E: descendants S_F (the bakery's own continuation) and dave's reply to S_F
    (S_F, S_E, S_E, BAKERY_ID, True, t("2026-11-15T11:05:00")),
    ("117621050572847925", S_E, S_F, DAVE, False, t("2026-11-15T15:00:00")),
    # context of S_F: only dave's reply, already under S_E (the thread's start): no 2nd row
    # context of S_C: anna asks (r1), the bakery answers (r2), anna follows up (r3), the
    # bakery answers again (r4); bob asks and gets no answer (r5)
    ("117638529024030760", S_C, S_C, ANNA, False, t("2026-11-18T17:05:00")),
    ("117638784614406116", S_C, "117638529024030760", BAKERY_ID, True, t("2026-11-18T18:10:00")),
    ("117638902579213433", S_C, "117638784614406116", ANNA, False, t("2026-11-18T18:40:00")),
    ("117642028646442354", S_C, "117638902579213433", BAKERY_ID, True, t("2026-11-19T07:55:00")),
    ("117642284236842601", S_C, S_C, BOB, False, t("2026-11-19T09:00:00")),
]

BAKERY_REQUESTS = [
    "/api/v1/accounts/lookup?acct=bakery",
    f"/api/v1/accounts/{BAKERY_ID}/statuses?limit=40",
    # page 1's Link rel="next": max_id = S_C, its last status
    f"/api/v1/accounts/{BAKERY_ID}/statuses?limit=40&max_id={S_C}",
    # page 2 holds S_H, older than the cutoff: page 3 (max_id=S_H) is never asked for
    f"/api/v1/statuses/{S_E}/context",
    f"/api/v1/statuses/{S_F}/context",
    f"/api/v1/statuses/{S_C}/context",
]


def table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple]:
    return [tuple(r[c] for c in columns) for r in rows]


def assert_bakery_rows(result) -> None:
    """The bakery's rows, exactly (without probes)."""
    snaps = rows_of(result, "account_snapshots", "baeckerei-korn")
    assert table(snaps, SNAPSHOT_COLUMNS) == [BAKERY_SNAPSHOT]
    assert snaps[0]["handle"].endswith("/@bakery")
    posts = rows_of(result, "post_observations", "baeckerei-korn")
    assert table(posts, POST_COLUMNS) == BAKERY_POSTS
    threads = rows_of(result, "thread_replies", "baeckerei-korn")
    assert table(threads, THREAD_COLUMNS) == BAKERY_THREADS
    for row in snaps + posts + threads:
        assert row["platform"] == "mastodon" and row["observed_at"] == FIXED_NOW
    for row in posts + threads:
        assert row["account_id"] == BAKERY_ID
    assert all(r["views"] is None for r in posts)
    assert_arrow(result)


# -- handles and references ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("handle", "base_url", "user"),
    [
        ("https://social.example/@bakery", "https://social.example", "bakery"),
        ("https://Social.Example/@bakery/", "https://social.example", "bakery"),
        ("http://127.0.0.1:8080/@bakery", "http://127.0.0.1:8080", "bakery"),
        ("@bakery@social.example", "https://social.example", "bakery"),
        ("bakery@social.example", "https://social.example", "bakery"),
        ("  @baecker.ei_korn@social.example ", "https://social.example", "baecker.ei_korn"),
    ],
)
def test_handles_name_server_and_user(handle, base_url, user):
    loc = parse_handle(handle)
    assert (loc.base_url, loc.username) == (base_url, user)


@pytest.mark.parametrize(
    "handle",
    [
        "bakery",
        "@bakery",
        "https://social.example/bakery",
        "https://social.example/@bakery/123",
        "ftp://social.example/@bakery",
        "bakery@",
        "",
    ],
)
def test_other_handles_are_refused_clearly(handle):
    with pytest.raises(MastodonError, match=r"not a Mastodon handle.*https://host/@user"):
        parse_handle(handle)


def test_api_base_option_overrides_the_handles_domain():
    loc = parse_handle("@bakery@example.com", api_base="https://social.example.com/")
    assert (loc.base_url, loc.username) == ("https://social.example.com", "bakery")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (f"https://other.example/@kundenstudie/{Q5}", ("https://other.example", Q5)),
        (f"https://social.example/@researcher/{Q1}/", ("https://social.example", Q1)),
        # a remote account's status as shown on social.example: the id is social.example's
        (f"https://social.example/@bob@mastodon.example/{Q2}", ("https://social.example", Q2)),
        (f"https://social.example/users/researcher/statuses/{Q1}", ("https://social.example", Q1)),
        (f"http://127.0.0.1:8080/api/v1/statuses/{Q1}", ("http://127.0.0.1:8080", Q1)),
    ],
)
def test_question_refs_name_server_and_status(ref, expected):
    assert parse_status_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "mail#1", "https://social.example/@researcher"])
def test_other_question_refs_are_refused_clearly(ref):
    with pytest.raises(MastodonError, match=r"is not a Mastodon status URL"):
        parse_status_ref(ref)


def test_the_platform_is_registered():
    p = get_platform("mastodon", PlatformContext())
    assert isinstance(p, MastodonPlatform) and p.name == "mastodon"


# -- the happy path ------------------------------------------------------------------------


def test_timeline_is_mapped_and_paging_stops_at_the_lookback(server, sleeps):
    serve_folder(server, "social.example")
    result = platform(sleeps).fetch([bakery(server)], WINDOW)
    assert result.errors == []
    assert_bakery_rows(result)
    # the lookback stop and the threads only for posts with replies
    assert requested(server) == BAKERY_REQUESTS
    assert not any(f"max_id={S_H}" in r for r in requested(server))
    # Remaining 290-299 of 300 in every recorded response: no pacing, nothing waited
    assert sleeps == []


def test_probes_find_the_companys_first_answer_anywhere_in_the_thread(server, other, sleeps):
    serve_folder(server, "social.example")
    probes = (
        # context of Q1 (depth-first): anna 10:00, the bakery's answer to anna 12:00, then
        # the bakery's direct answer 11:00 -> the earliest is the direct one, at 11:00
        _probe("p1", f"{base(server)}/@researcher/{Q1}", "2026-11-16T09:00:00Z", quality=4),
        # context of Q2 (asked by its API URL): only anna answered -> unanswered
        _probe("p2", f"{base(server)}/api/v1/statuses/{Q2}", "2026-11-17T09:00:00Z"),
        # context of Q3: the asker's own follow-up 09:02, the bakery's answer to it 14:00
        _probe("p3", f"{base(server)}/@researcher/{Q3}", "2026-11-18T09:00:00Z", quality=3),
        # Q4 was deleted (404): the row stays, unanswered, and the problem is reported
        _probe("p4", f"{base(server)}/@researcher/{Q4}", "2026-11-18T10:00:00Z"),
        # Q5 lives on other.example: lena (whose id there happens to be the bakery's id on
        # social.example) at 10:00 is not the bakery; the bakery's remote account
        # (url https://social.example/@bakery, id 111400000000000808 there) answers 13:00
        _probe("p5", f"{base(other)}/@kundenstudie/{Q5}", "2026-11-19T08:00:00Z"),
    )
    result = platform(sleeps).fetch([bakery(server, probes)], WINDOW)
    assert_bakery_rows(result)  # the probe problem costs the account nothing
    got = {
        r["probe_id"]: (r["answered_at"], r["answer_ref"], r["quality"])
        for r in result.rows["probes"]
    }
    assert got == {
        "p1": (t("2026-11-16T11:00:00"), U + "117625769164830257", 4),
        "p2": (None, None, None),
        "p3": (t("2026-11-18T14:00:00"), U + "117637801574412344", 3),
        "p4": (None, None, None),
        # a remote status's url is its origin's: the bakery's own id for it
        "p5": (t("2026-11-19T13:00:00"), U + "117643227955259688", None),
    }
    p1 = next(r for r in result.rows["probes"] if r["probe_id"] == "p1")
    assert p1["sent_at"] == t("2026-11-16T09:00:00") and p1["observed_at"] == FIXED_NOW
    assert p1["channel"] == "public_post" and p1["platform"] == "mastodon"
    # a gone question costs the account nothing else: a warning, not an error
    assert result.errors == [] and len(result.warnings) == 1
    err = result.warnings[0]
    assert (err.platform, err.company_id) == ("mastodon", "baeckerei-korn")
    assert "probe p4" in err.error and "is gone" in err.error and "HTTP 404" in err.error
    assert f"/api/v1/statuses/{Q5}/context" in requested(other)
    assert_arrow(result)


def test_two_healthy_accounts(server, sleeps):
    serve_folder(server, "social.example")
    result = platform(sleeps).fetch([bakery(server), florist(server)], WINDOW)
    assert result.errors == []
    assert_bakery_rows(result)
    # lookup_blumenada.json: 310 / 95 / 120; statuses_blumenada.json: two originals without
    # replies (fav 14 / reblogs 2, fav 9 / reblogs 1), one page without a Link header
    snaps = rows_of(result, "account_snapshots", "blumen-ada")
    assert table(snaps, SNAPSHOT_COLUMNS) == [(FLORIST_ID, 310, 95, 120, CUTOFF)]
    posts = rows_of(result, "post_observations", "blumen-ada")
    assert table(posts, ("post_id", "kind", "likes", "replies", "reposts", "quotes")) == [
        ("117642048307215808", "original", 14, 0, 2, 0),
        ("117602412134406510", "original", 9, 0, 1, 0),
    ]
    assert rows_of(result, "thread_replies", "blumen-ada") == []
    # the florist's probe asks Q2, where only anna replied: unanswered
    assert [(r["probe_id"], r["answered_at"]) for r in result.rows["probes"]] == [("fl-1", None)]


@pytest.mark.parametrize(
    "connection",
    [
        {"host": "127.0.0.1", "port": "{port}"},
        {"host": "127.0.0.1:{port}"},
        {"host": "127.0.0.1:{port}", "port": "{port}"},  # the port in both places: once
        {"host": "http://127.0.0.1:{port}/", "schema": "https"},
    ],
)
def test_the_connections_token_goes_to_its_own_server_only(server, sleeps, connection):
    serve_folder(server, "social.example")
    conn = {k: v.replace("{port}", str(server.port)) for k, v in connection.items()}
    context = PlatformContext(
        http=fast_client(sleeps), clock=lambda: FIXED_NOW, connection={**conn, "password": "T0K"}
    )
    result = MastodonPlatform(context=context).fetch([bakery(server)], WINDOW)
    assert result.errors == []
    sent = {request.headers.get("Authorization") for request, _ in server.log}
    assert sent == {"Bearer T0K"}


def test_no_token_for_another_server(server, sleeps):
    serve_folder(server, "social.example")
    conn = {"host": "127.0.0.1", "port": server.port + 1, "password": "T0K"}
    context = PlatformContext(http=fast_client(sleeps), clock=lambda: FIXED_NOW, connection=conn)
    result = MastodonPlatform(context=context).fetch([bakery(server)], WINDOW)
    assert result.errors == []
    assert {request.headers.get("Authorization") for request, _ in server.log} == {None}


# -- how far back: a backfill, the default lookback, the page limit -----------------------


def test_a_backfill_reads_its_whole_window(server, sleeps):
    # 5 days of backfill with a 1-day lookback: since = min(start 11-15, end - 1 day = 11-19)
    # = 2026-11-15 00:00 (the old end - lookback would have stopped at page 1's S_C)
    window = FetchWindow(t("2026-11-15T00:00:00"), t("2026-11-20T00:00:00"), dt.timedelta(days=1))
    serve_folder(server, "social.example")
    result = platform(sleeps).fetch([bakery(server)], window)
    assert result.errors == [] and result.warnings == []
    snaps = rows_of(result, "account_snapshots")
    assert table(snaps, SNAPSHOT_COLUMNS) == [(*BAKERY_SNAPSHOT[:4], t("2026-11-15T00:00:00"))]
    # page 2 holds S_G (10-23) < since: the paging stops there; S_G and S_H stay out, the
    # rest of the bakery's posts are in, with all three threads (S_E, S_F, S_C >= 11-15)
    posts = rows_of(result, "post_observations")
    assert table(posts, POST_COLUMNS) == BAKERY_POSTS[:-1]
    assert table(rows_of(result, "thread_replies"), THREAD_COLUMNS) == BAKERY_THREADS
    assert requested(server) == BAKERY_REQUESTS
    assert_arrow(result)


# S_H's context: four direct replies (anna, bob, dave, carla) and the bakery's answer to anna
CARLA = "109500000000000404"
S_H_THREAD = [
    ("117483896832000001", S_H, S_H, ANNA, False, t("2026-10-22T09:40:00")),
    ("117484034457600002", S_H, "117483896832000001", BAKERY_ID, True, t("2026-10-22T10:15:00")),
    ("117484211404800003", S_H, S_H, BOB, False, t("2026-10-22T11:00:00")),
    ("117484565299200004", S_H, S_H, DAVE, False, t("2026-10-22T12:30:00")),
    ("117484919193600005", S_H, S_H, CARLA, False, t("2026-10-22T14:00:00")),
]
# S_I's giveaway: brotfan<n> (account 1121000000000<n:05>) answers at 08:00 + 10 n minutes,
# the bakery thanks brotfan01 (08:15) and brotfan02 (08:25); in thread order
FAN1, FAN2 = "117472218316800001", "117472257638400002"
S_I_THREAD_START = [
    (FAN1, S_I, S_I, "112100000000000001", False, t("2026-10-20T08:10:00")),
    ("117472237977600101", S_I, FAN1, BAKERY_ID, True, t("2026-10-20T08:15:00")),
    (FAN2, S_I, S_I, "112100000000000002", False, t("2026-10-20T08:20:00")),
    ("117472277299200102", S_I, FAN2, BAKERY_ID, True, t("2026-10-20T08:25:00")),
    ("117472296960000003", S_I, S_I, "112100000000000003", False, t("2026-10-20T08:30:00")),
]
FAN58 = ("117474459648000058", S_I, S_I, "112100000000000058", False, t("2026-10-20T17:40:00"))
FAN62 = ("117474616934400062", S_I, S_I, "112100000000000062", False, t("2026-10-20T18:20:00"))


def test_the_default_lookback_reads_five_weeks_and_reports_a_capped_thread(server, sleeps):
    # the default lookback, 35 days: since = 2026-11-20 - 35 days = 2026-10-16 00:00
    window = FetchWindow(WINDOW.start, WINDOW.end)
    serve_folder(server, "social.example")
    result = platform(sleeps).fetch([bakery(server)], window)
    assert result.errors == []
    snaps = rows_of(result, "account_snapshots")
    assert table(snaps, SNAPSHOT_COLUMNS) == [(*BAKERY_SNAPSHOT[:4], t("2026-10-16T00:00:00"))]
    # page 2 holds nothing older than 10-16, so page 3 is read (its last: no Link header);
    # S_H (10-22, fav 30 / reblogs 2 / replies 4) and S_I (10-20) are observed too
    posts = rows_of(result, "post_observations")
    assert table(posts, POST_COLUMNS) == [
        *BAKERY_POSTS,
        (S_H, t("2026-10-22T09:00:00"), "original", 30, 4, 2, 0, U + S_H),
        (S_I, t("2026-10-20T08:00:00"), "original", 48, 62, 15, 0, U + S_I),
    ]
    # 9 requests instead of 6: page 3 and the threads of S_I and S_H (oldest first)
    assert requested(server) == [
        *BAKERY_REQUESTS[:3],
        f"/api/v1/accounts/{BAKERY_ID}/statuses?limit=40&max_id={S_H}",
        f"/api/v1/statuses/{S_I}/context",
        f"/api/v1/statuses/{S_H}/context",
        *BAKERY_REQUESTS[3:],
    ]
    threads = table(rows_of(result, "thread_replies"), THREAD_COLUMNS)
    # S_I: the 60 descendants an anonymous request gets: brotfan01 .. brotfan58 (58 direct
    # replies) and the bakery's two answers; brotfan59 .. 62 are cut
    giveaway, rest = threads[:60], threads[60:]
    assert giveaway[:5] == S_I_THREAD_START and giveaway[-1] == FAN58
    assert sum(1 for r in giveaway if r[2] == S_I) == 58
    assert [r[0] for r in giveaway if r[4]] == ["117472237977600101", "117472277299200102"]
    assert rest == S_H_THREAD + BAKERY_THREADS
    # S_I counts 62 direct replies, its context holds 58 of them: a warning (S_H: 4 of 4,
    # S_E 1 of 1, S_F 1 of 1, S_C 2 of 2: none)
    assert [(w.platform, w.company_id, w.handle) for w in result.warnings] == [
        ("mastodon", "baeckerei-korn", f"{base(server)}/@bakery")
    ]
    assert result.warnings[0].error == (
        f"thread of post {S_I}: read 58 of 62 direct replies (60 descendants returned; "
        "anonymous context requests are capped at 60 descendants (depth 20): a token for "
        f"127.0.0.1:{server.port} in the Airflow connection mastodon_default lifts the cap)"
    )
    assert_arrow(result)


def test_the_token_lifts_the_thread_cap_and_goes_to_its_own_server_only(server, other, sleeps):
    serve(server, load(f"with_token/context_{S_I}.json"))  # answered to the token only
    serve_folder(server, "social.example")
    conn = {"host": "127.0.0.1", "port": server.port, "password": "T0K"}
    context = PlatformContext(http=fast_client(sleeps), clock=lambda: FIXED_NOW, connection=conn)
    # a question on other.example: its context is asked there, without the token
    probe = _probe("p5", f"{base(other)}/@kundenstudie/{Q5}", "2026-11-19T08:00:00Z")
    result = MastodonPlatform(context=context).fetch(
        [bakery(server, (probe,))], FetchWindow(WINDOW.start, WINDOW.end)
    )
    assert result.errors == [] and result.warnings == []  # 62 of 62 direct replies
    threads = table(rows_of(result, "thread_replies"), THREAD_COLUMNS)
    # all 64 descendants of S_I: brotfan01 .. brotfan62 and the two answers
    giveaway = [r for r in threads if r[1] == S_I]
    assert len(giveaway) == 64 and giveaway[:5] == S_I_THREAD_START
    assert giveaway[-1] == FAN62
    assert sum(1 for r in giveaway if r[2] == S_I) == 62
    contexts = [
        (request.path, request.headers.get("Authorization"))
        for s in (server, other)
        for request, _ in s.log
        if request.path.endswith("/context")
    ]
    assert contexts == [
        (f"/api/v1/statuses/{root}/context", "Bearer T0K") for root in (S_I, S_H, S_E, S_F, S_C)
    ] + [(f"/api/v1/statuses/{Q5}/context", None)]
    assert [r["answered_at"] for r in result.rows["probes"]] == [t("2026-11-19T13:00:00")]


def test_a_thread_still_short_with_the_token_says_so(server, sleeps):
    # the token is sent, but the server answers as to an anonymous request (60 descendants)
    serve_folder(server, "social.example")
    conn = {"host": f"127.0.0.1:{server.port}", "password": "T0K"}
    context = PlatformContext(http=fast_client(sleeps), clock=lambda: FIXED_NOW, connection=conn)
    result = MastodonPlatform(context=context).fetch(
        [bakery(server)], FetchWindow(WINDOW.start, WINDOW.end)
    )
    assert result.errors == []
    assert [w.error for w in result.warnings] == [
        f"thread of post {S_I}: read 58 of 62 direct replies (60 descendants returned to the "
        "mastodon_default token, which may read up to 4096: the others are not visible to "
        "it (deleted, private, or from servers this one blocks))"
    ]


def test_the_page_limit_keeps_what_was_read_and_warns(server, sleeps):
    serve_folder(server, "social.example")
    ref = AccountRef("baeckerei-korn", f"{base(server)}/@bakery", {"max_pages": 1})
    result = platform(sleeps).fetch([ref, florist(server)], WINDOW)
    assert result.errors == []
    # one page: S_A, S_B, S_C (PINNED is before the cutoff); the next link is not followed
    posts = rows_of(result, "post_observations", "baeckerei-korn")
    assert table(posts, POST_COLUMNS) == BAKERY_POSTS[:3]
    assert table(rows_of(result, "thread_replies"), THREAD_COLUMNS) == BAKERY_THREADS[2:]
    assert requested(server)[:3] == [
        "/api/v1/accounts/lookup?acct=bakery",
        f"/api/v1/accounts/{BAKERY_ID}/statuses?limit=40",
        f"/api/v1/statuses/{S_C}/context",
    ]
    # read back to S_C (2026-11-18 16:20), the oldest unpinned status of page 1 (not the
    # pinned one of 2026-08-03)
    snaps = rows_of(result, "account_snapshots", "baeckerei-korn")
    assert table(snaps, SNAPSHOT_COLUMNS) == [(*BAKERY_SNAPSHOT[:4], t("2026-11-18T16:20:00"))]
    assert [(w.company_id, w.error) for w in result.warnings] == [
        (
            "baeckerei-korn",
            f"statuses of account {BAKERY_ID}: page limit reached (max_pages 1) before "
            "2026-10-23 00:00:00 UTC: posts before 2026-11-18 16:20:00 UTC not read; raise "
            "the account option max_pages",
        )
    ]
    # the florist's single page is within any limit: read back to the cutoff
    florist_snaps = rows_of(result, "account_snapshots", "blumen-ada")
    assert [r["posts_since"] for r in florist_snaps] == [CUTOFF]
    assert_arrow(result)


# -- rate limits and transient faults: the fetch goes on ----------------------------------


def test_rate_limit_headers_are_honoured(server, sleeps):
    # the lookup's answer leaves only the reserve (Remaining 1 of 300) until a reset 30 s
    # ahead (set at run time: the client measures the reset against the wall clock)
    reset = (dt.datetime.now(UTC) + dt.timedelta(seconds=30)).isoformat()
    serve(
        server,
        load("social.example/lookup_bakery.json"),
        headers={"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": reset},
    )
    serve_folder(server, "social.example", skip={"lookup_bakery"})
    result = platform(sleeps).fetch([bakery(server)], WINDOW)
    assert result.errors == []
    assert_bakery_rows(result)
    # the next request (page 1) waited for the reset; page 1 restores the budget (298)
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


def test_429_is_waited_out_as_told(server, sleeps):
    page2 = load("social.example/statuses_bakery_page2.json")
    page2_429 = {
        "request": page2["request"],
        "response": {
            "status": 429,
            "headers": {
                "Content-Type": "application/json; charset=utf-8",
                "Retry-After": "2",
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "2026-11-20T06:05:00.000000Z",
            },
            "body": {"error": "Too many requests"},
        },
    }
    serve(server, page2_429, once=True)
    serve_folder(server, "social.example")
    result = platform(sleeps).fetch([bakery(server)], WINDOW)
    assert result.errors == []
    assert_bakery_rows(result)
    assert sleeps == [2.0]
    assert (
        requested(server).count(f"/api/v1/accounts/{BAKERY_ID}/statuses?limit=40&max_id={S_C}") == 2
    )


def test_500_is_retried_then_succeeds(server, sleeps):
    ctx = load(f"social.example/context_{S_C}.json")
    serve(
        server,
        {
            "request": ctx["request"],
            "response": {
                "status": 500,
                "headers": {"Content-Type": "text/html"},
                "body": "<html><body><h1>We're sorry, but something went wrong.</h1></body></html>",
            },
        },
        once=True,
    )
    serve_folder(server, "social.example")
    result = platform(sleeps).fetch([bakery(server)], WINDOW)
    assert result.errors == []
    assert_bakery_rows(result)
    # one backoff of 0.01 s (+ up to 25 % jitter)
    assert len(sleeps) == 1 and 0.01 <= sleeps[0] <= 0.0125


# -- faults of one account: it has an error and no rows, the other account is intact -------


def _slow(request):
    time.sleep(0.8)  # longer than the read timeout of 0.5 s
    return Response("[]", content_type="application/json")


LOOKUP, STATUSES = "lookup_blumenada", "statuses_blumenada"  # the florist's healthy files


def _install(respond):
    """A fault of the florist's first statuses page, made by a handler."""

    def install(s: HTTPServer) -> None:
        respond(
            s.expect_request(
                f"/api/v1/accounts/{FLORIST_ID}/statuses", query_string={"limit": "40"}
            )
        )

    return install


FAULTS = {
    # name: (the healthy file replaced, fault files or an installer, the error's message)
    "404 account": (
        LOOKUP,
        ["lookup_404"],
        r"^looking up @blumenada on http://127\.0\.0\.1:\d+: HttpError: "
        # (the shared client names the URL with its query)
        r"HTTP 404 not found: Record not found \(http://.*/api/v1/accounts/lookup\?acct=blumenada\)$",
    ),
    "suspended": (
        LOOKUP,
        ["lookup_suspended"],
        rf"^looking up @blumenada on .*: account {FLORIST_ID} is suspended by its server$",
    ),
    "401 private": (
        STATUSES,
        ["statuses_401"],
        r"reading the statuses of account .* \(page 1\): HttpError: HTTP 401 unauthorized "
        r".*: This API requires an authenticated user",
    ),
    "html 200": (
        STATUSES,
        ["statuses_html_200"],
        r"\(page 1\): PayloadError: expected JSON, got text/html; charset=utf-8: "
        r"'<!DOCTYPE html> <html lang=\"de\">",
    ),
    "truncated json": (STATUSES, ["statuses_truncated"], r"\(page 1\): PayloadError: invalid JSON"),
    "repeating next link": (
        STATUSES,
        ["statuses_loop_page1", "statuses_loop_page2"],
        # page 1 links to max_id=fl1; page 2 (max_id=fl1) links to max_id=fl1 again
        r"\(page 2\): pagination loop: the next link http://127\.0\.0\.1:\d+/api/v1/accounts/"
        rf"{FLORIST_ID}/statuses\?limit=40&max_id=117642048307215808 repeats a page already read",
    ),
    "missing created_at": (
        STATUSES,
        ["statuses_no_created_at"],
        r"\(page 1\): status 117642048307215808 in page 1 has no valid 'created_at'",
    ),
    "timeout": (
        STATUSES,
        _install(lambda h: h.respond_with_handler(_slow)),
        r"\(page 1\): HttpError: timed out after 2 attempts",
    ),
    "persistent 502": (
        STATUSES,
        _install(
            lambda h: h.respond_with_data("Bad Gateway", status=502, content_type="text/html")
        ),
        r"\(page 1\): HttpError: HTTP 502 after 2 attempts",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_bad_account_costs_only_itself(server, sleeps, fault):
    replaced, faulty, message = FAULTS[fault]
    if callable(faulty):
        faulty(server)
    else:
        for name in faulty:
            serve(server, load(f"faults/{name}.json"))
    serve_folder(server, "social.example", skip={replaced})
    # the bad account comes first: the good one after it must not suffer
    result = platform(sleeps).fetch([florist(server), bakery(server)], WINDOW)
    assert_bakery_rows(result)
    assert [(e.platform, e.company_id, e.handle) for e in result.errors] == [
        ("mastodon", "blumen-ada", f"{base(server)}/@blumenada")
    ]
    assert re.search(message, result.errors[0].error), result.errors[0].error
    for name in ("account_snapshots", "post_observations", "thread_replies", "probes"):
        assert rows_of(result, name, "blumen-ada") == []  # its probe included
    assert result.rows["probes"] == []


def test_an_unusable_handle_is_the_accounts_error(server, sleeps):
    serve_folder(server, "social.example")
    bad = AccountRef("blumen-ada", "blumenada")
    result = platform(sleeps).fetch([bad, bakery(server)], WINDOW)
    assert_bakery_rows(result)
    assert (
        len(result.errors) == 1 and "not a Mastodon handle: 'blumenada'" in result.errors[0].error
    )


# -- the client's limits: one account drips, breaks off or overflows, the other is intact --
# The florist lives on a RawServer (HTTP by hand: it can drip, reset, stop half-way); its
# lookup is the recorded one, its first timeline page the fault. The bakery is served as
# recorded. The client: read timeout 0.5 s, deadline 1 s, one retry.

FLORIST_LOOKUP = "/api/v1/accounts/lookup?acct=blumenada"
FLORIST_PAGE = f"/api/v1/accounts/{FLORIST_ID}/statuses?limit=40"
JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}


def _florist_on(raw_server, fault) -> tuple[Any, AccountRef]:
    def respond(server, conn, path):
        if path == FLORIST_LOOKUP:
            server.send(
                conn, http_json(load("social.example/lookup_blumenada.json")["response"]["body"])
            )
        elif path == FLORIST_PAGE:
            fault(server, conn)
        else:
            server.send(conn, http_json({"error": "Record not found"}, status=404))
        return False

    raw = raw_server(respond)
    return raw, AccountRef("blumen-ada", raw.url("/@blumenada"))


def _drip(server, conn) -> None:
    server.send(conn, http_head(200, {**JSON_TYPE, "Content-Length": "100000"}) + b"[")
    while not server.stopping.is_set():  # a byte every 0.1 s: the read timeout never trips
        server.send(conn, b" ")
        time.sleep(0.1)


def _reset_mid_body(server, conn) -> None:
    server.send(conn, http_head(200, {**JSON_TYPE, "Content-Length": "5000"}) + b'[{"id": "11')
    time.sleep(0.2)
    reset(conn)


def _truncated_chunks(server, conn) -> None:
    # a chunk of 0x400 bytes announced, 12 sent, then the connection ends
    head = http_head(200, {**JSON_TYPE, "Transfer-Encoding": "chunked"})
    server.send(conn, head + b'400\r\n[{"id": "11')


def _oversized(server, conn) -> None:
    # valid JSON: the recorded statuses again and again, 2 MB in chunks (no Content-Length)
    status = json.dumps(load("social.example/statuses_blumenada.json")["response"]["body"][0])
    server.send(conn, http_head(200, {**JSON_TYPE, "Transfer-Encoding": "chunked"}))
    server.send(conn, b"1\r\n[\r\n")
    piece = (status + ",").encode() * 20
    for _ in range(2_000_000 // len(piece)):
        server.send(conn, b"%x\r\n%s\r\n" % (len(piece), piece))
    last = (status + "]").encode()
    server.send(conn, b"%x\r\n%s\r\n0\r\n\r\n" % (len(last), last))


PAGE_ERROR = rf"^reading the statuses of account {FLORIST_ID} \(page 1\): "
PAGE_URL = rf"\(http://127\.0\.0\.1:\d+/api/v1/accounts/{FLORIST_ID}/statuses\?limit=40\)$"
LIMIT_FAULTS = {
    "dripping page": (
        _drip,
        PAGE_ERROR + r"HttpError: deadline of 1 s exceeded after 2 attempts: .*" + PAGE_URL,
    ),
    "reset mid-body": (
        _reset_mid_body,
        PAGE_ERROR
        + r"HttpError: response body broken after 2 attempts: ChunkedEncodingError: .*"
        + PAGE_URL,
    ),
    "truncated chunked body": (
        _truncated_chunks,
        PAGE_ERROR
        + r"HttpError: response body broken after 2 attempts: ChunkedEncodingError: .*"
        + PAGE_URL,
    ),
    "oversized page": (
        _oversized,
        PAGE_ERROR + r"ResponseTooLarge: response larger than the cap of 524288 bytes "
        r"\(HttpPolicy\.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES\); stopped reading after \d+ bytes "
        + PAGE_URL,
    ),
}


@pytest.mark.timeout(30)  # a dripping server must not hold the batch up forever
@pytest.mark.parametrize("fault", list(LIMIT_FAULTS))
def test_a_dripping_broken_or_oversized_account_costs_only_itself(
    server, raw_server, sleeps, fault
):
    respond, message = LIMIT_FAULTS[fault]
    serve_folder(server, "social.example")
    raw, florist_ref = _florist_on(raw_server, respond)
    client = limited_client(sleeps, deadline=1.0, max_bytes=512 * 1024)
    context = PlatformContext(http=client, clock=lambda: FIXED_NOW)
    # the bad account comes first: the batch goes on with the bakery
    result = MastodonPlatform(context=context).fetch([florist_ref, bakery(server)], WINDOW)
    assert_bakery_rows(result)
    assert [(e.platform, e.company_id, e.handle) for e in result.errors] == [
        ("mastodon", "blumen-ada", florist_ref.handle)
    ]
    assert re.match(message, result.errors[0].error), result.errors[0].error
    for name in ("account_snapshots", "post_observations", "thread_replies", "probes"):
        assert rows_of(result, name, "blumen-ada") == []
    # retried once, except what would come as large again
    pages = 1 if fault == "oversized page" else 2
    assert raw.paths == [FLORIST_LOOKUP] + [FLORIST_PAGE] * pages


@pytest.mark.timeout(30)
def test_an_account_past_its_time_budget_fails_and_the_next_one_goes_on(server, raw_server, sleeps):
    serve_folder(server, "social.example")
    raw, florist_ref = _florist_on(raw_server, _drip)
    # five retries allowed, but the florist's 1.5 s are gone during the second attempt
    client = limited_client(sleeps, deadline=1.0, retries=5, account_budget=1.5)
    context = PlatformContext(http=client, clock=lambda: FIXED_NOW)
    result = MastodonPlatform(context=context).fetch([florist_ref, bakery(server)], WINDOW)
    assert_bakery_rows(result)  # a budget of its own
    [error] = result.errors
    assert error.company_id == "blumen-ada"
    assert re.match(
        PAGE_ERROR + r"BudgetExceeded: time budget of 1\.5 s for account "
        rf"{re.escape(florist_ref.handle)} \(blumen-ada\) used up after 3 requests: a request "
        r"was cut off at its end \(HttpPolicy\.account_budget\) " + PAGE_URL,
        error.error,
    ), error.error
    assert raw.paths == [FLORIST_LOOKUP, FLORIST_PAGE, FLORIST_PAGE]


# -- a reply in the contexts of two accounts: delivered once ---------------------------------
# shared_reply/: the florist answers the bakery's S_C (F1) and continues its answer with a
# self-reply (F2: an original by the connector's rule, with a reply, so its context is read);
# carla replies to F2 (X). X is a descendant of S_C and of F2: both contexts hold it.

F1 = "117642520166405151"  # 2026-11-19 10:00 the florist's reply to S_C
F2 = "117642539827205252"  # 2026-11-19 10:05 the florist's self-reply to F1, 1 reply
X = "117642756096005353"  # 2026-11-19 11:00 carla's reply to F2
CARLA = "109500000000000404"


def test_a_reply_in_the_contexts_of_two_accounts_is_delivered_once(server, sleeps, caplog):
    serve_folder(server, "social.example", skip={"statuses_blumenada", f"context_{S_C}"})
    serve_folder(server, "shared_reply")
    ref = AccountRef("blumen-ada", f"{base(server)}/@blumenada")
    with caplog.at_level("WARNING", logger="socialpulse.platforms.base"):
        result = platform(sleeps).fetch([bakery(server), ref], WINDOW)
    assert result.errors == [] and result.warnings == []
    # the bakery's thread of S_C, as its context says: the five recorded replies, F1, F2, X
    assert table(rows_of(result, "thread_replies", "baeckerei-korn"), THREAD_COLUMNS) == [
        *BAKERY_THREADS,
        (F1, S_C, S_C, FLORIST_ID, False, t("2026-11-19T10:00:00")),
        (F2, S_C, F1, FLORIST_ID, False, t("2026-11-19T10:05:00")),
        (X, S_C, F2, CARLA, False, t("2026-11-19T11:00:00")),
    ]
    # the florist's thread of F2 was read (its post has a reply) and held X only: X came
    # for the bakery first, so the florist has no thread row
    assert f"/api/v1/statuses/{F2}/context" in requested(server)
    assert rows_of(result, "thread_replies", "blumen-ada") == []
    posts = rows_of(result, "post_observations", "blumen-ada")
    assert table(posts, ("post_id", "kind", "replies")) == [
        (F2, "original", 1),
        (F1, "reply", 1),
        ("117642048307215808", "original", 0),
        ("117602412134406510", "original", 0),
    ]
    for name, rows in result.rows.items():  # every raw key once
        keys = [tuple(r[c] for c in RAW_SCHEMAS[name].key) for r in rows]
        assert len(keys) == len(set(keys)), name
    [record] = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert record.getMessage() == (
        f"mastodon: thread_replies platform=mastodon, reply_id={X}, observed_at={FIXED_NOW} "
        f"came for blumen-ada ({FLORIST_ID}) and already for baeckerei-korn ({BAKERY_ID}); "
        "kept the first, dropped the second"
    )
