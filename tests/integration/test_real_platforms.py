"""Mastodon, Bluesky and RSS end to end: real DAG runs against recorded responses on 127.0.0.1.

The scenario (``tests/e2e_scenario.py``) puts Bäckerei Nord on all three platforms beside
sample peers; the marts must hold the metrics computed by hand from its responses.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests import e2e_meta
from tests.conftest import dag_state as state
from tests.conftest import query
from tests.e2e_scenario import EXPECTED, exchanges, write_registry
from tests.replay import ReplayServer

pytestmark = pytest.mark.integration

WEEK = dt.datetime(2026, 11, 9, tzinfo=dt.UTC)  # a Monday: ISO week 2026-W46
# a manual run at this logical date covers [2026-11-15, 2026-11-16); the sample peers
# replay 14 days before its end, the real platforms observe what they serve now
LOGICAL = dt.datetime(2026, 11, 16, 0, 0, 1, tzinfo=dt.UTC)
CONF = {"backfill_days": 14}


@pytest.fixture
def scenario(tmp_path, monkeypatch):
    with ReplayServer(exchanges(WEEK)) as server:
        registry = write_registry(tmp_path / "registry", server.base, WEEK)
        monkeypatch.setenv("SOCIALPULSE_COMPANIES", str(registry))
        monkeypatch.setenv("SOCIALPULSE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.delenv("SOCIALPULSE_WAREHOUSE", raising=False)
        monkeypatch.setenv(
            "AIRFLOW_CONN_BLUESKY_DEFAULT", json.dumps({"conn_type": "http", "host": server.base})
        )
        for name, value in e2e_meta.connections(server.base).items():
            monkeypatch.setenv(name, value)
        yield server, tmp_path / "data" / "warehouse.duckdb"


def week_of(warehouse, company="baeckerei-nord"):
    rows = query(
        warehouse,
        "select * from marts.company_metrics where company_id = ? "
        "and period_type = 'week' and period_start = ?",
        [company, WEEK.date()],
    )
    assert len(rows) == 1
    return rows[0]


def nord_week(warehouse):
    return week_of(warehouse)


def holds(path, text):
    """Whether the file holds ``text``: in any text cell of a DuckDB file or a Parquet file
    (both compress strings, so their bytes cannot be searched), else in its bytes."""
    if path.suffix == ".duckdb":
        import duckdb

        with duckdb.connect(str(path), read_only=True) as con:
            columns = con.execute(
                "select table_schema, table_name, column_name from information_schema.columns "
                "where data_type = 'VARCHAR'"
            ).fetchall()
            return any(
                con.execute(
                    f'select count(*) from "{schema}"."{table}" where "{column}" like ?',
                    [f"%{text}%"],
                ).fetchone()[0]
                for schema, table, column in columns
            )
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = pq.read_table(path)
        return any(
            text in str(value)
            for column in data.columns
            if pa.types.is_string(column.type)
            for value in column.to_pylist()
        )
    return text.encode() in path.read_bytes()


def assert_metrics(metrics, expected):
    for name, value in expected.items():
        if value is None:
            assert metrics[name] is None, name
        else:
            assert metrics[name] == pytest.approx(value), name


def test_mixed_registry_reaches_the_marts_with_hand_computed_metrics(
    dags, scenario, tmp_path, caplog, capfd
):
    server, warehouse = scenario
    ingest = dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf=CONF)
    assert state(ingest) == "success", [
        (ti.task_id, ti.map_index, state(ti)) for ti in ingest.get_task_instances()
    ]
    assert server.unmatched == []
    assert state(dags["socialpulse_models"].test()) == "success"

    # the raw rows of each platform, as served
    kinds = query(
        warehouse,
        "select platform, kind, count(*) as n from raw.post_observations "
        "where platform <> 'sample' group by all order by all",
    )
    assert [(r["platform"], r["kind"], r["n"]) for r in kinds] == [
        ("bluesky", "original", 1),
        ("bluesky", "repost", 1),
        ("facebook", "original", 3),  # Falk's fp1, fp2 and Sahne's sp1
        ("facebook", "repost", 1),  # Falk's shared post fp3
        ("instagram", "original", 3),  # im1 (im0 is older than the lookback), s1, s2
        ("mastodon", "original", 3),  # 5001, 5002 and 4000 (ten days before the week)
        ("mastodon", "reply", 1),
        ("mastodon", "repost", 1),
        ("rss", "original", 1),  # ?p=12 (60 days before the week) is older than the 35-day lookback
        ("youtube", "original", 1),  # fALKtreppe1 (fALKalt0001 is older than the lookback)
    ]
    replies = query(warehouse, "select platform, count(*) as n from raw.thread_replies "
                    "where platform <> 'sample' group by all order by all")  # fmt: skip
    assert [(r["platform"], r["n"]) for r in replies] == [
        ("bluesky", 2),
        ("facebook", 3),  # c1, the page's c2, c3 (the peer page's comments are not read)
        ("instagram", 2),  # k1 and the account's reply k2
        ("mastodon", 5),
        ("youtube", 1),
    ]
    probes = query(warehouse, "select probe_id, answered_at from raw.probes "
                   "where company_id = 'baeckerei-nord' order by 1")  # fmt: skip
    assert query(
        warehouse,
        "select probe_id, answered_at from raw.probes "
        "where company_id = 'schreinerei-falk' order by 1",
    ) == [  # fmt: skip
        {"probe_id": "falk-fb", "answered_at": dt.datetime(2026, 11, 12, 18, 0)},
        {"probe_id": "falk-yt", "answered_at": dt.datetime(2026, 11, 14, 13, 0)},
    ]
    # a peer's hidden like count (0 through business discovery) is loaded as unknown
    hidden = query(warehouse, "select post_id, likes from raw.post_observations "
                   "where platform = 'instagram' order by 1")  # fmt: skip
    assert hidden == [
        {"post_id": "im1", "likes": 25},
        {"post_id": "s1", "likes": None},
        {"post_id": "s2", "likes": 60},
    ]
    assert probes == [
        {"probe_id": "nord-bsky", "answered_at": None},
        {"probe_id": "nord-mail", "answered_at": dt.datetime(2026, 11, 9, 13, 0)},
        {"probe_id": "nord-masto", "answered_at": dt.datetime(2026, 11, 10, 11, 0)},
    ]

    metrics = nord_week(warehouse)
    assert_metrics(metrics, EXPECTED)
    assert metrics["segment"] == "craft" and metrics["is_complete"]
    assert_metrics(week_of(warehouse, "schreinerei-falk"), e2e_meta.EXPECTED_FALK)
    assert_metrics(week_of(warehouse, "konditorei-sahne"), e2e_meta.EXPECTED_SAHNE)
    problems = query(warehouse, "select platform, company_id, severity, error from "
                     "ops.fetch_errors where platform in ('facebook', 'instagram', 'youtube') "
                     "order by 1, 2")  # fmt: skip
    # the only problem of the new platforms: the peer's hidden likes, a warning
    assert [(e["platform"], e["company_id"], e["severity"]) for e in problems] == [
        ("instagram", "konditorei-sahne", "warning")
    ]
    assert problems[0]["error"].startswith("likes hidden or zero on 1 of 2 media")

    # a second fetch is a second observation, never a double count
    assert state(dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf=CONF)) == "success"
    assert state(dags["socialpulse_models"].test()) == "success"
    assert nord_week(warehouse) == metrics

    # the credentials travelled in headers only, and nothing the runs wrote holds them: logs,
    # XCom and the metadata DB (AIRFLOW_HOME), staging files, the warehouse, the analytics
    # copy, the report, Data Docs (the data folder), and what the tasks printed
    import os
    from pathlib import Path

    secrets = list(e2e_meta.SECRETS.values())
    assert all("access_token" not in r and "key=" not in r for r in server.requests)
    sent = {h.get("Authorization") for h in server.headers} | {
        h.get("X-Goog-Api-Key") for h in server.headers
    }
    assert {f"Bearer {secrets[0]}", f"Bearer {secrets[1]}", f"Bearer {secrets[2]}"} <= sent
    assert secrets[3] in sent
    written = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    written += [p for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*") if p.is_file()]
    assert len(written) > 20
    leaks = [(str(path), secret) for path in written for secret in secrets if holds(path, secret)]
    assert leaks == []
    out, err = capfd.readouterr()
    for secret in secrets:
        assert secret not in caplog.text and secret not in out and secret not in err
    dup = query(warehouse, "select count(*) as n from (select platform, post_id, observed_at "
                "from raw.post_observations group by all having count(*) > 1)")  # fmt: skip
    assert dup == [{"n": 0}]


def test_bad_accounts_are_recorded_while_the_good_ones_load(dags, scenario, tmp_path):
    server, warehouse = scenario
    registry = tmp_path / "registry" / "companies.yaml"
    text = registry.read_text().replace(
        "      - {platform: sample, handle: nordbank, options: {profile: corporation}}",
        "      - {platform: sample, handle: nordbank, options: {profile: corporation}}\n"
        f'      - {{platform: mastodon, handle: "{server.base}/@nobody"}}\n'
        f'      - {{platform: rss, handle: "{server.base}/gone/feed/"}}',
    )
    registry.write_text(text)

    dagrun = dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf=CONF)
    assert state(dagrun) == "failed"  # visibly: the run is not green
    tis = {(ti.task_id, ti.map_index): state(ti) for ti in dagrun.get_task_instances()}
    assert tis[("all_batches_loaded", -1)] == "failed"
    assert all(s == "success" for (t, m), s in tis.items() if t.endswith(".load") and m >= 0)

    errors = query(warehouse, "select platform, company_id, handle, severity, error "
                   "from ops.fetch_errors where platform in ('mastodon', 'rss') "
                   "order by platform, company_id")  # fmt: skip
    assert [(e["platform"], e["company_id"], e["severity"]) for e in errors] == [
        ("mastodon", "baeckerei-nord", "warning"),
        ("mastodon", "nordbank", "error"),
        ("rss", "nordbank", "error"),
    ]
    # 5001 counts 3 replies (replies_count), its context holds 2 direct ones (A1, B1): the
    # thread coverage warning, recorded end to end without costing the account its rows
    assert errors[0]["error"].startswith("thread of post 5001: read 2 of 3 direct replies (")
    assert "404" in errors[1]["error"] and "nobody" in errors[1]["error"]
    assert "404" in errors[2]["error"]
    # the good accounts of the same platforms loaded
    loaded = query(warehouse, "select distinct platform, company_id from raw.post_observations "
                   "where platform in ('mastodon', 'rss') order by 1")  # fmt: skip
    assert loaded == [
        {"platform": "mastodon", "company_id": "baeckerei-nord"},
        {"platform": "rss", "company_id": "baeckerei-nord"},
    ]
