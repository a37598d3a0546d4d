"""The RSS/Atom connector against real HTTP: recorded feeds served on 127.0.0.1.

Every expected row is written out by hand from the fixture files in tests/fixtures/rss/;
the comments give the reasoning. The clock is fixed at FIXED_NOW and the window is the day
before it with a 28-day lookback, so an entry is observed when it was published (else
updated) in [2025-05-13T00:00Z, 2025-06-10T06:00Z], both ends included. The paging tests
(RFC 5005 next links) use other windows, said where they are.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import socket
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from socialpulse.platforms import get_platform
from socialpulse.platforms.base import AccountRef, FetchError, FetchWindow, PlatformContext
from socialpulse.platforms.rss import CACHE_FILE, HttpCache, RssPlatform
from socialpulse.records import RAW_SCHEMAS, to_arrow
from tests.unit.conftest import Sleeps, fast_client, http_head, limited_client, reset

UTC = dt.UTC
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rss"
FIXED_NOW = dt.datetime(2025, 6, 10, 6, 0, tzinfo=UTC)
# data interval [2025-06-09, 2025-06-10), lookback 28 days: since = 2025-05-13T00:00Z
WINDOW = FetchWindow(
    start=dt.datetime(2025, 6, 9, tzinfo=UTC),
    end=dt.datetime(2025, 6, 10, tzinfo=UTC),
    lookback=dt.timedelta(days=28),
)
SINCE = dt.datetime(2025, 5, 13, tzinfo=UTC)
RSS_TYPE = "application/rss+xml; charset=UTF-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
WP = "https://baeckerei-sonnenschein.example"
HW = "https://tischlerei-holzwurm.example/news"
SW = "https://stadtwerke-nord.example/blog"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def _server():
    # threaded: a slow (timing-out) feed must not hold up the next account's request
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def server(_server):
    yield _server
    try:
        _server.check_assertions()  # no request the test did not expect
    finally:
        _server.clear()


def platform(state_dir: Path | None, sleeps: Sleeps, now: dt.datetime = FIXED_NOW) -> RssPlatform:
    http = fast_client(sleeps)
    return RssPlatform(context=PlatformContext(state_dir=state_dir, http=http, clock=lambda: now))


def serve(server, path, body, content_type=RSS_TYPE, headers=None, status=200):
    server.expect_request(path).respond_with_response(
        Response(body, status=status, content_type=content_type, headers=headers or {})
    )
    return server.url_for(path)


def post(feed, company, post_id, created, replies=0, url=None):
    return {
        "platform": "rss",
        "post_id": post_id,
        "account_id": feed,
        "company_id": company,
        "created_at": created,
        "kind": "original",
        "likes": 0,
        "replies": replies,
        "reposts": 0,
        "quotes": 0,
        "views": None,
        "url": url,
        "observed_at": FIXED_NOW,
    }


def wordpress_rows(feed: str, company: str = "baeckerei") -> list[dict]:
    """wordpress.xml in the default window, in feed order.

    ?p=107 06:00:01 +0000 is a second after now: out. ?p=106 08:00:00 +0200 = 06:00:00Z =
    now: in (1 comment). ?p=105 16:30 +0200 = 14:30Z (12 comments). ?p=104 08:00Z, 0
    comments. ?p=103 02:00 +0200 on 13 May = 2025-05-13T00:00Z, exactly the lookback start:
    in (3 comments). ?p=102 (12 May 23:59:59Z) and ?p=101 (1 April) are older: out.
    """
    return [
        post(feed, company, f"{WP}/?p=106", dt.datetime(2025, 6, 10, 6, 0, tzinfo=UTC), 1,
             f"{WP}/2025/06/10/fruehschicht-broetchen/"),
        post(feed, company, f"{WP}/?p=105", dt.datetime(2025, 6, 9, 14, 30, tzinfo=UTC), 12,
             f"{WP}/2025/06/09/sauerteig-backstube/"),
        post(feed, company, f"{WP}/?p=104", dt.datetime(2025, 6, 6, 8, 0, tzinfo=UTC), 0,
             f"{WP}/2025/06/06/pfingsten-oeffnungszeiten/"),
        post(feed, company, f"{WP}/?p=103", dt.datetime(2025, 5, 13, 0, 0, tzinfo=UTC), 3,
             f"{WP}/2025/05/13/dinkel-vollkornbrot/"),
    ]  # fmt: skip


def atom_rows(feed: str, company: str = "stadtwerke") -> list[dict]:
    """atom.xml in the default window, in feed order.

    post-88: published 09:15+02:00 = 07:15Z wins over updated (18:00+02:00). post-87: no
    published, so updated 12:00Z; its relative href resolves against xml:base. post-86: no
    link at all, so url None (not the tag: id feedparser copies into ``link``). post-85:
    no date: skipped. post-80: published 1 April (before the lookback start); a recent
    ``updated`` does not bring it back.
    """
    return [
        post(feed, company, "tag:stadtwerke-nord.example,2025:post-88",
             dt.datetime(2025, 6, 9, 7, 15, tzinfo=UTC), 0, f"{SW}/glasfaser-altstadt"),
        post(feed, company, "tag:stadtwerke-nord.example,2025:post-87",
             dt.datetime(2025, 6, 2, 12, 0, tzinfo=UTC), 0, f"{SW}/stoerung-behoben"),
        post(feed, company, "tag:stadtwerke-nord.example,2025:post-86",
             dt.datetime(2025, 5, 20, 8, 0, tzinfo=UTC), 0, None),
    ]  # fmt: skip


def only_posts(result) -> list[dict]:
    """The post rows, after checking that only posts and snapshots were emitted, that every
    feed with posts has a snapshot and that the rows convert."""
    for table in RAW_SCHEMAS:
        if table not in ("post_observations", "account_snapshots"):
            assert result.rows[table] == [], table
        rows = result.rows[table]
        assert to_arrow(RAW_SCHEMAS[table], rows).num_rows == len(rows)
    rows = result.rows["post_observations"]
    assert {r["account_id"] for r in rows} <= {
        r["account_id"] for r in result.rows["account_snapshots"]
    }
    return rows


def snapshot(feed: str, company: str, handle: str | None = None, since=SINCE) -> dict:
    """A feed's snapshot: no counters, read back to ``since``."""
    return {
        "platform": "rss",
        "company_id": company,
        "account_id": feed,
        "handle": handle or feed,
        "observed_at": FIXED_NOW,
        "followers": None,
        "following": None,
        "posts_total": None,
        "posts_since": since,
    }


# --- mapping -------------------------------------------------------------------------------


def test_wordpress_rss_with_comment_counts_is_mapped_exactly(server, sleeps, tmp_path):
    url = serve(server, "/wp/feed/", fixture("wordpress.xml"))
    result = platform(tmp_path, sleeps).fetch([AccountRef("baeckerei", url)], WINDOW)
    assert result.errors == [] and result.warnings == []
    assert only_posts(result) == wordpress_rows(url)
    # one snapshot: the feed was read (back to since); a feed has no counters
    assert result.rows["account_snapshots"] == [snapshot(url, "baeckerei")]
    assert sleeps == []


def test_atom_is_mapped_exactly(server, sleeps, tmp_path):
    url = serve(server, "/blog/atom.xml", fixture("atom.xml"), content_type=ATOM_TYPE)
    result = platform(tmp_path, sleeps).fetch([AccountRef("stadtwerke", url)], WINDOW)
    assert result.errors == []
    assert only_posts(result) == atom_rows(url)


def test_a_feed_that_ends_before_since_was_read_back_to_its_oldest_entry_only(
    server, sleeps, tmp_path
):
    # a backfill since 2025-03-01: atom.xml has no next link and its oldest dated entry is
    # post-80, published 2025-04-01 10:00+02:00 = 08:00Z. A feed keeps its last entries
    # only: what was posted before it is unknown, so the fetch did not look at March (no
    # invented zeros): posts_since = 04-01 08:00Z, not the window's 03-01.
    backfill = FetchWindow(
        start=dt.datetime(2025, 3, 1, tzinfo=UTC), end=WINDOW.end, lookback=WINDOW.lookback
    )
    url = serve(server, "/blog/atom.xml", fixture("atom.xml"), content_type=ATOM_TYPE)
    result = platform(tmp_path, sleeps).fetch([AccountRef("stadtwerke", url)], backfill)
    assert result.errors == [] and result.warnings == []
    oldest = dt.datetime(2025, 4, 1, 8, 0, tzinfo=UTC)
    assert result.rows["account_snapshots"] == [snapshot(url, "stadtwerke", since=oldest)]
    # post-80 itself is in the window now
    assert [r["created_at"] for r in only_posts(result)][-1] == oldest


def test_plain_rss_without_comment_counts_and_with_sloppy_items(server, sleeps, tmp_path, caplog):
    url = serve(server, "/news.xml", fixture("news.xml"), content_type="text/xml")
    with caplog.at_level(logging.WARNING, logger="socialpulse.platforms.rss"):
        result = platform(tmp_path, sleeps).fetch([AccountRef("holzwurm", url)], WINDOW)
    assert result.errors == []
    # no slash:comments anywhere: replies 0. werkstatt-offen: a permalink guid and no <link>,
    # so id and url are the guid (08 Jun 10:00 GMT). neue-kuechen: no guid, so the link is
    # the id (12:15 +0200 = 10:15Z); its verbatim duplicate is dropped. holzwurm-2025-023:
    # guid isPermaLink="false" and no link, so url None, and as a bare guid is unique only
    # inside its feed, the id is namespaced with the feed URL; dated only by dc:date
    # (09:00+02:00 = 07:00Z). azubi (no date) and restposten (pubDate "gestern") are skipped; "Danke"
    # has neither guid nor link: skipped.
    assert only_posts(result) == [
        post(url, "holzwurm", f"{HW}/werkstatt-offen.html",
             dt.datetime(2025, 6, 8, 10, 0, tzinfo=UTC), 0, f"{HW}/werkstatt-offen.html"),
        post(url, "holzwurm", f"{HW}/neue-kuechen.html",
             dt.datetime(2025, 6, 4, 10, 15, tzinfo=UTC), 0, f"{HW}/neue-kuechen.html"),
        post(url, "holzwurm", f"{url}#holzwurm-2025-023",
             dt.datetime(2025, 5, 30, 7, 0, tzinfo=UTC), 0, None),
    ]  # fmt: skip
    logged = caplog.text
    assert "2 entries without a publication or update date skipped" in logged
    assert f"{HW}/azubi.html" in logged and f"{HW}/restposten.html" in logged
    assert "has neither id nor link" in logged


@pytest.mark.parametrize(
    ("lookback_days", "now", "expected"),
    [
        # since 2025-06-09T00:00Z: ?p=106 (at now) and ?p=105 (9 June 14:30Z)
        (1, FIXED_NOW, ["106", "105"]),
        # since 2025-06-06T00:00Z: also ?p=104 (6 June 08:00Z)
        (4, FIXED_NOW, ["106", "105", "104"]),
        # since 2025-05-13T00:00Z: also ?p=103, exactly at the start
        (28, FIXED_NOW, ["106", "105", "104", "103"]),
        # since 2025-05-12T00:00Z: also ?p=102 (12 May 23:59:59Z); ?p=101 (1 April) stays out
        (29, FIXED_NOW, ["106", "105", "104", "103", "102"]),
        # a second later, ?p=107 (06:00:01Z) is no longer in the future
        (1, FIXED_NOW + dt.timedelta(seconds=1), ["107", "106", "105"]),
    ],
)
def test_lookback_filter(server, sleeps, tmp_path, lookback_days, now, expected):
    url = serve(server, "/wp/feed/", fixture("wordpress.xml"))
    window = FetchWindow(WINDOW.start, WINDOW.end, dt.timedelta(days=lookback_days))
    result = platform(None, sleeps, now=now).fetch([AccountRef("baeckerei", url)], window)
    assert result.errors == []
    rows = only_posts(result)
    assert [r["post_id"] for r in rows] == [f"{WP}/?p={n}" for n in expected]
    assert {r["observed_at"] for r in rows} == {now}


def test_feed_url_from_options_or_handle(server, sleeps, tmp_path):
    url = serve(server, "/wp/feed/", fixture("wordpress.xml"))
    accounts = [
        AccountRef("baeckerei", "Bäckerei Sonnenschein", {"feed_url": url}),
        AccountRef("nourl", "@holzwurm"),  # neither a URL nor options.feed_url: no request
    ]
    # built the way the pipeline builds it: by name, from socialpulse.platforms
    connector = get_platform("rss", platform(tmp_path, sleeps).context)
    assert isinstance(connector, RssPlatform) and connector.name == "rss"
    result = connector.fetch(accounts, WINDOW)
    # account_id is the feed URL whatever the handle says; the snapshot keeps the handle
    assert only_posts(result) == wordpress_rows(url)
    assert result.rows["account_snapshots"] == [
        snapshot(url, "baeckerei", handle="Bäckerei Sonnenschein")
    ]
    assert result.errors == [
        FetchError(
            "rss",
            "nourl",
            "@holzwurm",
            "no feed URL: the handle '@holzwurm' is not an http(s) URL and the account has "
            "no options.feed_url",
        )
    ]
    assert len(server.log) == 1


# --- conditional GET -----------------------------------------------------------------------

V1 = {"ETag": '"wp-v1"', "Last-Modified": "Tue, 10 Jun 2025 04:00:01 GMT"}
V2 = {"ETag": '"wp-v2"', "Last-Modified": "Tue, 10 Jun 2025 05:30:00 GMT"}


def cache_of(state_dir: Path) -> dict:
    return json.loads((state_dir / CACHE_FILE).read_text(encoding="utf-8"))


def test_conditional_get_stores_validators_sends_them_and_honours_304(server, sleeps, tmp_path):
    path = "/wp/feed/"
    url = server.url_for(path)
    account = [AccountRef("baeckerei", url)]

    # 1st run: an unconditional GET; the validators are kept after the feed parsed
    server.expect_oneshot_request(path).respond_with_response(
        Response(fixture("wordpress.xml"), content_type=RSS_TYPE, headers=V1)
    )
    first = platform(tmp_path, sleeps).fetch(account, WINDOW)
    assert first.errors == [] and only_posts(first) == wordpress_rows(url)
    sent = server.log[-1][0].headers
    assert "If-None-Match" not in sent and "If-Modified-Since" not in sent
    assert "application/rss+xml" in sent["Accept"]
    assert cache_of(tmp_path) == {
        url: {"etag": '"wp-v1"', "last_modified": "Tue, 10 Jun 2025 04:00:01 GMT"}
    }
    # written atomically: no temp file left next to it (the .lock file is the lock); the
    # body is kept beside the validators, for the 304s to come
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [CACHE_FILE, CACHE_FILE + ".lock", "rss_bodies"]
    )
    assert [p.suffix for p in (tmp_path / "rss_bodies").iterdir()] == [".xml"]

    # 2nd run: the server sees both validators and answers 304 (no body): the cached copy is
    # observed again, so a run whose batch was quarantined loses nothing; no error
    server.expect_oneshot_request(
        path,
        headers={"If-None-Match": '"wp-v1"', "If-Modified-Since": "Tue, 10 Jun 2025 04:00:01 GMT"},
    ).respond_with_data("", status=304, headers=V1)
    second = platform(tmp_path, sleeps).fetch(account, WINDOW)
    assert second.errors == [] and only_posts(second) == wordpress_rows(url)
    # the feed was looked at (its cached copy re-observed): a snapshot as after a download
    assert second.rows["account_snapshots"] == [snapshot(url, "baeckerei")]
    sent = server.log[-1][0].headers
    assert sent["If-None-Match"] == '"wp-v1"'
    assert sent["If-Modified-Since"] == "Tue, 10 Jun 2025 04:00:01 GMT"
    assert server.log[-1][1].status_code == 304
    assert cache_of(tmp_path)[url]["etag"] == '"wp-v1"'

    # 3rd run: the feed changed (a new comment on ?p=105): 200, rows again, new validators
    changed = fixture("wordpress.xml").replace(
        b"<slash:comments>12</slash:comments>", b"<slash:comments>13</slash:comments>"
    )
    server.expect_oneshot_request(path, headers={"If-None-Match": '"wp-v1"'}).respond_with_response(
        Response(changed, content_type=RSS_TYPE, headers=V2)
    )
    third = platform(tmp_path, sleeps).fetch(account, WINDOW)
    expected = wordpress_rows(url)
    expected[1]["replies"] = 13  # ?p=105
    assert third.errors == [] and only_posts(third) == expected
    assert cache_of(tmp_path) == {
        url: {"etag": '"wp-v2"', "last_modified": "Tue, 10 Jun 2025 05:30:00 GMT"}
    }
    assert len(server.log) == 3


def test_validators_are_kept_only_after_a_successful_parse(server, sleeps, tmp_path):
    path = "/wp/feed/"
    url = server.url_for(path)
    (tmp_path / CACHE_FILE).write_text(
        json.dumps({url: {"etag": '"wp-v1"', "last_modified": None}}), encoding="utf-8"
    )
    # the site answers with its maintenance page (200, a new ETag): an error, cache unchanged
    server.expect_oneshot_request(path).respond_with_response(
        Response(fixture("maintenance.html"), content_type="text/html", headers={"ETag": '"x"'})
    )
    result = platform(tmp_path, sleeps).fetch([AccountRef("baeckerei", url)], WINDOW)
    assert only_posts(result) == [] and len(result.errors) == 1
    assert server.log[-1][0].headers["If-None-Match"] == '"wp-v1"'
    assert "If-Modified-Since" not in server.log[-1][0].headers  # none was known
    assert cache_of(tmp_path) == {url: {"etag": '"wp-v1"', "last_modified": None}}


def test_without_a_state_dir_every_request_is_unconditional(server, sleeps):
    url = serve(server, "/wp/feed/", fixture("wordpress.xml"), headers=V1)
    for _ in range(2):
        result = platform(None, sleeps).fetch([AccountRef("baeckerei", url)], WINDOW)
        assert result.errors == [] and only_posts(result) == wordpress_rows(url)
    assert [("If-None-Match" in req.headers) for req, _ in server.log] == [False, False]


def test_an_unreadable_cache_is_ignored_and_rewritten(server, sleeps, tmp_path):
    (tmp_path / CACHE_FILE).write_text('{"http://x": {"etag"', encoding="utf-8")  # cut off
    url = serve(server, "/wp/feed/", fixture("wordpress.xml"), headers=V1)
    result = platform(tmp_path, sleeps).fetch([AccountRef("baeckerei", url)], WINDOW)
    assert result.errors == [] and only_posts(result) == wordpress_rows(url)
    assert "If-None-Match" not in server.log[-1][0].headers
    assert cache_of(tmp_path) == {
        url: {"etag": '"wp-v1"', "last_modified": "Tue, 10 Jun 2025 04:00:01 GMT"}
    }


def test_parallel_batches_sharing_the_state_dir_do_not_lose_each_others_validators(tmp_path):
    class Resp:  # what HttpCache.remember reads of a response
        def __init__(self, etag):
            self.headers = {"ETag": etag}
            self.content = b"<rss/>"

    a, b = HttpCache(tmp_path), HttpCache(tmp_path)  # both read the (empty) file first
    a.remember("https://a.example/feed", Resp('"a1"'))
    b.remember("https://b.example/feed", Resp('"b1"'))
    a.save()
    b.save()  # merges into what a wrote instead of overwriting it
    assert cache_of(tmp_path) == {
        "https://a.example/feed": {"etag": '"a1"', "last_modified": None},
        "https://b.example/feed": {"etag": '"b1"', "last_modified": None},
    }


# --- faults: one bad account never blocks the others ---------------------------------------


def _slow(request):
    time.sleep(1.0)  # read timeout 0.5 s: both attempts time out
    return Response(fixture("atom.xml"), content_type=ATOM_TYPE)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


WP_BYTES = fixture("wordpress.xml")
# cut right after the </item> of ?p=104: three complete entries, but no </channel></rss>
CUT_AFTER_ITEMS = WP_BYTES[: WP_BYTES.index(b"</item>", WP_BYTES.index(b"?p=104")) + 7]

FAULTS = {
    # name: (responses to the bad feed in order, then forever the last one; expected error)
    "429 then success": (
        [Response("slow down", status=429, headers={"Retry-After": "3"}), "atom"],
        None,
    ),
    "500 then success": ([Response("oops", status=500), "atom"], None),
    "timeout": ([_slow], r"^feed could not be fetched: timed out after 2 attempts: .*\(URL\)$"),
    "HTML page with 200": (
        [Response(fixture("maintenance.html"), content_type="text/html; charset=utf-8")],
        r"^got an HTML page \(text/html; charset=utf-8\), not an RSS or Atom feed: "
        r"'<!DOCTYPE html> <html lang=\"de\">.*\(URL\)$",
    ),
    "truncated XML without entries": (
        [Response(fixture("truncated.xml"), content_type=RSS_TYPE)],
        rf"^truncated feed: the XML ends before its closing tag after {len(fixture('truncated.xml'))} bytes "
        r"\(SAXParseException: .*no element found\) \(URL\)$",
    ),
    "truncated XML after complete entries": (
        [Response(CUT_AFTER_ITEMS, content_type=RSS_TYPE)],
        rf"^truncated feed: the XML ends before its closing tag after {len(CUT_AFTER_ITEMS)} "
        r"bytes .*\(URL\)$",
    ),
    "404": (
        [Response("<h1>Not Found</h1>", status=404, content_type="text/html")],
        r"^feed could not be fetched: HTTP 404 not found \(URL\)$",
    ),
    "500 after retries": (
        [Response("oops", status=500)],
        r"^feed could not be fetched: HTTP 500 after 2 attempts \(URL\)$",
    ),
    "empty body": (
        [Response("", content_type=RSS_TYPE)],
        r"^empty response \(application/rss\+xml; charset=UTF-8\), not an RSS or Atom feed \(URL\)$",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_one_bad_feed_never_blocks_the_others(server, sleeps, tmp_path, fault):
    responses, error = FAULTS[fault]
    bad_path = "/bad/atom.xml"
    for i, response in enumerate(responses):
        expect = server.expect_request if i == len(responses) - 1 else server.expect_oneshot_request
        if response == "atom":
            response = Response(
                fixture("atom.xml"), content_type=ATOM_TYPE, headers={"ETag": '"sw-1"'}
            )
        handler = expect(bad_path)
        if callable(response) and not isinstance(response, Response):
            handler.respond_with_handler(response)
        else:
            handler.respond_with_response(response)
    bad = server.url_for(bad_path)
    good = serve(server, "/good/feed/", WP_BYTES, headers=V1)
    accounts = [AccountRef("stadtwerke", bad), AccountRef("baeckerei", good)]

    result = platform(tmp_path, sleeps).fetch(accounts, WINDOW)

    rows = only_posts(result)
    assert [r for r in rows if r["account_id"] == good] == wordpress_rows(good)
    snapped = [r["account_id"] for r in result.rows["account_snapshots"]]
    if error is None:  # the client waited it out or retried: the bad feed recovered
        assert snapped == [bad, good]
        assert result.errors == []
        assert [r for r in rows if r["account_id"] == bad] == atom_rows(bad)
        if fault.startswith("429"):
            assert sleeps == [3.0]  # as the server said
        else:
            assert len(sleeps) == 1 and 0.01 <= sleeps[0] <= 0.0125  # one backoff
        assert set(cache_of(tmp_path)) == {good, bad}
    else:
        assert [r for r in rows if r["account_id"] == bad] == []
        assert snapped == [good]  # a feed that could not be read was not observed
        assert len(result.errors) == 1
        e = result.errors[0]
        assert (e.platform, e.company_id, e.handle) == ("rss", "stadtwerke", bad)
        assert re.match(error.replace("URL", re.escape(bad)), e.error), e.error
        assert set(cache_of(tmp_path)) == {good}  # nothing kept for the failed feed


def test_unreachable_host_is_an_error_for_that_account_only(server, sleeps, tmp_path):
    bad = f"http://127.0.0.1:{_closed_port()}/feed"
    good = serve(server, "/good/feed/", WP_BYTES)
    result = platform(tmp_path, sleeps).fetch(
        [AccountRef("gone", bad), AccountRef("baeckerei", good)], WINDOW
    )
    assert only_posts(result) == wordpress_rows(good)
    [e] = result.errors
    assert e.company_id == "gone" and e.handle == bad
    assert e.error.startswith("feed could not be fetched: connection failed after 2 attempts")
    assert e.error.endswith(f"({bad})")


def test_bozo_warnings_are_tolerated_when_entries_parse(server, sleeps, tmp_path):
    # served as text/plain: feedparser flags CharacterEncodingOverride, but the feed is fine
    url = serve(server, "/wp/feed/", WP_BYTES, content_type="text/plain")
    result = platform(tmp_path, sleeps).fetch([AccountRef("baeckerei", url)], WINDOW)
    assert result.errors == [] and only_posts(result) == wordpress_rows(url)


def test_a_post_id_seen_twice_in_one_fetch_is_emitted_once(server, sleeps, tmp_path):
    # two registry accounts pointing at the same feed would break the batch's key
    url = serve(server, "/wp/feed/", WP_BYTES)
    other = serve(server, "/wp/feed/?mirror", WP_BYTES)
    result = platform(None, sleeps).fetch(
        [AccountRef("baeckerei", url), AccountRef("filiale", other), AccountRef("kopie", url)],
        WINDOW,
    )
    assert result.errors == [] and only_posts(result) == wordpress_rows(url)
    # one snapshot per feed URL (the raw key): the third account reads the first one's feed
    assert result.rows["account_snapshots"] == [
        snapshot(url, "baeckerei"),
        snapshot(other, "filiale"),
    ]


# --- the client's limits: a feed that drips, breaks off or overflows ------------------------
# The bad feed lives on a RawServer (HTTP by hand); the client: read timeout 0.5 s, deadline
# 1 s, one retry, a cap of 512 KiB.

ATOM_BYTES = fixture("atom.xml")


def _drip_feed(server, conn) -> None:
    server.send(conn, http_head(200, {"Content-Type": ATOM_TYPE, "Content-Length": "100000"}))
    for byte in ATOM_BYTES:  # a byte every 0.1 s: the read timeout never trips
        if server.stopping.is_set():
            return
        server.send(conn, bytes([byte]))
        time.sleep(0.1)


def _reset_feed(server, conn) -> None:
    head = http_head(200, {"Content-Type": ATOM_TYPE, "Content-Length": str(len(ATOM_BYTES))})
    server.send(conn, head + ATOM_BYTES[:300])
    time.sleep(0.2)
    reset(conn)


def _truncated_chunked_feed(server, conn) -> None:
    head = http_head(200, {"Content-Type": ATOM_TYPE, "Transfer-Encoding": "chunked"})
    server.send(conn, head + b"%x\r\n" % len(ATOM_BYTES) + ATOM_BYTES[:300])  # then the end


def _huge_feed(server, conn) -> None:
    # a well-formed Atom feed of 2 MB: its entries again and again, in chunks
    start, end = ATOM_BYTES.index(b"<entry>"), ATOM_BYTES.rindex(b"</entry>") + 8
    parts = [ATOM_BYTES[:start]] + [ATOM_BYTES[start:end] * 10] * (
        2_000_000 // (10 * (end - start))
    )
    server.send(conn, http_head(200, {"Content-Type": ATOM_TYPE, "Transfer-Encoding": "chunked"}))
    for part in [*parts, ATOM_BYTES[end:]]:
        server.send(conn, b"%x\r\n%s\r\n" % (len(part), part))
    server.send(conn, b"0\r\n\r\n")


def _announced_huge_feed(server, conn) -> None:
    server.send(conn, http_head(200, {"Content-Type": ATOM_TYPE, "Content-Length": "200000000"}))
    server.send(conn, ATOM_BYTES)  # the rest never comes: reading would time out


LIMIT_FAULTS = {
    # name: (the bad feed's server, client limits, attempts it sees, the error)
    "dripping feed": (
        _drip_feed,
        {},
        2,
        r"^feed could not be fetched: deadline of 1 s exceeded after 2 attempts: .*\(URL\)$",
    ),
    "reset mid-body": (
        _reset_feed,
        {},
        2,
        r"^feed could not be fetched: response body broken after 2 attempts: "
        r"ChunkedEncodingError: .*\(URL\)$",
    ),
    "truncated chunked body": (
        _truncated_chunked_feed,
        {},
        2,
        r"^feed could not be fetched: response body broken after 2 attempts: "
        r"ChunkedEncodingError: .*\(URL\)$",
    ),
    "larger than the cap": (
        _huge_feed,
        {},
        1,
        r"^feed could not be fetched: response larger than the cap of 524288 bytes "
        r"\(HttpPolicy\.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES\); stopped reading after \d+ bytes \(URL\)$",
    ),
    "Content-Length above the cap": (
        _announced_huge_feed,
        {},
        1,
        r"^feed could not be fetched: response of 200000000 bytes \(Content-Length\) is "
        r"larger than the cap of 524288 bytes \(HttpPolicy\.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES\); not read \(URL\)$",
    ),
    "time budget": (
        _drip_feed,
        {"retries": 5, "account_budget": 1.5},
        2,
        r"^feed could not be fetched: time budget of 1\.5 s for feed URL \(stadtwerke\) used "
        r"up after 2 requests: a request was cut off at its end "
        r"\(HttpPolicy\.account_budget\) \(URL\)$",
    ),
}


@pytest.mark.timeout(30)  # a dripping feed must not hold the batch up forever
@pytest.mark.parametrize("fault", list(LIMIT_FAULTS))
def test_a_dripping_broken_or_huge_feed_costs_only_itself(
    server, raw_server, sleeps, tmp_path, fault
):
    respond, limits, attempts, error = LIMIT_FAULTS[fault]

    def answer(raw, conn, path):
        respond(raw, conn)
        return False

    raw = raw_server(answer)
    bad = raw.url("/feed.atom")
    good = serve(server, "/good/feed/", WP_BYTES, headers=V1)
    http = limited_client(sleeps, deadline=1.0, max_bytes=512 * 1024, **limits)
    context = PlatformContext(state_dir=tmp_path, http=http, clock=lambda: FIXED_NOW)
    accounts = [AccountRef("stadtwerke", bad), AccountRef("baeckerei", good)]

    result = RssPlatform(context=context).fetch(accounts, WINDOW)

    assert only_posts(result) == wordpress_rows(good)
    assert [r["account_id"] for r in result.rows["account_snapshots"]] == [good]
    [e] = result.errors
    assert (e.platform, e.company_id, e.handle) == ("rss", "stadtwerke", bad)
    assert re.match(error.replace("URL", re.escape(bad)), e.error), e.error
    assert raw.paths == ["/feed.atom"] * attempts
    assert set(cache_of(tmp_path)) == {good}  # nothing kept for the failed feed


# --- paging (RFC 5005 next links) ----------------------------------------------------------

# paged_atom_1..3.xml, served at /paged/atom.xml, ?page=2, ?page=3; page 3 links to ?page=4,
# which is not served (the server fixture fails the test if it is asked for)
ATOM_PAGES = {"": "paged_atom_1.xml", "page=2": "paged_atom_2.xml", "page=3": "paged_atom_3.xml"}
MELDUNG = "https://stadtwerke-nord.example/meldungen"


def serve_pages(server, path, pages, content_type=ATOM_TYPE, headers=None, replace=()) -> str:
    """Serve a paged feed (``{{base}}`` in the files: the server); one page per query."""
    base = server.url_for("").rstrip("/").encode()
    for query, name in pages.items():
        body = fixture(name).replace(b"{{base}}", base)
        for old, new in replace:
            body = body.replace(old.replace(b"{{base}}", base), new.replace(b"{{base}}", base))
        server.expect_request(path, query_string=query).respond_with_response(
            Response(body, content_type=content_type, headers=headers or {})
        )
    return server.url_for(path)


def meldung(feed: str, n: int, created: dt.datetime) -> dict:
    return post(feed, "stadtwerke", f"tag:stadtwerke-nord.example,2025:meldung-{n}", created, 0,
                f"{MELDUNG}/{n}")  # fmt: skip


def meldungen(feed: str) -> list[dict]:
    """The dated entries of paged_atom_1..3.xml, newest first (meldung-16 has no date)."""
    return [
        meldung(feed, 20, dt.datetime(2025, 6, 9, 10, 0, tzinfo=UTC)),  # page 1
        meldung(feed, 19, dt.datetime(2025, 6, 2, 8, 0, tzinfo=UTC)),
        meldung(feed, 18, dt.datetime(2025, 5, 28, 10, 0, tzinfo=UTC)),  # 12:00+02:00
        meldung(feed, 17, dt.datetime(2025, 5, 20, 9, 0, tzinfo=UTC)),  # page 2
        meldung(feed, 15, dt.datetime(2025, 5, 10, 7, 30, tzinfo=UTC)),
        meldung(feed, 14, dt.datetime(2025, 5, 1, 10, 0, tzinfo=UTC)),  # page 3
    ]


def pages_asked(server, path: str = "") -> list[str]:
    """The query strings of the requests for ``path`` (any path: all), in order."""
    return [req.query_string.decode() for req, _ in server.log if req.path == path or not path]


BACKFILL = FetchWindow(  # since = min(start 04-25, end - 28 days = 05-13) = 2025-04-25
    dt.datetime(2025, 4, 25, tzinfo=UTC), WINDOW.end, lookback=dt.timedelta(days=28)
)
DEFAULT = FetchWindow(WINDOW.start, WINDOW.end)  # 35 days: since = 2025-05-06T00:00Z


@pytest.mark.parametrize(
    ("window", "pages", "entries", "since"),
    [
        # since 05-13: page 1's oldest is 05-28, so page 2; its oldest (05-10) is older: stop.
        # meldung-15 (05-10) is out
        (WINDOW, ["", "page=2"], 4, SINCE),
        # since 05-06: page 2's oldest dated entry (05-10) is newer, so page 3; its 04-20 ends
        # the paging. meldung-14 (05-01) is out
        (DEFAULT, ["", "page=2", "page=3"], 5, dt.datetime(2025, 5, 6, tzinfo=UTC)),
        # a backfill from 04-25: meldung-14 (05-01) is in, meldung-13 (04-20) out; page 3 links
        # to page 4, which is not needed
        (BACKFILL, ["", "page=2", "page=3"], 6, dt.datetime(2025, 4, 25, tzinfo=UTC)),
    ],
    ids=["28 days", "35 days", "backfill"],
)
def test_a_paged_feed_is_read_back_to_since(server, sleeps, window, pages, entries, since):
    url = serve_pages(server, "/paged/atom.xml", ATOM_PAGES)
    result = platform(None, sleeps).fetch([AccountRef("stadtwerke", url)], window)
    assert result.errors == [] and result.warnings == []
    assert pages_asked(server, "/paged/atom.xml") == pages
    assert only_posts(result) == meldungen(url)[:entries]
    assert result.rows["account_snapshots"] == [snapshot(url, "stadtwerke", since=since)]


def test_rss_with_an_atom_next_link_is_paged(server, sleeps):
    pages = {"": "paged_rss_1.xml", "paged=2": "paged_rss_2.xml"}
    url = serve_pages(server, "/werkstatt/feed/", pages, content_type=RSS_TYPE)
    result = platform(None, sleeps).fetch([AccountRef("holzwurm", url)], WINDOW)
    assert result.errors == []
    # page 1's oldest item (25 May) is newer than since (13 May): page 2 (atom:link next);
    # there 1 May is older: stop. 15 May 12:00 +0200 = 10:00Z is in, 1 May out
    werkstatt = "https://tischlerei-holzwurm.example/werkstatt"
    assert pages_asked(server, "/werkstatt/feed/") == ["", "paged=2"]
    assert only_posts(result) == [
        post(url, "holzwurm", f"{werkstatt}/eichentisch",
             dt.datetime(2025, 6, 5, 15, 0, tzinfo=UTC), 2, f"{werkstatt}/eichentisch"),
        post(url, "holzwurm", f"{werkstatt}/hobelbank",
             dt.datetime(2025, 5, 25, 9, 0, tzinfo=UTC), 0, f"{werkstatt}/hobelbank"),
        post(url, "holzwurm", f"{werkstatt}/gesellenstueck",
             dt.datetime(2025, 5, 15, 10, 0, tzinfo=UTC), 5, f"{werkstatt}/gesellenstueck"),
    ]  # fmt: skip
    assert result.rows["account_snapshots"] == [snapshot(url, "holzwurm")]


def test_the_page_limit_keeps_what_was_read_and_warns(server, sleeps):
    url = serve_pages(server, "/paged/atom.xml", ATOM_PAGES)
    ref = AccountRef("stadtwerke", url, {"max_pages": 2})
    result = platform(None, sleeps).fetch([ref], DEFAULT)
    assert result.errors == []
    # since 05-06; page 2's oldest dated entry is 05-10 07:30 and it links on: the limit
    # stops the paging there. What was read is kept, and the snapshot says how far back
    assert pages_asked(server, "/paged/atom.xml") == ["", "page=2"]
    assert only_posts(result) == meldungen(url)[:5]
    assert result.rows["account_snapshots"] == [
        snapshot(url, "stadtwerke", since=dt.datetime(2025, 5, 10, 7, 30, tzinfo=UTC))
    ]
    assert result.warnings == [
        FetchError(
            "rss",
            "stadtwerke",
            url,
            f"feed {url}: page limit reached (max_pages 2) before 2025-05-06 00:00:00 UTC: "
            "posts before 2025-05-10 07:30:00 UTC not read; raise the account option max_pages",
        )
    ]


def test_a_next_link_to_a_page_already_read_is_an_error(server, sleeps, tmp_path):
    # page 2 links "next" back to page 1 (since 05-06: page 2 is not the last one needed)
    to_page3 = b'rel="next" href="{{base}}/paged/atom.xml?page=3"'
    to_page1 = b'rel="next" href="{{base}}/paged/atom.xml"'
    url = serve_pages(
        server, "/paged/atom.xml", ATOM_PAGES, headers=V1, replace=[(to_page3, to_page1)]
    )
    good = serve(server, "/good/feed/", WP_BYTES)
    accounts = [AccountRef("stadtwerke", url), AccountRef("baeckerei", good)]
    result = platform(tmp_path, sleeps).fetch(accounts, DEFAULT)
    assert result.errors == [
        FetchError(
            "rss",
            "stadtwerke",
            url,
            f"pagination loop: the next link of page 2 ({url}?page=2) is {url}, a page "
            "already read",
        )
    ]
    assert pages_asked(server, "/paged/atom.xml") == ["", "page=2"]
    # nothing of the looping feed, not even its first page's validators; the other feed is
    # fine (since 05-06: ?p=106 .. ?p=102, see wordpress_rows)
    assert [r["post_id"] for r in only_posts(result)] == [
        f"{WP}/?p={n}" for n in (106, 105, 104, 103, 102)
    ]
    assert [r["account_id"] for r in result.rows["account_snapshots"]] == [good]
    assert url not in cache_of(tmp_path)


def test_only_the_first_page_is_asked_conditionally(server, sleeps, tmp_path):
    path = "/paged/atom.xml"
    url = server.url_for(path)
    base = server.url_for("").rstrip("/").encode()
    page1 = fixture("paged_atom_1.xml").replace(b"{{base}}", base)
    # pages 2 and 3 carry validators too: they are not kept, and never sent back
    serve_pages(server, path, {k: v for k, v in ATOM_PAGES.items() if k}, headers=V2)
    server.expect_oneshot_request(path, query_string="").respond_with_response(
        Response(page1, content_type=ATOM_TYPE, headers=V1)
    )
    first = platform(tmp_path, sleeps).fetch([AccountRef("stadtwerke", url)], DEFAULT)
    assert first.errors == [] and only_posts(first) == meldungen(url)[:5]
    assert cache_of(tmp_path) == {
        url: {"etag": '"wp-v1"', "last_modified": "Tue, 10 Jun 2025 04:00:01 GMT"}
    }

    server.expect_oneshot_request(
        path, query_string="", headers={"If-None-Match": '"wp-v1"'}
    ).respond_with_data("", status=304, headers=V1)
    second = platform(tmp_path, sleeps).fetch([AccountRef("stadtwerke", url)], DEFAULT)
    # page 1 from the cache (304), pages 2 and 3 downloaded: the same rows and snapshot
    assert second.errors == [] and only_posts(second) == meldungen(url)[:5]
    assert (
        second.rows["account_snapshots"]
        == first.rows["account_snapshots"]
        == [snapshot(url, "stadtwerke", since=dt.datetime(2025, 5, 6, tzinfo=UTC))]
    )
    asked = [
        (req.query_string.decode(), req.headers.get("If-None-Match"), resp.status_code)
        for req, resp in server.log
        if req.path == path
    ]
    assert asked == [
        ("", None, 200),
        ("page=2", None, 200),
        ("page=3", None, 200),
        ("", '"wp-v1"', 304),
        ("page=2", None, 200),
        ("page=3", None, 200),
    ]
