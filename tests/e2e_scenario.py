"""Companies on Mastodon, Bluesky, RSS, Facebook, Instagram and YouTube, in each platform's
wire format, for one ISO week (Facebook, Instagram and YouTube: ``tests/e2e_meta.py``).

Bäckerei Nord (craft, 2 effort hours a week) posts, is answered, answers and is probed in
the week ``[W, W + 7 days)``; the recorded responses below are served by
:class:`tests.replay.ReplayServer`. The numbers its metrics must come to, worked out by hand
from these responses, are :data:`EXPECTED` (the arithmetic is beside each value).

    python -m tests.e2e_scenario --port 8765 --registry /tmp/e2e/companies.yaml
    # then, in another shell (the command prints this line; the file holds the connections):
    . /tmp/e2e/connections.env && SOCIALPULSE_COMPANIES=/tmp/e2e/companies.yaml make run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

MASTODON_ID = "1001"
DID = "did:plc:baeckereinord"
HANDLE = "baeckerei-nord.bsky.social"

#: hand-computed metrics of Bäckerei Nord for the scenario's week
EXPECTED = {
    # state at the period end: the only snapshots (observed at fetch time, after the week)
    # are the earliest after it: Mastodon 1200 + Bluesky 300 (a feed has no followers)
    "followers": 1500,
    # each account has one snapshot, the earliest after both boundaries: the snapshot used
    # at the end is the one used at the start, so no account was seen again in the week and
    # growth is null (METRICS.md rule 2). (v1 took d across the two platforms' snapshots, a
    # moment apart, and reported an invented 1 ** (7 / d) - 1 = 0.0.)
    "follower_growth_weekly": None,
    # originals created in the week: Mastodon 5001, 5002; Bluesky b1; RSS ?p=41 -> 4 * 7 / 7
    "posts_per_week": 4.0,
    # likes + replies + reposts + quotes: 5001 20+3+4+1 = 28, 5002 8+0+2+0 = 10 (no
    # quotes_count: an older server), b1 6+1+1+0 = 8, ?p=41 0+4+0+0 = 4 -> 50
    "interactions": 50,
    # mean of interactions / followers at post time over posts with followers (the feed
    # has none): 28/1200, 10/1200, 8/300 -> (0.0233333 + 0.0083333 + 0.0266667) / 3
    "engagement_rate": (28 / 1200 + 10 / 1200 + 8 / 300) / 3,
    # mean likes per 1000 followers: 20/1200, 8/1200, 6/300 -> (16.667 + 6.667 + 20) / 3
    "likes_per_1k": (20 / 1200 * 1000 + 8 / 1200 * 1000 + 6 / 300 * 1000) / 3,
    # third-party replies to the company's posts: A1 (-> 5001, answered), A2 (-> the
    # company's answer 6002, answered), B1 (-> 5001, never answered), C1 (-> b1, answered)
    "service_level": 3 / 4,
    # hours to the first answer: A1 10:00 -> 12:00 = 2.0, A2 13:00 -> 14:30 = 1.5,
    # C1 08:00 -> 08:30 = 0.5 -> median 1.5
    "response_hours_median": 1.5,
    # distinct third-party authors: 8001 (A), 8002 (B), did:plc:fanc (C)
    "unique_interactors": 3,
    # A wrote twice: 1 of 3
    "repeat_interactor_share": 1 / 3,
    # 50 interactions / (2 effort hours a week * 7 / 7)
    "interactions_per_effort_hour": 25.0,
    # probes sent in the week: Mastodon (answered in the thread), Bluesky (no company reply),
    # e-mail (answered, entered by hand) -> 2 of 3
    "probe_answer_rate": 2 / 3,
    # Mastodon: Tue 08:00 -> 11:00 = 3 h; e-mail: Mon 08:00 -> 13:00 = 5 h -> median 4.0
    "probe_response_hours_median": 4.0,
}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _ok(payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        "json": payload,
    }


# --- Mastodon ------------------------------------------------------------------------------


def _m_account(acc_id: str, username: str, **counts: int) -> dict[str, Any]:
    return {
        "id": acc_id,
        "username": username,
        "acct": username,
        "display_name": username,
        "locked": False,
        "bot": False,
        "url": f"{{{{base}}}}/@{username}",
        "uri": f"{{{{base}}}}/users/{username}",
        "followers_count": counts.get("followers", 10),
        "following_count": counts.get("following", 10),
        "statuses_count": counts.get("statuses", 10),
        "emojis": [],
        "fields": [],
    }


BAKERY = _m_account(MASTODON_ID, "baeckerei", followers=1200, following=50, statuses=300)
FAN_A = _m_account("8001", "anna")
FAN_B = _m_account("8002", "bert")
RESEARCHER = _m_account("8100", "researcher")


def _status(
    sid: str,
    account: dict[str, Any],
    created: dt.datetime,
    likes: int = 0,
    replies: int = 0,
    reblogs: int = 0,
    quotes: int | None = 0,
    reply_to: tuple[str, str] | None = None,
    reblog: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status = {
        "id": sid,
        "created_at": _iso(created),
        "in_reply_to_id": reply_to[0] if reply_to else None,
        "in_reply_to_account_id": reply_to[1] if reply_to else None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "public",
        "language": "de",
        "uri": f"{{{{base}}}}/users/{account['username']}/statuses/{sid}",
        "url": None if reblog else f"{{{{base}}}}/@{account['username']}/{sid}",
        "replies_count": replies,
        "reblogs_count": reblogs,
        "favourites_count": likes,
        "content": "<p>…</p>",
        "reblog": reblog,
        "account": account,
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        "emojis": [],
    }
    if quotes is not None:
        status["quotes_count"] = quotes
    return status


def mastodon(w: dt.datetime) -> list[dict[str, Any]]:
    def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return w + dt.timedelta(days=day, hours=hour, minutes=minute)

    other = _status("4999", FAN_B, t(3, 8), likes=2)
    timeline = [
        _status("5005", BAKERY, t(4, 9), reblog=other),  # a boost: repost
        _status("5004", BAKERY, t(3, 10), likes=1, reply_to=("9999", "7777")),  # reply to others
        _status("5002", BAKERY, t(2, 8), likes=8, reblogs=2, quotes=None),
        _status("5001", BAKERY, t(0, 9), likes=20, replies=3, reblogs=4, quotes=1),
        _status("4000", BAKERY, w - dt.timedelta(days=10), likes=5),  # an earlier week
    ]
    thread_5001 = [
        _status("6001", FAN_A, t(0, 10), reply_to=("5001", MASTODON_ID)),
        _status("6002", BAKERY, t(0, 12), reply_to=("6001", "8001")),
        _status("6003", FAN_A, t(0, 13), reply_to=("6002", MASTODON_ID)),
        _status("6004", BAKERY, t(0, 14, 30), reply_to=("6003", "8001")),
        _status("6005", FAN_B, t(1, 9), reply_to=("5001", MASTODON_ID)),
    ]
    question = [_status("7002", BAKERY, t(1, 11), reply_to=("7001", "8100"))]
    rate = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "290", "X-RateLimit-Reset": "300"}
    return [
        {
            "request": {"path": "/api/v1/accounts/lookup", "query": {"acct": "baeckerei"}},
            "response": _ok(BAKERY, rate),
        },
        {
            "request": {"path": f"/api/v1/accounts/{MASTODON_ID}/statuses"},
            "response": _ok(timeline, rate),
        },
        {
            "request": {"path": "/api/v1/statuses/5001/context"},
            "response": _ok({"ancestors": [], "descendants": thread_5001}, rate),
        },
        {
            "request": {"path": "/api/v1/statuses/7001/context"},
            "response": _ok({"ancestors": [], "descendants": question}, rate),
        },
    ]


# --- Bluesky -------------------------------------------------------------------------------


def _b_post(
    uri: str,
    did: str,
    handle: str,
    created: dt.datetime,
    parent: str | None = None,
    root: str | None = None,
    **counts: int,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "createdAt": _iso(created),
        "text": "…",
    }
    if parent:
        record["reply"] = {
            "root": {"uri": root or parent, "cid": "bafyroot"},
            "parent": {"uri": parent, "cid": "bafyparent"},
        }
    return {
        "uri": uri,
        "cid": "bafy" + uri.rsplit("/", 1)[-1],
        "author": {"did": did, "handle": handle, "displayName": handle},
        "record": record,
        "replyCount": counts.get("replies", 0),
        "repostCount": counts.get("reposts", 0),
        "likeCount": counts.get("likes", 0),
        "quoteCount": counts.get("quotes", 0),
        "indexedAt": _iso(created),
        "labels": [],
    }


def _node(post: dict[str, Any], replies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"$type": "app.bsky.feed.defs#threadViewPost", "post": post, "replies": replies or []}


def bluesky(w: dt.datetime) -> list[dict[str, Any]]:
    def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return w + dt.timedelta(days=day, hours=hour, minutes=minute)

    b1_uri = f"at://{DID}/app.bsky.feed.post/b1"
    b1 = _b_post(b1_uri, DID, HANDLE, t(1, 7), likes=6, replies=1, reposts=1)
    reposted = _b_post(
        "at://did:plc:other/app.bsky.feed.post/r1",
        "did:plc:other",
        "other.bsky.social",
        t(3, 11),
        likes=50,
    )
    c1_uri = "at://did:plc:fanc/app.bsky.feed.post/c1"
    c1 = _b_post(c1_uri, "did:plc:fanc", "clara.bsky.social", t(2, 8), parent=b1_uri, root=b1_uri)
    answer = _b_post(
        f"at://{DID}/app.bsky.feed.post/a1", DID, HANDLE, t(2, 8, 30), parent=c1_uri, root=b1_uri
    )
    q_uri = "at://did:plc:researcher/app.bsky.feed.post/q1"
    question = _b_post(q_uri, "did:plc:researcher", "researcher.bsky.social", t(2, 9), replies=1)
    stranger = _b_post(
        "at://did:plc:stranger/app.bsky.feed.post/s1",
        "did:plc:stranger",
        "s.bsky.social",
        t(2, 10),
        parent=q_uri,
    )
    rate = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "2990", "RateLimit-Reset": "300"}
    profile = {
        "did": DID,
        "handle": HANDLE,
        "displayName": "Bäckerei Nord",
        "followersCount": 300,
        "followsCount": 20,
        "postsCount": 150,
    }
    feed = {
        "feed": [
            {
                "post": reposted,
                "reason": {
                    "$type": "app.bsky.feed.defs#reasonRepost",
                    "by": {"did": DID, "handle": HANDLE},
                    "indexedAt": _iso(t(3, 12)),
                },
            },
            {"post": b1},
        ]
    }
    return [
        {
            "request": {"path": "/xrpc/app.bsky.actor.getProfile", "query": {"actor": HANDLE}},
            "response": _ok(profile, rate),
        },
        {
            "request": {"path": "/xrpc/app.bsky.feed.getAuthorFeed", "query": {"actor": DID}},
            "response": _ok(feed, rate),
        },
        {
            "request": {"path": "/xrpc/app.bsky.feed.getPostThread", "query": {"uri": b1_uri}},
            "response": _ok({"thread": _node(b1, [_node(c1, [_node(answer)])])}, rate),
        },
        {
            "request": {"path": "/xrpc/app.bsky.feed.getPostThread", "query": {"uri": q_uri}},
            "response": _ok({"thread": _node(question, [_node(stranger)])}, rate),
        },
    ]


# --- RSS -----------------------------------------------------------------------------------


def rss(w: dt.datetime) -> list[dict[str, Any]]:
    def rfc822(t: dt.datetime) -> str:
        return t.strftime("%a, %d %b %Y %H:%M:%S +0000")

    feed = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:slash="http://purl.org/rss/1.0/modules/slash/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Bäckerei Nord – Blog</title>
  <link>{{{{base}}}}/</link>
  <description>Neues aus der Backstube</description>
  <item>
    <title>Neue Öffnungszeiten</title>
    <link>{{{{base}}}}/?p=41</link>
    <guid isPermaLink="false">{{{{base}}}}/?p=41</guid>
    <pubDate>{rfc822(w + dt.timedelta(days=3, hours=6))}</pubDate>
    <dc:creator>Inge Nord</dc:creator>
    <slash:comments>4</slash:comments>
  </item>
  <item>
    <title>Sommerpause</title>
    <link>{{{{base}}}}/?p=12</link>
    <guid isPermaLink="false">{{{{base}}}}/?p=12</guid>
    <pubDate>{rfc822(w - dt.timedelta(days=60))}</pubDate>
    <slash:comments>9</slash:comments>
  </item>
</channel>
</rss>
"""
    return [
        {
            "request": {"path": "/blog/feed/"},
            "response": {
                "status": 200,
                "headers": {"Content-Type": "application/rss+xml; charset=UTF-8", "ETag": '"v1"'},
                "body": feed,
            },
        }
    ]


def exchanges(w: dt.datetime) -> list[dict[str, Any]]:
    from tests import e2e_meta

    return mastodon(w) + bluesky(w) + rss(w) + e2e_meta.exchanges(w)


# --- the registry --------------------------------------------------------------------------

SAMPLE_PEERS = """
  - id: tischlerei-holm
    name: Tischlerei Holm
    segment: craft
    employees: 5
    accounts:
      - {platform: sample, handle: tischlerei-holm, options: {profile: craft}}
  - id: blumen-ada
    name: Blumen Ada
    segment: craft
    employees: 3
    effort_hours_per_week: 1.5
    accounts:
      - {platform: sample, handle: blumen-ada, options: {profile: craft}}
  - id: metzgerei-lang
    name: Metzgerei Lang
    segment: craft
    employees: 8
    accounts:
      - {platform: sample, handle: metzgerei-lang, options: {profile: craft}}
  - id: nordbank
    name: Nordbank AG
    segment: corporation
    employees: 12000
    accounts:
      - {platform: sample, handle: nordbank, options: {profile: corporation}}
  - id: fernreisen
    name: Fernreisen Airlines
    segment: corporation
    employees: 30000
    accounts:
      - {platform: sample, handle: fernreisen, options: {profile: corporation}}
  - id: tele-mitte
    name: TeleMitte
    segment: corporation
    employees: 8000
    accounts:
      - {platform: sample, handle: tele-mitte, options: {profile: corporation}}
"""


def write_registry(folder: Path, base: str, w: dt.datetime) -> Path:
    """A registry mixing sample, Mastodon, Bluesky, RSS, Facebook, Instagram and YouTube
    accounts, with its probes CSV (the connections: :func:`tests.e2e_meta.connections`)."""
    from tests import e2e_meta

    folder.mkdir(parents=True, exist_ok=True)
    day = dt.timedelta(days=1)
    probes = [
        "probe_id,company_id,platform,channel,sent_at,question_ref,answered_at,answer_ref,quality",
        f"nord-masto,baeckerei-nord,mastodon,public_post,{_iso(w + day + dt.timedelta(hours=8))},"
        f"{base}/@researcher/7001,,,",
        f"nord-bsky,baeckerei-nord,bluesky,public_post,{_iso(w + 2 * day + dt.timedelta(hours=9))},"
        "at://did:plc:researcher/app.bsky.feed.post/q1,,,",
        f"nord-mail,baeckerei-nord,,email,{_iso(w + dt.timedelta(hours=8))},mail#1,"
        f"{_iso(w + dt.timedelta(hours=13))},mail#1-re,4",
        *e2e_meta.probes(w),
    ]
    (folder / "probes.csv").write_text("\n".join(probes) + "\n", encoding="utf-8")
    registry = f"""# Sample peers and one company on Mastodon, Bluesky and RSS (served on {base}).
probes_file: probes.csv
companies:
  - id: baeckerei-nord
    name: Bäckerei Nord
    segment: craft
    employees: 14
    effort_hours_per_week: 2
    goals: {{liveliness: 3, sympathy: 2, relationships: 2, reach: 1}}
    accounts:
      - {{platform: mastodon, handle: "{base}/@baeckerei"}}
      - {{platform: bluesky, handle: {HANDLE}}}
      - {{platform: rss, handle: "{base}/blog/feed/"}}
{e2e_meta.REGISTRY}{SAMPLE_PEERS}"""
    path = folder / "companies.yaml"
    path.write_text(registry, encoding="utf-8")
    return path


def last_complete_week(today: dt.date | None = None) -> dt.datetime:
    today = today or dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    return dt.datetime.combine(monday - dt.timedelta(days=7), dt.time(), tzinfo=dt.UTC)


def main() -> None:
    from tests.replay import ReplayServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--registry", type=Path, default=Path("data/e2e/companies.yaml"))
    args = parser.parse_args()
    week = last_complete_week()
    server = ReplayServer(exchanges(week), args.port)
    path = write_registry(args.registry.parent, server.base, week)
    from tests import e2e_meta

    env = {
        "AIRFLOW_CONN_BLUESKY_DEFAULT": json.dumps({"conn_type": "http", "host": server.base}),
        **e2e_meta.connections(server.base),
    }
    # the connections (the scenario's tokens are made up) in a file to source
    env_file = path.parent / "connections.env"
    env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()), encoding="utf-8")
    print(f"serving the scenario of the week from {week:%Y-%m-%d} on {server.base}", flush=True)
    print(f"\n  . {env_file} && SOCIALPULSE_COMPANIES={path} make run\n")
    for company, expected in (
        ("baeckerei-nord", EXPECTED),
        ("schreinerei-falk", e2e_meta.EXPECTED_FALK),
        ("konditorei-sahne", e2e_meta.EXPECTED_SAHNE),
    ):
        print(
            f"expected for {company}, ISO week {week:%G-W%V}:\n"
            + "\n".join(f"  {k}: {v}" for k, v in expected.items()),
            flush=True,
        )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
