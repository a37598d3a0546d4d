"""
## socialpulse_ingest

Fetches every account of the company registry (`SOCIALPULSE_COMPANIES`), validates each
batch with Great Expectations and loads it into the DuckDB warehouse (`SOCIALPULSE_WAREHOUSE`).

For each batch of accounts of one platform (dynamic task mapping):
`fetch` (stage rows as Parquet) -> `validate` (GX suites; a failing batch is quarantined
and its task fails naming the expectation and rows) -> `load` (one transaction,
delete-then-insert on the natural key: reruns never duplicate).

* `sync_registry` refreshes the `ref` tables (companies, goals, targets).
* `publish_raw` runs when at least one batch loaded, even if others failed, so valid batches
  of other platforms still reach the models DAG through the `raw.*` assets (row counts
  attached as metadata).
* `all_batches_loaded` fails the run when any batch failed or any account could not be
  fetched, so a partial load never looks green.

Params: `backfill_days` widens the fetch window to that many days before the interval's
end (the sample platform then replays each day, exactly as daily runs would).
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task, task_group

from socialpulse.config import DUCKDB_POOL
from socialpulse.orchestration import (
    DEFAULT_ARGS,
    RAW_ASSETS,
    START_DATE,
    fail_fast,
    platform_connection,
)


def _window():
    from socialpulse.pipeline import fetch_window

    ctx = get_current_context()
    return fetch_window(
        ctx["data_interval_start"], ctx["data_interval_end"], int(ctx["params"]["backfill_days"])
    )


def _label(batch: dict) -> dict:
    """Name the mapped task instance in the grid after its batch (e.g. ``sample-b000``)."""
    get_current_context()["batch_label"] = f"{batch['platform']}-b{batch['batch_no']:03d}"
    return batch


BATCH_LABEL = "{{ batch_label }}"


@dag(
    dag_id="socialpulse_ingest",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
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
    def plan_batches() -> list[dict]:
        """Check the registry (fails before any fetch when malformed) and cut it into batches."""
        from socialpulse.pipeline import plan_batches

        with fail_fast():
            return plan_batches()

    @task(pool=DUCKDB_POOL)
    def sync_registry() -> dict:
        """Replace the ref tables (companies, accounts, weights, targets) with the registry."""
        from socialpulse.pipeline import sync_registry

        with fail_fast():
            return sync_registry()

    @task_group(group_id="batch")
    def process(batch: dict):
        @task(map_index_template=BATCH_LABEL)
        def fetch(batch: dict) -> dict:
            """Fetch one batch of accounts and stage its rows."""
            from socialpulse.pipeline import fetch_batch, is_offline

            _label(batch)
            offline = is_offline(batch["platform"])
            connection = None if offline else platform_connection(batch["platform"])
            with fail_fast():
                return fetch_batch(
                    batch, _window(), get_current_context()["run_id"], connection=connection
                )

        @task(map_index_template=BATCH_LABEL)
        def validate(staged: dict) -> dict:
            """Great Expectations gate: a failing batch is quarantined, not loaded."""
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

    @task(
        pool=DUCKDB_POOL,
        trigger_rule="all_done_min_one_success",
        outlets=list(RAW_ASSETS.values()),
    )
    def publish_raw() -> dict:
        """Tell the models DAG the raw tables changed (row counts as asset metadata)."""
        from socialpulse.pipeline import raw_table_counts

        counts = raw_table_counts()
        events = get_current_context()["outlet_events"]
        for table, asset in RAW_ASSETS.items():
            events[asset].extra = {"rows": counts.get(table, 0)}
        return counts

    @task
    def all_batches_loaded(loaded) -> dict:
        """Fails the run when any batch failed or any account could not be fetched."""
        from socialpulse.pipeline import check_loads

        with fail_fast():
            return check_loads(loaded)  # one batch: its dict; several: a lazy sequence

    @task(trigger_rule="all_done")
    def cleanup_staging() -> None:
        """Remove this run's staging folder (quarantined batches are kept elsewhere)."""
        from socialpulse.pipeline import cleanup_staging

        cleanup_staging(get_current_context()["run_id"])

    batches = plan_batches()
    registry = sync_registry()
    loaded = process.expand(batch=batches)
    batches >> registry >> loaded
    published = publish_raw()
    loaded >> published
    published >> cleanup_staging()
    # a leaf of its own: when it fails (or is upstream_failed) the whole run is failed
    all_batches_loaded(loaded)


socialpulse_ingest()
