"""
## socialpulse_ingest

Fetches every account of the company registry (`SOCIALPULSE_COMPANIES`), validates each
batch with Great Expectations and loads it into the DuckDB warehouse (`SOCIALPULSE_WAREHOUSE`).

* `plan_run` checks the registry (a malformed file fails here, before any fetch), parses it
  once for the whole run and cuts it into batches of accounts, written to the run's staging
  folder; `batches_<source>` hands each task group its batches as references (XCom never
  carries the registry).
* `sync_registry` refreshes the `ref` tables (companies, accounts, goals, targets).
* One task group per platform (`sample`, `mastodon`, `bluesky`, `rss`, and `registry` for
  the registry's own CSV rows), mapped over its batches:
  `fetch` (stage rows as Parquet; rate-limited platforms in a pool of their own) ->
  `validate` (GX suites; the rows of a company that fail are quarantined, the rest goes on)
  -> `load` (one transaction, delete-then-insert on the natural key: reruns never duplicate).
* `record_run` runs after every batch, whatever happened to it: each batch's outcome and
  every account's errors and warnings go to `ops.fetch_errors`.
* `data_docs` renders the run's validation results (passed or failed) into the GX Data Docs
  site, once for all batches.
* `publish_raw` tells the models DAG the raw tables changed when at least one batch loaded
  (row counts attached as asset metadata).
* `all_batches_loaded` fails the run naming every account and batch that failed, so a
  partial load never looks green.

Alerts (e-mail / Slack, when their Airflow connections exist): every failed task, and a run
that has not succeeded `SOCIALPULSE_INGEST_DEADLINE_HOURS` (6) after it was queued (a
deadline alert).

Params: `backfill_days` widens the fetch window to that many days before the interval's
end (every connector reads back to the window's start; the sample platform replays each
day, exactly as daily runs would).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task, task_group

from socialpulse.config import DUCKDB_POOL, FETCH_POOLS
from socialpulse.notify import ingest_deadline
from socialpulse.orchestration import (
    DEFAULT_ARGS,
    RAW_ASSETS,
    START_DATE,
    airflow_connection,
    fail_fast,
    platform_connection,
)
from socialpulse.platforms import IMPLEMENTATIONS

#: the registry's own rows (probes and manual metrics CSVs) form a batch of their own
REGISTRY = "registry"
#: a task group per platform with a connector, and one for the registry's rows
SOURCES = (*IMPLEMENTATIONS, REGISTRY)


def _window():
    """The run's fetch window: its data interval; a manual run without a logical date (REST
    with ``"logical_date": null``, ``airflow dags trigger``) has none and fetches up to its
    ``run_after`` time."""
    from socialpulse.pipeline import run_window

    ctx = get_current_context()
    return run_window(
        ctx.get("data_interval_start"),
        ctx.get("data_interval_end"),
        ctx["dag_run"].run_after,
        int(ctx["params"]["backfill_days"]),
    )


def _run_id() -> str:
    return get_current_context()["run_id"]


def _label(batch: dict) -> dict:
    """Name the mapped task instance in the grid after its batch (e.g. ``sample-b000``)."""
    get_current_context()["batch_label"] = f"{batch['platform']}-b{batch['batch_no']:03d}"
    return batch


BATCH_LABEL = "{{ batch_label }}"


def batches_of(source: str):
    """The task group of one source: fetch -> validate -> load, mapped over its batches."""

    @task_group(group_id=source)
    def process(batch: dict):
        @task(map_index_template=BATCH_LABEL, pool=FETCH_POOLS.get(source, "default_pool"))
        def fetch(batch: dict) -> dict:
            """Fetch one batch of accounts and stage its rows."""
            from socialpulse.pipeline import fetch_batch, is_offline

            _label(batch)
            with fail_fast():
                offline = is_offline(batch["platform"])
                connection = None if offline else platform_connection(batch["platform"])
                return fetch_batch(
                    batch,
                    _window(),
                    _run_id(),
                    connection=connection,
                    connections=None if offline else airflow_connection,
                )

        @task(map_index_template=BATCH_LABEL)
        def validate(staged: dict) -> dict:
            """Great Expectations gate: failing rows are quarantined, not loaded."""
            from socialpulse.pipeline import validate_staged

            with fail_fast():
                return validate_staged(_label(staged))

        @task(pool=DUCKDB_POOL, map_index_template=BATCH_LABEL)
        def load(staged: dict) -> dict:
            """Load the validated batch in one transaction (idempotent)."""
            from socialpulse.pipeline import load_staged

            with fail_fast():
                return load_staged(_label(staged))

        return load(validate(fetch(batch)))

    return process


@task(trigger_rule="all_done")
def data_docs() -> dict:
    """Render the GX Data Docs of this run's validations (one rebuild, not per batch)."""
    from socialpulse.validation import build_docs

    return build_docs()


@dag(
    dag_id="socialpulse_ingest",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # a run that takes longer is stuck: its staging folder is removed by a later run
    dagrun_timeout=dt.timedelta(hours=12),
    # not succeeded SOCIALPULSE_INGEST_DEADLINE_HOURS after it was queued: an alert
    deadline=ingest_deadline(),
    default_args=DEFAULT_ARGS,
    tags=["socialpulse", "ingest"],
    doc_md=__doc__,
    params={
        "backfill_days": Param(
            0, type="integer", minimum=0, maximum=400, description="Fetch this many days back."
        )
    },
)
def socialpulse_ingest():
    @task
    def plan_run() -> dict[str, int]:
        """Check the registry (fails before any fetch when malformed), plan the batches."""
        from socialpulse.pipeline import plan_run

        with fail_fast():
            plan = plan_run(_run_id(), platforms=IMPLEMENTATIONS)
        return {source: len(batches) for source, batches in plan.items()}

    def batches(source: str):
        @task(task_id=f"batches_{source}")
        def planned() -> list[dict]:
            """This source's batches of the run's plan (small references, never accounts)."""
            from socialpulse.pipeline import planned_batches

            with fail_fast():
                return planned_batches(_run_id(), source)

        return planned()

    @task(pool=DUCKDB_POOL)
    def sync_registry() -> dict:
        """Replace the ref tables (companies, accounts, weights, targets) with the registry."""
        from socialpulse.pipeline import sync_registry

        with fail_fast():
            return sync_registry(run_id=_run_id())

    @task(pool=DUCKDB_POOL, trigger_rule="all_done")
    def record_run() -> dict:
        """Every batch's outcome and every account's errors and warnings, loaded or not."""
        from socialpulse.pipeline import record_run

        with fail_fast():
            return record_run(_run_id())

    @task(pool=DUCKDB_POOL, outlets=list(RAW_ASSETS.values()))
    def publish_raw(summary: dict) -> dict:
        """Tell the models DAG the raw tables changed (row counts as asset metadata)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from socialpulse.pipeline import raw_table_counts

        if not summary["loaded"]:
            raise AirflowSkipException("no batch of this run was loaded: nothing to publish")
        with fail_fast():
            counts = raw_table_counts()
        events = get_current_context()["outlet_events"]
        for table, asset in RAW_ASSETS.items():
            events[asset].extra = {"rows": counts.get(table, 0)}
        return counts

    @task
    def all_batches_loaded(summary: dict) -> dict:
        """Fails the run naming every account and batch that failed (the rest is loaded)."""
        from socialpulse.pipeline import check_run

        with fail_fast():
            return check_run(summary)

    @task(trigger_rule="all_done")
    def cleanup_staging() -> None:
        """Remove this run's staging folder (quarantined rows are kept elsewhere)."""
        from socialpulse.pipeline import cleanup_staging

        cleanup_staging(_run_id())

    plan = plan_run()
    registry = sync_registry()
    recorded = record_run()
    plan >> registry
    for source in SOURCES:
        planned = batches(source)
        registry >> planned
        loaded = batches_of(source).expand(batch=planned)
        loaded >> recorded
    published = publish_raw(recorded)
    [recorded, published] >> cleanup_staging()
    recorded >> data_docs()
    # a leaf of its own: when it fails (or is upstream_failed) the whole run is failed
    all_batches_loaded(recorded)


socialpulse_ingest()
