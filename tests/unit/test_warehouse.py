"""Idempotent loads into a real DuckDB file: reruns never duplicate, a failure loads nothing."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from socialpulse import records
from socialpulse.warehouse import connect, load_batch, raw_ddl, record_fetch_errors, table_counts

D1 = dt.datetime(2026, 2, 1)
D2 = dt.datetime(2026, 2, 2)


def post(post_id, observed_at, likes, **extra):
    row = dict(
        platform="sample",
        post_id=post_id,
        account_id="a1",
        company_id="c1",
        created_at=dt.datetime(2026, 1, 30, 9),
        kind="original",
        likes=likes,
        replies=0,
        reposts=0,
        quotes=0,
        views=None,
        url=None,
        observed_at=observed_at,
    )
    row.update(extra)
    return row


def posts(rows):
    return {"post_observations": records.to_arrow(records.POST_OBSERVATIONS, rows)}


def all_posts(con):
    return con.execute(
        "select post_id, observed_at, likes from raw.post_observations order by 1, 2"
    ).fetchall()


def test_loading_the_same_batch_twice_leaves_identical_tables(tmp_path):
    batch = posts([post("p1", D1, 3), post("p2", D1, 5), post("p1", D2, 4)])
    with connect(tmp_path / "w.duckdb") as con:
        assert load_batch(con, "b1", batch) == {"post_observations": 3}
        first = all_posts(con)
        load_batch(con, "b1", batch)
        assert all_posts(con) == first
        assert first == [("p1", D1, 3), ("p1", D2, 4), ("p2", D1, 5)]
        log = con.execute("select rows_in_batch, rows_replaced from ops.load_log").fetchall()
        assert log == [(3, 3)]  # second load replaced all three


def test_latest_values_win_where_the_natural_key_repeats(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        load_batch(con, "b1", posts([post("p1", D1, 3)]))
        # a rerun of the same interval sees a corrected count: it replaces, never duplicates
        load_batch(con, "b1-rerun", posts([post("p1", D1, 7)]))
        # inside one batch a repeated key keeps the last row
        load_batch(con, "b2", posts([post("p2", D1, 1), post("p2", D1, 2)]))
        assert all_posts(con) == [("p1", D1, 7), ("p2", D1, 2)]


def test_a_failing_batch_rolls_back_every_table(tmp_path):
    snap = records.to_arrow(
        records.ACCOUNT_SNAPSHOTS,
        [
            dict(
                platform="sample",
                company_id="c1",
                account_id="a1",
                handle="a1",
                observed_at=D1,
                followers=10,
                following=1,
                posts_total=1,
                posts_since=None,
            )
        ],
    )
    # a null in a not-null column slips past (no validation here): the insert must fail
    bad = posts([post("p1", D1, 3), post("p2", D1, 4, replies=None)])
    with connect(tmp_path / "w.duckdb") as con:
        load_batch(con, "ok", posts([post("p0", D1, 1)]))
        with pytest.raises(duckdb.ConstraintException):
            load_batch(con, "bad", {"account_snapshots": snap, **bad})
        assert table_counts(con)["account_snapshots"] == 0
        assert all_posts(con) == [("p0", D1, 1)]


def test_data_survives_reopening_the_file(tmp_path):
    path = tmp_path / "w.duckdb"
    with connect(path) as con:
        load_batch(con, "b1", posts([post("p1", D1, 3)]))
    with connect(path, read_only=True) as con:
        assert all_posts(con) == [("p1", D1, 3)]


def test_fetch_errors_are_replaced_per_batch(tmp_path):
    err = {"platform": "sample", "company_id": "c1", "handle": "h1", "error": "HTTP 404"}
    with connect(tmp_path / "w.duckdb") as con:
        record_fetch_errors(con, "b1", "run-1", [err])
        record_fetch_errors(con, "b1", "run-1", [err])
        assert con.execute("select count(*) from ops.fetch_errors").fetchone() == (1,)
        record_fetch_errors(con, "b1", "run-2", [])  # the rerun succeeded
        assert con.execute("select count(*) from ops.fetch_errors").fetchone() == (0,)


def test_ddl_comes_from_the_record_schema():
    ddl = raw_ddl(records.THREAD_REPLIES)
    assert "author_is_company BOOLEAN not null" in ddl
    # no primary-key index: the load keeps the natural key (an index cost more than the load)
    assert "primary key" not in ddl


def primary_keys(con):
    return con.execute(
        "select table_name from duckdb_constraints() "
        "where schema_name = 'raw' and constraint_type = 'PRIMARY KEY'"
    ).fetchall()


def test_a_warehouse_from_another_schema_version_is_refused_with_a_clear_error(tmp_path):
    from socialpulse.warehouse import WarehouseSchemaError

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute(
        "create table raw.manual_metrics (company_id varchar, metric varchar, "
        "period_start date, value double, observed_at timestamp)"
    )
    con.close()
    expected = r"raw\.manual_metrics in the warehouse has columns"
    with pytest.raises(WarehouseSchemaError, match=expected), connect(path):
        pass


def test_a_probe_answer_once_seen_survives_a_later_observation_without_it(tmp_path):
    def probe(observed_at, answered_at=None, answer_ref=None):
        return records.to_arrow(records.PROBES, [dict(
            probe_id="q1", company_id="c1", platform="mastodon", channel="public_post",
            sent_at=D1, question_ref="https://m.example/@me/1", answered_at=answered_at,
            answer_ref=answer_ref, quality=None, observed_at=observed_at)])  # fmt: skip

    answered = dt.datetime(2026, 2, 1, 3, 0)
    with connect(tmp_path / "w.duckdb") as con:
        load_batch(con, "b1", {"probes": probe(D1)})  # not answered yet
        load_batch(con, "b2", {"probes": probe(D2, answered, "https://m.example/@c1/2")})
        load_batch(con, "b3", {"probes": probe(D2 + dt.timedelta(days=1))})  # question deleted
        rows = con.execute("select answered_at, answer_ref, observed_at from raw.probes").fetchall()
    assert rows == [(answered, "https://m.example/@c1/2", D2 + dt.timedelta(days=1))]


def test_account_snapshots_of_an_older_warehouse_are_migrated_in_place(tmp_path):
    """Before feeds had snapshots: followers NOT NULL and no posts_since. The rows stay, the
    new column is null for them (unknown: the models assume the configured lookback), and a
    feed's snapshot without followers loads."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute(
        "create table raw.account_snapshots (platform varchar not null, company_id varchar "
        "not null, account_id varchar not null, handle varchar not null, observed_at timestamp "
        "not null, followers bigint not null, following bigint, posts_total bigint, "
        "primary key (platform, account_id, observed_at))"
    )
    con.execute(
        "insert into raw.account_snapshots values ('sample', 'c1', 'a1', 'a1', "
        "timestamp '2026-01-01', 5, null, null)"
    )
    con.close()
    feed = dict(
        platform="rss",
        company_id="c1",
        account_id="https://c1.example/feed",
        handle="c1-feed",
        observed_at=D1,
        followers=None,
        following=None,
        posts_total=None,
        posts_since=D1 - dt.timedelta(days=35),
    )
    with connect(path) as con:
        load_batch(
            con, "feed", {"account_snapshots": records.to_arrow(records.ACCOUNT_SNAPSHOTS, [feed])}
        )
        got = con.execute(
            "select platform, followers, posts_since from raw.account_snapshots order by 1"
        ).fetchall()
        # the old table's primary key is gone (rebuilt without it), its row kept
        assert primary_keys(con) == []
        # and a rerun of the batch still replaces, never duplicates
        load_batch(
            con, "feed", {"account_snapshots": records.to_arrow(records.ACCOUNT_SNAPSHOTS, [feed])}
        )
        assert table_counts(con)["account_snapshots"] == 2
    assert got == [
        ("rss", None, D1.replace(tzinfo=None) - dt.timedelta(days=35)),
        ("sample", 5, None),
    ]


def test_a_reload_updates_the_load_log(tmp_path):
    batch = posts([post("p1", D1, 3), post("p2", D1, 4)])
    with connect(tmp_path / "w.duckdb") as con:
        load_batch(con, "b1", batch)
        [(first, replaced)] = con.execute(
            "select loaded_at, rows_replaced from ops.load_log where table_name = 'post_observations'"
        ).fetchall()
        load_batch(con, "b1", batch)  # a rerun of the same batch
        [(second, replaced_again)] = con.execute(
            "select loaded_at, rows_replaced from ops.load_log where table_name = 'post_observations'"
        ).fetchall()
    assert (replaced, replaced_again) == (0, 2)
    assert second > first  # the plugin's "Latest loads" shows the rerun
