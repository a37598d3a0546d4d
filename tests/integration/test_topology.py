"""The production topology, natively: PostgreSQL, Redis, scheduler, DAG processor, API server,
triggerer and two Celery workers as real processes (tests/integration/topology.py).

Two clusters on the same PostgreSQL server and Redis, the same DAG run (the sample platform,
the latest daily interval widened by ``backfill_days`` to about 1.5 million rows):

* the DuckDB file warehouse (the default, one writer at a time): the first ``load`` task's
  process is killed with SIGKILL while its transaction is open; Airflow's retry completes
  the run;
* DuckLake with its catalog in PostgreSQL and the DuckDB writers' pool widened to four
  slots: loads on both workers commit concurrently; nothing is killed.

Both end with the same raw tables, row for row, and the same marts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse.config import DUCKDB_POOL
from socialpulse.warehouse import LAKE_ALIAS, WarehouseTarget, open_target
from tests.integration.topology import (
    Cluster,
    Postgres,
    Redis,
    assert_same_rows,
    latest_interval_start,
    pg_dir,
    task_pid,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import duckdb

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

INGEST, MODELS = "socialpulse_ingest", "socialpulse_models"
RUN_ID = "topology"
#: the 40 sample companies over 150 days: about 1.5 million raw rows, 120,000 to 750,000 per
#: batch, so that a load's transaction is open for seconds (wide enough to kill it there)
BACKFILL_DAYS = 150
#: the 40 sample accounts in batches of 10: four loads
BATCH_SIZE = 10
MARKER = "transaction open"
RAW_TABLES = ("account_snapshots", "post_observations", "thread_replies", "probes")
LAKE_CATALOG_PASSWORD = "lake-catalog-password"
#: the DuckDB writers' pool on DuckLake
WRITERS = 4


@dataclass
class RunResult:
    cluster: Cluster
    ingest: list[dict[str, Any]]
    models: list[dict[str, Any]]
    models_state: str
    killed: dict[str, Any] | None = None
    tries: list[dict[str, Any]] = field(default_factory=list)
    lake: WarehouseTarget | None = None


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Postgres, Redis]]:
    postgres = Postgres(pg_dir())
    redis = Redis(tmp_path_factory.mktemp("redis"))
    try:
        postgres.start()
        redis.start()
        yield postgres, redis
    finally:
        if hasattr(redis, "proc"):
            redis.stop()
        if hasattr(postgres, "_pg_ctl"):
            postgres.stop()
        shutil.rmtree(postgres.root, ignore_errors=True)


class Killer:
    """Kills the first ``load`` task it finds with its transaction open (SIGKILL)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.killed: dict[str, Any] | None = None

    def __call__(self, tis: list[dict[str, Any]]) -> None:
        if self.killed is not None:
            return
        for ti in tis:
            running_load = ti["task_id"].endswith(".load") and ti["state"] == "running"
            if running_load and ti["try_number"] == 1 and self._kill_in_transaction(ti):
                return

    def _log(self, ti: dict[str, Any]) -> Path | None:
        run = self.cluster.home / "logs" / f"dag_id={INGEST}" / f"run_id={RUN_ID}"
        found = list(run.glob(f"task_id={ti['task_id']}/map_index={ti['map_index']}/attempt=1.log"))
        return found[0] if found else None

    def _kill_in_transaction(self, ti: dict[str, Any], timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = task_pid(ti["id"])
            log = self._log(ti)
            if pid is not None and log is not None and MARKER in log.read_text(errors="replace"):
                os.kill(pid, signal.SIGKILL)
                self.killed = {**ti, "pid": pid}
                return True
            if pid is None and log is not None and "Task instance in success" in log.read_text():
                return False  # finished before we saw it: the next load
            time.sleep(0.05)
        return False


class Gate:
    """Holds the loads back until all of them are ready, then lets them start together.

    The fetches and validations of the batches take different times, so their loads would
    otherwise start one after the other. Once the registry is synced, the DuckDB writers'
    pool is closed (0 slots); when all four loads wait for it, it opens with ``slots``, as
    an operator would resize a pool in the UI."""

    def __init__(self, cluster: Cluster, slots: int) -> None:
        self.cluster, self.slots, self.step = cluster, slots, 0

    def _pool(self, slots: int) -> None:
        self.cluster.api(
            "PATCH",
            f"/pools/{DUCKDB_POOL}",
            params={"update_mask": "slots"},
            json={"pool": DUCKDB_POOL, "slots": slots, "include_deferred": False},
        )

    def __call__(self, tis: list[dict[str, Any]]) -> None:
        state = {(t["task_id"], t["map_index"]): t["state"] for t in tis}
        if self.step == 0 and state.get(("sync_registry", -1)) == "success":
            self._pool(0)
            self.step = 1
        loads = [s for (task, _), s in state.items() if task == "sample.load"]
        if self.step == 1 and len(loads) == 4 and all(s == "scheduled" for s in loads):
            self._pool(self.slots)
            self.step = 2


def _run(cluster: Cluster, kill: bool, gate_slots: int | None = None) -> RunResult:
    cluster.wait_for_dags((INGEST, MODELS))
    logical = latest_interval_start()
    cluster.api(
        "POST",
        f"/dags/{INGEST}/dagRuns",
        json={
            "dag_run_id": RUN_ID,
            "logical_date": logical.isoformat(),
            "conf": {"backfill_days": BACKFILL_DAYS},
        },
    )
    # unpaused after the trigger: the scheduler finds the latest interval taken by our run
    for dag_id in (INGEST, MODELS):
        cluster.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    watch = Killer(cluster) if kill else Gate(cluster, gate_slots) if gate_slots else None
    ingest = cluster.wait_for_run(INGEST, RUN_ID, timeout=1500, each=watch)
    tis = cluster.task_instances(INGEST, RUN_ID)
    assert ingest["state"] == "success", (
        f"{ {t['task_id']: t['state'] for t in tis} }\n" + cluster.failed_task_logs(INGEST, RUN_ID)
    )
    models = cluster.wait_for_run(MODELS, None, timeout=1200)
    model_tis = cluster.task_instances(MODELS, models["dag_run_id"])
    assert models["state"] == "success", cluster.failed_task_logs(MODELS, models["dag_run_id"])
    result = RunResult(cluster, tis, model_tis, models["state"])
    if isinstance(watch, Gate):
        assert watch.step == 2, "the loads never waited together for the pool"
    if isinstance(watch, Killer):
        assert watch.killed is not None, "no load task was caught with its transaction open"
        result.killed = watch.killed
        ti = watch.killed
        result.tries = cluster.api(
            "GET",
            f"/dags/{INGEST}/dagRuns/{RUN_ID}/taskInstances/{ti['task_id']}/{ti['map_index']}/tries",
        )["task_instances"]
    assert [r["dag_run_id"] for r in cluster.runs(INGEST)] == [RUN_ID]
    return result


@pytest.fixture(scope="module")
def file_run(services, tmp_path_factory) -> Iterator[RunResult]:
    """The DuckDB file warehouse, one load killed mid-transaction."""
    postgres, redis = services
    postgres.create_database("airflow_file")
    cluster = Cluster(
        tmp_path_factory.mktemp("file"),
        postgres,
        redis,
        database="airflow_file",
        redis_db=0,
        extra_env={"SOCIALPULSE_BATCH_SIZE": str(BATCH_SIZE)},
    )
    try:
        cluster.start()
        assert cluster.api("GET", f"/pools/{DUCKDB_POOL}")["slots"] == 1
        yield _run(cluster, kill=True)
    finally:
        cluster.stop()
        cluster.keep_logs("duckdb-file")


@pytest.fixture(scope="module")
def lake_run(services, tmp_path_factory) -> Iterator[RunResult]:
    """DuckLake: catalog in PostgreSQL, Parquet in a folder, four concurrent writers."""
    postgres, redis = services
    postgres.create_database("airflow_lake")
    postgres.create_database("socialpulse_lake")
    root = tmp_path_factory.mktemp("lake")
    warehouse = {
        "conn_type": "duckdb",
        "extra": {"ducklake_catalog_conn_id": "lake_catalog", "data_path": str(root / "lake")},
    }
    catalog = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "port": postgres.port,
        "login": postgres.user,
        "password": LAKE_CATALOG_PASSWORD,
        "schema": "socialpulse_lake",
    }
    cluster = Cluster(
        root,
        postgres,
        redis,
        database="airflow_lake",
        redis_db=1,
        extra_env={
            "SOCIALPULSE_BATCH_SIZE": str(BATCH_SIZE),
            "SOCIALPULSE_WAREHOUSE_CONN_ID": "socialpulse_warehouse",
            "SOCIALPULSE_WAREHOUSE_WRITERS": str(WRITERS),
            "AIRFLOW_CONN_SOCIALPULSE_WAREHOUSE": json.dumps(warehouse),
            "AIRFLOW_CONN_LAKE_CATALOG": json.dumps(catalog),
        },
    )
    try:
        cluster.start()
        # `socialpulse.cli bootstrap` (docker compose's airflow-init) widened the pool
        assert cluster.api("GET", f"/pools/{DUCKDB_POOL}")["slots"] == WRITERS
        result = _run(cluster, kill=False, gate_slots=WRITERS)
        result.lake = WarehouseTarget(
            "ducklake",
            conn_id="socialpulse_warehouse",
            catalog={
                "host": "127.0.0.1",
                "port": str(postgres.port),
                "dbname": "socialpulse_lake",
                "user": postgres.user,
            },
            catalog_password=LAKE_CATALOG_PASSWORD,
            catalog_conn_id="lake_catalog",
            data_path=str(root / "lake"),
        )
        yield result
    finally:
        cluster.stop()
        cluster.keep_logs("ducklake")


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"select * from {table} order by all").fetchall()


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = ? and table_catalog = current_database() order by 1",
            [schema],
        ).fetchall()
    ]


def _open_file(path: Path) -> duckdb.DuckDBPyConnection:
    return open_target(WarehouseTarget("duckdb", path=path), read_only=True)


# --- the DuckDB file warehouse, with a load killed ---------------------------------------


def test_tasks_ran_on_both_celery_workers(file_run):
    hosts = {t["hostname"] for t in file_run.ingest + file_run.models if t["hostname"]}
    assert {"worker-1", "worker-2"} <= hosts, hosts
    assert file_run.models_state == "success"


def test_the_killed_load_failed_and_its_retry_succeeded(file_run):
    tries = {t["try_number"]: t["state"] for t in file_run.tries}
    assert tries == {1: "failed", 2: "success"}, file_run.tries
    log = (
        file_run.cluster.home
        / "logs"
        / f"dag_id={INGEST}"
        / f"run_id={RUN_ID}"
        / f"task_id={file_run.killed['task_id']}"
        / f"map_index={file_run.killed['map_index']}"
    )
    first = (log / "attempt=1.log").read_text(errors="replace")
    # killed with its transaction open: the first attempt never logged the committed load
    assert MARKER in first and " loaded in " not in first, first[-3000:]
    second = (log / "attempt=2.log").read_text(errors="replace")
    assert MARKER in second and " loaded in " in second, second[-3000:]


def test_the_retry_left_the_same_raw_tables_as_an_uninterrupted_run(file_run, lake_run):
    with (
        _open_file(file_run.cluster.data / "warehouse.duckdb") as killed,
        open_target(lake_run.lake, read_only=True) as clean,
    ):
        for table in RAW_TABLES:
            a, b = _rows(killed, f"raw.{table}"), _rows(clean, f"raw.{table}")
            assert a == b, f"raw.{table}: {len(a)} rows after the retry, {len(b)} uninterrupted"
        # the four sample batches loaded once each: one load_log row per batch and table,
        # their rows adding up to the raw tables
        loads = [t for t in file_run.ingest if t["task_id"] == "sample.load"]
        assert len(loads) == 4
        logged = killed.execute(
            "select table_name, count(*), sum(rows_in_batch) from ops.load_log "
            "where batch_id like 'sample-%' group by 1"
        ).fetchall()
        in_raw = {
            t: killed.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in RAW_TABLES
        }
        assert {t: (n, total) for t, n, total in logged} == {t: (4, in_raw[t]) for t in RAW_TABLES}
        assert sum(in_raw.values()) > 1_000_000


# --- DuckLake ------------------------------------------------------------------------


def _transaction(cluster: Cluster, ti: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    """When a load's transaction opened and when it had committed, from its task log."""
    log = next(
        (cluster.home / "logs" / f"dag_id={INGEST}" / f"run_id={RUN_ID}").glob(
            f"task_id={ti['task_id']}/map_index={ti['map_index']}/attempt={ti['try_number']}.log"
        )
    )
    opened = committed = None
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if MARKER in str(event.get("event")):
                opened = dt.datetime.fromisoformat(event["timestamp"])
            elif " loaded in " in str(event.get("event")):
                committed = dt.datetime.fromisoformat(event["timestamp"])
    assert opened and committed, f"{log}: no transaction logged"
    return opened, committed


def test_ducklake_loads_committed_concurrently(lake_run):
    loads = [t for t in lake_run.ingest if t["task_id"] == "sample.load"]
    assert len(loads) == 4 and all(t["state"] == "success" for t in loads)
    spans = {t["map_index"]: _transaction(lake_run.cluster, t) for t in loads}
    # two loads had their transactions open at the same time, and both committed
    overlapping = [
        (a, b)
        for a in spans
        for b in spans
        if a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
    ]
    assert overlapping, spans
    hosts = {t["hostname"] for t in lake_run.ingest + lake_run.models if t["hostname"]}
    assert {"worker-1", "worker-2"} <= hosts, hosts
    with open_target(lake_run.lake, read_only=True) as con:
        # one DuckLake snapshot per committed transaction, named by the load
        committed = con.execute(
            f"select commit_message from ducklake_snapshots('{LAKE_ALIAS}') "
            "where author = 'socialpulse' and commit_message like 'load batch sample-%' "
            "order by 1"
        ).fetchall()
        assert [m.rsplit("-", 1)[1] for (m,) in committed] == ["b000", "b001", "b002", "b003"]


def test_ducklake_and_duckdb_file_give_the_same_marts(file_run, lake_run):
    file_copy = file_run.cluster.data / "analytics.duckdb"
    lake_copy = lake_run.cluster.data / "analytics.duckdb"
    with _open_file(file_copy) as a, _open_file(lake_copy) as b:
        marts = _tables(a, "marts")
        assert marts and marts == _tables(b, "marts")
        for table in marts:
            assert_same_rows(_rows(a, f"marts.{table}"), _rows(b, f"marts.{table}"), table)
        assert a.execute("select count(*) from marts.success_index").fetchone()[0] > 0


def test_analysts_attach_the_ducklake_catalog_read_only(lake_run):
    import duckdb

    with open_target(lake_run.lake, read_only=True) as con:
        n = con.execute("select count(*) from marts.company_metrics").fetchone()[0]
        assert n > 0
        with pytest.raises(duckdb.Error, match="read.only"):
            con.execute("delete from marts.company_metrics")
