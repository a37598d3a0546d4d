"""The DuckDB warehouse: connection, raw DDL from the record schemas, idempotent loads.

Where: the DuckDB file ``SOCIALPULSE_WAREHOUSE`` by default, or what the Airflow connection
``SOCIALPULSE_WAREHOUSE_CONN_ID`` (type ``duckdb``, apache-airflow-providers-duckdb) says: a
DuckDB file (its host), or DuckLake (its extra ``ducklake_catalog_conn_id``, a PostgreSQL
connection holding the catalog, and ``data_path``, where the Parquet files go). DuckLake
takes concurrent writers (several load tasks on different workers commit at once) and gives
every reader a consistent snapshot.

The raw tables have no primary key, on either: the natural keys are kept by the load's
delete-then-insert below. A primary-key index made each replaced row an index lookup at
commit and kept every key in memory, costing more than the load itself (docs/benchmarks.md).

Layout: ``raw`` (loaded batches), ``ref`` (the registry), ``staging`` / ``intermediate`` /
``marts`` (the SQL models in ``include/sql``), ``ops`` (load audit, fetch errors, alerts sent).

Idempotence: a batch is loaded in one transaction as delete-then-insert on the table's
natural key, after de-duplicating the batch itself (the last row of a repeated key wins).
Loading the same batch twice therefore leaves identical tables.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
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


#: the name the DuckLake catalog is attached under (and made the default database)
LAKE_ALIAS = "warehouse"


class WarehouseConfigError(RuntimeError):
    """The warehouse connection is missing, malformed, or its catalog cannot be reached."""


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse is: a DuckDB file, or a DuckLake catalog in PostgreSQL."""

    kind: str  # "duckdb" | "ducklake"
    path: Path | None = None
    #: the Airflow connection it was read from (None: SOCIALPULSE_WAREHOUSE)
    conn_id: str | None = None
    #: DuckLake: the PostgreSQL connection of the catalog, as libpq keywords (no password)
    catalog: Mapping[str, str] | None = None
    catalog_password: str | None = field(default=None, repr=False)
    catalog_conn_id: str | None = None
    data_path: str | None = None
    #: DuckDB settings from the connection's extra (memory_limit, threads, temp_directory)
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_lake(self) -> bool:
        return self.kind == "ducklake"

    def describe(self) -> str:
        """Where it is, for messages and logs (never the password)."""
        if not self.is_lake:
            return f"DuckDB file {self.path}"
        c = self.catalog or {}
        where = f"{c.get('host', '')}:{c.get('port', '5432')}/{c.get('dbname', '')}"
        return (
            f"DuckLake (catalog: PostgreSQL {where} of connection {self.catalog_conn_id!r}, "
            f"data: {self.data_path})"
        )


def warehouse_target() -> WarehouseTarget:
    """The configured warehouse: ``SOCIALPULSE_WAREHOUSE_CONN_ID``'s connection, else the file."""
    s = settings()
    if s.warehouse_conn_id is None:
        return WarehouseTarget("duckdb", path=s.warehouse)
    target = target_from_connection(s.warehouse_conn_id)
    if not target.is_lake and s.warehouse_writers > 1:
        raise WarehouseConfigError(
            f"SOCIALPULSE_WAREHOUSE_WRITERS={s.warehouse_writers}, but connection "
            f"{s.warehouse_conn_id!r} names the {target.describe()}, which takes one writer "
            "at a time: make it a DuckLake connection or set the writers to 1 (and the pool "
            "socialpulse_duckdb to one slot)"
        )
    return target


def target_from_connection(conn_id: str) -> WarehouseTarget:
    """Read the warehouse's Airflow connection (type ``duckdb``) and its catalog's connection."""
    from socialpulse.orchestration import airflow_connection

    conn = airflow_connection(conn_id)
    if conn is None:
        raise WarehouseConfigError(
            f"SOCIALPULSE_WAREHOUSE_CONN_ID={conn_id}, but there is no Airflow connection "
            f"{conn_id!r} (add it in Admin > Connections or as AIRFLOW_CONN_{conn_id.upper()})"
        )
    extra = conn.get("extra") or {}
    if not isinstance(extra, dict):
        raise WarehouseConfigError(f"connection {conn_id!r}: its extra is not a JSON object")
    settings_keys = ("memory_limit", "threads", "temp_directory")
    config = {k: extra[k] for k in settings_keys if extra.get(k) is not None}
    config.update(extra.get("settings") or {})
    catalog_id = extra.get("ducklake_catalog_conn_id")
    if not catalog_id:
        path = extra.get("database") or conn.get("host")
        if not path or str(path).startswith(("md:", ":memory:", "ducklake:")):
            raise WarehouseConfigError(
                f"connection {conn_id!r} names no warehouse: give a DuckDB file path as its host, "
                "or DuckLake as extra ducklake_catalog_conn_id (a PostgreSQL connection) and "
                "data_path (docs/deploy.md)"
            )
        return WarehouseTarget("duckdb", path=Path(path), conn_id=conn_id, config=config)
    data_path = extra.get("data_path")
    if not data_path:
        raise WarehouseConfigError(
            f"connection {conn_id!r}: DuckLake needs extra data_path (a folder or an object "
            "store URL where the Parquet files go)"
        )
    cat = airflow_connection(catalog_id)
    if cat is None:
        raise WarehouseConfigError(
            f"connection {conn_id!r} names the DuckLake catalog connection {catalog_id!r}, "
            f"which does not exist (AIRFLOW_CONN_{catalog_id.upper()})"
        )
    if not cat.get("host") or not cat.get("schema"):
        raise WarehouseConfigError(
            f"connection {catalog_id!r} (the DuckLake catalog) needs a host and a database "
            "(the connection's schema field)"
        )
    catalog = {"host": cat["host"], "dbname": cat["schema"]}
    if cat.get("port"):
        catalog["port"] = str(cat["port"])
    if cat.get("login"):
        catalog["user"] = cat["login"]
    return WarehouseTarget(
        "ducklake",
        conn_id=conn_id,
        catalog=catalog,
        catalog_password=cat.get("password") or None,
        catalog_conn_id=catalog_id,
        data_path=str(data_path),
        config=config,
    )


def extension_directory() -> Path:
    """A DuckDB extension directory holding the ducklake and postgres extensions of the
    installed ``duckdb-extension-*`` packages (DuckDB cannot download them here)."""
    import importlib.util
    import os
    import tempfile

    import duckdb

    base = Path(tempfile.gettempdir()) / f"socialpulse-duckdb-extensions-{os.getuid()}"
    platform = duckdb.execute("pragma platform").fetchone()[0]
    folder = base / f"v{duckdb.__version__}" / platform
    for package, name in (("ducklake", "ducklake"), ("postgres", "postgres_scanner")):
        link = folder / f"{name}.duckdb_extension"
        if link.exists():
            continue
        spec = importlib.util.find_spec(f"duckdb_extension_{package}")
        if spec is None or not spec.submodule_search_locations:
            raise WarehouseConfigError(
                f"DuckLake needs the Python package duckdb-extension-{package} "
                f"(requirements.txt) for duckdb {duckdb.__version__}"
            )
        found = sorted(Path(spec.submodule_search_locations[0]).rglob("*.duckdb_extension"))
        if not found:
            raise WarehouseConfigError(f"duckdb-extension-{package} holds no extension file")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(found[0])
        os.replace(tmp, link)  # atomic: concurrent tasks never see half a link
    return base


@contextlib.contextmanager
def connect(
    path: str | Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating schemas and raw tables when writable), close it after.

    ``path``: that DuckDB file; None: the configured warehouse (:func:`warehouse_target`).
    """
    target = WarehouseTarget("duckdb", path=Path(path)) if path is not None else None
    con = open_target(target or warehouse_target(), read_only=read_only)
    try:
        con.execute("set TimeZone = 'UTC'")
        if not read_only:
            create_raw_tables(con)
        yield con
    finally:
        con.close()


def open_target(target: WarehouseTarget, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to ``target``; for DuckLake the catalog is attached and in use.

    Its memory limit is ``SOCIALPULSE_DUCKDB_MEMORY_LIMIT`` (1GB) unless the connection's
    extra sets one: DuckDB's own default, 80 % of the machine's memory per process, let a
    load or model task's buffer cache grow with the warehouse (3-4 GB at 10,000 companies,
    docs/benchmarks.md) although the work spills to disk within the limit.
    """
    import duckdb

    s = settings()
    config = {"memory_limit": s.duckdb_memory_limit, **target.config}
    if not target.is_lake:
        assert target.path is not None
        if not read_only:
            target.path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(target.path), read_only=read_only, config=config)
    con = duckdb.connect(
        config={
            # an in-memory database spills to ./.tmp of whatever folder the task runs in
            "temp_directory": str(s.duckdb_temp_dir),
            **config,
            "extension_directory": str(extension_directory()),
            "autoinstall_known_extensions": False,
        }
    )
    try:
        _attach_lake(con, target, read_only)
    except BaseException:
        con.close()
        raise
    return con


def _attach_lake(con: duckdb.DuckDBPyConnection, target: WarehouseTarget, read_only: bool) -> None:
    import duckdb

    catalog = dict(target.catalog or {})
    if target.catalog_password:
        # the password goes into a session secret, never into the ATTACH string (or errors)
        params = ", ".join(f"{k} ?" for k in ("host", "port", "database", "user", "password"))
        values = [
            catalog.get("host"),
            int(catalog.get("port", 5432)),
            catalog.get("dbname"),
            catalog.get("user"),
            target.catalog_password,
        ]
        con.execute(
            f"create or replace temporary secret _sp_lake (type postgres, {params})", values
        )
    dsn = " ".join(f"{k}={v}" for k, v in catalog.items())
    data_path = target.data_path or ""
    if not read_only and "://" not in data_path:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    options = f"data_path {sql_string(data_path)}" + (", read_only" if read_only else "")
    try:  # ATTACH takes no parameters: literals, quoted
        con.execute(f"attach {sql_string('ducklake:postgres:' + dsn)} as {LAKE_ALIAS} ({options})")
    except duckdb.Error as exc:
        raise WarehouseConfigError(
            f"cannot open the warehouse of connection {target.conn_id!r}, "
            f"{target.describe()}: {exc}"
        ) from exc
    con.execute(f"use {LAKE_ALIAS}")


def sql_string(value: str) -> str:
    """``value`` as a quoted SQL string literal, where DuckDB takes no parameter (ATTACH, COPY)."""
    return "'" + value.replace("'", "''") + "'"


def _primary_key(key: Sequence[str], primary_key: bool) -> str:
    """The table's primary key clause; none on DuckLake (no constraints but NOT NULL)."""
    return f",\n  primary key ({', '.join(key)})" if primary_key else ""


def raw_ddl(schema: RecordSchema, name: str | None = None) -> str:
    """A raw table's DDL: its columns and NOT NULLs, no primary key (the load keeps the
    natural key; an index on it cost more than the load itself, see docs/benchmarks.md)."""
    cols = ",\n  ".join(
        f"{c.name} {c.type}{'' if c.nullable else ' not null'}" for c in schema.columns
    )
    return f"create table if not exists {name or schema.qualified} (\n  {cols}\n)"


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s default database is a DuckLake catalog (no primary keys there)."""
    found = con.execute(
        "select type from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    return bool(found and found[0] == "ducklake")


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or migrate) the schemas and the raw, ref and ops tables, in one transaction
    (on DuckLake every commit is a round trip to the catalog)."""
    con.execute("begin transaction")
    try:
        _create_raw_tables(con)
        con.execute("commit")
    except BaseException:
        _rollback(con)
        raise


def _create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    lake = is_lake(con)
    for s in SCHEMAS:
        con.execute(f"create schema if not exists {s}")
    for schema in RAW_SCHEMAS.values():
        con.execute(raw_ddl(schema))
        _migrate_raw_table(con, schema)
        _drop_primary_key(con, schema)
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
          loaded_at timestamp not null default (now()::timestamp){pk}
        )
        """.format(pk=_primary_key(("batch_id", "table_name"), not lake))
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
          sent_at timestamp not null default (now()::timestamp){pk}
        )
        """.format(
            pk=_primary_key(
                ("company_id", "period_type", "period_start", "alert", "channel"), not lake
            )
        )
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


def _drop_primary_key(con: duckdb.DuckDBPyConnection, schema: RecordSchema) -> None:
    """A raw table created with a primary key (warehouses made before December 2026) is rebuilt without it, once:
    DuckDB cannot drop a constraint, so the rows are copied into a new table."""
    keyed = con.execute(
        "select count(*) from duckdb_constraints() where database_name = current_database() "
        "and schema_name = 'raw' and table_name = ? and constraint_type = 'PRIMARY KEY'",
        [schema.table],
    ).fetchone()[0]
    if not keyed:
        return
    log.info("%s: rebuilding the table without its primary-key index (once)", schema.qualified)
    rebuilt = f"raw._{schema.table}_rebuilt"
    cols = ", ".join(schema.names)
    con.execute(raw_ddl(schema, rebuilt))
    con.execute(f"insert into {rebuilt} ({cols}) select {cols} from {schema.qualified}")
    con.execute(f"drop table {schema.qualified}")
    con.execute(f"alter table {rebuilt} rename to {schema.table}")


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
    keys_unique: bool = False,
) -> dict[str, int]:
    """Load one validated batch, all its tables in one transaction. Returns rows per table.

    For every table: de-duplicate the batch on the natural key (last row wins), delete the
    rows with those keys, insert the batch. A failure rolls everything back.
    ``keys_unique``: the caller guarantees that no natural key repeats within a table (the
    Great Expectations gate checks exactly that on every batch it passes), so the batch's
    own duplicate check (a tenth of the load) is skipped.
    """
    counts: dict[str, int] = {}
    con.execute("begin transaction")
    try:
        commit_message(con, f"load batch {batch_id}")
        log.info(
            "batch %s: transaction open, replacing %s rows in %s",
            batch_id,
            sum(t.num_rows for t in tables.values()),
            ", ".join(f"raw.{t}" for t in tables),
        )
        for table, data in tables.items():
            schema = RAW_SCHEMAS[table]
            counts[table] = _replace_keys(con, schema, batch_id, data, keys_unique)
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
    con: duckdb.DuckDBPyConnection,
    schema: RecordSchema,
    batch_id: str,
    data: pa.Table,
    keys_unique: bool = False,
) -> int:
    """Replace the rows of ``data``'s natural keys in ``schema``'s table by ``data``.

    The Arrow table is scanned in place (no copy) unless it repeats a key (then the last
    row of each key is kept, in a temporary table) or the table has sticky columns (which
    need an update). The raw tables have no primary-key index (it made every replaced row
    a lookup at commit and held all keys in memory): the natural key is kept here, by
    deleting the batch's keys before inserting it, in the caller's transaction.
    """
    cols = ", ".join(schema.names)
    key = ", ".join(schema.key)
    view = f"_batch_{schema.table}"
    con.register(view, data)
    try:
        repeated = (
            0
            if keys_unique
            else con.execute(
                f"select count(*) from (select 1 from {view} group by {key} having count(*) > 1)"
            ).fetchone()[0]
        )
        source = view
        if repeated or schema.sticky:
            source = "_incoming"
            _materialise(con, schema, data, bool(repeated))
        match = " and ".join(f"t.{k} = i.{k}" for k in schema.key)
        if schema.sticky:
            keep = ", ".join(f"{c} = coalesce(i.{c}, t.{c})" for c in schema.sticky)
            con.execute(
                f"update _incoming as i set {keep} from {schema.qualified} as t where {match}"
            )
        replaced = con.execute(
            f"delete from {schema.qualified} as t using {source} as i where {match}"
        ).fetchone()[0]
        n = con.execute(
            f"insert into {schema.qualified} ({cols}) select {cols} from {source}"
        ).fetchone()[0]
        if source == "_incoming":
            con.execute("drop table _incoming")
    finally:
        con.unregister(view)
    # one row per batch and table, loaded_at set on every load (a rerun shows when it was
    # loaded again); delete-then-insert rather than `insert or replace`, which needs a primary
    # key (DuckLake has none)
    con.execute(
        "delete from ops.load_log where batch_id = ? and table_name = ?", [batch_id, schema.table]
    )
    con.execute(
        "insert into ops.load_log "
        "(batch_id, table_name, rows_in_batch, rows_replaced, loaded_at) "
        "values (?, ?, ?, ?, now()::timestamp)",
        [batch_id, schema.table, n, replaced],
    )
    return n


def _materialise(
    con: duckdb.DuckDBPyConnection, schema: RecordSchema, data: pa.Table, repeated: bool
) -> None:
    """The batch as temp table ``_incoming``, with one row per natural key: the last one in
    the connector's order (numbered here, as a scan's order is not guaranteed)."""
    import pyarrow as pa

    cols = ", ".join(schema.names)
    if not repeated:
        con.register("_numbered", data)
        dedupe = ""
    else:
        con.register(
            "_numbered", data.append_column("_pos", pa.array(range(data.num_rows), pa.int64()))
        )
        key = ", ".join(schema.key)
        dedupe = f"qualify row_number() over (partition by {key} order by _pos desc) = 1"
    try:
        con.execute(
            f"create or replace temp table _incoming as select {cols} from _numbered {dedupe}"
        )
    finally:
        con.unregister("_numbered")


def commit_message(con: duckdb.DuckDBPyConnection, message: str) -> None:
    """On DuckLake, name the open transaction's snapshot (``ducklake_snapshots()`` shows who
    committed what: author ``socialpulse``, e.g. ``load batch sample-...-b001``)."""
    if is_lake(con):
        con.execute(
            "call ducklake_set_commit_message(current_database(), 'socialpulse', ?)", [message]
        )


def replace_reference_tables(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table]
) -> None:
    """Replace the ``ref`` tables with the registry's current content, in one transaction."""
    con.execute("begin transaction")
    try:
        commit_message(con, "sync registry")
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
        con.execute(f"attach {sql_string(str(tmp))} as analytics_copy")
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
