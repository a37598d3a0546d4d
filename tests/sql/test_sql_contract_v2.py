"""METRICS.md v2 on messy histories: replaced accounts, stale accounts, late companies, feeds.

A fixture of its own (March 2024, lookback L = 7 days in ``ref.settings``), built once per
module. Every expected value below is computed by hand from these rows; the comments show
the arithmetic, and where v1 of the contract gave another number it is named, so that a
regression to it is recognisable.

Weeks: W1 = [03-04, 03-11), W2 = [03-11, 03-18), W3 = [03-18, 03-25), W4 = [03-25, 04-01).
All companies but k are craft businesses without goals (the first seven dimensions weigh 1).

* ``r`` Replaced: its Mastodon account r-old (id r-old-id) was replaced by r-new (r-new-id);
  the registry lists r-new only. r-old still has snapshots (1000 followers), a post and a
  thread in W1. Effort 2 h/week.
* ``t`` Two accounts: t-m (Mastodon, fetched 03-04, 03-11, 03-25) and t-b (Bluesky, last
  seen 01-04, 500 followers: stale). A repost with a reply under it. No effort stated.
* ``n`` New: added to the registry late, first fetched 03-18 12:00. Effort 1 h/week.
* ``f`` Feed only: an RSS feed, snapshots with followers null, first fetched 03-19.
  Effort 1 h/week.
* ``g`` Steady: one Mastodon account fetched every Monday. Effort 4 h/week.
* ``k`` Backfilled (corporation): fetched once, 03-26, by a backfill that read posts back to
  03-01 (posts_since); without it L = 7 days would leave W1 unobserved.

Observed periods (rule 8: a snapshot of a current account at s with posts read since p
observes [start, end) when s >= start and p < end; p = s - L when posts_since is null):

| company | W1  | W2  | W3  | W4  |
|---------|-----|-----|-----|-----|
| r       | yes (r-new 03-11, read since 03-04 < 03-11) | yes | yes | yes |
| t       | yes | yes | yes (t-m 03-25, since 03-18) | yes |
| n       | no (03-18 12:00 - 7 d = 03-11 12:00, not < 03-11) | yes | yes | yes |
| f       | no (03-19 - 7 d = 03-12) | yes | yes | yes |
| g       | yes | yes | yes | yes |
| k       | yes (since 03-01) | yes | yes | yes |
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse import models
from socialpulse.records import RAW_SCHEMAS, to_arrow
from socialpulse.warehouse import connect, dict_rows, load_batch, replace_reference_tables
from tests.sql.conftest import (
    default_ref_tables,
    post_row,
    reply_row,
    snapshot_row,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

W0 = dt.date(2024, 2, 26)
W1 = dt.date(2024, 3, 4)
W2 = dt.date(2024, 3, 11)
W3 = dt.date(2024, 3, 18)
W4 = dt.date(2024, 3, 25)
MAR = dt.date(2024, 3, 1)
LOOKBACK_DAYS = 7

approx = pytest.approx

COMPANIES = [
    # company_id, name, segment, employees, effort_hours_per_week, has_goals
    ("r", "Replaced", "craft", 4, 2.0, False),
    ("t", "Two Accounts", "craft", 6, None, False),
    ("n", "New", "craft", 2, 1.0, False),
    ("f", "Feed Only", "craft", 3, 1.0, False),
    ("g", "Steady", "craft", 9, 4.0, False),
    ("k", "Backfilled", "corporation", 500, None, False),
]
ACCOUNTS = [
    # company_id, platform, handle: what the registry lists now
    ("r", "mastodon", "r-new"),
    ("t", "mastodon", "t-m"),
    ("t", "bluesky", "t-b"),
    ("n", "mastodon", "n-m"),
    ("f", "rss", "f-feed"),
    ("g", "mastodon", "g-m"),
    ("k", "mastodon", "k-m"),
]
FEED = "https://f.example/feed"

SNAPSHOTS = [
    # platform, company (as loaded), account_id, handle, observed_at, followers, posts_since
    ("mastodon", "r", "r-old-id", "r-old", "2024-03-04", 1000, None),
    ("mastodon", "r", "r-old-id", "r-old", "2024-03-11", 1000, None),
    ("mastodon", "r", "r-new-id", "r-new", "2024-03-11", 100, None),
    ("mastodon", "r", "r-new-id", "r-new", "2024-03-18", 110, None),
    ("mastodon", "r", "r-new-id", "r-new", "2024-03-25", 121, None),
    ("mastodon", "t", "t-m-id", "t-m", "2024-03-04", 1000, None),
    ("mastodon", "t", "t-m-id", "t-m", "2024-03-11", 1100, None),
    ("mastodon", "t", "t-m-id", "t-m", "2024-03-25", 1210, None),
    ("bluesky", "t", "did:plc:t", "t-b", "2024-01-04", 500, None),  # stale: 60 days before W1
    ("mastodon", "n", "n-m-id", "n-m", "2024-03-18 12:00", 200, None),
    ("mastodon", "n", "n-m-id", "n-m", "2024-03-25 12:00", 210, None),
    ("rss", "f", FEED, "f-feed", "2024-03-19", None, None),  # a feed has no followers
    ("rss", "f", FEED, "f-feed", "2024-03-26", None, None),
    ("mastodon", "g", "g-m-id", "g-m", "2024-03-04", 1000, None),
    ("mastodon", "g", "g-m-id", "g-m", "2024-03-11", 1010, None),
    ("mastodon", "g", "g-m-id", "g-m", "2024-03-18", 1020, None),
    ("mastodon", "g", "g-m-id", "g-m", "2024-03-25", 1030, None),
    ("mastodon", "g", "g-m-id", "g-m", "2024-04-01", 1040, None),
    ("mastodon", "k", "k-m-id", "k-m", "2024-03-26", 300, "2024-03-01"),  # a backfill
]

POSTS = [
    # platform, post_id, account_id, company, created_at, kind, observed_at, likes, replies,
    #   reposts, quotes
    ("mastodon", "r-old-p1", "r-old-id", "r", "2024-03-05 10:00", "original", "2024-03-11",
     30, 0, 0, 0),
    ("mastodon", "r-new-p1", "r-new-id", "r", "2024-03-12 10:00", "original", "2024-03-18",
     5, 1, 0, 0),
    ("mastodon", "t-p1", "t-m-id", "t", "2024-03-05 09:00", "original", "2024-03-11",
     10, 2, 0, 0),
    ("mastodon", "t-rp1", "t-m-id", "t", "2024-03-06 09:00", "repost", "2024-03-11",
     0, 0, 0, 0),
    ("mastodon", "g-p1", "g-m-id", "g", "2024-03-05 12:00", "original", "2024-03-11",
     20, 1, 1, 0),
    ("mastodon", "g-p2", "g-m-id", "g", "2024-03-07 12:00", "original", "2024-03-11",
     4, 0, 0, 0),
    ("mastodon", "n-p1", "n-m-id", "n", "2024-03-19 08:00", "original", "2024-03-25 12:00",
     2, 0, 0, 0),
    ("rss", "https://f.example/p1", FEED, "f", "2024-03-13", "original", "2024-03-19",
     0, 3, 0, 0),
    ("rss", "https://f.example/p2", FEED, "f", "2024-03-20", "original", "2024-03-26",
     0, 1, 0, 0),
    ("mastodon", "k-p1", "k-m-id", "k", "2024-03-05", "original", "2024-03-26", 3, 0, 0, 0),
]  # fmt: skip

REPLIES = [
    # platform, reply_id, account_id, company, root, in_reply_to, author, is_company, created
    # t: under its original t-p1 ...
    ("mastodon", "tr1", "t-m-id", "t", "t-p1", "t-p1", "u1", False, "2024-03-05 10:00"),
    ("mastodon", "tr2", "t-m-id", "t", "t-p1", "tr1", "t-m-id", True, "2024-03-05 12:00"),
    ("mastodon", "tr3", "t-m-id", "t", "t-p1", "t-p1", "u2", False, "2024-03-06 10:00"),
    # ... and under its repost t-rp1: a reply to the reposted author, not to t (rule 5)
    ("mastodon", "tr4", "t-m-id", "t", "t-rp1", "t-rp1", "u3", False, "2024-03-06 12:00"),
    # g: three authors, the first answered after 1 h
    ("mastodon", "gr1", "g-m-id", "g", "g-p1", "g-p1", "u5", False, "2024-03-05 13:00"),
    ("mastodon", "gr4", "g-m-id", "g", "g-p1", "gr1", "g-m-id", True, "2024-03-05 14:00"),
    ("mastodon", "gr2", "g-m-id", "g", "g-p1", "g-p1", "u6", False, "2024-03-05 14:00"),
    ("mastodon", "gr3", "g-m-id", "g", "g-p1", "g-p1", "u7", False, "2024-03-06 00:00"),
    # r's replaced account: its thread counts nowhere
    ("mastodon", "rr1", "r-old-id", "r", "r-old-p1", "r-old-p1", "u8", False, "2024-03-05 11:00"),
]
REPLIES_OBSERVED_AT = "2024-03-11"


def _raw_tables() -> dict[str, Any]:
    rows = {
        "account_snapshots": [
            snapshot_row(platform, company, account, observed, followers, handle, since)
            for platform, company, account, handle, observed, followers, since in SNAPSHOTS
        ],
        "post_observations": [
            post_row(platform, post_id, account, company, created, kind, observed, counts)
            for platform, post_id, account, company, created, kind, observed, *counts in POSTS
        ],
        "thread_replies": [reply_row(r, REPLIES_OBSERVED_AT) for r in REPLIES],
    }
    return {table: to_arrow(RAW_SCHEMAS[table], r) for table, r in rows.items()}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, all_models: list[models.Model]) -> Path:
    path = tmp_path_factory.mktemp("contract-v2") / "v2.duckdb"
    with connect(path) as con:
        replace_reference_tables(con, default_ref_tables(COMPANIES, ACCOUNTS, LOOKBACK_DAYS))
        load_batch(con, "v2-fixture", _raw_tables())
        models.build_all(con, all_models)
    return path


@pytest.fixture(scope="module")
def get(warehouse: Path) -> Callable[..., dict[str, Any]]:
    """``get(relation, company, period_start, period_type='week')``: the one row."""

    def _get(relation: str, company: str, start: dt.date, period_type: str = "week") -> dict:
        with connect(warehouse, read_only=True) as con:
            found = dict_rows(
                con,
                f"select * from {relation} where company_id = ? and period_type = ? "
                "and period_start = ?",
                [company, period_type, start],
            )
        assert len(found) == 1, (relation, company, start, period_type, found)
        return found[0]

    return _get


@pytest.fixture(scope="module")
def metrics(get):
    return lambda company, start, period_type="week": get(
        "marts.company_metrics", company, start, period_type
    )


@pytest.fixture(scope="module")
def index(get):
    return lambda company, start, period_type="week": get(
        "marts.success_index", company, start, period_type
    )


@pytest.fixture(scope="module")
def score(warehouse: Path) -> Callable[[str, str, dt.date], Any]:
    """``score(company, metric, week_start)``: the metric's score in that week."""

    def _score(company: str, metric: str, start: dt.date) -> Any:
        with connect(warehouse, read_only=True) as con:
            [row] = dict_rows(
                con,
                "select metric_score from intermediate.int_metric_scores where company_id = ? "
                "and metric = ? and period_type = 'week' and period_start = ?",
                [company, metric, start],
            )
        return row["metric_score"]

    return _score


# --- rule 8: observed periods -------------------------------------------------------------


def test_observed_periods(metrics):
    expected = {
        "r": (True, True, True, True),
        "t": (True, True, True, True),
        "n": (False, True, True, True),
        "f": (False, True, True, True),
        "g": (True, True, True, True),
        "k": (True, True, True, True),
    }
    for company, flags in expected.items():
        got = tuple(metrics(company, w)["is_observed"] for w in (W1, W2, W3, W4))
        assert got == flags, company


def test_a_company_added_later_has_nulls_not_zeros_before_its_first_fetch(metrics, index):
    # n was first fetched 03-18 12:00: W1 was never looked at. v1 gave posts_per_week 0,
    # unique_interactors 0, interactions 0 and a success index.
    n1 = metrics("n", W1)
    platform_metrics = (
        "followers",
        "follower_growth_weekly",
        "posts_per_week",
        "interactions",
        "engagement_rate",
        "likes_per_1k",
        "service_level",
        "response_hours_median",
        "unique_interactors",
        "repeat_interactor_share",
        "interactions_per_effort_hour",
    )
    assert {m: n1[m] for m in platform_metrics} == dict.fromkeys(platform_metrics)
    assert index("n", W1)["success_index"] is None
    assert index("n", W1)["is_observed"] is False
    # W2 is observed (the 03-18 12:00 fetch re-read posts since 03-11 12:00): nothing was
    # posted -> counts 0; followers at 03-18 = the earliest later snapshot, 200
    n2 = metrics("n", W2)
    assert (n2["posts_per_week"], n2["unique_interactors"], n2["interactions"]) == (0, 0, 0)
    assert n2["followers"] == 200
    # effort stated (1 h), observed, nothing posted -> 0 (rule 9)
    assert n2["interactions_per_effort_hour"] == 0


def test_an_unobserved_company_does_not_push_its_peers_scores(score):
    # W1 craft, observed: r 0, t 2 (u1, u2), g 3 (u5, u6, u7) unique interactors -> n = 3:
    # 100 x (worse peers) / 2 = 0, 50, 100. n and f were not observed: no value, no score.
    # (v1: r 1 (u8 of the replaced account), t 3 (u3 under the repost), g 3, n 0, f 0 ->
    # t and g 100 x 3 / 4 = 75.)
    assert [score(c, "unique_interactors", W1) for c in "rtg"] == [0, 50, 100]
    assert [score(c, "unique_interactors", W1) for c in "nf"] == [None, None]


def test_success_index_only_where_observed(index):
    # W1 craft scores (n = 3 observed: r, t, g): followers r 100, g 1010, t 1600 -> reach
    # 0, 50, 100; posts_per_week r 0, t 1, g 2 -> 0, 50, 100; unique_interactors 0, 50, 100.
    # Every other metric has fewer than 3 values (growth t .1, g .01; engagement t, g; ...).
    # Default weights, scored dimensions only: r (0 + 0 + 0) / 3, t (100 + 50 + 50) / 3,
    # g (50 + 100 + 100) / 3.
    assert index("r", W1)["success_index"] == approx(0.0)
    assert index("t", W1)["success_index"] == approx(200 / 3)
    assert index("g", W1)["success_index"] == approx(250 / 3)
    assert index("f", W1)["success_index"] is None
    assert [index(c, W1)["segment_rank"] for c in "gtr"] == [1, 2, 3]


def test_a_backfill_observes_the_periods_its_fetch_read(metrics):
    # k's only fetch (03-26) read posts back to 03-01: W1 is observed although 03-26 - L
    # (7 days) = 03-19 lies after W1's end; the week of 02-26 too (03-01 < 03-04).
    k1 = metrics("k", W1)
    assert k1["is_observed"] is True
    assert k1["posts_per_week"] == approx(1.0)  # k-p1 (03-05)
    assert k1["followers"] == 300  # the earliest later snapshot
    assert metrics("k", W0)["is_observed"] is True


# --- rule 2: current accounts only, growth over accounts seen again ----------------------


def test_a_replaced_account_counts_in_no_period(metrics):
    # r lists r-new only. End of W2 (03-18): r-new 110; r-old (1000, last 03-11) is not
    # carried forward (v1: 1110)
    assert metrics("r", W2)["followers"] == 110
    # growth W2: r-new 100 (03-11) -> 110 (03-18), d = 7 -> 0.1 (v1: 1110 / 1100 - 1)
    assert metrics("r", W2)["follower_growth_weekly"] == approx(0.1)
    # W1: r-old's post (30 likes) and its thread (u8) are not r's: 0 posts, 0 interactors
    r1 = metrics("r", W1)
    assert (r1["posts_per_week"], r1["interactions"], r1["unique_interactors"]) == (0, 0, 0)
    assert r1["followers"] == 100  # r-new at 03-11 00:00 (v1: 1100)
    # effort 2 h/week, observed, no own posts -> 0 (v1: 30 / 2 = 15)
    assert r1["interactions_per_effort_hour"] == 0


def test_a_stale_second_account_does_not_stretch_growth(metrics):
    # W1: t-m 1000 (03-04) -> 1100 (03-11) is seen again; t-b's only snapshot (01-04) is used
    # at both ends and says nothing about growth: F 1000 -> 1100, d = 7 -> 0.1.
    # (v1: (1600 / 1500)^(7 / 67) - 1 = 0.0068, d stretched from 01-04 to 03-11.)
    t1 = metrics("t", W1)
    assert t1["follower_growth_weekly"] == approx(0.1)
    assert t1["followers"] == 1600  # the followers sum still holds t-b's 500


def test_no_new_snapshot_means_no_growth_not_zero_growth(metrics):
    # W2: neither t-m (last 03-11 00:00, used at 03-11 and 03-18) nor t-b was seen again ->
    # null (v1 invented 0.0: 1600 / 1600 over d = 67 days)
    t2 = metrics("t", W2)
    assert t2["is_observed"] is True
    assert t2["follower_growth_weekly"] is None
    assert t2["followers"] == 1600


def test_month_growth_spans_the_snapshots_of_the_accounts_seen_again(metrics):
    # March: t-m at 03-01 -> the earliest later 03-04 (1000), at 04-01 -> 03-25 (1210): seen
    # again. t-b: 01-04 at both ends, left out. d = 03-04 -> 03-25 = 21 -> 1.21^(7/21) - 1
    march = metrics("t", MAR, "month")
    assert march["follower_growth_weekly"] == approx(1.21 ** (1 / 3) - 1)
    assert march["followers"] == 1710  # 1210 + 500


# --- feeds --------------------------------------------------------------------------------


def test_a_feed_only_company_is_observed_through_its_feed_snapshots(metrics, index):
    f2 = metrics("f", W2)
    assert f2["is_observed"] is True
    assert f2["followers"] is None  # a feed has no followers: nothing to sum
    assert f2["posts_per_week"] == approx(1.0)  # f-p1 (03-13)
    # its counts at 03-18: the earliest later observation (03-19): 3 comments
    assert f2["interactions"] == 3
    assert f2["interactions_per_effort_hour"] == approx(3 / 1.0)
    # no followers at post time -> left out of the rate means (rule 4)
    assert (f2["engagement_rate"], f2["likes_per_1k"]) == (None, None)
    assert metrics("f", W1)["posts_per_week"] is None  # first fetched 03-19: W1 unobserved
    assert index("f", W2)["is_observed"] is True


# --- rule 5: reposts and identity ---------------------------------------------------------


def test_a_reply_to_a_repost_is_not_a_reply_to_the_company(metrics, get):
    # t W1: direct replies tr1, tr3 (to t-p1); tr1 answered (tr2, +2 h) -> 1 / 2. tr4 answers
    # the repost t-rp1: not direct, and its thread's root is no original (v1: 1 / 3, and u3
    # was an interactor).
    t1 = metrics("t", W1)
    assert t1["service_level"] == approx(1 / 2)
    assert t1["unique_interactors"] == 2
    assert t1["response_hours_median"] == approx(2.0)
    assert t1["repeat_interactor_share"] == 0


def test_interactions_per_effort_hour_is_null_without_stated_effort(metrics):
    # t states no effort: null in every period (v1: interactions per post, 12 / 1)
    assert metrics("t", W1)["interactions"] == 12
    assert metrics("t", W1)["interactions_per_effort_hour"] is None
    # g: (22 + 4) / (4 x 7 / 7)
    assert metrics("g", W1)["interactions_per_effort_hour"] == approx(26 / 4)
