"""The warehouse on DuckLake: its catalog in a real PostgreSQL server, its Parquet files in a
folder, configured through Airflow connections (``SOCIALPULSE_WAREHOUSE_CONN_ID``).

The same loads and models as on the DuckDB file give the same tables; two processes load at
once and both commit; analysts attach the catalog read-only; an unreachable catalog is an
error naming the connection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import duckdb
import pytest

from socialpulse import models
from socialpulse.registry import reference_tables
from socialpulse.warehouse import (
    WarehouseConfigError,
    connect,
    is_lake,
    load_batch,
    publish_analytics_copy,
    replace_reference_tables,
    table_counts,
)
from tests.conftest import PROJECT_ROOT
from tests.integration.api_server import SAMPLE_END, sample_warehouse_rows
from tests.integration.topology import Postgres, assert_same_rows, free_port, pg_dir

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

PASSWORD = "catalog-pw-not-in-messages"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres(pg_dir())
    try:
        yield server.start()
    finally:
        if hasattr(server, "_pg_ctl"):
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def lake(postgres, tmp_path, monkeypatch, request) -> Path:
    """A fresh catalog database and data folder, configured as the warehouse."""
    name = "lake_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    postgres.create_database(name)
    data_path = tmp_path / "lake"
    configure(monkeypatch, postgres.port, name, data_path)
    return data_path


def configure(monkeypatch, port: int, database: str, data_path: Path) -> None:
    monkeypatch.setenv("SOCIALPULSE_WAREHOUSE_CONN_ID", "socialpulse_warehouse")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SOCIALPULSE_WAREHOUSE",
        json.dumps(
            {
                "conn_type": "duckdb",
                "extra": {"ducklake_catalog_conn_id": "lake_catalog", "data_path": str(data_path)},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LAKE_CATALOG",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": port,
                "login": "airflow",
                "password": PASSWORD,
                "schema": database,
            }
        ),
    )


def rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return con.execute(f"select * from {table} order by all").fetchall()


def test_loads_and_models_on_ducklake_equal_those_on_the_duckdb_file(lake, tmp_path):
    registry, tables = sample_warehouse_rows(days=15)
    refs = reference_tables(registry)
    outputs = {}
    for name, path in (("file", tmp_path / "warehouse.duckdb"), ("lake", None)):
        with connect(path) as con:
            assert is_lake(con) == (name == "lake")
            replace_reference_tables(con, refs)
            load_batch(con, "b1", tables)
            first = {t: rows(con, f"raw.{t}") for t in tables}
            load_batch(con, "b1", tables)  # a rerun: idempotent without primary keys too
            assert {t: rows(con, f"raw.{t}") for t in tables} == first
            models.build_all(con, models.discover())
            outputs[name] = publish_analytics_copy(con, tmp_path / f"analytics-{name}.duckdb")
    # the load log keeps one row per batch and table on DuckLake too
    with connect() as con:
        assert con.execute("select count(*) from ops.load_log").fetchone()[0] == len(tables)
        assert any(lake.rglob("*.parquet")), "DuckLake wrote no Parquet files"
    a = duckdb.connect(str(outputs["file"]), read_only=True)
    b = duckdb.connect(str(outputs["lake"]), read_only=True)
    try:
        names = [
            (s, t)
            for s, t in a.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('raw', 'marts') order by 1, 2"
            ).fetchall()
        ]
        assert ("marts", "success_index") in names
        for schema, table in names:
            assert_same_rows(rows(a, f"{schema}.{table}"), rows(b, f"{schema}.{table}"), table)
        assert a.execute("select count(*) from marts.success_index").fetchone()[0] > 0
    finally:
        a.close()
        b.close()


LOADER = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from pathlib import Path
    import pyarrow.compute as pc
    from socialpulse.config import SAMPLE_COMPANIES
    from socialpulse.pipeline import account_refs
    from socialpulse.platforms.base import FetchWindow
    from socialpulse.platforms.sample import SamplePlatform
    from socialpulse.registry import load_registry
    from socialpulse.warehouse import connect, load_batch
    part, go, end, days = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    # the rows of tests.integration.api_server.sample_warehouse_rows (not imported: it
    # would import tests/conftest.py, which resets the warehouse settings of the test session)
    end = dt.datetime.fromisoformat(end)
    window = FetchWindow(end - dt.timedelta(days=days), end, dt.timedelta(days=28))
    refs = account_refs(load_registry(SAMPLE_COMPANIES), "sample")
    tables = SamplePlatform().fetch(refs, window).tables()
    # two disjoint halves of the companies, as two batches would be
    half = pc.greater if part else pc.less_equal
    mine = {t: d.filter(half(d["company_id"], "m")) for t, d in tables.items()}
    with connect() as con:
        (go.parent / f"ready-{part}").touch()
        while not go.exists():
            time.sleep(0.01)
        t0 = time.time()
        load_batch(con, f"part-{part}", mine)
        print(t0, time.time())
    """
)


def test_two_processes_load_at_once_and_both_commit(lake, tmp_path):
    with connect():  # the tables exist before the writers race
        pass
    go = tmp_path / "go"
    env_script = tmp_path / "loader.py"
    env_script.write_text(LOADER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(env_script), str(part), str(go), SAMPLE_END.isoformat(), "15"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        for part in (0, 1)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{part}").exists() for part in (0, 1)):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "the loaders did not open the warehouse in 120 s"
        time.sleep(0.1)
    go.touch()  # both have the warehouse open: they load at once
    spans = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        spans.append(tuple(float(x) for x in out.strip().splitlines()[-1].split()))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the loads did not overlap: {spans}"
    _, tables = sample_warehouse_rows(days=15)
    with connect(read_only=True) as con:
        counts = table_counts(con)
        for t, d in tables.items():
            assert counts[t] == d.num_rows, t
        batches = con.execute("select distinct batch_id from ops.load_log order by 1").fetchall()
        assert batches == [("part-0",), ("part-1",)]
        # each load is its own DuckLake snapshot, named after its batch
        messages = con.execute(
            "select commit_message from ducklake_snapshots(current_database()) "
            "where author = 'socialpulse' order by 1"
        ).fetchall()
        assert messages == [("load batch part-0",), ("load batch part-1",)]


def test_analysts_attach_the_catalog_read_only(lake):
    registry, tables = sample_warehouse_rows(days=8)
    with connect() as con:
        load_batch(con, "b1", tables)
    with connect(read_only=True) as con:
        n = con.execute("select count(*) from raw.post_observations").fetchone()[0]
        assert n == tables["post_observations"].num_rows
        with pytest.raises(duckdb.Error, match="read.only|read-only"):
            con.execute("delete from raw.post_observations")


def test_an_unreachable_catalog_names_the_connection_not_the_password(monkeypatch, tmp_path):
    configure(monkeypatch, free_port(), "nowhere", tmp_path / "lake")
    with pytest.raises(WarehouseConfigError) as failure, connect():
        pass
    message = str(failure.value)
    assert "'socialpulse_warehouse'" in message and "'lake_catalog'" in message
    assert "127.0.0.1" in message
    assert PASSWORD not in message
