"""Every DAG imports cleanly, is documented and owned, retries, and parses cheaply."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

DAGS = PROJECT_ROOT / "dags"
EXPECTED = {"socialpulse_ingest", "socialpulse_models"}
#: never imported while a DAG file is parsed (each costs seconds or does I/O)
HEAVY = (
    "great_expectations",
    "pandas",
    "duckdb",
    "pyarrow",
    "requests",
    "feedparser",
    # the alert channels' notifiers (Airflow itself reads only the providers' info)
    "airflow.providers.smtp.notifications",
    "airflow.providers.smtp.hooks",
    "airflow.providers.slack.notifications",
    "airflow.providers.slack.hooks",
    "slack_sdk",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_is_tagged_documented_owned_and_retries(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "socialpulse" in dag.tags
    assert dag.doc_md and dag.doc_md.strip().startswith("## ")
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.owner == "socialpulse", task.task_id
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_every_task_sends_a_failure_alert(dagbag, dag_id):
    from socialpulse.notify import task_failed

    for task in dagbag.dags[dag_id].tasks:
        assert task.on_failure_callback in (task_failed, [task_failed]), task.task_id


def test_the_ingest_dag_has_a_deadline_alert(dagbag, monkeypatch):
    from airflow.sdk import DeadlineReference, SyncCallback

    from socialpulse.notify import ingest_deadline

    [alert] = dagbag.dags["socialpulse_ingest"].deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == dt.timedelta(hours=6)  # SOCIALPULSE_INGEST_DEADLINE_HOURS default
    assert isinstance(alert.callback, SyncCallback)
    assert alert.callback.path == "socialpulse.notify.ingest_deadline_missed"
    assert alert.callback.kwargs == {"hours": 6.0}
    monkeypatch.setenv("SOCIALPULSE_INGEST_DEADLINE_HOURS", "1.5")
    assert ingest_deadline().interval == dt.timedelta(minutes=90)
    assert not dagbag.dags["socialpulse_models"].deadline


def test_duckdb_writers_share_the_one_slot_pool(dagbag):
    from socialpulse.config import DUCKDB_POOL

    ingest = dagbag.dags["socialpulse_ingest"]
    sources = ("sample", "mastodon", "bluesky", "rss", "facebook", "instagram", "youtube")
    loads = {f"{source}.load" for source in (*sources, "registry")}
    writers = {"sync_registry", "record_run", "publish_raw", *loads}
    assert {t.task_id for t in ingest.tasks if t.pool == DUCKDB_POOL} == writers
    models = dagbag.dags["socialpulse_models"]
    # the report reads the analytics copy, not the warehouse: it needs no writer slot
    assert {t.task_id for t in models.tasks if t.pool != DUCKDB_POOL} == {"build_report"}


def test_fetches_of_rate_limited_platforms_run_in_a_pool_of_their_own(dagbag):
    from socialpulse.config import POOLS

    ingest = dagbag.dags["socialpulse_ingest"]
    pools = {t.task_id: t.pool for t in ingest.tasks if t.task_id.endswith(".fetch")}
    assert pools == {
        "sample.fetch": "default_pool",  # offline: no budget to protect
        "registry.fetch": "default_pool",
        "mastodon.fetch": "socialpulse_mastodon",
        "bluesky.fetch": "socialpulse_bluesky",
        "rss.fetch": "socialpulse_rss",
        "facebook.fetch": "socialpulse_facebook",
        "instagram.fetch": "socialpulse_instagram",
        "youtube.fetch": "socialpulse_youtube",
    }
    # every pool a task uses is created by `make run` / `make airflow` and docker compose
    used = {t.pool for dag in dagbag.dags.values() for t in dag.tasks} - {"default_pool"}
    assert used <= set(POOLS)
    assert POOLS["socialpulse_mastodon"][0] == 1


def test_the_final_check_fails_the_run_even_when_everything_before_it_failed(dagbag):
    """record_run runs whatever happened to the batches; the check is a leaf of its own."""
    ingest = dagbag.dags["socialpulse_ingest"]
    record = ingest.get_task("record_run")
    assert record.trigger_rule == "all_done"
    assert {f"{s}.load" for s in ("sample", "mastodon", "bluesky", "rss", "registry")} <= (
        record.upstream_task_ids
    )
    check = ingest.get_task("all_batches_loaded")
    assert check.upstream_task_ids == {"record_run"} and not check.downstream_task_ids
    # the Data Docs of every batch's validation, passed or failed, once per run
    docs = ingest.get_task("data_docs")
    assert docs.trigger_rule == "all_done" and docs.upstream_task_ids == {"record_run"}


def test_models_dag_has_one_task_per_sql_model_wired_from_the_sql(dagbag):
    from socialpulse.models import discover

    dag = dagbag.dags["socialpulse_models"]
    models = discover()
    publish = "publish_analytics_copy"
    # the staging layer is one task (one transaction: the run's snapshot of the sources);
    # every intermediate and mart model is a task of its own
    later = {m.qualified for m in models if m.layer != "staging"}
    assert {t.task_id for t in dag.tasks} == later | {
        "staging.snapshot",
        publish,
        "build_report",
        "send_alerts",
    }
    assert dag.get_task("staging.snapshot").upstream_task_ids == set()
    marts = {m.qualified for m in models if m.layer == "marts"}
    assert dag.get_task(publish).upstream_task_ids == marts
    assert dag.get_task("build_report").upstream_task_ids == {publish}
    assert dag.get_task("send_alerts").upstream_task_ids == {publish}
    for m in models:
        if m.layer == "staging":
            continue
        task = dag.get_task(m.qualified)
        expected = {"staging.snapshot" if d.startswith("staging.") else d for d in m.depends_on}
        assert task.upstream_task_ids == expected, m.qualified
    for name in ("marts.company_metrics", "marts.success_index", "marts.segment_benchmarks"):
        assert name in {m.qualified for m in models}


def test_models_dag_is_scheduled_on_the_raw_assets_the_ingest_dag_updates(dagbag):
    from socialpulse.orchestration import RAW_ASSETS

    publish = dagbag.dags["socialpulse_ingest"].get_task("publish_raw")
    assert {a.name for a in publish.outlets} == {a.name for a in RAW_ASSETS.values()}
    # AssetAll: a models run waits until every raw table has new data
    condition = dagbag.dags["socialpulse_models"].timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    assert {a.name for a in condition.objects} == {a.name for a in RAW_ASSETS.values()}


def test_parsing_the_dag_files_imports_nothing_heavy():
    """Parse in a fresh interpreter, as the DAG processor does, and list what got imported."""
    code = (
        "import sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"b = DagBag(dag_folder={str(DAGS)!r})\n"
        "assert not b.import_errors, b.import_errors\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "SOCIALPULSE_WAREHOUSE": "/nonexistent/never-opened.duckdb"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert not os.path.exists("/nonexistent/never-opened.duckdb")
