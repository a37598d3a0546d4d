"""The DuckDB warehouse: connection, raw DDL from the record schemas, idempotent loads.

Layout: ``raw`` (loaded batches), ``ref`` (the registry), ``staging`` / ``intermediate`` /
``marts`` (the SQL models in ``include/sql``), ``ops`` (load audit, fetch errors, alerts sent).

Idempotence: a batch is loaded in one transaction as delete-then-insert on the table's
natural key, after de-duplicating the batch itself (the last row of a repeated key wins).
Loading the same batch twice therefore leaves identical tables.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialpulse.config import settings
from socialpulse.records import RAW_SCHEMAS, RecordSchema
from socialpulse.registry import REF_TABLES

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import duckdb
    import pyarrow as pa

log = logging.getLogger(__name__)

SCHEMAS = ("raw", "ref", "staging", "intermediate", "marts", "ops")


def warehouse_path() -> Path:
    """``SOCIALPULSE_WAREHOUSE`` or ``data/warehouse.duckdb`` in the project."""
    return settings().warehouse


@contextlib.contextmanager
def connect(
    path: str | Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating schemas and raw tables when writable), close it after."""
    import duckdb

    path = Path(path) if path is not None else warehouse_path()
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        con.execute("set TimeZone = 'UTC'")
        if not read_only:
            create_raw_tables(con)
        yield con
    finally:
        con.close()


def raw_ddl(schema: RecordSchema) -> str:
    cols = ",\n  ".join(
        f"{c.name} {c.type}{'' if c.nullable else ' not null'}" for c in schema.columns
    )
    key = ", ".join(schema.key)
    return f"create table if not exists {schema.qualified} (\n  {cols},\n  primary key ({key})\n)"


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    for s in SCHEMAS:
        con.execute(f"create schema if not exists {s}")
    for schema in RAW_SCHEMAS.values():
        con.execute(raw_ddl(schema))
        _migrate_raw_table(con, schema)
        _check_columns(con, schema)
    for table, cols in REF_TABLES.items():
        body = ", ".join(f"{n} {t}" for n, t in cols.items())
        con.execute(f"create table if not exists ref.{table} ({body})")
        for n, t in cols.items():  # warehouses created before a column existed
            con.execute(f"alter table ref.{table} add column if not exists {n} {t}")
    con.execute(
        """
        create table if not exists ops.load_log (
          batch_id varchar not null,
          table_name varchar not null,
          rows_in_batch bigint not null,
          rows_replaced bigint not null,
          loaded_at timestamp not null default (now()::timestamp),
          primary key (batch_id, table_name)
        )
        """
    )
    con.execute(
        """
        create table if not exists ops.fetch_errors (
          batch_id varchar not null,
          run_id varchar,
          platform varchar not null,
          company_id varchar not null,
          handle varchar not null,
          severity varchar not null default 'error',
          error varchar not null,
          recorded_at timestamp not null default (now()::timestamp)
        )
        """
    )
    # the liveliness alerts (marts.alerts) already notified, per channel: never sent twice
    con.execute(
        """
        create table if not exists ops.alerts_sent (
          company_id varchar not null,
          period_type varchar not null,
          period_start date not null,
          alert varchar not null,
          channel varchar not null,
          run_id varchar,
          sent_at timestamp not null default (now()::timestamp),
          primary key (company_id, period_type, period_start, alert, channel)
        )
        """
    )
    # warehouses created before these columns existed
    con.execute("alter table ops.fetch_errors add column if not exists run_id varchar")
    con.execute(
        "alter table ops.fetch_errors add column if not exists severity varchar default 'error'"
    )


class WarehouseSchemaError(RuntimeError):
    """A raw table in the warehouse file does not match its record schema."""


def _migrate_raw_table(con: duckdb.DuckDBPyConnection, schema: RecordSchema) -> None:
    """Bring a raw table of an older warehouse up to its record schema, in place.

    Only additive changes are migrated: nullable columns appended to the schema are added
    (null in the rows loaded before), and columns the schema now allows to be null lose
    their NOT NULL. Anything else is left to :func:`_check_columns`, which refuses it.
    """
    found = {
        name: nullable == "YES"
        for name, nullable in con.execute(
            "select column_name, is_nullable from information_schema.columns "
            "where table_schema = 'raw' and table_name = ?",
            [schema.table],
        ).fetchall()
    }
    names = schema.names
    present = [n for n in names if n in found]
    if present != names[: len(present)]:
        return  # not an older version of this schema: _check_columns names the difference
    for column in schema.columns:
        if column.name not in found:
            if not column.nullable:
                return
            con.execute(f"alter table {schema.qualified} add column {column.name} {column.type}")
        elif column.nullable and not found[column.name]:
            con.execute(f"alter table {schema.qualified} alter column {column.name} drop not null")


def _check_columns(con: duckdb.DuckDBPyConnection, schema: RecordSchema) -> None:
    found = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? order by ordinal_position",
            [schema.table],
        ).fetchall()
    ]
    if found != schema.names:
        raise WarehouseSchemaError(
            f"{schema.qualified} in the warehouse has columns {found}, but the record schema "
            f"has {schema.names}: the file was created by another version of socialpulse. "
            "Move it away (or `make clean`) and rerun to rebuild it from the sources."
        )


def record_fetch_errors(
    con: duckdb.DuckDBPyConnection, batch_id: str, run_id: str, errors: list[dict[str, str]]
) -> None:
    """Replace the batch's entries in ``ops.fetch_errors`` (a rerun that succeeds clears them)."""
    con.execute("delete from ops.fetch_errors where batch_id = ?", [batch_id])
    if errors:
        con.executemany(
            "insert into ops.fetch_errors "
            "(batch_id, run_id, platform, company_id, handle, severity, error) "
            "values (?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    batch_id,
                    run_id,
                    e["platform"],
                    e["company_id"],
                    e["handle"],
                    e.get("severity", "error"),
                    e["error"],
                ]
                for e in errors
            ],
        )


def load_batch(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    tables: Mapping[str, pa.Table],
) -> dict[str, int]:
    """Load one validated batch, all its tables in one transaction. Returns rows per table.

    For every table: de-duplicate the batch on the natural key (last row wins), delete the
    rows with those keys, insert the batch. A failure rolls everything back.
    """
    counts: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        for table, data in tables.items():
            schema = RAW_SCHEMAS[table]
            counts[table] = _replace_keys(con, schema, batch_id, data)
        con.execute("commit")
    except BaseException:
        _rollback(con)
        raise
    return counts


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open; never hide the error that led here.

    A commit that fails (a full disk) ends the transaction itself: a second error from the
    rollback ("no transaction is active") would replace the real cause.
    """
    try:
        con.execute("rollback")
    except Exception as exc:  # noqa: BLE001 - the caller re-raises the real cause
        log.debug("rollback after a failed transaction: %s", exc)


def _replace_keys(
    con: duckdb.DuckDBPyConnection, schema: RecordSchema, batch_id: str, data: pa.Table
) -> int:
    cols = ", ".join(schema.names)
    key = ", ".join(schema.key)
    import pyarrow as pa

    view = f"_batch_{schema.table}"
    # last row of a repeated key wins: number the rows in the connector's order first
    con.register(view, data.append_column("_pos", pa.array(range(data.num_rows), pa.int64())))
    try:
        con.execute(
            f"""
            create or replace temp table _incoming as
            select {cols} from {view}
            qualify row_number() over (partition by {key} order by _pos desc) = 1
            """
        )
    finally:
        con.unregister(view)
    match = " and ".join(f"t.{k} = i.{k}" for k in schema.key)
    if schema.sticky:
        keep = ", ".join(f"{c} = coalesce(i.{c}, t.{c})" for c in schema.sticky)
        con.execute(f"update _incoming as i set {keep} from {schema.qualified} as t where {match}")
    replaced = con.execute(
        f"delete from {schema.qualified} as t using _incoming as i where {match}"
    ).fetchone()[0]
    con.execute(f"insert into {schema.qualified} ({cols}) select {cols} from _incoming")
    n = con.execute("select count(*) from _incoming").fetchone()[0]
    con.execute("drop table _incoming")
    # loaded_at is set on every load: `insert or replace` keeps a column it is not given, and
    # a rerun of the batch must show when it was loaded again
    con.execute(
        "insert or replace into ops.load_log "
        "(batch_id, table_name, rows_in_batch, rows_replaced, loaded_at) "
        "values (?, ?, ?, ?, now()::timestamp)",
        [batch_id, schema.table, n, replaced],
    )
    return n


def replace_reference_tables(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table]
) -> None:
    """Replace the ``ref`` tables with the registry's current content, in one transaction."""
    con.execute("begin transaction")
    try:
        for table, data in tables.items():
            if table not in REF_TABLES:
                raise ValueError(f"unknown reference table {table!r}")
            con.register("_ref_incoming", data)
            con.execute(f"delete from ref.{table}")
            con.execute(f"insert into ref.{table} by name select * from _ref_incoming")
            con.unregister("_ref_incoming")
        con.execute("commit")
    except BaseException:
        _rollback(con)
        raise


def dict_rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """The query's rows as dicts keyed by column name."""
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists (a table or a view)."""
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


def table_counts(con: duckdb.DuckDBPyConnection, schema: str = "raw") -> dict[str, int]:
    names = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1",
            [schema],
        ).fetchall()
    ]
    return {n: con.execute(f'select count(*) from {schema}."{n}"').fetchone()[0] for n in names}


def publish_analytics_copy(con: duckdb.DuckDBPyConnection, dest: Path) -> Path:
    """Publish the warehouse as a new file and rename it over ``dest`` (atomic).

    Readers (analysts, dashboards) open ``dest`` read-only. A reader that holds the old copy
    open keeps reading it (the rename never touches an open file), and no reader ever sees a
    half-written file or blocks the pipeline, which only ever writes its own warehouse.
    """
    import os
    import uuid

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    source = con.execute("select current_database()").fetchone()[0]
    try:
        con.execute("attach ? as analytics_copy", [str(tmp)])
        try:
            con.execute(f'copy from database "{source}" to analytics_copy')
            con.execute("checkpoint analytics_copy")
        finally:
            con.execute("detach analytics_copy")
        os.replace(tmp, dest)
    except BaseException:
        # a failed copy (a full disk, say) leaves nothing behind: neither the half-written
        # file nor its write-ahead log, whichever retry this was
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    return dest
