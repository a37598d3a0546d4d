"""The real DAGs, run through dag.test() on a small registry, end to end into the marts."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from socialpulse.warehouse import connect, table_counts
from tests.conftest import PROJECT_ROOT, query
from tests.conftest import dag_state as state

pytestmark = pytest.mark.integration

# a manual run at this logical date covers the last complete day [2026-01-31, 2026-02-01),
# widened to 28 days by the param: daily observations Jan 5 .. Feb 1
LOGICAL = dt.datetime(2026, 2, 1, 0, 0, 1, tzinfo=dt.UTC)
BACKFILL = {"backfill_days": 28}


def raw_counts(path):
    with connect(path, read_only=True) as con:
        return table_counts(con)


def readme_queries() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    block = (
        text.split("Three questions analysts ask:", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    )
    queries = [q.strip() for q in block.split(";") if q.strip()]
    assert len(queries) == 3
    return queries


def test_ingest_then_models_fill_the_marts_and_reruns_are_idempotent(
    dags, small_registry, tmp_path
):
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    assert (
        state(dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf=BACKFILL)) == "success"
    )
    first = raw_counts(warehouse)
    # 6 accounts x 28 daily observations (Jan 5 .. Feb 1)
    assert first["account_snapshots"] == 6 * 28
    assert first["post_observations"] > 0 and first["thread_replies"] > 0
    assert first["manual_metrics"] == 2

    assert state(dags["socialpulse_models"].test()) == "success"
    segments = query(warehouse, "select distinct segment from marts.success_index order by 1")
    assert segments == [{"segment": "corporation"}, {"segment": "craft"}]
    # every company x every period has a row; complete weeks have an index for 3-company segments
    [row] = query(
        warehouse,
        """
        select count(*) as n from marts.success_index
        where period_type = 'week' and is_complete and success_index is not null""",
    )
    n = row["n"]
    assert n > 0
    # the hand-entered inputs reach the marts: findability of Bäckerei Korn in January is 70
    assert query(
        warehouse,
        """
        select findability from marts.company_metrics
        where company_id = 'baeckerei-korn' and period_type = 'month' and period_start = date '2026-01-01'
    """,
    ) == [{"findability": 70.0}]
    assert query(
        warehouse, "select answered_at from raw.probes where probe_id = 'mail-korn-1'"
    ) == [{"answered_at": dt.datetime(2026, 1, 5, 11, 30)}]
    # segment benchmarks are published (3 companies per segment)
    assert query(
        warehouse, "select count(distinct segment) as n from marts.segment_benchmarks"
    ) == [{"n": 2}]
    # the models run published the analytics copy and the report of the latest complete
    # ISO week: the last observation is 2026-02-01 00:00, before the end of the week from
    # 2026-01-26 (2026-02-02), so that week is still running and 2026-01-19 is the latest
    # kept per registry (small.yaml -> "small"): another registry's run never overwrites it
    week = tmp_path / "data" / "reports" / "small" / "week-2026-01-19"
    assert (tmp_path / "data" / "analytics.duckdb").exists()
    assert (week / "report.html").exists() and (week / "csv" / "success_index.csv").exists()

    # the README's example queries run on this warehouse (the docs stay true)
    for sql in readme_queries():
        query(warehouse, sql)

    # rerunning the same interval leaves the raw tables exactly as they were
    assert (
        state(dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf=BACKFILL)) == "success"
    )
    assert raw_counts(warehouse) == first


def test_a_bad_batch_is_quarantined_while_the_other_platform_loads(
    dags, small_registry, tmp_path, monkeypatch
):
    from socialpulse import platforms

    monkeypatch.setitem(
        platforms.IMPLEMENTATIONS, "mastodon", "tests.integration.fakes:NegativeLikesPlatform"
    )
    text = (
        (small_registry / "small.yaml")
        .read_text()
        .replace(
            "      - {platform: sample, handle: nordbank, options: {profile: corporation}}",
            "      - {platform: sample, handle: nordbank, options: {profile: corporation}}\n      - {platform: mastodon, handle: nordbank@bank.example}",
        )
    )
    (small_registry / "small.yaml").write_text(text)

    dagrun = dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf={"backfill_days": 3})
    assert state(dagrun) == "failed"
    tis = {
        (ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state))
        for ti in dagrun.get_task_instances()
    }
    # bluesky and rss have no batches here: their groups are skipped
    validated = {t: s for (t, _), s in tis.items() if t.endswith(".validate") and s != "skipped"}
    assert validated == {
        "mastodon.validate": "failed",  # its only account's rows all failed: nothing to keep
        "sample.validate": "success",
        "registry.validate": "success",
    }
    # the run says which batch and account failed: recorded, then a failed final check
    assert tis[("record_run", -1)] == "success"
    assert tis[("all_batches_loaded", -1)] == "failed"
    assert tis[("publish_raw", -1)] == "success"
    # the run's Data Docs, rendered once after the batches: the failed batch has its pages
    assert tis[("data_docs", -1)] == "success"
    docs = tmp_path / "data" / "gx_docs"
    failed_pages = list((docs / "validations" / "raw").glob("post_observations/mastodon-*/*/*"))
    # two results: the gate's, then the one quarantining the whole batch (no company to keep)
    assert len(failed_pages) == 2
    assert all("Failed" in page.read_text(encoding="utf-8") for page in failed_pages)
    assert "mastodon-" in (docs / "index.html").read_text(encoding="utf-8")

    warehouse = tmp_path / "data" / "warehouse.duckdb"
    counts = raw_counts(warehouse)
    assert counts["account_snapshots"] == 6 * 3  # the sample accounts loaded
    assert query(
        warehouse, "select count(*) as n from raw.post_observations where platform = 'mastodon'"
    ) == [{"n": 0}]
    quarantined = list((tmp_path / "data" / "quarantine").glob("mastodon-*"))
    assert len(quarantined) == 1
    assert (quarantined[0] / "post_observations.parquet").exists()
    # one mastodon account, one post (fakes.NegativeLikesPlatform) with likes = -3
    saved = json.loads((quarantined[0] / "validation_result.json").read_text())
    [likes] = [f for f in saved["failures"] if "column='likes'" in f]
    assert likes.startswith("raw.post_observations: expect_column_values_to_be_between(")
    assert "failed on 1 row(s)" in likes


def test_a_malformed_registry_fails_the_run_before_any_fetch_without_retrying(
    dags, small_registry, tmp_path
):
    path = small_registry / "small.yaml"
    path.write_text(path.read_text().replace("segment: corporation", "segment: multinational", 1))

    dagrun = dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf={"backfill_days": 1})
    assert state(dagrun) == "failed"
    tis = {ti.task_id: ti for ti in dagrun.get_task_instances()}
    plan = tis["plan_run"]
    assert state(plan) == "failed"
    assert plan.try_number == 1  # a malformed file is not retried
    fetches = [ti for ti in dagrun.get_task_instances() if ti.task_id.endswith(".fetch")]
    assert all(state(ti) != "success" for ti in fetches)
    # the final check does not pass a run that never planned anything
    assert state(tis["all_batches_loaded"]) in ("failed", "upstream_failed")
    assert not (tmp_path / "data" / "warehouse.duckdb").exists()
    assert not (tmp_path / "data" / "state").exists()  # fetch_batch never started


ONE_PLATFORM = """\
companies:
  - {id: baeckerei-eins, name: Bäckerei Eins, segment: craft, employees: 4,
     accounts: [{platform: sample, handle: eins, options: {profile: craft}}]}
  - {id: tischlerei-zwei, name: Tischlerei Zwei, segment: craft, employees: 6,
     accounts: [{platform: sample, handle: zwei, options: {profile: craft}}]}
  - {id: maler-drei, name: Maler Drei, segment: craft, employees: 2,
     accounts: [{platform: sample, handle: drei, options: {profile: craft}}]}
"""


@pytest.mark.parametrize(
    ("registry", "batch_size", "batches"),
    [
        # the first thing a new user tries: three companies on one platform, one batch
        ("one-platform", None, 1),
        # the small registry: six sample accounts + the registry's CSV batch
        ("small", None, 2),
        # one account per batch: six sample batches + the CSV batch
        ("small", "1", 7),
    ],
)
def test_ingest_runs_green_with_one_two_and_many_batches(
    dags, small_registry, tmp_path, monkeypatch, registry, batch_size, batches
):
    if registry == "one-platform":
        path = tmp_path / "one.yaml"
        path.write_text(ONE_PLATFORM)
        monkeypatch.setenv("SOCIALPULSE_COMPANIES", str(path))
    if batch_size:
        monkeypatch.setenv("SOCIALPULSE_BATCH_SIZE", batch_size)
    dagrun = dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf={"backfill_days": 2})
    tis = dagrun.get_task_instances()
    loads = [ti for ti in tis if ti.task_id.endswith(".load") and ti.map_index >= 0]
    assert len(loads) == batches
    assert {ti.task_id: state(ti) for ti in tis}["all_batches_loaded"] == "success"
    assert state(dagrun) == "success"
    accounts = 3 if registry == "one-platform" else 6
    assert raw_counts(tmp_path / "data" / "warehouse.duckdb")["account_snapshots"] == accounts * 2
