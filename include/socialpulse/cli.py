"""Command line: ``python -m socialpulse.cli {run,airflow,summary,bootstrap}``.

``run`` is what ``make run`` does: prepare a local Airflow home inside the repo, run the
ingestion DAG and the models DAG once through real Airflow DAG runs (``dag.test()``), and
print the per-segment table of the latest complete period.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

from socialpulse.config import PROJECT_ROOT, pool_slots, settings
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
        # task logs say what each task did (the UI shows them); `make run` quiets its console
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
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
    pools = [[airflow, "pools", "set", name, str(n), d] for name, (n, d) in pool_slots().items()]
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
    from socialpulse.notify import without_deadline

    # for dag.test(): Airflow 3.3.2 cannot run a DAG with a DeadlineAlert there (#73428)
    return {dag_id: without_deadline(dag) for dag_id, dag in bag.dags.items()}


def _state(obj: Any) -> str:
    return str(getattr(obj.state, "value", obj.state))


class QuietWaits(logging.Filter):
    """``dag.test()`` logs "No tasks to run. unrunnable tasks: {...}" (kilobytes: every task
    instance) once a second while a task waits for its retry. Shown once a minute, short."""

    PREFIX = "No tasks to run"

    def __init__(self, every: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self.last: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.PREFIX):
            return True
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return False
        self.last = now
        record.msg, record.args = (
            "No tasks to run now: waiting for a retry (said at most once a minute)",
            (),
        )
        return True


def run_dag(
    dag: Any, logical_date: dt.datetime | None, conf: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    """One real DAG run through ``dag.test()``: its final state and its failed tasks."""
    quiet = QuietWaits()
    logger = logging.getLogger("airflow.sdk.definitions.dag")
    logger.addFilter(quiet)
    try:
        return _run_dag(dag, logical_date, conf)
    finally:
        logger.removeFilter(quiet)


def _run_dag(
    dag: Any, logical_date: dt.datetime | None, conf: dict[str, Any] | None
) -> tuple[str, list[str]]:
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
    # dag.test() prints every task's log on this console: only warnings, unless asked
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
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
    with data_folder_lock("make run") as refused:
        if refused:
            print(refused, file=sys.stderr)
            return 3
        return _run(s, logical, history_days, started)


def _run(s: Any, logical: dt.datetime, history_days: int, started: float) -> int:
    print("socialpulse: preparing the Airflow home (metadata DB, pools) ...", flush=True)
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
    line = quarantine_line(s.quarantine_dir)
    if line:
        print(line)
    reports = sorted(s.registry_reports_dir.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
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


def quarantine_line(folder: Path) -> str | None:
    """``quarantine: n batch(es) in <folder>`` when it holds quarantined batches, else None
    (no path is printed that does not exist or holds nothing)."""
    batches = [p for p in folder.glob("*") if p.is_dir()] if folder.is_dir() else []
    return f"quarantine: {len(batches)} batch(es) in {folder}" if batches else None


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
                    "where table_schema in ('marts', 'intermediate', 'staging', 'raw', 'ref', "
                    "'ops') order by 1, 2",
                )
            else:
                print(QUERY_HELP)
            continue
        buffer.append(line)
        if command.endswith(";"):
            _run_sql(con, "\n".join(buffer))
            buffer = []


#: the components `make airflow` runs, in the order they start (the API server first: the
#: others' tasks talk to its execution API)
COMPONENTS = (
    ("dag-processor", []),
    ("scheduler", ["--skip-serve-logs"]),
    ("triggerer", ["--skip-serve-logs"]),
)


def airflow_address() -> tuple[str, int]:
    """Where `make airflow` listens: ``AIRFLOW__API__HOST`` / ``AIRFLOW__API__PORT``, by
    default 127.0.0.1:8080 (this machine only; see the README to open it to a network)."""
    host = os.environ.get("AIRFLOW__API__HOST") or "127.0.0.1"
    port = int(os.environ.get("AIRFLOW__API__PORT") or 8080)
    return host, port


def standalone(ready_timeout: float = 180.0) -> int:
    """``make airflow``: the API server (UI), DAG processor, scheduler and triggerer.

    Like ``airflow standalone`` but in order and on loopback: the API server starts first
    and the DAGs are unpaused only once it answers (a scheduled run no longer starts while
    its tasks cannot reach the execution API); it listens on 127.0.0.1 unless
    ``AIRFLOW__API__HOST`` says otherwise, and the log servers of the scheduler and
    triggerer are not started (every component reads the task logs from the shared home).
    Refuses to start while `make run` (or another `make airflow`) uses the data folder.
    """
    host, port = airflow_address()
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    _apply_airflow_env()
    os.environ.update(
        {
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": os.environ.get("AIRFLOW__API__BASE_URL")
            or f"http://{shown}:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # the UI and task logs show what each task did (tasks log at INFO)
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL")
            or "INFO",
        }
    )
    env = {**os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    airflow = str(Path(sys.executable).with_name("airflow"))
    with data_folder_lock("make airflow") as refused:
        if refused:
            print(refused, file=sys.stderr)
            return 3
        bootstrap()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            procs.append(_start(airflow, "api-server", ["--host", host, "--port", str(port)], env))
            _wait_for(f"http://127.0.0.1:{port}/api/v2/version", procs[0], ready_timeout)
            procs += [_start(airflow, name, args, env) for name, args in COMPONENTS]
            _unpause(airflow, env, (INGEST_DAG, MODELS_DAG), ready_timeout)
            password = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
            print(
                f"Airflow UI: http://{shown}:{port} (user admin, password in {password}); "
                "DAGs unpaused. Ctrl-C stops it.",
                flush=True,
            )
            while all(p.poll() is None for p in procs):
                time.sleep(1)
            failed = [p for p in procs if p.poll() not in (None, 0)]
            return failed[0].returncode if failed else 0
        except KeyboardInterrupt:
            return 0
        finally:
            _stop(procs)


def _start(airflow: str, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    print(f"socialpulse: starting airflow {name} {' '.join(args)}".rstrip(), flush=True)
    return subprocess.Popen([airflow, name, *args], env=env, start_new_session=True)


def _wait_for(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API server exited with {proc.returncode} before it answered")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the API server did not answer {url} within {timeout:.0f} s")


def _unpause(airflow: str, env: dict[str, str], dag_ids: tuple[str, ...], timeout: float) -> None:
    """Unpause the DAGs once the DAG processor has stored them, and check that they are.

    (``airflow dags unpause`` of a DAG not stored yet exits 0 and changes nothing.)
    """
    import json

    deadline = time.monotonic() + timeout
    while True:
        listed = subprocess.run(
            [airflow, "dags", "list", "--output", "json"], env=env, capture_output=True, text=True
        )
        # the JSON list is the line that starts with '[{' (warnings may come before it)
        rows = next((ln for ln in listed.stdout.splitlines() if ln.startswith("[{")), "[]")
        try:
            paused = {d["dag_id"]: str(d["is_paused"]).lower() == "true" for d in json.loads(rows)}
        except (ValueError, KeyError, TypeError):
            paused = {}
        if all(paused.get(d) is False for d in dag_ids):
            return
        for dag_id in dag_ids:
            if paused.get(dag_id):
                subprocess.run(
                    [airflow, "dags", "unpause", dag_id], env=env, capture_output=True, text=True
                )
        if time.monotonic() > deadline:
            raise SystemExit(f"could not unpause {list(dag_ids)}: {listed.stderr.strip()[-500:]}")
        time.sleep(2)


def _stop(procs: list[subprocess.Popen]) -> None:
    import signal

    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)


@contextlib.contextmanager
def data_folder_lock(who: str) -> Iterator[str | None]:
    """Hold the data folder for `make run` or `make airflow`; yields None, or (when another
    one holds it) the message that says what is running and what to do.

    Both write the same warehouse and sync the ref tables from their own registry: one
    running beside the other waits on DuckDB's lock or replaces the other's registry. A
    lock file (``<data>/.socialpulse.lock``, released when the process ends, even killed)
    keeps them apart.
    """
    import fcntl

    s = settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    path = s.data_dir / ".socialpulse.lock"
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another socialpulse process"
            yield (
                f"socialpulse: {holder} is using the data folder {s.data_dir}.\n"
                "  Both would write the same warehouse and replace each other's registry.\n"
                "  Stop it first, or trigger socialpulse_ingest from the running Airflow's UI,\n"
                "  or give this one folders of its own: SOCIALPULSE_DATA_DIR=... AIRFLOW_HOME=..."
            )
            return
        f.seek(0)
        f.truncate()
        f.write(f"{who} (pid {os.getpid()}, since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
        f.flush()
        try:
            yield None
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


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
