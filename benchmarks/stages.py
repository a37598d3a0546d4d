"""The benchmark's data stages, each run in a fresh process by bench_pipeline.py:

    python benchmarks/stages.py <stage> <size> <folder>

prints one JSON line: the stage's seconds, rows, its own figures and its peak memory (max RSS
of this process, so each stage's memory is its own).

**Sizes.** The sample platform's 40 companies are generated for ``days`` days and then
*tiled*: copy ``t`` of every row gets ``-t00007``-style suffixes on its company, account,
post, reply, author and probe ids, so 10,240 companies are 256 copies of the 40 with the
sample's mix of craft businesses and corporations, and generating them costs one DuckDB
query instead of 256 runs of the generator. The data are loaded, as production does, batch
by batch: a batch is at most :data:`BATCH_TILES` copies (640 companies, about 0.5 M post
observations and 4 M raw rows at 35 days).

``generate`` writes ``<folder>/<size>/batches/bNNN/<table>.parquet`` and the registry's
reference tables; ``load`` builds ``<folder>/<size>/load.duckdb`` from them, which
``models`` then reads.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parent))  # the fetch, parse and e2e modules beside

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb
    import pyarrow as pa

#: the sample registry's companies: one tile
TILE = 40
#: companies per loaded batch, in tiles (160 companies: about 1.2 M raw rows at 35 days)
BATCH_TILES = 4
#: the row-by-row baseline is slow: it is timed on this many rows of each table
ROWWISE_ROWS = 10_000
#: the registry the ``plan`` stage parses
PLAN_COMPANIES = 20_000
SAMPLE_END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
#: the columns that identify a company or one of its things: suffixed per tile
ID_COLUMNS = frozenset(
    {
        "company_id",
        "account_id",
        "handle",
        "post_id",
        "reply_id",
        "root_post_id",
        "in_reply_to_id",
        "author_id",
        "probe_id",
        "url",
    }
)


@dataclass(frozen=True)
class Size:
    name: str
    companies: int
    days: int

    @property
    def tiles(self) -> int:
        return self.companies // TILE

    def batches(self) -> list[range]:
        """The tiles of each loaded batch."""
        return [
            range(start, min(start + BATCH_TILES, self.tiles))
            for start in range(0, self.tiles, BATCH_TILES)
        ]


#: ``--size quick`` runs in seconds (CI); ``--size full`` shows growth over 16x
SIZES: dict[str, tuple[Size, ...]] = {
    "quick": (Size("quick", 40, 7),),
    "full": (Size("1x", 640, 35), Size("4x", 2_560, 35), Size("16x", 10_240, 35)),
}
SIZE_BY_NAME = {s.name: s for sizes in SIZES.values() for s in sizes}


def sample_tables(days: int) -> dict[str, pa.Table]:
    """The 40 sample companies' batch of ``days`` days up to SAMPLE_END."""
    from socialpulse.config import SAMPLE_COMPANIES
    from socialpulse.pipeline import account_refs
    from socialpulse.platforms.base import FetchWindow
    from socialpulse.platforms.sample import SamplePlatform
    from socialpulse.registry import load_registry

    refs = account_refs(load_registry(SAMPLE_COMPANIES), "sample")
    window = FetchWindow(SAMPLE_END - dt.timedelta(days=days), SAMPLE_END, dt.timedelta(days=28))
    return SamplePlatform().fetch(refs, window).tables()


def tile_sql(table: str, names: list[str], tiles: range) -> str:
    """``table`` repeated once per tile, its id columns suffixed with the tile's number."""
    cols = ", ".join(
        f"{c} || '-t' || lpad(tile::varchar, 5, '0') as {c}" if c in ID_COLUMNS else c
        for c in names
    )
    return f"select {cols} from {table}, range({tiles.start}, {tiles.stop}) as r(tile)"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def read_tables(folder: Path) -> dict[str, pa.Table]:
    import pyarrow.parquet as pq

    return {p.stem: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}


def batch_folders(folder: Path) -> list[Path]:
    return sorted((folder / "batches").iterdir())


def rows_of(tables: dict[str, pa.Table]) -> int:
    return sum(t.num_rows for t in tables.values())


def generate(size: Size, folder: Path) -> dict[str, Any]:
    """The sample's 40 companies for ``size.days`` days, tiled to ``size.companies``."""
    import duckdb

    from socialpulse.config import SAMPLE_COMPANIES
    from socialpulse.registry import load_registry, reference_tables
    from socialpulse.warehouse import sql_string

    sample_secs, base = timed(lambda: sample_tables(size.days))
    refs = reference_tables(load_registry(SAMPLE_COMPANIES))
    rows: dict[str, int] = {}
    start = time.perf_counter()
    con = duckdb.connect()
    for name, table in {**base, **{f"ref_{n}": t for n, t in refs.items()}}.items():
        con.register(name, table)
    for n, batch in enumerate(size.batches()):
        out = folder / "batches" / f"b{n:03d}"
        out.mkdir(parents=True)
        for name, table in base.items():
            query = tile_sql(name, table.schema.names, batch)
            con.execute(f"copy ({query}) to {sql_string(str(out / f'{name}.parquet'))}")
            rows[name] = rows.get(name, 0) + table.num_rows * len(batch)
    ref_out = folder / "ref"
    ref_out.mkdir()
    for name, table in refs.items():
        tiles = range(size.tiles) if "company_id" in table.schema.names else range(1)
        query = tile_sql(f"ref_{name}", table.schema.names, tiles)
        con.execute(f"copy ({query}) to {sql_string(str(ref_out / f'{name}.parquet'))}")
    con.close()
    tile_secs = time.perf_counter() - start
    return {
        "seconds": sample_secs + tile_secs,
        "sample_seconds": sample_secs,
        "tile_seconds": tile_secs,
        "rows": sum(rows.values()),
        "table_rows": rows,
        "companies": size.companies,
        "batches": len(size.batches()),
    }


def next_day(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """A daily run's batch: the batch's last observation day, one day later (new keys)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for name, table in tables.items():
        if name == "probes":
            continue  # keyed on probe_id alone: a day later would replace, not add
        last = pc.max(table["observed_at"])
        day = table.filter(pc.equal(table["observed_at"], last))
        later = pc.add(day["observed_at"], pa.scalar(dt.timedelta(days=1), pa.duration("us")))
        index = day.schema.get_field_index("observed_at")
        out[name] = day.set_column(index, "observed_at", later.cast(pa.timestamp("us")))
    return out


def fresh(database: Path) -> None:
    """Remove the DuckDB file ``database`` (and its WAL) of an earlier run of the stage."""
    for path in (database, database.with_name(database.name + ".wal")):
        path.unlink(missing_ok=True)


def load(size: Size, folder: Path) -> dict[str, Any]:
    """Every batch loaded into an empty warehouse (the registry's tables first), in one
    process and connection (a backfill's worth of load tasks, without their startup)."""
    from socialpulse import warehouse

    seconds = []
    rows = 0
    fresh(folder / "load.duckdb")
    with warehouse.connect(folder / "load.duckdb") as con:
        warehouse.replace_reference_tables(con, read_tables(folder / "ref"))
        for path in batch_folders(folder):
            tables = read_tables(path)
            secs, _ = timed(
                lambda t=tables, p=path: warehouse.load_batch(con, p.name, t, keys_unique=True)
            )
            seconds.append(secs)
            rows += rows_of(tables)
            del tables  # one batch's Arrow tables in memory at a time, as in a load task
    return {"seconds": sum(seconds), "rows": rows, "batch_seconds": seconds}


def reload(size: Size, folder: Path) -> dict[str, Any]:
    """What one load task does, in a process of its own (its peak memory is a load task's):
    the last batch loaded again into the full warehouse (the rerun of a load, idempotent:
    its rows replace themselves), then one daily run's batch of the first batch's
    companies (a day the warehouse has not seen), which is taken out again for the models.
    """
    from socialpulse import warehouse

    last = batch_folders(folder)[-1]
    tables = read_tables(last)
    with warehouse.connect(folder / "load.duckdb") as con:
        again, _ = timed(lambda t=tables: warehouse.load_batch(con, last.name, t, keys_unique=True))
        replaced = con.execute(
            "select sum(rows_replaced) from ops.load_log where batch_id = ?", [last.name]
        ).fetchone()[0]
        rows = rows_of(tables)
        del tables
        daily = next_day(read_tables(batch_folders(folder)[0]))
        daily_secs, _ = timed(
            lambda: warehouse.load_batch(con, "next-day", daily, keys_unique=True)
        )
        con.execute("delete from ops.load_log where batch_id = 'next-day'")
        for name in daily:  # the models' stage reads the warehouse the batches made
            con.execute(
                f"delete from raw.{name} where observed_at > ?", [SAMPLE_END.replace(tzinfo=None)]
            )
    return {
        "seconds": again,
        "rows": rows,
        "rows_replaced": replaced,
        "daily_seconds": daily_secs,
        "daily_rows": rows_of(daily),
    }


def append(size: Size, folder: Path) -> dict[str, Any]:
    """The load's baseline: each batch's Arrow tables appended as they are (one transaction
    per batch, like the load) to tables of the same columns without keys, in an empty file.
    No de-duplication, no replacing: what DuckDB itself does with the same data, with the
    memory limit the load's connection has."""
    import duckdb

    from socialpulse.config import settings
    from socialpulse.records import RAW_SCHEMAS
    from socialpulse.warehouse import raw_ddl

    seconds = 0.0
    rows = 0
    fresh(folder / "append.duckdb")
    con = duckdb.connect(
        str(folder / "append.duckdb"), config={"memory_limit": settings().duckdb_memory_limit}
    )
    con.execute("create schema raw")
    for schema in RAW_SCHEMAS.values():
        con.execute(raw_ddl(schema))
    for path in batch_folders(folder):
        tables = read_tables(path)

        def insert(tables: dict[str, pa.Table] = tables) -> None:
            con.execute("begin")
            for name, table in tables.items():
                con.register("_arrow", table)
                con.execute(f"insert into raw.{name} select * from _arrow")
                con.unregister("_arrow")
            con.execute("commit")

        secs, _ = timed(insert)
        seconds += secs
        rows += rows_of(tables)
        del tables, insert  # one batch's Arrow tables in memory at a time, as in a task
    con.close()
    return {"seconds": seconds, "rows": rows}


def load_rowwise(size: Size, folder: Path) -> dict[str, Any]:
    """What a naive loader would do: ``executemany`` of the rows, in one transaction (on the
    first ROWWISE_ROWS rows of each table; it is slow)."""
    from socialpulse import warehouse
    from socialpulse.records import RAW_SCHEMAS

    tables = {n: t.slice(0, ROWWISE_ROWS) for n, t in read_tables(batch_folders(folder)[0]).items()}
    fresh(folder / "load_rowwise.duckdb")
    with warehouse.connect(folder / "load_rowwise.duckdb") as con:

        def rowwise() -> None:
            con.execute("begin")
            for name, table in tables.items():
                schema = RAW_SCHEMAS[name]
                marks = ", ".join("?" for _ in schema.names)
                con.executemany(
                    f"insert into {schema.qualified} values ({marks})",
                    [list(r.values()) for r in table.to_pylist()],
                )
            con.execute("commit")

        secs, _ = timed(rowwise)
    return {"seconds": secs, "rows": rows_of(tables)}


def validate(size: Size, folder: Path) -> dict[str, Any]:
    """The Great Expectations gate on every batch, then the Data Docs of them all, as the
    ingest DAG does (validate tasks store results; one data_docs task renders them).
    Importing GX (seconds, once per task process) is timed apart: it is not the gate's cost
    per row."""
    import_secs, _ = timed(lambda: __import__("great_expectations"))

    from socialpulse.validation import build_docs, validate_batch

    seconds = []
    rows = 0
    for path in batch_folders(folder):
        tables = read_tables(path)
        secs, report = timed(
            lambda t=tables, p=path: validate_batch(
                p.name, t, quarantine_dir=folder / "q", docs=False
            )
        )
        if not report.success:
            raise SystemExit(f"batch {path.name} failed validation: {report.failures[:3]}")
        seconds.append(secs)
        rows += rows_of(tables)
    docs_secs, docs = timed(build_docs)
    if not docs["docs"]:
        raise SystemExit("the GX Data Docs could not be built (see the log)")
    return {
        "seconds": sum(seconds) + docs_secs,
        "rows": rows,
        "batch_seconds": seconds,
        "docs_seconds": docs_secs,
        "import_seconds": import_secs,
    }


#: the models' baseline: one aggregate scan of the largest fact table the models read
SCAN_SQL = """
select account_id, count(*), sum(likes), sum(replies), sum(reposts), max(observed_at)
from raw.post_observations
group by account_id
"""


def models(size: Size, folder: Path) -> dict[str, Any]:
    """Every SQL model built over the loaded warehouse, against one ``group by account``
    scan of its post observations."""
    from socialpulse import models as sql_models
    from socialpulse import warehouse

    ordered = sql_models.discover()
    staging = [m for m in ordered if m.layer == sql_models.SOURCE_LAYER]
    each: dict[str, float] = {}
    with warehouse.connect(folder / "load.duckdb") as con:
        scan_secs, _ = timed(lambda: con.execute(SCAN_SQL).fetchall())
        each["staging (one transaction)"], _ = timed(
            lambda: sql_models.build_in_one_transaction(con, staging)
        )
        for m in ordered:
            if m.layer != sql_models.SOURCE_LAYER:
                each[m.qualified], _ = timed(lambda m=m: sql_models.build_model(con, m))
        counts = _counts(con)
    return {
        "seconds": sum(each.values()),
        "scan_seconds": scan_secs,
        "rows": counts["raw.post_observations"],
        "raw_rows": sum(counts.values()),
        "slowest": dict(sorted(each.items(), key=lambda kv: -kv[1])[:5]),
    }


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    from socialpulse.warehouse import table_counts

    return {f"raw.{k}": v for k, v in table_counts(con, "raw").items()}


def plan(size: Size, folder: Path) -> dict[str, Any]:
    """A large registry (PLAN_COMPANIES companies) parsed once, its batches as references."""
    import yaml

    from socialpulse import pipeline

    registry = folder / "big.yaml"
    companies = [
        {
            "id": f"co-{i:05d}",
            "name": f"Company {i}",
            "segment": "craft",
            "employees": 3,
            "accounts": [
                {"platform": "sample", "handle": f"co-{i:05d}", "options": {"profile": "craft"}}
            ],
        }
        for i in range(PLAN_COMPANIES)
    ]
    registry.write_text(yaml.safe_dump({"companies": companies}))
    secs, refs = timed(lambda: pipeline.plan_run("bench-plan", str(registry)))
    inline = pipeline.plan_batches(str(registry))  # what XCom carried before: every account
    return {
        "seconds": secs,
        "rows": PLAN_COMPANIES,
        "xcom_bytes": len(json.dumps(refs)),
        "xcom_bytes_inline": len(json.dumps(inline)),
    }


def fetch(size: Size, folder: Path) -> dict[str, Any]:
    """The Mastodon connector against the local emulator, at a scaled-down rate limit."""
    from fetch_bench import fetch_limited

    return fetch_limited(size.name == "quick", folder)


def fetch_nolimit(size: Size, folder: Path) -> dict[str, Any]:
    """The same without a limit: throughput against concurrency / latency."""
    from fetch_bench import fetch_unlimited

    return fetch_unlimited(size.name == "quick", folder)


def parse(size: Size, folder: Path) -> dict[str, Any]:
    """Each DAG file parsed by a DagBag, against an empty DAG file."""
    from parse_bench import parse as parse_files

    return parse_files(size.name == "quick", folder)


#: the end-to-end run's registry
E2E_COMPANIES = 1_000


def e2e(size: Size, folder: Path) -> dict[str, Any]:
    """One daily run for E2E_COMPANIES companies through Airflow, against the stages direct."""
    from e2e_bench import e2e as run_e2e

    return run_e2e(E2E_COMPANIES if size.name != "quick" else TILE, folder)


def load_lake(size: Size, folder: Path) -> dict[str, Any]:
    """``load`` on a DuckLake warehouse (its catalog in a PostgreSQL started for the stage)."""
    from lake_bench import load_lake as run

    return run(size, folder)


def models_lake(size: Size, folder: Path) -> dict[str, Any]:
    """``models`` on the DuckLake warehouse ``load_lake`` left in the folder."""
    from lake_bench import models_lake as run

    return run(size, folder)


STAGES: dict[str, Callable[[Size, Path], dict[str, Any]]] = {
    "generate": generate,
    "load": load,
    "reload": reload,
    "append": append,
    "load_rowwise": load_rowwise,
    "validate": validate,
    "models": models,
    "plan": plan,
    "fetch": fetch,
    "fetch_nolimit": fetch_nolimit,
    "parse": parse,
    "e2e": e2e,
    "load_lake": load_lake,
    "models_lake": models_lake,
}


def main(argv: list[str]) -> int:
    stage, size, folder = argv[0], SIZE_BY_NAME[argv[1]], Path(argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    result = STAGES[stage](size, folder)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
