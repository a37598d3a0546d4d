"""A small hand-made warehouse for the SQL model tests.

Five companies, data in January / early February 2024 (2024-01-01 is a Monday). The
expected values in the tests are computed by hand from the rows below; the comments next to
each expected value show the arithmetic.

Companies (segment, effort h/week, goals):

* ``a`` Alpha Bakery   craft        10    goals: reach 2, engagement 1, liveliness 1,
                                            findability 1, image 1 (every other dimension 0)
* ``b`` Beta Joinery   craft        none  no goals (first seven dimensions 1)
* ``c`` Gamma Print    craft        5     no goals
* ``x`` Xeno Corp      corporation  none  no goals  (one snapshot only)
* ``y`` Ypsilon AG     corporation  none  no goals  (0 followers at the start of week 2)

Week 1 = [2024-01-01, 2024-01-08), week 2 = [2024-01-08, 2024-01-15), week 3 =
[2024-01-15, 2024-01-22), week 4 = [2024-01-22, 2024-01-29), month Jan =
[2024-01-01, 2024-02-01). The latest account snapshot is 2024-02-05 12:00 (a-m), so the
periods run from week 2024-01-01 to week 2024-02-05 (6 weeks) and months Jan and Feb.
2024-01-01 is both a Monday and the 1st of a month: manual values for it carry a period type.

Most rows sit in week 2. A few are placed to catch specific mistakes:

* y's post p-y2, reply z1 and probe q6 lie exactly on the week 2/3 boundary (01-15 00:00),
  and p-y2 exactly at y-m's snapshot: they belong to week 3 only, p-y2 at 10 followers.
* b's reply s0 and probe q0 lie in week 1, before b's week-2 activity by the same author and
  company; s0 answers a root post (p-b0) that was never observed itself.
* r8 (u2 answering u1, not direct) is answered by a: it counts for response hours.
* probes q7-q9 (week 3) and q10-q13 (week 4) give the craft companies probe response times
  that tie: exactly (1, 1, 3 hours) and up to float noise (0.15 vs median(0.1, 0.2) hours).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse import models
from socialpulse.records import RAW_SCHEMAS, to_arrow
from socialpulse.registry import DIMENSIONS, REF_TABLES
from socialpulse.warehouse import connect, dict_rows, load_batch, replace_reference_tables

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import duckdb


def T(text: str) -> dt.datetime:  # noqa: N802 - reads like a literal
    """'2024-01-09 10:00' or '2024-01-09' -> naive UTC datetime."""
    return dt.datetime.fromisoformat(text)


# --- registry ---------------------------------------------------------------------------

COMPANIES = [
    # company_id, name, segment, employees, effort_hours_per_week, has_goals
    ("a", "Alpha Bakery", "craft", 5, 10.0, True),
    ("b", "Beta Joinery", "craft", 3, None, False),
    ("c", "Gamma Print", "craft", 8, 5.0, False),
    ("x", "Xeno Corp", "corporation", 5000, None, False),
    ("y", "Ypsilon AG", "corporation", 900, None, False),
]
ACCOUNTS = [
    ("a", "mastodon", "a-m"),
    ("a", "bluesky", "a-b"),
    ("b", "mastodon", "b-m"),
    ("c", "mastodon", "c-m"),
    ("c", "bluesky", "c-b"),
    ("x", "mastodon", "x-m"),
    ("y", "mastodon", "y-m"),
]
DEFAULT_WEIGHTS = {d: (1.0 if i < 7 else 0.0) for i, d in enumerate(DIMENSIONS)}
WEIGHTS = {
    # a states goals: every dimension it does not name weighs 0 (growth, sympathy, ...)
    "a": {
        **{d: 0.0 for d in DIMENSIONS},
        "reach": 2.0,
        "engagement": 1.0,
        "liveliness": 1.0,
        "findability": 1.0,
        "image": 1.0,
    },
    "b": DEFAULT_WEIGHTS,
    "c": DEFAULT_WEIGHTS,
    "x": DEFAULT_WEIGHTS,
    "y": DEFAULT_WEIGHTS,
}
TARGETS = [
    ("a", "posts_per_week", ">=", 2.0),
    ("a", "response_hours_median", "<=", 12.0),
    ("a", "engagement_rate", ">", 0.1),
    ("c", "probe_response_hours_median", "<", 5.0),
    ("y", "followers", ">=", 10.0),
]

#: L of METRICS.md rule 8 (ref.settings): a snapshot at t observes the periods that end after
#: t - 35 days and start at or before t
LOOKBACK_DAYS = 35
#: the alert thresholds of marts.alerts (ref.settings; the documented defaults)
ALERT_LIVELINESS_DROP = 20.0
ALERT_SERVICE_LEVEL_DROP = 0.2

# --- raw facts --------------------------------------------------------------------------

SNAPSHOTS = [
    # company, platform, account_id, observed_at, followers
    ("a", "mastodon", "a-m", "2024-01-01 00:00", 100),
    ("a", "mastodon", "a-m", "2024-01-08 00:00", 110),  # exactly at the week 1/2 boundary
    ("a", "mastodon", "a-m", "2024-01-15 00:00", 121),  # exactly at the week 2/3 boundary
    ("a", "mastodon", "a-m", "2024-02-05 12:00", 150),  # the latest snapshot overall
    ("a", "bluesky", "a-b", "2024-01-03 12:00", 50),  # first a-b snapshot: after 01-01
    ("a", "bluesky", "a-b", "2024-01-12 12:00", 60),
    ("b", "mastodon", "b-m", "2024-01-08 00:00", 200),
    ("b", "mastodon", "b-m", "2024-01-15 00:00", 220),
    ("c", "mastodon", "c-m", "2024-01-08 00:00", 300),
    ("c", "mastodon", "c-m", "2024-01-15 00:00", 270),
    ("c", "bluesky", "c-b", "2024-01-08 00:00", 0),  # an account without followers
    ("c", "bluesky", "c-b", "2024-01-15 00:00", 0),
    ("x", "mastodon", "x-m", "2024-01-10 00:00", 1000),  # x: one snapshot only
    ("y", "mastodon", "y-m", "2024-01-08 00:00", 0),
    ("y", "mastodon", "y-m", "2024-01-15 00:00", 10),
]

# fmt: off
POSTS = [
    # company, platform, post_id, account_id, created_at, kind,
    #   [(observed_at, likes, replies, reposts, quotes), ...]
    ("a", "mastodon", "p-a1", "a-m", "2024-01-09 10:00", "original",
     [("2024-01-10", 5, 1, 0, 0), ("2024-01-14", 10, 2, 3, 1), ("2024-01-20", 20, 2, 3, 1)]),
    ("a", "bluesky", "p-a2", "a-b", "2024-01-02 08:00", "original",
     [("2024-01-16", 4, 1, 0, 0)]),  # first observed after its week ended
    ("a", "mastodon", "p-a3", "a-m", "2024-01-10 00:00", "reply",
     [("2024-01-14", 1, 0, 0, 0)]),  # not an own post (kind reply)
    ("a", "mastodon", "p-a4", "a-m", "2024-01-11 00:00", "repost",
     [("2024-01-14", 50, 0, 0, 0)]),  # not an own post (kind repost)
    ("a", "bluesky", "p-a5", "a-b", "2024-01-12 13:00", "original",
     [("2024-01-15 00:00", 6, 0, 0, 0), ("2024-01-15 06:00", 9, 0, 0, 0)]),
    ("b", "mastodon", "p-b1", "b-m", "2024-01-09 00:00", "original",
     [("2024-01-14", 8, 2, 0, 0)]),
    ("b", "mastodon", "p-b2", "b-m", "2024-01-10 00:00", "original",
     [("2024-01-14", 2, 0, 0, 0)]),
    ("c", "mastodon", "p-c1", "c-m", "2024-01-09 00:00", "original",
     [("2024-01-14", 6, 0, 0, 0)]),
    ("c", "bluesky", "p-c2", "c-b", "2024-01-10 00:00", "original",
     [("2024-01-14", 3, 0, 0, 0)]),  # its account has 0 followers
    ("c", "mastodon", "p-c3", "c-m", "2024-01-11 00:00", "original",
     [("2024-01-14", 0, 0, 0, 0)]),
    ("x", "mastodon", "p-x1", "x-m", "2024-01-09 00:00", "original",
     [("2024-01-14", 10, 0, 0, 0)]),
    ("y", "mastodon", "p-y1", "y-m", "2024-01-09 00:00", "original",
     [("2024-01-14", 1, 0, 0, 0)]),
    # exactly at the week 2/3 boundary and exactly at y-m's 01-15 00:00 snapshot (10 followers)
    ("y", "mastodon", "p-y2", "y-m", "2024-01-15 00:00", "original",
     [("2024-01-16", 2, 1, 0, 0)]),
]
# fmt: on

REPLIES_OBSERVED_AT = "2024-01-16 12:00"
REPLIES = [
    # company, platform, reply_id, account_id, root_post_id, in_reply_to_id, author_id,
    #   author_is_company, created_at
    ("a", "mastodon", "r1", "a-m", "p-a1", "p-a1", "u1", False, "2024-01-09 12:00"),
    ("a", "mastodon", "r2", "a-m", "p-a1", "r1", "a-m", True, "2024-01-09 14:00"),  # r1 +2 h
    ("a", "mastodon", "r3", "a-m", "p-a1", "p-a1", "u2", False, "2024-01-10 00:00"),
    ("a", "mastodon", "r4", "a-m", "p-a1", "r3", "a-m", True, "2024-01-11 00:00"),  # r3 +24 h
    ("a", "mastodon", "r4b", "a-m", "p-a1", "r3", "a-m", True, "2024-01-12 00:00"),  # 2nd answer
    ("a", "mastodon", "r5", "a-m", "p-a1", "r2", "u1", False, "2024-01-10 12:00"),  # follow-up
    ("a", "mastodon", "r6", "a-m", "p-a1", "r5", "a-m", True, "2024-01-10 18:00"),  # r5 +6 h
    ("a", "mastodon", "r7", "a-m", "p-a3", "p-a3", "u3", False, "2024-01-13 00:00"),  # unanswered
    ("a", "mastodon", "r8", "a-m", "p-a1", "r1", "u2", False, "2024-01-11 00:00"),  # not direct
    ("a", "mastodon", "r8a", "a-m", "p-a1", "r8", "a-m", True, "2024-01-12 06:00"),  # r8 +30 h
    ("a", "mastodon", "r9", "a-m", "p-a1", "p-a1", "u4", False, "2024-01-14 00:00"),
    ("a", "mastodon", "r10", "a-m", "p-a1", "r9", "a-m", True, "2024-01-16 00:00"),  # r9 +48 h
    # week 1, under a root post never observed in post_observations; unanswered
    ("b", "mastodon", "s0", "b-m", "p-b0", "p-b0", "v1", False, "2024-01-05 00:00"),
    ("b", "mastodon", "s1", "b-m", "p-b1", "p-b1", "v1", False, "2024-01-09 06:00"),
    ("b", "mastodon", "s2", "b-m", "p-b1", "s1", "b-m", True, "2024-01-09 09:00"),  # s1 +3 h
    ("b", "mastodon", "s3", "b-m", "p-b1", "p-b1", "v2", False, "2024-01-09 07:00"),
    ("c", "mastodon", "t1", "c-m", "p-c1", "p-c1", "w1", False, "2024-01-09 01:00"),
    ("c", "mastodon", "t2", "c-m", "p-c1", "t1", "c-m", True, "2024-01-09 02:00"),  # t1 +1 h
    # exactly at the week 2/3 boundary; unanswered
    ("y", "mastodon", "z1", "y-m", "p-y1", "p-y1", "f1", False, "2024-01-15 00:00"),
]
#: r7 is fetched twice: the models must count it once (latest observation per reply)
EXTRA_REPLY_OBSERVATIONS = [("r7", "2024-01-13 06:00")]

PROBES_OBSERVED_AT = "2024-02-05 12:00"
PROBES = [
    # probe_id, company, sent_at, answered_at
    ("q0", "b", "2024-01-03 00:00", None),  # week 1
    ("q1", "a", "2024-01-09 00:00", "2024-01-09 10:00"),  # 10 h
    ("q2", "a", "2024-01-10 00:00", None),
    ("q3", "b", "2024-01-09 00:00", "2024-01-09 04:00"),  # 4 h
    ("q4", "b", "2024-01-11 00:00", "2024-01-11 08:00"),  # 8 h
    ("q5", "c", "2024-01-09 00:00", None),
    ("q6", "y", "2024-01-15 00:00", "2024-01-15 05:00"),  # at the week 2/3 boundary, 5 h
    # week 3: response times 1, 1, 3 hours (a tie)
    ("q7", "a", "2024-01-16 00:00", "2024-01-16 01:00"),  # 1 h
    ("q8", "b", "2024-01-16 00:00", "2024-01-16 01:00"),  # 1 h
    ("q9", "c", "2024-01-16 00:00", "2024-01-16 03:00"),  # 3 h
    # week 4: a 9 min = 0.15 h; b median(6 min, 12 min) = median(0.1, 0.2) h; c 1 h
    ("q10", "a", "2024-01-23 00:00", "2024-01-23 00:09"),
    ("q11", "b", "2024-01-23 00:00", "2024-01-23 00:06"),
    ("q12", "b", "2024-01-24 00:00", "2024-01-24 00:12"),
    ("q13", "c", "2024-01-23 00:00", "2024-01-23 01:00"),
]

MANUAL = [
    # company, metric, period_type, period_start, value
    ("a", "findability", "week", "2024-01-08", 70.0),
    ("a", "image", "week", "2024-01-08", 80.0),
    ("b", "findability", "week", "2024-01-08", 60.0),
    ("b", "image", "week", "2024-01-08", 80.0),
    ("c", "findability", "week", "2024-01-08", 50.0),
    # 2024-01-01 starts both week 1 and January: the period type says which is meant
    ("a", "image", "week", "2024-01-01", 30.0),
    ("a", "image", "month", "2024-01-01", 90.0),
    ("b", "findability", "month", "2024-01-01", 65.0),
]


def snapshot_row(
    platform: str,
    company: str,
    account: str,
    observed: str,
    followers: int | None,
    handle: str | None = None,
    posts_since: str | None = None,
) -> dict[str, Any]:
    """An account_snapshots row; ``posts_since`` None: unknown (observed_at - L, rule 8)."""
    return {
        "platform": platform,
        "company_id": company,
        "account_id": account,
        "handle": handle or account,
        "observed_at": T(observed),
        "followers": followers,
        "following": None,
        "posts_total": None,
        "posts_since": T(posts_since) if posts_since else None,
    }


def post_row(
    platform: str,
    post_id: str,
    account: str,
    company: str,
    created: str,
    kind: str,
    observed: str,
    counts: tuple[int, int, int, int],
) -> dict[str, Any]:
    """A post_observations row; ``counts`` = (likes, replies, reposts, quotes)."""
    likes, replies, reposts, quotes = counts
    return {
        "platform": platform,
        "post_id": post_id,
        "account_id": account,
        "company_id": company,
        "created_at": T(created),
        "kind": kind,
        "likes": likes,
        "replies": replies,
        "reposts": reposts,
        "quotes": quotes,
        "views": None,
        "url": None,
        "observed_at": T(observed),
    }


def reply_row(
    reply: tuple[str, str, str, str, str, str, str, bool, str], observed: str
) -> dict[str, Any]:
    """A thread_replies row from (platform, reply_id, account, company, root, in_reply_to,
    author, author_is_company, created_at)."""
    platform, rid, account, company, root, parent, author, is_company, created = reply
    return {
        "platform": platform,
        "reply_id": rid,
        "account_id": account,
        "company_id": company,
        "root_post_id": root,
        "in_reply_to_id": parent,
        "author_id": author,
        "author_is_company": is_company,
        "created_at": T(created),
        "observed_at": T(observed),
    }


def default_ref_tables(
    companies: list[tuple], accounts: list[tuple], lookback_days: int
) -> dict[str, Any]:
    """Reference tables of companies without goals (the first seven dimensions weigh 1) and
    without targets: ``companies`` and ``accounts`` as tuples in REF_TABLES' column order."""
    import pyarrow as pa

    from socialpulse.records import arrow_type

    rows = {
        "companies": [dict(zip(REF_TABLES["companies"], c, strict=True)) for c in companies],
        "accounts": [dict(zip(REF_TABLES["accounts"], a, strict=True)) for a in accounts],
        "company_weights": [
            {"company_id": c[0], "dimension": d, "weight": 1.0 if i < 7 else 0.0}
            for c in companies
            for i, d in enumerate(DIMENSIONS)
        ],
        "company_targets": [],
        "settings": [
            {
                "lookback_days": lookback_days,
                "alert_liveliness_drop": ALERT_LIVELINESS_DROP,
                "alert_service_level_drop": ALERT_SERVICE_LEVEL_DROP,
            }
        ],
    }
    return {
        table: pa.Table.from_pylist(
            rows[table], schema=pa.schema([(n, arrow_type(t)) for n, t in cols.items()])
        )
        for table, cols in REF_TABLES.items()
    }


def raw_tables() -> dict[str, Any]:
    snapshots = [
        snapshot_row(platform, company, account, observed, followers)
        for company, platform, account, observed, followers in SNAPSHOTS
    ]
    posts = [
        post_row(platform, post_id, account, company, created, kind, observed, tuple(counts))
        for company, platform, post_id, account, created, kind, observations in POSTS
        for observed, *counts in observations
    ]
    extra = dict(EXTRA_REPLY_OBSERVATIONS)
    replies = [
        reply_row((platform, rid, account, company, root, parent, author, is_company, created), o)
        for company, platform, rid, account, root, parent, author, is_company, created in REPLIES
        for o in [REPLIES_OBSERVED_AT, *([extra[rid]] if rid in extra else [])]
    ]
    probes = [
        {
            "probe_id": pid,
            "company_id": company,
            "platform": "mastodon",
            "channel": "public_post",
            "sent_at": T(sent),
            "question_ref": None,
            "answered_at": T(answered) if answered else None,
            "answer_ref": None,
            "quality": None,
            "observed_at": T(PROBES_OBSERVED_AT),
        }
        for pid, company, sent, answered in PROBES
    ]
    manual = [
        {
            "company_id": company,
            "metric": metric,
            "period_type": period_type,
            "period_start": dt.date.fromisoformat(start),
            "value": value,
            "observed_at": T("2024-01-16"),
        }
        for company, metric, period_type, start, value in MANUAL
    ]
    rows = {
        "account_snapshots": snapshots,
        "post_observations": posts,
        "thread_replies": replies,
        "probes": probes,
        "manual_metrics": manual,
    }
    return {table: to_arrow(RAW_SCHEMAS[table], r) for table, r in rows.items()}


def ref_tables() -> dict[str, Any]:
    import pyarrow as pa

    rows = {
        "companies": [dict(zip(REF_TABLES["companies"], c, strict=True)) for c in COMPANIES],
        "accounts": [dict(zip(REF_TABLES["accounts"], a, strict=True)) for a in ACCOUNTS],
        "company_weights": [
            {"company_id": c, "dimension": d, "weight": w}
            for c, weights in WEIGHTS.items()
            for d, w in weights.items()
        ],
        "company_targets": [
            dict(zip(REF_TABLES["company_targets"], t, strict=True)) for t in TARGETS
        ],
        "settings": [
            {
                "lookback_days": LOOKBACK_DAYS,
                "alert_liveliness_drop": ALERT_LIVELINESS_DROP,
                "alert_service_level_drop": ALERT_SERVICE_LEVEL_DROP,
            }
        ],
    }
    types = {
        "VARCHAR": pa.string(),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
    }
    return {
        table: pa.Table.from_pylist(
            rows[table], schema=pa.schema([(n, types[t]) for n, t in cols.items()])
        )
        for table, cols in REF_TABLES.items()
    }


@pytest.fixture(scope="session")
def all_models() -> list[models.Model]:
    return models.discover()


@pytest.fixture(scope="session")
def fixture_warehouse(
    tmp_path_factory: pytest.TempPathFactory, all_models: list[models.Model]
) -> Path:
    """The fixture rows loaded and every model built, once per test session."""
    path = tmp_path_factory.mktemp("warehouse") / "fixture.duckdb"
    with connect(path) as con:
        replace_reference_tables(con, ref_tables())
        load_batch(con, "fixture-1", raw_tables())
        models.build_all(con, all_models)
    return path


@pytest.fixture(scope="session")
def con(fixture_warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(fixture_warehouse, read_only=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def rows(con: duckdb.DuckDBPyConnection) -> Callable[..., list[dict]]:
    """``rows(relation, col=value, ...)``: the matching rows of a built relation, as dicts."""

    def _rows(relation: str, **where: Any) -> list[dict]:
        clause = " and ".join(f"{k} = ?" for k in where) or "true"
        return dict_rows(con, f"select * from {relation} where {clause}", list(where.values()))

    return _rows


@pytest.fixture(scope="session")
def one(rows: Callable[..., list[dict]]) -> Callable[..., dict]:
    """``one(relation, col=value, ...)``: the single matching row (asserts there is one)."""

    def _one(relation: str, **where: Any) -> dict:
        found = rows(relation, **where)
        assert len(found) == 1, f"{relation} {where}: expected 1 row, got {len(found)}"
        return found[0]

    return _one
