"""marts.company_metrics on the fixture of conftest.py: every metric of METRICS.md, rules 1-7.

Expected values are computed by hand from the fixture rows; the arithmetic is next to each.
"""

from __future__ import annotations

import datetime as dt

import pytest

W1 = dt.date(2024, 1, 1)  # week [01-01, 01-08)
W2 = dt.date(2024, 1, 8)  # week [01-08, 01-15)
W3 = dt.date(2024, 1, 15)  # week [01-15, 01-22)
JAN = dt.date(2024, 1, 1)  # month [01-01, 02-01), 31 days
FEB = dt.date(2024, 2, 1)

approx = pytest.approx


@pytest.fixture
def week(one):
    return lambda company, start: one(
        "marts.company_metrics", company_id=company, period_type="week", period_start=start
    )


@pytest.fixture
def month(one):
    return lambda company, start: one(
        "marts.company_metrics", company_id=company, period_type="month", period_start=start
    )


# --- periods ----------------------------------------------------------------------------


def test_every_company_gets_every_period(rows):
    got = rows("marts.company_metrics")
    # 5 companies x (6 weeks 01-01 .. 02-05 + 2 months Jan, Feb) = 5 x 8
    assert len(got) == 40
    weeks = sorted({r["period_start"] for r in got if r["period_type"] == "week"})
    assert weeks == [dt.date(2024, 1, 1) + dt.timedelta(days=7 * i) for i in range(6)]
    months = sorted({r["period_start"] for r in got if r["period_type"] == "month"})
    assert months == [JAN, FEB]


def test_period_bounds_and_completeness(rows):
    periods = {
        (r["period_type"], r["period_start"]): (r["period_end"], r["is_complete"])
        for r in rows("marts.company_metrics", company_id="b")
    }
    # latest snapshot 2024-02-05 12:00: week 01-29 ends 02-05 00:00 <= it -> complete,
    # week 02-05 ends 02-12 -> not; January ends 02-01 -> complete, February not.
    assert periods[("week", dt.date(2024, 1, 29))] == (dt.date(2024, 2, 5), True)
    assert periods[("week", dt.date(2024, 2, 5))] == (dt.date(2024, 2, 12), False)
    assert periods[("month", JAN)] == (FEB, True)
    assert periods[("month", FEB)] == (dt.date(2024, 3, 1), False)


def test_company_columns(week):
    r = week("a", W2)
    assert (r["company_name"], r["segment"]) == ("Alpha Bakery", "craft")


# --- followers and growth (rules 1, 2) ---------------------------------------------------


def test_followers_sum_accounts_at_period_end_boundary_snapshot(week):
    # end of week 2 = 01-15 00:00: a-m snapshot exactly at 01-15 00:00 = 121,
    # a-b latest <= 01-15 is 01-12 12:00 = 60 -> 121 + 60
    assert week("a", W2)["followers"] == 181
    # end of week 1 = 01-08 00:00: a-m snapshot exactly at the boundary = 110, a-b 01-03 = 50
    assert week("a", W1)["followers"] == 160


def test_growth_uses_days_between_snapshots_used(week):
    # week 2: F_start at 01-08 = a-m 110 (01-08 00:00) + a-b 50 (01-03 12:00) = 160,
    # F_end = 181 (a-m 01-15 00:00, a-b 01-12 12:00);
    # d = 01-03 12:00 (earliest used for F_start) -> 01-15 00:00 (latest for F_end) = 11.5 days
    assert week("a", W2)["follower_growth_weekly"] == approx((181 / 160) ** (7 / 11.5) - 1)


def test_growth_only_over_accounts_seen_again(week):
    # week 1 start 01-01 00:00: a-m 100 (01-01 00:00); a-b has nothing at or before ->
    # earliest after, 01-03 12:00 = 50. End 01-08 00:00: a-m 110 (01-08 00:00), a-b still
    # 01-03 12:00 = 50: the same snapshot at start and end, so a-b says nothing about growth
    # (rule 2). Only a-m: F_start 100, F_end 110, d = 01-01 -> 01-08 = 7 -> 0.1.
    # (v1 took 160/150 - 1 over both accounts.)
    assert week("a", W1)["followers"] == 160  # the followers sum still holds both accounts
    assert week("a", W1)["follower_growth_weekly"] == approx(110 / 100 - 1)


def test_growth_simple_cases(week):
    assert week("b", W2)["follower_growth_weekly"] == approx(220 / 200 - 1)  # d = 7 -> 0.1
    # c: c-m 300 -> 270, c-b 0 -> 0; d = 7 -> 270/300 - 1 = -0.1
    assert week("c", W2)["follower_growth_weekly"] == approx(-0.1)
    assert week("c", W2)["followers"] == 270


def test_growth_null_with_one_snapshot(rows):
    # x has one snapshot (01-10): the same snapshot is used for start and end -> null growth.
    # It observes (rule 8, L = 35 days) the periods that start at or before 01-10 and end
    # after 01-10 - 35 days: weeks 01-01 and 01-08 and January. Later periods were never
    # looked at: followers null there, not carried forward.
    observed = {("week", W1), ("week", W2), ("month", JAN)}
    got = rows("marts.company_metrics", company_id="x")
    assert len(got) == 8
    for r in got:
        seen = (r["period_type"], r["period_start"]) in observed
        assert r["is_observed"] is seen
        assert r["followers"] == (1000 if seen else None)  # W1 via the earliest later one
        assert r["follower_growth_weekly"] is None


def test_growth_null_when_both_states_use_the_same_snapshot(week):
    # b in week 1: start 01-01 and end 01-08 both resolve to the 01-08 snapshot -> d = 0
    assert week("b", W1)["followers"] == 200
    assert week("b", W1)["follower_growth_weekly"] is None


def test_growth_null_when_start_followers_zero(week):
    # y: 0 followers at 01-08, 10 at 01-15 -> F_start = 0 -> null
    assert week("y", W2)["followers"] == 10
    assert week("y", W2)["follower_growth_weekly"] is None
    assert week("y", W1)["followers"] == 0  # snapshot at 01-08 00:00 is week 1's end state


# --- own posts, interactions, rates (rules 3, 4) -----------------------------------------


def test_posts_per_week_counts_only_original_posts(week):
    # a, week 2: p-a1 (01-09) and p-a5 (01-12) are original; p-a3 (reply), p-a4 (repost) not
    assert week("a", W2)["posts_per_week"] == approx(2 * 7 / 7)
    assert week("c", W2)["posts_per_week"] == approx(3.0)  # p-c1, p-c2, p-c3


def test_interactions_state_at_period_end(week):
    # p-a1 at 01-15: latest obs <= 01-15 is 01-14: 10 + 2 + 3 + 1 = 16 (not 01-20's 26)
    # p-a5 at 01-15: obs exactly at 01-15 00:00: 6 (not 01-15 06:00's 9)
    # p-a4 (repost, 50 likes) excluded -> 16 + 6
    assert week("a", W2)["interactions"] == 22


def test_interactions_fall_back_to_earliest_later_observation(week):
    # p-a2 (01-02) first observed 01-16, after week 1 ended: 4 + 1 + 0 + 0
    assert week("a", W1)["interactions"] == 5


def test_engagement_rate_and_likes_per_1k(week):
    # followers at post time: p-a1 a-m at 01-09 10:00 -> 01-08 snapshot 110;
    # p-a5 a-b at 01-12 13:00 -> 01-12 12:00 snapshot 60
    r = week("a", W2)
    assert r["engagement_rate"] == approx((16 / 110 + 6 / 60) / 2)
    assert r["likes_per_1k"] == approx((10 / 110 * 1000 + 6 / 60 * 1000) / 2)
    # b: 10/200 and 2/200 -> (0.05 + 0.01) / 2; likes (8/200, 2/200) x 1000 -> (40 + 10) / 2
    assert week("b", W2)["engagement_rate"] == approx(0.03)
    assert week("b", W2)["likes_per_1k"] == approx(25.0)


def test_followers_at_post_time_falls_back_to_earliest_later_snapshot(week):
    # p-a2 (01-02 08:00): a-b's first snapshot is 01-03 12:00 = 50 -> 5/50, 4/50 x 1000
    assert week("a", W1)["engagement_rate"] == approx(0.1)
    assert week("a", W1)["likes_per_1k"] == approx(80.0)
    # p-x1 (01-09): x-m's only snapshot 01-10 = 1000 -> 10/1000
    assert week("x", W2)["engagement_rate"] == approx(0.01)


def test_zero_follower_posts_left_out_of_rate_means(week):
    # c: p-c2 sits on c-b with 0 followers -> left out; p-c1 6/300, p-c3 0/300
    r = week("c", W2)
    assert r["engagement_rate"] == approx((6 / 300 + 0 / 300) / 2)  # 0.01
    assert r["likes_per_1k"] == approx((6 / 300 * 1000 + 0) / 2)  # 10
    assert r["interactions"] == 9  # 6 + 3 + 0: the post still counts as interactions
    # y: its only post was made at 0 followers -> no post left -> null, but it was posted
    y = week("y", W2)
    assert y["engagement_rate"] is None
    assert y["likes_per_1k"] is None
    assert y["posts_per_week"] == approx(1.0)


def test_no_posts_in_period(week):
    # b posted nothing in week 1: count 0, rates null (rule 7)
    r = week("b", W1)
    assert r["posts_per_week"] == 0
    assert r["interactions"] == 0
    assert r["engagement_rate"] is None
    assert r["likes_per_1k"] is None
    assert r["interactions_per_effort_hour"] is None  # no effort stated


def test_interactions_per_effort_hour(week):
    assert week("a", W2)["interactions_per_effort_hour"] == approx(22 / (10 * 7 / 7))  # 2.2
    assert week("c", W2)["interactions_per_effort_hour"] == approx(9 / (5 * 7 / 7))  # 1.8
    # b states no effort: null (v1 fell back to interactions per post, 12 / 2 = 6, which
    # was then ranked against a's and c's per-hour values)
    assert week("b", W2)["interactions"] == 12
    assert week("b", W2)["interactions_per_effort_hour"] is None
    # c in week 1: effort stated, observed (c-m 01-08), no posts -> 0 (rule 9)
    assert week("c", W1)["interactions_per_effort_hour"] == 0


# --- replies (rule 5) --------------------------------------------------------------------


def test_service_level_counts_follow_up_questions(week):
    # direct third-party replies in week 2: r1, r3 (to p-a1), r5 (follow-up to the answer r2),
    # r7 (to p-a3, a post of kind reply), r9 (to p-a1); r8 answers r1 (not direct).
    # answered: r1, r3, r5, r9 (answer r10 comes in week 3) -> 4 / 5
    assert week("a", W2)["service_level"] == approx(0.8)
    assert week("b", W2)["service_level"] == approx(0.5)  # s1 answered, s3 not
    assert week("c", W2)["service_level"] == approx(1.0)  # t1 answered


def test_response_hours_median(week):
    # first answers: r1 +2 h (r2), r3 +24 h (r4; r4b later ignored), r5 +6 h (r6),
    # r8 +30 h (r8a), r9 +48 h (r10) -> sorted 2, 6, 24, 30, 48 -> 24
    assert week("a", W2)["response_hours_median"] == approx(24.0)
    assert week("b", W2)["response_hours_median"] == approx(3.0)  # s1 06:00 -> s2 09:00


def test_response_hours_median_counts_answered_replies_that_are_not_direct(week):
    # r8 (u2 answering u1's r1, 01-11 00:00) is not direct: service_level stays 4 / 5. But a
    # answered it (r8a, 01-12 06:00, +30 h), and response time is over every answered
    # third-party reply: 2, 6, 24, 30, 48 -> 24 (direct ones only: 2, 6, 24, 48 -> 15)
    r = week("a", W2)
    assert r["service_level"] == approx(4 / 5)
    assert r["response_hours_median"] == approx(24.0)


def test_reply_to_the_thread_root_is_direct_even_if_the_root_was_never_observed(week, one):
    # s0 (v1, 01-05) answers p-b0, the root of its thread, which post_observations never saw.
    # The root is a company post by definition -> direct; unanswered -> service_level 0 / 1
    assert one("intermediate.int_replies_classified", reply_id="s0")["is_direct"] is True
    b = week("b", W1)
    assert b["service_level"] == 0
    assert b["response_hours_median"] is None


def test_interactors(week):
    # third-party replies in week 2 in threads rooted in a's originals (p-a1): u1 (r1, r5),
    # u2 (r3, r8), u4 (r9) -> 3 authors, 2 of them with 2+ replies. u3's r7 sits in the
    # thread of p-a3, a's post of kind reply: not an original, so not counted (rule 5).
    r = week("a", W2)
    assert r["unique_interactors"] == 3
    assert r["repeat_interactor_share"] == approx(2 / 3)
    assert week("b", W2)["unique_interactors"] == 2  # v1, v2
    assert week("b", W2)["repeat_interactor_share"] == 0


def test_earlier_replies_and_probes_stay_in_their_period(week):
    # b in week 1: reply s0 (v1, 01-05) and probe q0 (01-03, unanswered) only
    b1 = week("b", W1)
    assert b1["unique_interactors"] == 1  # v1
    assert b1["probe_answer_rate"] == 0  # 0 / 1
    # week 2 does not see them: v1 has one reply there (s1) -> no repeat author (0 / 2);
    # direct s1 answered, s3 not -> 1 / 2; probes q3, q4 answered -> 2 / 2
    b2 = week("b", W2)
    assert b2["unique_interactors"] == 2
    assert b2["repeat_interactor_share"] == 0
    assert b2["service_level"] == approx(1 / 2)
    assert b2["probe_answer_rate"] == approx(2 / 2)


def test_no_replies_in_period(week):
    r = week("a", W1)
    assert r["unique_interactors"] == 0  # a count: 0
    assert r["repeat_interactor_share"] is None  # a share of nothing: null
    assert r["service_level"] is None
    assert r["response_hours_median"] is None


# --- probes, manual metrics --------------------------------------------------------------


def test_probes(week):
    a = week("a", W2)
    assert a["probe_answer_rate"] == approx(0.5)  # q1 answered, q2 not
    assert a["probe_response_hours_median"] == approx(10.0)  # q1: 00:00 -> 10:00
    b = week("b", W2)
    assert b["probe_answer_rate"] == approx(1.0)
    assert b["probe_response_hours_median"] == approx((4 + 8) / 2)  # q3 4 h, q4 8 h
    c = week("c", W2)
    assert c["probe_answer_rate"] == 0  # q5 unanswered
    assert c["probe_response_hours_median"] is None
    assert week("a", W1)["probe_answer_rate"] is None  # nothing sent


def test_manual_metrics(week):
    assert week("a", W2)["findability"] == approx(70.0)
    assert week("a", W2)["image"] == approx(80.0)
    assert week("c", W2)["image"] is None
    assert week("a", W1)["findability"] is None


def test_manual_metrics_match_period_type_and_start(week, month):
    # 2024-01-01 starts both week 1 and January. a's image: week value 30, month value 90;
    # b's findability: month value 65 only -> each lands in its own period type only
    assert week("a", W1)["image"] == approx(30.0)
    assert month("a", JAN)["image"] == approx(90.0)
    assert month("b", JAN)["findability"] == approx(65.0)
    assert week("b", W1)["findability"] is None
    assert month("a", JAN)["findability"] is None  # a has a week value for 01-08 only


# --- period boundaries (rule 1) ----------------------------------------------------------


def test_events_exactly_at_a_boundary_belong_to_the_later_period(week):
    # post p-y2, reply z1 (f1 to p-y1) and probe q6 are all at 01-15 00:00: the end of week 2
    # and the start of week 3. Periods are [start, end): week 2 holds only p-y1 (01-09).
    y2 = week("y", W2)
    assert y2["posts_per_week"] == approx(1 * 7 / 7)
    assert y2["interactions"] == 1  # p-y1 at 01-15: 1 + 0 + 0 + 0
    assert y2["unique_interactors"] == 0
    assert y2["service_level"] is None
    assert y2["probe_answer_rate"] is None
    y3 = week("y", W3)
    assert y3["posts_per_week"] == approx(1 * 7 / 7)  # p-y2
    assert y3["interactions"] == 3  # p-y2 at 01-22 (obs 01-16): 2 + 1 + 0 + 0
    assert y3["unique_interactors"] == 1  # f1
    assert y3["service_level"] == 0  # z1 is direct (to p-y1), unanswered: 0 / 1
    assert y3["probe_answer_rate"] == approx(1 / 1)  # q6
    assert y3["probe_response_hours_median"] == approx(5.0)  # q6 00:00 -> 05:00


def test_followers_at_post_time_uses_a_snapshot_taken_exactly_then(week):
    # p-y2 was created at 01-15 00:00, exactly when a y-m snapshot says 10 followers (the one
    # before, 01-08, says 0). State at t = latest observed_at <= t -> 10, not left out.
    # interactions 2 + 1 + 0 + 0 = 3 -> 3 / 10; likes 2 / 10 x 1000
    r = week("y", W3)
    assert r["engagement_rate"] == approx(0.3)
    assert r["likes_per_1k"] == approx(200.0)


# --- months (rule 6) ---------------------------------------------------------------------


def test_month_metrics(month):
    r = month("a", JAN)
    # end state at 02-01: a-m 121 (01-15) + a-b 60 (01-12 12:00)
    assert r["followers"] == 181
    # F_start at 01-01 = 150 (earliest used 01-01 00:00), F_end = 181 (latest used 01-15
    # 00:00): d = 14 -> (181/150)^(7/14) - 1
    assert r["follower_growth_weekly"] == approx((181 / 150) ** 0.5 - 1)
    # own posts in January: p-a2, p-a1, p-a5 -> 3 x 7 / 31
    assert r["posts_per_week"] == approx(3 * 7 / 31)
    # counts at 02-01: p-a2 5 (01-16), p-a1 20+2+3+1 = 26 (01-20), p-a5 9 (01-15 06:00)
    assert r["interactions"] == 40
    assert r["engagement_rate"] == approx((5 / 50 + 26 / 110 + 9 / 60) / 3)
    assert r["likes_per_1k"] == approx((4 / 50 * 1000 + 20 / 110 * 1000 + 9 / 60 * 1000) / 3)
    # effort 10 h/week over 31 days: 40 / (10 x 31 / 7)
    assert r["interactions_per_effort_hour"] == approx(40 / (10 * 31 / 7))
    assert r["service_level"] == approx(0.8)
    assert r["response_hours_median"] == approx(24.0)  # a's replies all lie in week 2
    assert r["unique_interactors"] == 3  # u1, u2, u4 (u3 only in p-a3's thread)
    assert r["findability"] is None  # measured for week 01-08 only
    assert month("x", JAN)["followers"] == 1000
    assert month("x", FEB)["followers"] is None  # x's only snapshot (01-10) never saw February
