"""Where the warehouse is: the DuckDB file by default, or the Airflow connection
``SOCIALPULSE_WAREHOUSE_CONN_ID`` (a DuckDB file or DuckLake with a PostgreSQL catalog)."""

from __future__ import annotations

import json

import pytest

from socialpulse.config import DUCKDB_POOL, POOLS, pool_slots
from socialpulse.warehouse import WarehouseConfigError, warehouse_target

CATALOG = {
    "conn_type": "postgres",
    "host": "db.internal",
    "port": 5433,
    "login": "lake",
    "password": "s3cret-catalog-pw",
    "schema": "socialpulse_lake",
}


def use(monkeypatch, conn_id="socialpulse_warehouse", **connections):
    monkeypatch.setenv("SOCIALPULSE_WAREHOUSE_CONN_ID", conn_id)
    for name, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(conn))


def test_without_a_connection_the_warehouse_is_the_duckdb_file(data_dir):
    target = warehouse_target()
    assert (target.kind, target.path) == ("duckdb", data_dir / "warehouse.duckdb")
    assert not target.is_lake


def test_a_duckdb_connection_names_the_file_as_its_host(monkeypatch, tmp_path):
    path = tmp_path / "team.duckdb"
    conn = {"conn_type": "duckdb", "host": str(path), "extra": {"memory_limit": "2GB"}}
    use(monkeypatch, socialpulse_warehouse=conn)
    target = warehouse_target()
    assert (target.kind, target.path, target.conn_id) == ("duckdb", path, "socialpulse_warehouse")
    assert dict(target.config) == {"memory_limit": "2GB"}


def test_a_ducklake_connection_reads_its_catalog_connection(monkeypatch):
    warehouse = {
        "conn_type": "duckdb",
        "extra": {"ducklake_catalog_conn_id": "lake_catalog", "data_path": "s3://bucket/lake/"},
    }
    use(monkeypatch, socialpulse_warehouse=warehouse, lake_catalog=CATALOG)
    target = warehouse_target()
    assert target.is_lake
    assert dict(target.catalog) == {
        "host": "db.internal",
        "dbname": "socialpulse_lake",
        "port": "5433",
        "user": "lake",
    }
    assert target.catalog_password == "s3cret-catalog-pw"
    assert target.data_path == "s3://bucket/lake/"
    # the password is in neither the description nor the repr (logs, error messages)
    assert "s3cret" not in target.describe() and "s3cret" not in repr(target)
    assert "db.internal:5433/socialpulse_lake" in target.describe()


@pytest.mark.parametrize(
    ("connections", "message"),
    [
        ({}, "there is no Airflow connection 'socialpulse_warehouse'"),
        ({"socialpulse_warehouse": {"conn_type": "duckdb"}}, "names no warehouse"),
        (
            {"socialpulse_warehouse": {"conn_type": "duckdb", "host": ":memory:"}},
            "names no warehouse",
        ),
        (
            {
                "socialpulse_warehouse": {
                    "conn_type": "duckdb",
                    "extra": {"ducklake_catalog_conn_id": "lake_catalog"},
                }
            },
            "DuckLake needs extra data_path",
        ),
        (
            {
                "socialpulse_warehouse": {
                    "conn_type": "duckdb",
                    "extra": {"ducklake_catalog_conn_id": "lake_catalog", "data_path": "/d"},
                }
            },
            "catalog connection 'lake_catalog', which does not exist",
        ),
        (
            {
                "socialpulse_warehouse": {
                    "conn_type": "duckdb",
                    "extra": {"ducklake_catalog_conn_id": "lake_catalog", "data_path": "/d"},
                },
                "lake_catalog": {"conn_type": "postgres", "host": "db"},
            },
            "'lake_catalog' \\(the DuckLake catalog\\) needs a host and a database",
        ),
    ],
)
def test_a_broken_warehouse_connection_is_named_in_the_error(monkeypatch, connections, message):
    use(monkeypatch, **connections)
    with pytest.raises(WarehouseConfigError, match=message):
        warehouse_target()


def test_several_writers_on_a_duckdb_file_connection_are_refused(monkeypatch, tmp_path):
    conn = {"conn_type": "duckdb", "host": str(tmp_path / "team.duckdb")}
    use(monkeypatch, socialpulse_warehouse=conn)
    monkeypatch.setenv("SOCIALPULSE_WAREHOUSE_WRITERS", "3")
    with pytest.raises(WarehouseConfigError, match="takes one writer at a time"):
        warehouse_target()


def test_the_writers_pool_is_widened_only_for_a_warehouse_connection(monkeypatch, data_dir):
    assert pool_slots() == POOLS and POOLS[DUCKDB_POOL][0] == 1
    monkeypatch.setenv("SOCIALPULSE_WAREHOUSE_WRITERS", "4")
    with pytest.raises(ValueError, match="takes one writer at a time"):
        pool_slots()
    monkeypatch.setenv("SOCIALPULSE_WAREHOUSE_CONN_ID", "socialpulse_warehouse")
    slots = pool_slots()
    assert slots[DUCKDB_POOL][0] == 4
    assert {k: v for k, v in slots.items() if k != DUCKDB_POOL} == {
        k: v for k, v in POOLS.items() if k != DUCKDB_POOL
    }


def test_the_retry_delay_comes_from_the_environment(monkeypatch):
    from socialpulse.orchestration import DEFAULT_ARGS, _retry_delay

    assert DEFAULT_ARGS["retry_delay"].total_seconds() == 120
    monkeypatch.setenv("SOCIALPULSE_RETRY_DELAY_SECONDS", "7")
    assert _retry_delay().total_seconds() == 7


def _memory_limit(path) -> str:
    from socialpulse.warehouse import connect

    with connect(path) as con:
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def test_a_connection_has_a_memory_limit_by_default_and_the_extra_wins(
    data_dir, monkeypatch, tmp_path
):
    """DuckDB's own default (80 % of the machine per process) let a task's cache grow with
    the warehouse; socialpulse sets 1GB (DuckDB shows 10^9 bytes as 953.6 MiB)."""
    assert _memory_limit(tmp_path / "a.duckdb") == "953.6 MiB"
    monkeypatch.setenv("SOCIALPULSE_DUCKDB_MEMORY_LIMIT", "512MiB")
    assert _memory_limit(tmp_path / "b.duckdb") == "512.0 MiB"
    # the warehouse connection's extra memory_limit overrides the environment
    path = tmp_path / "c.duckdb"
    conn = {"conn_type": "duckdb", "host": str(path), "extra": {"memory_limit": "2GiB"}}
    use(monkeypatch, socialpulse_warehouse=conn)
    assert _memory_limit(None) == "2.0 GiB"


@pytest.mark.parametrize("value", ["lots", "1 G", "-1GB", "80%"])
def test_a_malformed_memory_limit_is_named(monkeypatch, value):
    from socialpulse.config import settings

    monkeypatch.setenv("SOCIALPULSE_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(ValueError, match="SOCIALPULSE_DUCKDB_MEMORY_LIMIT=.* is not a memory size"):
        settings()
