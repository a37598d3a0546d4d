"""
## socialpulse_models

Builds the SQL models of `include/sql/` in the DuckDB warehouse whenever the ingestion DAG
has updated the raw tables. `staging.snapshot` builds the whole staging layer in one
transaction: the run's frozen copy of the raw and ref tables, so that a load landing while
the run goes on never gives early models the old state and later ones the new. Every other
model is its own task (grouped by layer: `intermediate`, `marts`), so the grid shows exactly
which model failed; a model's upstream tasks are read from the SQL itself (its `staging.` /
`intermediate.` / `marts.` references).

Analysts read the marts: `marts.company_metrics`, `marts.success_index`,
`marts.segment_benchmarks` (see the README's data dictionary and `../shared/METRICS.md`).

`send_alerts` (after the analytics copy is published) sends one message listing the new
rows of `marts.alerts` (liveliness or service level dropped) of the latest complete week and
month, each alert once per channel (`ops.alerts_sent`).
"""

from __future__ import annotations

from airflow.sdk import TaskGroup, dag, get_current_context, task

from socialpulse.config import DUCKDB_POOL
from socialpulse.models import LAYERS, SOURCE_LAYER, discover
from socialpulse.orchestration import (
    ANALYTICS_ASSET,
    DEFAULT_ARGS,
    RAW_ASSETS,
    START_DATE,
    fail_fast,
    mart_asset,
)


@dag(
    dag_id="socialpulse_models",
    schedule=list(RAW_ASSETS.values()),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["socialpulse", "models"],
    doc_md=__doc__,
)
def socialpulse_models():
    models = discover()
    groups = {layer: TaskGroup(group_id=layer) for layer in LAYERS}
    staging = [m for m in models if m.layer == SOURCE_LAYER]

    @task(
        task_id="snapshot",
        task_group=groups[SOURCE_LAYER],
        pool=DUCKDB_POOL,
        doc_md="The staging layer in one transaction, the run's copy of the sources: "
        + ", ".join(m.qualified for m in staging),
    )
    def snapshot() -> dict[str, int]:
        from socialpulse.pipeline import build_source_snapshot

        with fail_fast():
            return build_source_snapshot()

    frozen = snapshot()
    tasks = {m.qualified: frozen for m in staging}
    for model in models:
        if model.layer == SOURCE_LAYER:
            continue

        @task(
            task_id=model.name,
            task_group=groups[model.layer],
            pool=DUCKDB_POOL,
            doc_md=model.description,
            outlets=[mart_asset(model.name)] if model.layer == "marts" else [],
        )
        def build(qualified: str = model.qualified) -> int | None:
            from socialpulse.pipeline import build_model

            with fail_fast():
                return build_model(qualified)

        tasks[model.qualified] = build()
        for upstream in model.depends_on:
            tasks[upstream] >> tasks[model.qualified]

    @task(pool=DUCKDB_POOL, outlets=[ANALYTICS_ASSET])
    def publish_analytics_copy() -> str:
        """Write the analytics copy analysts query, atomically (new file, then rename)."""
        from socialpulse.pipeline import publish_analytics

        with fail_fast():
            return publish_analytics()

    @task
    def build_report() -> dict[str, str]:
        """The published report of the latest complete week and month (HTML, CSV, Parquet)."""
        from socialpulse.pipeline import build_reports

        with fail_fast():
            return build_reports()

    @task(pool=DUCKDB_POOL)
    def send_alerts() -> dict:
        """One message (e-mail, Slack) listing the new alerts of marts.alerts (liveliness
        dropped) for the latest complete week and month; each alert is sent once."""
        from socialpulse.notify import send_liveliness_alerts

        ctx = get_current_context()
        with fail_fast():
            return send_liveliness_alerts(ctx["dag"].dag_id, ctx["run_id"])

    published = publish_analytics_copy()
    [tasks[m.qualified] for m in models if m.layer == "marts"] >> published >> build_report()
    published >> send_alerts()


socialpulse_models()
