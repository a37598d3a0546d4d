"""Hidden likes (null ``likes``): left out of likes_per_1k, adding 0 to interactions.

Instagram reports a peer's hidden like count as 0 and YouTube leaves ``likeCount`` out
when likes are hidden; the connectors emit ``likes = null`` for them (METRICS.md rule 4: a
count a platform does not deliver adds 0 to interactions; the sympathy mean is taken over
the posts whose likes are known). A fixture of its own, one week W = [2024-03-04,
2024-03-11), lookback 7 days:

* ``h`` Hidden: Instagram peer, 1000 followers (snapshots 03-04 and 03-11), three
  originals in W observed 03-11: h1 likes 10, replies 1; h2 likes 30, replies 0; h3 likes
  hidden (null), replies 4. h3 was observed once more on 03-12 (after W) with 50 likes
  (the owner unhid them): W's state is the 03-11 observation (rule 1), hidden.
* ``v`` Visible: the same on YouTube, likes 10, 30, 0 (a real zero), replies 1, 0, 4.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from socialpulse import models
from socialpulse.records import RAW_SCHEMAS, to_arrow
from socialpulse.warehouse import connect, dict_rows, load_batch, replace_reference_tables
from tests.sql.conftest import (
    default_ref_tables,
    post_row,
    snapshot_row,
)

if TYPE_CHECKING:
    from pathlib import Path

W = dt.date(2024, 3, 4)

COMPANIES = [("h", "Hidden", "craft", 3, 2.0, False), ("v", "Visible", "craft", 3, 2.0, False)]
ACCOUNTS = [("h", "instagram", "h-ig"), ("v", "youtube", "v-yt")]
SNAPSHOTS = [
    ("instagram", "h", "h-id", "h-ig", "2024-03-04", 1000, None),
    ("instagram", "h", "h-id", "h-ig", "2024-03-11", 1000, None),
    ("youtube", "v", "v-id", "v-yt", "2024-03-04", 1000, None),
    ("youtube", "v", "v-id", "v-yt", "2024-03-11", 1000, None),
]
POSTS = [
    # platform, post_id, account, company, created, observed, likes, replies
    ("instagram", "h1", "h-id", "h", "2024-03-05 10:00", "2024-03-11", 10, 1),
    ("instagram", "h2", "h-id", "h", "2024-03-06 10:00", "2024-03-11", 30, 0),
    ("instagram", "h3", "h-id", "h", "2024-03-07 10:00", "2024-03-11", None, 4),
    ("instagram", "h3", "h-id", "h", "2024-03-07 10:00", "2024-03-12", 50, 4),
    ("youtube", "v1", "v-id", "v", "2024-03-05 10:00", "2024-03-11", 10, 1),
    ("youtube", "v2", "v-id", "v", "2024-03-06 10:00", "2024-03-11", 30, 0),
    ("youtube", "v3", "v-id", "v", "2024-03-07 10:00", "2024-03-11", 0, 4),
]


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory, all_models: list[models.Model]):
    path: Path = tmp_path_factory.mktemp("hidden-likes") / "w.duckdb"
    raw = {
        "account_snapshots": [
            snapshot_row(p, c, a, observed, followers, handle, since)
            for p, c, a, handle, observed, followers, since in SNAPSHOTS
        ],
        "post_observations": [
            post_row(p, pid, a, c, created, "original", observed, (likes, replies, 0, 0))
            for p, pid, a, c, created, observed, likes, replies in POSTS
        ],
    }
    with connect(path) as con:
        replace_reference_tables(con, default_ref_tables(COMPANIES, ACCOUNTS, 7))
        load_batch(con, "hidden", {t: to_arrow(RAW_SCHEMAS[t], r) for t, r in raw.items()})
        models.build_all(con, all_models)
        found = dict_rows(
            con,
            "select * from marts.company_metrics where period_type = 'week' "
            "and period_start = ? order by company_id",
            [W],
        )
    return {r["company_id"]: r for r in found}


def test_hidden_likes_are_left_out_of_likes_per_1k(week):
    # h: mean over h1, h2 only: (10 / 1000 * 1000 + 30 / 1000 * 1000) / 2 = 20.0
    # (counted as 0 it would be (10 + 30 + 0) / 3 = 13.33, the value v gets for its real 0)
    assert week["h"]["likes_per_1k"] == pytest.approx(20.0)
    assert week["v"]["likes_per_1k"] == pytest.approx(40 / 3)


def test_hidden_likes_add_nothing_to_interactions_but_the_post_still_counts(week):
    # h: (10 + 1) + (30 + 0) + (null -> 0 + 4) = 45; the later 50 likes (03-12) are after W
    assert week["h"]["interactions"] == 45
    assert week["v"]["interactions"] == 45
    # engagement: every post counts, h3 with its 4 replies: (11 + 30 + 4) / 1000 / 3 = 0.015
    assert week["h"]["engagement_rate"] == pytest.approx(0.015)
    assert week["h"]["posts_per_week"] == 3.0
    # 45 interactions / (2 effort hours x 7 / 7)
    assert week["h"]["interactions_per_effort_hour"] == pytest.approx(22.5)
