"""Scores, dimension scores, success index, goal attainment and segment benchmarks.

Week 2 (2024-01-08) values of the craft companies, from test_sql_company_metrics.py:

| metric                       | a                         | b     | c    |
|------------------------------|---------------------------|-------|------|
| followers                    | 181                       | 220   | 270  |
| follower_growth_weekly       | (181/160)^(7/11.5)-1=.078 | .1    | -.1  |
| posts_per_week               | 2                         | 2     | 3    |
| engagement_rate              | .1227                     | .03   | .01  |
| likes_per_1k                 | 95.45                     | 25    | 10   |
| service_level                | .8                        | .5    | 1    |
| response_hours_median        | 24                        | 3     | 1    |
| unique_interactors           | 3                         | 2     | 1    |
| repeat_interactor_share      | .667                      | 0     | 0    |
| interactions_per_effort_hour | 2.2                       | null  | 1.8  |
| probe_answer_rate            | .5                        | 1     | 0    |
| probe_response_hours_median  | 10                        | 6     | null |
| findability                  | 70                        | 60    | 50   |
| image                        | 80                        | 80    | null |

With 3 values the scores are 100 x (rank - 1) / 2 = 0, 50, 100.

probe_response_hours_median in week 3 (2024-01-15): a 1, b 1, c 3 (q7, q8, q9); in week 4
(2024-01-22): a 9 min = 0.15 h (q10), b median(6 min, 12 min) = median(0.1, 0.2) h
= 0.15000000000000002 (q11, q12), c 1 h (q13).
"""

from __future__ import annotations

import datetime as dt

import pytest

W1 = dt.date(2024, 1, 1)
W2 = dt.date(2024, 1, 8)
W3 = dt.date(2024, 1, 15)
W4 = dt.date(2024, 1, 22)
JAN = dt.date(2024, 1, 1)

approx = pytest.approx


@pytest.fixture
def score(one):
    def _score(company, metric, start=W2, period_type="week"):
        return one(
            "intermediate.int_metric_scores",
            company_id=company,
            metric=metric,
            period_type=period_type,
            period_start=start,
        )["metric_score"]

    return _score


@pytest.fixture
def index(one):
    return lambda company, start=W2, period_type="week": one(
        "marts.success_index", company_id=company, period_type=period_type, period_start=start
    )


def test_long_format_holds_values_and_nulls(one, rows):
    r = one(
        "intermediate.int_metric_scores",
        company_id="a",
        metric="followers",
        period_type="week",
        period_start=W2,
    )
    assert (r["metric_value"], r["peers_with_value"], r["dimension"]) == (181, 3, "reach")
    # 5 companies x 8 periods x 15 metrics, nulls included
    assert len(rows("intermediate.int_metric_scores")) == 5 * 8 * 15


def test_metric_scores_percent_rank(score):
    # followers 181 < 220 < 270
    assert [score(c, "followers") for c in "abc"] == [0, 50, 100]
    # growth .1 (b) > .078 (a) > -.1 (c)
    assert [score(c, "follower_growth_weekly") for c in "abc"] == [50, 100, 0]
    # probe_answer_rate .5, 1, 0
    assert [score(c, "probe_answer_rate") for c in "abc"] == [50, 100, 0]


def test_ties_share_the_lower_rank(score):
    # posts_per_week 2, 2, 3: a and b share rank 1 -> 0, c rank 3 -> 100
    assert [score(c, "posts_per_week") for c in "abc"] == [0, 0, 100]
    # repeat share .5, 0, 0: b and c rank 1 -> 0, a rank 3 -> 100 x 2/2
    assert [score(c, "repeat_interactor_share") for c in "abc"] == [100, 0, 0]


def test_lower_is_better_reversed(score):
    # response hours 24 (a), 3 (b), 1 (c): best (lowest) gets 100
    assert [score(c, "response_hours_median") for c in "abc"] == [0, 50, 100]


def test_lower_is_better_ties_share_the_lower_rank_of_the_reversed_order(score):
    # probe hours 1 (a), 1 (b), 3 (c), ranked on -hours ascending: -3 (c) rank 1 -> 0;
    # -1, -1 (a, b) share rank 2 -> 100 x (2 - 1) / 2 = 50.
    # (100 - the ascending score would give a, b 100 - 0 = 100 and c 100 - 100 = 0.)
    assert [score(c, "probe_response_hours_median", W3) for c in "abc"] == [50, 50, 0]


def test_values_equal_up_to_float_noise_tie(one, score):
    def value(company):
        return one(
            "intermediate.int_metric_scores",
            company_id=company,
            metric="probe_response_hours_median",
            period_type="week",
            period_start=W4,
        )["metric_value"]

    # a 540 s / 3600 = 0.15 h; b median(0.1, 0.2) = 0.1 + 0.5 x 0.1 = 0.15000000000000002
    assert value("a") != value("b")
    assert value("a") == approx(value("b"))
    # rounded to 10 places they tie: c (1 h) rank 1 -> 0; a, b share rank 2 -> 50
    # (unrounded: -0.15000000000000002 (b) rank 2 -> 50, -0.15 (a) rank 3 -> 100)
    assert [score(c, "probe_response_hours_median", W4) for c in "abc"] == [50, 50, 0]


def test_fewer_than_three_peers_no_score(score, rows):
    # probe_response_hours_median: only a (10) and b (6) have a value -> n = 2
    assert [score(c, "probe_response_hours_median") for c in "abc"] == [None, None, None]
    # image: a, b only
    assert [score(c, "image") for c in "abc"] == [None, None, None]
    # corporation has 2 companies: nothing is ever scored there
    corp = rows("intermediate.int_metric_scores", segment="corporation")
    assert corp and all(r["metric_score"] is None for r in corp)


def test_null_value_never_scored(score):
    # growth in week 1: only a has a value (b and c: d = 0) -> n = 1, and nulls stay null
    assert [score(c, "follower_growth_weekly", W1) for c in "abc"] == [None, None, None]


def test_null_values_are_neither_ranked_nor_scored(tmp_path, all_models):
    """4 craft companies, followers 100, 200, 300 and null: the null is not a peer.

    n = 3 -> 100 x (rank - 1) / 2 = 0, 50, 100; d unscored. (With the null ranked in, the
    others would score 0, 33.3, 66.7; with it scored, d would get a number.)
    """
    from socialpulse import models
    from socialpulse.registry import METRICS
    from socialpulse.warehouse import connect

    others = ", ".join(f"null::double as {m}" for m in (*METRICS[1:], "interactions"))
    by_name = {m.qualified: m for m in all_models}
    with connect(tmp_path / "w.duckdb") as con:
        con.execute(
            "create table intermediate.int_company_metrics_computed as select company_id, "
            "'craft' as segment, 'week' as period_type, date '2024-01-08' as period_start, "
            "date '2024-01-15' as period_end, true as is_complete, "
            f"followers::bigint as followers, {others} from (values ('a', 100), ('b', 200), "
            "('c', 300), ('d', null)) as t (company_id, followers)"
        )
        for name in ("intermediate.int_metrics_defined", "intermediate.int_metric_scores"):
            models.build_model(con, by_name[name])
        got = con.execute(
            "select company_id, peers_with_value, metric_score from "
            "intermediate.int_metric_scores where metric = 'followers' order by 1"
        ).fetchall()
    assert got == [("a", 3, 0), ("b", 3, 50), ("c", 3, 100), ("d", 3, None)]


def test_dimension_scores(index):
    a = index("a")
    assert a["reach_score"] == 0
    assert a["growth_score"] == 50
    assert a["engagement_score"] == 100
    # liveliness = mean(posts 0, service .8 -> 50, response 24 h -> 0, probe rate .5 -> 50)
    assert a["liveliness_score"] == approx((0 + 50 + 0 + 50) / 4)
    assert a["sympathy_score"] == 100
    assert a["relationships_score"] == approx((100 + 100) / 2)  # unique 3, repeat .667
    # b states no effort: only a (2.2) and c (1.8) have a value, n = 2 -> no score
    assert a["efficiency_score"] is None
    assert a["findability_score"] == 100
    assert a["image_score"] is None  # only 2 values
    b = index("b")
    # posts 0 (tie), service .5 -> 0, response 3 h -> 50, probe rate 1 -> 100
    assert b["liveliness_score"] == approx((0 + 0 + 50 + 100) / 4)
    assert b["relationships_score"] == approx((50 + 0) / 2)


def test_success_index_with_goals_zero_weights_and_unscored_dimension(index):
    # a weighs reach 2, engagement 1, liveliness 1, findability 1, image 1, all else 0.
    # growth (score 50) weighs 0; image has no score -> left out of the denominator:
    # (2 x 0 + 1 x 100 + 1 x 25 + 1 x 100) / (2 + 1 + 1 + 1)
    assert index("a")["success_index"] == approx(225 / 5)


def test_success_index_without_goals_uses_default_weights(index):
    # b: first seven dimensions weigh 1 (findability 50 and image weigh 0):
    # reach 50, growth 100, engagement 50, liveliness 37.5, sympathy 50,
    # relationships 25; efficiency has no score (n = 2) and leaves the denominator -> 312.5 / 6
    assert index("b")["success_index"] == approx(312.5 / 6)
    # c: reach 100, growth 0, engagement 0, liveliness (100+100+100+0)/4 = 75, sympathy 0,
    # relationships 0 -> 175 / 6
    assert index("c")["success_index"] == approx(175 / 6)


def test_success_index_null_without_scores_and_rank(index):
    # corporation: fewer than 3 companies -> no dimension score -> null index
    assert index("x")["success_index"] is None
    assert index("x")["reach_score"] is None
    # craft week 2: b 52.1 > a 45 > c 29.2
    assert [index(c)["segment_rank"] for c in "bac"] == [1, 2, 3]
    # nulls last: both corporation companies are null and share rank 1 among themselves
    assert [index(c)["segment_rank"] for c in "xy"] == [1, 1]


def test_goal_attainment(index):
    a = index("a")
    # posts_per_week 2 >= 2 met; response 24 <= 12 missed; engagement .1227 > .1 met
    assert (a["targets_met"], a["targets_evaluated"]) == (2, 3)
    assert a["goal_attainment"] == approx(2 / 3)
    a1 = index("a", W1)
    # week 1: posts 1 >= 2 missed; response null -> not evaluated; engagement .1 > .1 missed
    assert (a1["targets_met"], a1["targets_evaluated"], a1["goal_attainment"]) == (0, 2, 0)
    # y: followers 10 >= 10 met in week 2; 0 at the end of week 1
    assert index("y")["goal_attainment"] == 1
    assert index("y", W1)["goal_attainment"] == 0


def test_goal_attainment_null_when_nothing_evaluable(index):
    # c's only target is on probe_response_hours_median, which is null in week 2
    c = index("c")
    assert (c["targets_met"], c["targets_evaluated"], c["goal_attainment"]) == (0, 0, None)
    # b has no targets at all
    b = index("b")
    assert (b["targets_met"], b["targets_evaluated"], b["goal_attainment"]) == (0, 0, None)
    # week 3: c's probe hours 3 (q9: sent 01-16 00:00, answered 03:00) < 5 -> met
    c3 = index("c", W3)
    assert (c3["targets_met"], c3["targets_evaluated"], c3["goal_attainment"]) == (1, 1, 1.0)


def test_month_scores(index):
    # January, craft: followers at 02-01 a 181, b 220, c 270 -> a 0
    assert index("a", JAN, "month")["reach_score"] == 0
    assert index("c", JAN, "month")["reach_score"] == 100


# --- segment benchmarks ------------------------------------------------------------------


def test_benchmark_quartiles(one):
    r = one(
        "marts.segment_benchmarks",
        segment="craft",
        period_type="week",
        period_start=W2,
        metric="followers",
    )
    # 181, 220, 270: p25 at position 0.5 -> 181 + 0.5 x 39; median 220;
    # p75 at position 1.5 -> 220 + 0.5 x 50
    assert (r["n"], r["p25"], r["median"], r["p75"]) == (3, 200.5, 220, 245)
    assert r["period_end"] == dt.date(2024, 1, 15)
    h = one(
        "marts.segment_benchmarks",
        segment="craft",
        period_type="week",
        period_start=W2,
        metric="response_hours_median",
    )
    # 1, 3, 24 -> 1 + 0.5 x 2; 3; 3 + 0.5 x 21
    assert (h["p25"], h["median"], h["p75"]) == (2, 3, 13.5)


def test_benchmark_not_published_below_three(rows):
    craft_w2 = {
        r["metric"]
        for r in rows("marts.segment_benchmarks", segment="craft", period_start=W2)
        if r["period_type"] == "week"
    }
    # image and probe_response_hours_median have 2 values only
    assert "image" not in craft_w2
    assert "probe_response_hours_median" not in craft_w2
    assert "findability" in craft_w2
    assert rows("marts.segment_benchmarks", segment="corporation") == []
    assert all(r["n"] >= 3 for r in rows("marts.segment_benchmarks"))
