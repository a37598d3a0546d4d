"""marts.alerts: a liveliness score or a service level that fell by more than the threshold.

Two fixtures, both worked out by hand:

* ``inputs``: the model alone on hand-made rows of its three inputs (marts.success_index,
  marts.company_metrics, staging.stg_settings), so that every drop sits exactly where the
  test wants it: just above, just below and exactly at the threshold (20 points, 0.2), a
  drop from an unobserved period, into an unobserved or incomplete period, a null value, and
  a month compared with the month before (never with a week).
* the shared SQL fixture (tests/sql/conftest.py) through every model: its craft companies'
  weekly liveliness scores (test_sql_success_index.py) give four alerts.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from socialpulse import models
from socialpulse.warehouse import dict_rows

if TYPE_CHECKING:
    from pathlib import Path

W1 = dt.date(2024, 3, 4)
W2 = dt.date(2024, 3, 11)
W3 = dt.date(2024, 3, 18)
FEB = dt.date(2024, 2, 1)
MAR = dt.date(2024, 3, 1)
WEEK = dt.timedelta(days=7)

# company, period_type, period_start, is_complete, is_observed, liveliness_score, service_level
ROWS = [
    # p: liveliness 60 -> 39.9, a drop of 20.1 (just above 20); service .5 -> .31, 0.19 (below)
    ("p", "week", W1, True, True, 60.0, 0.5),
    ("p", "week", W2, True, True, 39.9, 0.31),
    # ... and in March 80 -> 50 against February (30 points): a month alert of its own
    ("p", "month", FEB, True, True, 80.0, None),
    ("p", "month", MAR, True, True, 50.0, None),
    # q: liveliness 60 -> 40.1, 19.9 (just below); service .5 -> .29, 0.21 (just above)
    ("q", "week", W1, True, True, 60.0, 0.5),
    ("q", "week", W2, True, True, 40.1, 0.29),
    # e: exactly at both thresholds (60 -> 40, .5 -> .3): "more than" means no alert
    ("e", "week", W1, True, True, 60.0, 0.5),
    ("e", "week", W2, True, True, 40.0, 0.3),
    # u: the previous week was not observed (its probes still gave a score): no alert
    # from 90 -> 10; W3 is not observed either: no alert for 10 -> 0
    ("u", "week", W1, True, False, 90.0, None),
    ("u", "week", W2, True, True, 10.0, 0.9),
    ("u", "week", W3, True, False, 0.0, 0.1),
    # i: W3 is not complete yet: 80 -> 10 is no alert (yet)
    ("i", "week", W2, True, True, 80.0, 1.0),
    ("i", "week", W3, False, True, 10.0, 0.0),
    # n: no liveliness score before, no service level after: nothing to compare
    ("n", "week", W1, True, True, None, 1.0),
    ("n", "week", W2, True, True, 10.0, None),
    # g: a gap (no row for W2): W3 is compared with W2 only, never with W1
    ("g", "week", W1, True, True, 100.0, 1.0),
    ("g", "week", W3, True, True, 0.0, 0.0),
]


def _end(period_type: str, start: dt.date) -> dt.date:
    if period_type == "week":
        return start + WEEK
    return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)


def build_alerts(path: Path, liveliness_drop: float, service_level_drop: float) -> list[dict]:
    """Build marts.alerts alone on the hand-made inputs; its rows, ordered."""
    import duckdb

    [model] = [m for m in models.discover() if m.qualified == "marts.alerts"]
    assert set(model.depends_on) == {
        "marts.success_index",
        "marts.company_metrics",
        "staging.stg_settings",
    }
    con = duckdb.connect(str(path))
    try:
        for schema in ("staging", "marts"):
            con.execute(f"create schema {schema}")
        con.execute(
            "create table staging.stg_settings as select 35::bigint as lookback_days, "
            "?::double as alert_liveliness_drop, ?::double as alert_service_level_drop",
            [liveliness_drop, service_level_drop],
        )
        con.execute(
            """
            create table marts.success_index (
              company_id varchar, company_name varchar, segment varchar, period_type varchar,
              period_start date, period_end date, is_complete boolean, is_observed boolean,
              liveliness_score double
            )"""
        )
        con.execute(
            "create table marts.company_metrics (company_id varchar, period_type varchar, "
            "period_start date, service_level double)"
        )
        for company, ptype, start, complete, observed, liveliness, service in ROWS:
            con.execute(
                "insert into marts.success_index values (?, ?, 'craft', ?, ?, ?, ?, ?, ?)",
                [
                    company,
                    f"Company {company.upper()}",
                    ptype,
                    start,
                    _end(ptype, start),
                    complete,
                    observed,
                    liveliness,
                ],
            )
            con.execute(
                "insert into marts.company_metrics values (?, ?, ?, ?)",
                [company, ptype, start, service],
            )
        models.build_model(con, model)
        return dict_rows(
            con, "select * from marts.alerts order by company_id, period_type, period_start"
        )
    finally:
        con.close()


def test_drops_just_above_the_thresholds_are_alerts_just_below_and_at_them_not(tmp_path):
    rows = build_alerts(tmp_path / "a.duckdb", 20.0, 0.2)
    got = {
        (r["company_id"], r["period_type"], r["period_start"]): (
            r["is_liveliness_alert"],
            r["is_service_level_alert"],
        )
        for r in rows
    }
    assert got == {
        ("p", "month", MAR): (True, False),  # 80 -> 50
        ("p", "week", W2): (True, False),  # 20.1 > 20; service 0.19 < 0.2
        ("q", "week", W2): (False, True),  # 19.9 < 20; service 0.21 > 0.2
    }
    p = next(r for r in rows if r["company_id"] == "p" and r["period_type"] == "week")
    assert p == {
        "company_id": "p",
        "company_name": "Company P",
        "segment": "craft",
        "period_type": "week",
        "period_start": W2,
        "period_end": W3,
        "previous_period_start": W1,
        "liveliness_score": 39.9,
        "previous_liveliness_score": 60.0,
        "liveliness_drop": pytest.approx(20.1),
        "service_level": 0.31,
        "previous_service_level": 0.5,
        "service_level_drop": pytest.approx(0.19),
        "is_liveliness_alert": True,
        "is_service_level_alert": False,
    }
    month = next(r for r in rows if r["period_type"] == "month")
    assert (month["previous_period_start"], month["period_end"]) == (FEB, dt.date(2024, 4, 1))
    assert month["liveliness_drop"] == 30.0 and month["service_level_drop"] is None


def test_the_thresholds_come_from_the_settings(tmp_path):
    # 19.5 points and 0.18: q's 19.9 and p's 0.19 now count; e's 20 and 0.2 too
    rows = build_alerts(tmp_path / "b.duckdb", 19.5, 0.18)
    got = {
        (r["company_id"], r["period_type"], r["period_start"]): (
            r["is_liveliness_alert"],
            r["is_service_level_alert"],
        )
        for r in rows
    }
    assert got == {
        ("e", "week", W2): (True, True),
        ("p", "month", MAR): (True, False),
        ("p", "week", W2): (True, True),
        ("q", "week", W2): (True, True),
    }


def test_alerts_of_the_shared_fixture(rows):
    """Weekly liveliness of the craft companies (the corporations are only two: no scores).

    | week  | a   | b    | c  | from                                                       |
    |-------|-----|------|----|------------------------------------------------------------|
    | 01-01 | 100 | 0    | 0  | posts 1, 0, 0 -> 100, 0, 0; b's service level alone: none   |
    | 01-08 | 25  | 37.5 | 75 | test_sql_success_index.py                                  |
    | 01-15 | 0   | 0    | 0  | no posts (0, 0, 0), every probe answered (1, 1, 1): all 0  |

    Drops above 20 points: a 100 -> 25 (week 01-08); a 25 -> 0, b 37.5 -> 0, c 75 -> 0 (week
    01-15). 01-22 scores 0 again (b and c unobserved). Service levels: b 0 -> .5 is a rise, and
    a, b, c have none in week 01-15. January is the only complete month.
    """
    got = {
        (r["company_id"], r["period_start"].isoformat()): (
            r["previous_liveliness_score"],
            r["liveliness_score"],
            r["is_service_level_alert"],
        )
        for r in rows("marts.alerts")
    }
    assert got == {
        ("a", "2024-01-08"): (100.0, 25.0, False),
        ("a", "2024-01-15"): (25.0, 0.0, False),
        ("b", "2024-01-15"): (37.5, 0.0, False),
        ("c", "2024-01-15"): (75.0, 0.0, False),
    }
