"""Facebook, Instagram and YouTube in the end-to-end scenario, in each API's wire format.

Two craft businesses beside Bäckerei Nord (``tests/e2e_scenario.py``), for the same ISO week
``[W, W + 7 days)``:

* **Schreinerei Falk** (carpenter, 4 effort hours a week) on its own Facebook Page (its own
  Page token, in connection ``facebook_falk``), its own Instagram professional account (the
  ``instagram_default`` token's account) and its YouTube channel. It is answered, answers,
  and is probed on Facebook (a visitor post) and YouTube (a comment under an older video).
* **Konditorei Sahne** (no effort stated), a peer: its Facebook Page read with the default
  token (counts only: comment authors are visible to the Page's own token alone) and its
  Instagram account through ``business_discovery``, where one post's likes are hidden.

The numbers their metrics must come to, worked out by hand from these responses, are
:data:`EXPECTED_FALK` and :data:`EXPECTED_SAHNE`. The tokens are distinctive strings
(:data:`SECRETS`): the end-to-end test looks for them in everything a run wrote.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

GRAPH = "/v26.0"

#: every credential of the scenario: none may appear in anything a run writes
SECRETS = {
    "facebook_default": "EAAGpeerTOKENsecret0001xyz",
    "facebook_falk": "EAAGfalkPAGEtokenSECRET0002",
    "instagram_default": "IGQVJfalkTOKENsecret0003",
    "youtube_default": "AIzaSyFALKkeySECRET0004",
}
FALK_PAGE = "5550001"
SAHNE_PAGE = "5550002"
FALK_IG = "17841400000000001"
FALK_YT = "UCfalkSchreinerei0000001"
FALK_UPLOADS = "UUfalkSchreinerei0000001"

#: hand-computed metrics of Schreinerei Falk for the scenario's week
EXPECTED_FALK = {
    # one snapshot per account, each observed after the week: Facebook 800 + Instagram 500
    # + YouTube 300 subscribers
    "followers": 1600,
    # one snapshot per account: nobody seen again, growth unknown (rule 2)
    "follower_growth_weekly": None,
    # originals in the week: Facebook fp1, fp2 (fp3 is a shared post: a repost), Instagram
    # im1, YouTube fALKtreppe1 -> 4 * 7 / 7
    "posts_per_week": 4.0,
    # reactions + top-level comments (c1, c3) + shares: fp1 40 + 2 + 2 = 44, fp2 10 + 0 + 0
    # = 10; Instagram likes + comments: im1 25 + 2 = 27; YouTube likes + comments: 12 + 1
    # = 13 -> 94
    "interactions": 94,
    # interactions / followers at post time: 44/800, 10/800, 27/500, 13/300, mean of four
    "engagement_rate": (44 / 800 + 10 / 800 + 27 / 500 + 13 / 300) / 4,
    # likes per 1000 followers: 40/800, 10/800, 25/500, 12/300 -> (50 + 12.5 + 50 + 40) / 4
    "likes_per_1k": (50 + 12.5 + 50 + 40) / 4,
    # third-party direct replies: c1 (-> fp1, answered by the page's c2), c3 (-> fp1, not
    # answered), k1 (-> im1, answered by the account's k2), the fan's comment (-> the video, not answered) -> 2/4
    "service_level": 0.5,
    # c1 10:00 -> c2 12:00 = 2.0 h, k1 11:00 -> k2 11:30 = 0.5 h -> median 1.25
    "response_hours_median": 1.25,
    # U1 (c1), U2 (c3), 9001 (k1), UCfanYoutube (y1)
    "unique_interactors": 4,
    "repeat_interactor_share": 0.0,
    # 94 interactions / (4 effort hours a week * 7 / 7)
    "interactions_per_effort_hour": 94 / 4,
    # Facebook visitor post answered after 2 h, YouTube comment answered after 4 h
    "probe_answer_rate": 1.0,
    "probe_response_hours_median": 3.0,
}

#: hand-computed metrics of Konditorei Sahne (a peer: counts only) for the week
EXPECTED_SAHNE = {
    # Facebook 1500 + Instagram 2000
    "followers": 3500,
    # Facebook sp1; Instagram s1, s2
    "posts_per_week": 3.0,
    # sp1 30 + 4 + 1 = 35; s1 likes hidden (0 through business discovery -> null: adds 0)
    # + 5 comments = 5; s2 60 + 2 = 62 -> 102
    "interactions": 102,
    # 35/1500, 5/2000, 62/2000: every post counts
    "engagement_rate": (35 / 1500 + 5 / 2000 + 62 / 2000) / 3,
    # sp1 30/1500 * 1000 = 20, s2 60/2000 * 1000 = 30; s1 (hidden) left out -> 25
    # (with the hidden 0 counted it would be (20 + 0 + 30) / 3 = 16.67)
    "likes_per_1k": 25.0,
    # no threads are read for peers: nothing to answer, no third-party replies
    "service_level": None,
    "unique_interactors": 0,
    "interactions_per_effort_hour": None,  # no effort stated
}


def _iso_graph(t: dt.datetime) -> str:
    """Graph API time: ``2026-11-10T09:00:00+0000``."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _iso_google(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(owner: str, kind: str, percent: int = 3) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=UTF-8",
        "facebook-api-version": "v26.0",
        "X-App-Usage": json.dumps({"call_count": percent, "total_cputime": 1, "total_time": 1}),
        "X-Business-Use-Case-Usage": json.dumps(
            {
                owner: [
                    {
                        "type": kind,
                        "call_count": percent,
                        "total_cputime": 1,
                        "total_time": 1,
                        "estimated_time_to_regain_access": 0,
                    }
                ]
            }
        ),
    }


def _graph(
    path: str,
    body: Any,
    owner: str,
    kind: str,
    query: dict | None = None,
    headers: dict | None = None,
) -> dict:
    """An exchange of the Graph API; ``headers``: the request must carry them (a token)."""
    request: dict[str, Any] = {"path": f"{GRAPH}/{path}"}
    if query:
        request["query"] = query
    if headers:
        request["headers"] = headers
    return {
        "request": request,
        "response": {"status": 200, "headers": _usage(owner, kind), "json": body},
    }


def _google(path: str, body: Any, query: dict[str, str]) -> dict:
    return {
        "request": {"path": f"/youtube/v3/{path}", "query": query},
        "response": {
            "status": 200,
            "headers": {"Content-Type": "application/json; charset=UTF-8"},
            "json": body,
        },
    }


# --- Instagram -----------------------------------------------------------------------------

IG_PROFILE = "id,username,followers_count,follows_count,media_count"
IG_MEDIA = "id,timestamp,like_count,comments_count,permalink,media_type,media_product_type"
IG_PEER_MEDIA = "id,timestamp,like_count,comments_count,permalink,media_type"
IG_COMMENTS = "id,timestamp,from{id,username},username,parent_id"


def instagram(w: dt.datetime) -> list[dict[str, Any]]:
    def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return w + dt.timedelta(days=day, hours=hour, minutes=minute)

    own = (FALK_IG, "instagram")
    profile = {
        "id": FALK_IG,
        "username": "schreinerei_falk",
        "followers_count": 500,
        "follows_count": 80,
        "media_count": 120,
    }
    media = {
        "data": [
            {
                "id": "im1",
                "timestamp": _iso_graph(t(2, 10)),
                "like_count": 25,
                "comments_count": 2,
                "permalink": "https://www.instagram.com/p/FALKim1/",
                "media_type": "IMAGE",
                "media_product_type": "FEED",
            },
            {  # older than any fetch's since (also make run's 63-day history): paging stops
                "id": "im0",
                "timestamp": _iso_graph(w - dt.timedelta(days=120)),
                "like_count": 3,
                "comments_count": 0,
                "permalink": "https://www.instagram.com/p/FALKim0/",
                "media_type": "IMAGE",
                "media_product_type": "FEED",
            },
        ],
        "paging": {"cursors": {"before": "QVFIUmJlZm9yZQ", "after": "QVFIUmFmdGVy"}},
    }
    comments = {
        "data": [
            {
                "id": "k1",
                "timestamp": _iso_graph(t(2, 11)),
                "from": {"id": "9001", "username": "kundin_anna"},
                "username": "kundin_anna",
            }
        ],
        "paging": {"cursors": {"before": "QVFIUms", "after": "QVFIUmsx"}},
    }
    replies = {
        "data": [
            {
                "id": "k2",
                "timestamp": _iso_graph(t(2, 11, 30)),
                "from": {"id": FALK_IG, "username": "schreinerei_falk"},
                "username": "schreinerei_falk",
                "parent_id": "k1",
            }
        ]
    }
    insights = {
        "data": [
            {
                "name": "views",
                "period": "lifetime",
                "title": "Views",
                "id": "im1/insights/views/lifetime",
                "values": [{"value": 640}],
            }
        ]
    }
    sahne = {
        "business_discovery": {
            "id": "17841400000000002",
            "username": "konditorei_sahne",
            "followers_count": 2000,
            "follows_count": 300,
            "media_count": 540,
            "media": {
                "data": [
                    {  # the owner hides likes: business discovery reports 0
                        "id": "s1",
                        "timestamp": _iso_graph(t(1, 9)),
                        "like_count": 0,
                        "comments_count": 5,
                        "permalink": "https://www.instagram.com/p/SAHNEs1/",
                        "media_type": "IMAGE",
                    },
                    {
                        "id": "s2",
                        "timestamp": _iso_graph(t(3, 15)),
                        "like_count": 60,
                        "comments_count": 2,
                        "permalink": "https://www.instagram.com/p/SAHNEs2/",
                        "media_type": "VIDEO",
                    },
                ]
            },
        },
        "id": FALK_IG,
    }
    # newest first, as the API sends them
    sahne["business_discovery"]["media"]["data"].reverse()
    discovery = (
        f"business_discovery.username(konditorei_sahne){{{IG_PROFILE},"
        f"media.limit(50){{{IG_PEER_MEDIA}}}}}"
    )
    return [
        _graph(FALK_IG, sahne, *own, query={"fields": discovery}),
        _graph(FALK_IG, profile, *own, query={"fields": IG_PROFILE}),
        _graph(f"{FALK_IG}/media", media, *own),
        _graph("im1/comments", comments, *own),
        _graph("k1/replies", replies, *own),
        _graph("im1/insights", insights, *own),
    ]


# --- YouTube -------------------------------------------------------------------------------


def youtube(w: dt.datetime) -> list[dict[str, Any]]:
    def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return w + dt.timedelta(days=day, hours=hour, minutes=minute)

    def comment(cid: str, author: str, when: dt.datetime, video: str, parent: str | None = None):
        snippet = {
            "channelId": FALK_YT,
            "videoId": video,
            "textDisplay": "…",
            "textOriginal": "…",
            "authorDisplayName": f"@{author.lower()}",
            "authorChannelUrl": f"http://www.youtube.com/channel/{author}",
            "authorChannelId": {"value": author},
            "canRate": True,
            "viewerRating": "none",
            "likeCount": 0,
            "publishedAt": _iso_google(when),
            "updatedAt": _iso_google(when),
        }
        if parent:
            snippet["parentId"] = parent
        return {"kind": "youtube#comment", "etag": "e", "id": cid, "snippet": snippet}

    channel = {
        "kind": "youtube#channelListResponse",
        "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
        "items": [
            {
                "kind": "youtube#channel",
                "id": FALK_YT,
                "snippet": {"title": "Schreinerei Falk", "customUrl": "@schreinereifalk"},
                "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": FALK_UPLOADS}},
                "statistics": {
                    "viewCount": "81234",
                    "subscriberCount": "300",
                    "hiddenSubscriberCount": False,
                    "videoCount": "42",
                },
            }
        ],
    }
    playlist = {
        "kind": "youtube#playlistItemListResponse",
        "pageInfo": {"totalResults": 42, "resultsPerPage": 50},
        "items": [
            {
                "kind": "youtube#playlistItem",
                "id": f"item-{vid}",
                "contentDetails": {"videoId": vid, "videoPublishedAt": _iso_google(when)},
            }
            for vid, when in (
                ("fALKtreppe1", t(4, 16)),
                ("fALKalt0001", w - dt.timedelta(days=120)),
            )
        ],
    }
    videos = {
        "kind": "youtube#videoListResponse",
        "pageInfo": {"totalResults": 1, "resultsPerPage": 1},
        "items": [
            {
                "kind": "youtube#video",
                "id": "fALKtreppe1",
                "snippet": {
                    "publishedAt": _iso_google(t(4, 16)),
                    "channelId": FALK_YT,
                    "title": "Eine Eichentreppe entsteht",
                },
                "statistics": {
                    "viewCount": "900",
                    "likeCount": "12",
                    "favoriteCount": "0",
                    "commentCount": "1",
                },
            }
        ],
    }
    threads = {
        "kind": "youtube#commentThreadListResponse",
        "pageInfo": {"totalResults": 1, "resultsPerPage": 100},
        "items": [
            {
                "kind": "youtube#commentThread",
                "id": "UgyFanKommentarTreppe4AaABAg",
                "snippet": {
                    "channelId": FALK_YT,
                    "videoId": "fALKtreppe1",
                    "topLevelComment": comment(
                        "UgyFanKommentarTreppe4AaABAg", "UCfanYoutube", t(4, 18), "fALKtreppe1"
                    ),
                    "canReply": True,
                    "totalReplyCount": 0,
                    "isPublic": True,
                },
            }
        ],
    }
    question = comment("UgyQ1studieHolzFrage4AaABAg", "UCresearcherStudie", t(5, 9), "fALKalt0001")
    answer = comment(
        "UgyQ1studieHolzFrage4AaABAg.A1falkAntwort00",
        FALK_YT,
        t(5, 13),
        "fALKalt0001",
        parent="UgyQ1studieHolzFrage4AaABAg",
    )
    listing = {"kind": "youtube#commentListResponse", "pageInfo": {"resultsPerPage": 100}}
    return [
        _google(
            "channels",
            channel,
            {"part": "snippet,statistics,contentDetails", "forHandle": "@SchreinereiFalk"},
        ),
        _google("playlistItems", playlist, {"playlistId": FALK_UPLOADS}),
        _google("videos", videos, {"id": "fALKtreppe1"}),
        _google("commentThreads", threads, {"videoId": "fALKtreppe1"}),
        _google(
            "comments", {**listing, "items": [question]}, {"id": "UgyQ1studieHolzFrage4AaABAg"}
        ),
        _google(
            "comments", {**listing, "items": [answer]}, {"parentId": "UgyQ1studieHolzFrage4AaABAg"}
        ),
    ]


# --- Facebook ------------------------------------------------------------------------------

FB_PAGE = "id,name,username,link,followers_count,fan_count"
FB_POSTS = (
    "id,created_time,permalink_url,status_type,parent_id,shares,"
    "reactions.summary(total_count).limit(0),comments.summary(true).limit(0)"
)


def facebook(w: dt.datetime) -> list[dict[str, Any]]:
    def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return w + dt.timedelta(days=day, hours=hour, minutes=minute)

    def post(pid: str, when: dt.datetime, reactions: int, comments: int, **extra: Any):
        return {
            "id": pid,
            "created_time": _iso_graph(when),
            "permalink_url": f"https://www.facebook.com/{pid.replace('_', '/posts/')}",
            "status_type": "added_photos",
            **extra,
            "reactions": {"data": [], "summary": {"total_count": reactions}},
            "comments": {
                "data": [],
                "summary": {"order": "ranked", "total_count": comments, "can_comment": True},
            },
        }

    def comment(cid: str, author: str, when: dt.datetime, parent: str | None = None):
        row: dict[str, Any] = {
            "id": cid,
            "created_time": _iso_graph(when),
            "from": {"id": author, "name": author},
        }
        if parent:
            row["parent"] = {"id": parent}
        return row

    falk = (FALK_PAGE, "pages")
    sahne = (SAHNE_PAGE, "pages")
    fp1, fp2, fp3 = f"{FALK_PAGE}_1001", f"{FALK_PAGE}_1002", f"{FALK_PAGE}_1003"
    posts = {
        "data": [  # newest first
            post(fp2, t(3, 15), 10, 0),
            post(fp3, t(2, 8), 3, 0, status_type="shared_story", parent_id="777_888"),
            post(fp1, t(1, 9), 40, 2, shares={"count": 2}),
        ],
        "paging": {"cursors": {"before": "QVFIUmJlZm9yZQ", "after": "QVFIUmFmdGVy"}},
    }
    comments = {
        "data": [
            comment("1001_2001", "U1", t(1, 10)),
            comment("1001_2002", FALK_PAGE, t(1, 12), parent="1001_2001"),
            comment("1001_2003", "U2", t(2, 8)),
        ],
        "paging": {"cursors": {"before": "QVFIUmM", "after": "QVFIUmMx"}},
    }
    answer = {
        "data": [
            {
                "id": "9001_3001",
                "created_time": _iso_graph(t(3, 18)),
                "from": {"id": FALK_PAGE},
                "permalink_url": "https://www.facebook.com/5550001/posts/9001?comment_id=3001",
            }
        ]
    }

    def insights(pid: str, views: int) -> dict[str, Any]:
        return {
            "data": [
                {
                    "name": "post_media_view",
                    "period": "lifetime",
                    "values": [{"value": views}],
                    "title": "Lifetime Post Media Views",
                    "id": f"{pid}/insights/post_media_view/lifetime",
                }
            ]
        }

    peer_posts = {"data": [post(f"{SAHNE_PAGE}_4001", t(2, 11), 30, 4, shares={"count": 1})]}
    own_token = {"Authorization": f"Bearer {SECRETS['facebook_falk']}"}
    peer_token = {"Authorization": f"Bearer {SECRETS['facebook_default']}"}
    return [
        # whose token: Falk's Page token is the page's own, the default token is not
        _graph("me", {"id": FALK_PAGE, "name": "Schreinerei Falk"}, *falk, headers=own_token),
        _graph("me", {"id": "100099", "name": "socialpulse"}, *sahne, headers=peer_token),
        _graph(
            "schreinereifalk",
            {
                "id": FALK_PAGE,
                "name": "Schreinerei Falk",
                "username": "schreinereifalk",
                "followers_count": 800,
                "fan_count": 780,
            },
            *falk,
            query={"fields": FB_PAGE},
        ),
        _graph(  # a New Pages Experience page: no fan_count
            SAHNE_PAGE,
            {"id": SAHNE_PAGE, "name": "Konditorei Sahne", "followers_count": 1500},
            *sahne,
            query={"fields": FB_PAGE},
        ),
        _graph(f"{FALK_PAGE}/posts", posts, *falk),
        _graph(f"{SAHNE_PAGE}/posts", peer_posts, *sahne),
        _graph(f"{fp1}/insights", insights(fp1, 2100), *falk),
        _graph(f"{fp2}/insights", insights(fp2, 700), *falk),
        _graph(f"{fp3}/insights", insights(fp3, 90), *falk),
        _graph(f"{fp1}/comments", comments, *falk),
        _graph(f"{FALK_PAGE}_9001/comments", answer, *falk),
    ]


def exchanges(w: dt.datetime) -> list[dict[str, Any]]:
    return facebook(w) + instagram(w) + youtube(w)


def connections(base: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` environment variables pointing the connectors at ``base``."""
    extra = {
        "facebook_default": {"api_version": "v26.0"},
        "facebook_falk": {"api_version": "v26.0"},
        "instagram_default": {"ig_user_id": FALK_IG},
        "youtube_default": {"daily_quota_units": 10000},
    }
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {"conn_type": "http", "host": base, "password": secret, "extra": extra[conn_id]}
        )
        for conn_id, secret in SECRETS.items()
    }


REGISTRY = """
  - id: schreinerei-falk
    name: Schreinerei Falk
    segment: craft
    employees: 6
    effort_hours_per_week: 4
    accounts:
      - {platform: facebook, handle: "https://www.facebook.com/schreinereifalk", options: {connection: facebook_falk}}
      - {platform: instagram, handle: "@schreinerei_falk"}
      - {platform: youtube, handle: "@SchreinereiFalk"}
  - id: konditorei-sahne
    name: Konditorei Sahne
    segment: craft
    employees: 11
    accounts:
      - {platform: facebook, handle: "5550002"}
      - {platform: instagram, handle: konditorei_sahne}
"""


def probes(w: dt.datetime) -> list[str]:
    """Probes CSV rows: a visitor post on Falk's Page, a comment under its older video."""
    day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
    return [
        f"falk-fb,schreinerei-falk,facebook,public_post,{_iso_google(w + 3 * day + 16 * hour)},"
        f"{FALK_PAGE}_9001,,,",
        f"falk-yt,schreinerei-falk,youtube,public_post,{_iso_google(w + 5 * day + 9 * hour)},"
        "https://www.youtube.com/watch?v=fALKalt0001&lc=UgyQ1studieHolzFrage4AaABAg,,,",
    ]
