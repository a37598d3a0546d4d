"""Command line: ``python -m socialpulse.cli {run,airflow,summary,bootstrap}``.

``run`` is what ``make run`` does: prepare a local Airflow home inside the repo, run the
ingestion DAG and the models DAG once through real Airflow DAG runs (``dag.test()``), and
print the per-segment table of the latest complete period.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from socialpulse.config import POOLS, PROJECT_ROOT, settings
from socialpulse.registry import RegistryError, load_registry

INGEST_DAG = "socialpulse_ingest"
MODELS_DAG = "socialpulse_models"
#: days of history ``make run`` loads: enough for two complete months and eight weeks
DEFAULT_HISTORY_DAYS = 63


def airflow_env(home: Path | None = None) -> dict[str, str]:
    """Environment for a local Airflow home with this repo's DAGs and plugins.

    Without ``home``: ``$AIRFLOW_HOME`` or ``.airflow/`` in the repo, and values already set in
    the environment win. With ``home`` (tests): exactly that home, nothing inherited.
    """
    if home is not None:
        return _airflow_defaults(home)
    home = Path(os.environ.get("AIRFLOW_HOME") or PROJECT_ROOT / ".airflow")
    return {k: os.environ.get(k) or v for k, v in _airflow_defaults(home).items()}


def _airflow_defaults(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "NO_PROXY": "*",
    }


def _apply_airflow_env() -> dict[str, str]:
    env = airflow_env()
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return env


def bootstrap(quiet: bool = True) -> None:
    """Migrate the Airflow metadata DB and create the pools (idempotent)."""
    env = {**os.environ, **_apply_airflow_env()}
    airflow = str(Path(sys.executable).with_name("airflow"))
    out = subprocess.DEVNULL if quiet else None
    pools = [[airflow, "pools", "set", name, str(n), d] for name, (n, d) in POOLS.items()]
    for cmd in ([airflow, "db", "migrate"], *pools):
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd[1:])}` failed:\n{proc.stderr[-3000:]}")


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        errors = "\n".join(f"{f}: {e}" for f, e in bag.import_errors.items())
        raise SystemExit(f"DAG import errors:\n{errors}")
    return bag.dags


def _state(obj: Any) -> str:
    return str(getattr(obj.state, "value", obj.state))


def run_dag(
    dag: Any, logical_date: dt.datetime | None, conf: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    """One real DAG run through ``dag.test()``: its final state and its failed tasks."""
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    dagrun = dag.test(**kwargs)
    failed = sorted(
        ti.task_id + (f"[{ti.rendered_map_index or ti.map_index}]" if ti.map_index >= 0 else "")
        for ti in dagrun.get_task_instances()
        if _state(ti) in ("failed", "upstream_failed")
    )
    return _state(dagrun), failed


def run(history_days: int = DEFAULT_HISTORY_DAYS, end: dt.date | None = None) -> int:
    """The main job: ingest ``history_days`` up to ``end`` (today), build the models, report."""
    started = time.monotonic()
    _apply_airflow_env()
    s = settings()
    # Like a manual trigger: the run's data interval is the last complete day before its
    # logical date ([yesterday, today) by default), widened to history_days by the
    # backfill param. The logical date is never a schedule tick (midnight), so the run never
    # takes the place of a scheduled run of `make airflow`.
    if end is None:
        logical = dt.datetime.now(dt.UTC)
    else:
        logical = dt.datetime.combine(end, dt.time(0, 0, 1), tzinfo=dt.UTC)
    print(f"socialpulse: companies {s.companies}")
    print(f"socialpulse: warehouse {s.warehouse}")
    try:  # the ingestion DAG checks it too; here the message is not buried in a task log
        load_registry(s.companies)
    except RegistryError as exc:
        print(f"socialpulse: the companies file is malformed:\n  {exc}", file=sys.stderr)
        return 2
    print("socialpulse: preparing the Airflow home (metadata DB, pool) ...", flush=True)
    bootstrap()
    dags = load_dags()
    stages = [
        (INGEST_DAG, logical, {"backfill_days": history_days}),
        (MODELS_DAG, None, None),
    ]
    failed = []
    for dag_id, when, conf in stages:
        t0 = time.monotonic()
        print(f"socialpulse: running DAG {dag_id} ...", flush=True)
        state, failed_tasks = run_dag(dags[dag_id], when, conf)
        print(
            f"socialpulse: DAG {dag_id} finished: {state} ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
        if failed_tasks:
            print(f"socialpulse:   failed tasks: {', '.join(failed_tasks)}", flush=True)
        if state != "success":
            failed.append(dag_id)
    print()
    print(summary_text(s.analytics))
    print(f"\nwarehouse: {s.warehouse}")
    print(f"analytics copy (query it while the pipeline runs: make query): {s.analytics}")
    print(f"quarantine: {s.quarantine_dir}")
    reports = sorted(s.reports_dir.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    for report in reports[-2:]:
        print(f"report: {report}  (CSV and Parquet exports beside it)")
    print(f"total time: {time.monotonic() - started:.0f} s")
    if failed:
        print(
            f"\nFAILED: {', '.join(failed)} (see the task logs above, or `make airflow`)",
            file=sys.stderr,
        )
        return 1
    return 0


SUMMARY_SQL = """
with latest as (
  select max(period_start) as period_start
  from marts.success_index
  where period_type = ? and is_complete
)
select
  s.segment,
  s.period_start,
  s.period_end,
  count(*) as companies,
  count(s.success_index) as scored,
  median(s.success_index) as median_index,
  arg_max(s.company_name, s.success_index) filter (where s.success_index is not null) as best_company,
  max(s.success_index) as best_index
from marts.success_index as s
join latest using (period_start)
where s.period_type = ?
group by all
order by s.segment
"""


def summary_rows(analytics: Path, period_type: str = "week") -> list[tuple[Any, ...]]:
    """The summary of the analytics copy: never the pipeline's warehouse, whose writer
    (a running ingest or models task) would lock every reader out."""
    import duckdb

    if not analytics.exists():
        raise FileNotFoundError(f"no analytics copy at {analytics} yet: `make run` publishes it")
    con = duckdb.connect(str(analytics), read_only=True)
    try:
        return con.execute(SUMMARY_SQL, [period_type, period_type]).fetchall()
    finally:
        con.close()


def summary_text(analytics: Path, period_type: str = "week") -> str:
    try:
        rows = summary_rows(analytics, period_type)
    except Exception as exc:  # noqa: BLE001 - shown to the user as is
        return f"(no summary: {exc})"
    if not rows:
        return "(no complete period in marts.success_index yet)"
    start, end_ = rows[0][1], rows[0][2]
    head = f"Success index per segment, ISO week {start:%G-W%V} ({start} to {end_ - dt.timedelta(days=1)})"
    lines = [head, ""]
    cols = ("segment", "companies", "scored", "median index", "best company", "its index")
    table = [cols] + [
        (
            r[0],
            str(r[3]),
            str(r[4]),
            "-" if r[5] is None else f"{r[5]:.1f}",
            r[6] or "-",
            "-" if r[7] is None else f"{r[7]:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for n, row in enumerate(table):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


QUERY_HELP = """Enter SQL ending with ';' (it may span lines). Commands:
  .tables   the tables and views
  .reload   reopen the copy (after a pipeline run published a new one)
  .help     this text
  .quit     leave (or Ctrl-D)"""


def _open_copy(path: Path) -> Any:
    import duckdb

    return duckdb.connect(str(path), read_only=True)


def _run_sql(con: Any, sql: str) -> None:
    import duckdb

    try:
        result = con.sql(sql)
    except duckdb.Error as exc:
        print(f"error: {exc}")
        return
    if result is not None:
        result.show(max_rows=50, max_width=200)


def query(sql: str | None = None) -> int:
    """``make query``: the analytics copy, read-only, in an interactive SQL shell.

    It never blocks the pipeline: the pipeline writes its own warehouse and publishes this
    copy by renaming a new file over it; an open shell keeps reading the copy it opened
    until ``.reload``.
    """
    path = settings().analytics
    if not path.exists():
        print(f"no analytics copy at {path} yet: `make run` publishes it", file=sys.stderr)
        return 1
    con = _open_copy(path)
    if sql is not None:
        _run_sql(con, sql)
        return 0
    import readline  # noqa: F401 - line editing and history for input()

    print(f"socialpulse: {path} (read-only). {QUERY_HELP}")
    buffer: list[str] = []
    while True:
        try:
            line = input("socialpulse> " if not buffer else "        ...> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        command = line.strip()
        if not buffer and command.startswith("."):
            if command in (".quit", ".exit"):
                return 0
            if command == ".reload":
                con.close()
                con = _open_copy(path)
                print(f"reopened {path}")
            elif command == ".tables":
                _run_sql(
                    con,
                    "select table_schema, table_name, table_type from information_schema.tables "
                    "where table_schema in ('marts', 'raw', 'ref', 'ops') order by 1, 2",
                )
            else:
                print(QUERY_HELP)
            continue
        buffer.append(line)
        if command.endswith(";"):
            _run_sql(con, "\n".join(buffer))
            buffer = []


def standalone() -> int:
    """``make airflow``: the Airflow UI and scheduler on localhost:8080, DAGs unpaused."""
    env = {**os.environ, **_apply_airflow_env()}
    # standalone starts its components as `airflow ...` from PATH: use this venv's
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    bootstrap()
    airflow = str(Path(sys.executable).with_name("airflow"))
    password = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(f"Airflow UI: http://localhost:8080 (user admin, password in {password})", flush=True)
    return subprocess.call([airflow, "standalone"], env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="socialpulse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the whole pipeline once through real DAG runs")
    p_run.add_argument("--history-days", type=int, default=DEFAULT_HISTORY_DAYS)
    p_run.add_argument(
        "--end", type=dt.date.fromisoformat, default=None, help="last day (exclusive), YYYY-MM-DD"
    )
    sub.add_parser("airflow", help="Airflow UI + scheduler (airflow standalone)")
    sub.add_parser("bootstrap", help="migrate the Airflow metadata DB and create the pool")
    p_query = sub.add_parser("query", help="SQL shell on the analytics copy (read-only)")
    p_query.add_argument("-c", dest="sql", default=None, help="run this SQL and exit")
    p_sum = sub.add_parser(
        "summary", help="print the per-segment table from the analytics copy (never locked)"
    )
    p_sum.add_argument("--period", choices=("week", "month"), default="week")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.history_days, args.end)
    if args.command == "airflow":
        return standalone()
    if args.command == "query":
        return query(args.sql)
    if args.command == "bootstrap":
        bootstrap(quiet=False)
        return 0
    s = settings()
    print(summary_text(s.analytics, args.period))
    print(f"\n(from the analytics copy {s.analytics})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
