"""The benchmark's stages, each run in a fresh process by bench_pipeline.py:

    python benchmarks/stages.py <stage> <days> <folder>

prints one JSON line: the stage's seconds, rows, its own figures and its peak memory (max RSS
of this process). ``generate`` writes the sample batch as Parquet into ``folder``; the other
stages read it from there.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

#: the row-by-row baseline is slow: it is timed on this many rows of each table
ROWWISE_ROWS = 10_000
#: the registry the ``plan`` stage parses
PLAN_COMPANIES = 20_000
SAMPLE_END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


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


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def read_batch(folder: Path) -> dict[str, pa.Table]:
    import pyarrow.parquet as pq

    return {p.stem: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}


def rows_of(tables: dict[str, pa.Table]) -> int:
    return sum(t.num_rows for t in tables.values())


def plan(days: int, folder: Path) -> dict[str, Any]:
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


def generate(days: int, folder: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    secs, tables = timed(lambda: sample_tables(days))
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")
    return {"seconds": secs, "rows": rows_of(tables)}


def load(days: int, folder: Path) -> dict[str, Any]:
    """The first load of the batch into an empty warehouse, then the same batch again."""
    from socialpulse import warehouse

    tables = read_batch(folder)
    with warehouse.connect(folder / "load.duckdb") as con:
        secs, _ = timed(lambda: warehouse.load_batch(con, "bench", tables))
        again, _ = timed(lambda: warehouse.load_batch(con, "bench", tables))
    return {"seconds": secs, "reload_seconds": again, "rows": rows_of(tables)}


def load_rowwise(days: int, folder: Path) -> dict[str, Any]:
    """The baseline a naive loader would be: ``executemany`` of the rows, in one transaction."""
    from socialpulse import warehouse
    from socialpulse.records import RAW_SCHEMAS

    tables = {n: t.slice(0, ROWWISE_ROWS) for n, t in read_batch(folder).items()}
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


def validate(days: int, folder: Path) -> dict[str, Any]:
    """The Great Expectations gate on the batch (the import of GX is not the gate's cost)."""
    import great_expectations  # noqa: F401

    from socialpulse.validation import validate_batch

    tables = read_batch(folder)
    secs, _ = timed(lambda: validate_batch("bench", tables, quarantine_dir=folder / "q"))
    return {"seconds": secs, "rows": rows_of(tables)}


def models(days: int, folder: Path) -> dict[str, Any]:
    """Every SQL model, against one full scan of the raw tables."""
    from socialpulse import models as sql_models
    from socialpulse import warehouse

    tables = read_batch(folder)
    with warehouse.connect(folder / "models.duckdb") as con:
        warehouse.load_batch(con, "bench", tables)
        scan_secs, _ = timed(
            lambda: [con.execute(f"select * from raw.{n}").to_arrow_table() for n in tables]
        )
        secs, _ = timed(lambda: sql_models.build_all(con))
    return {"seconds": secs, "scan_seconds": scan_secs, "rows": rows_of(tables)}


STAGES: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "generate": generate,
    "load": load,
    "load_rowwise": load_rowwise,
    "validate": validate,
    "models": models,
    "plan": plan,
}


def main(argv: list[str]) -> int:
    stage, days, folder = argv[0], int(argv[1]), Path(argv[2])
    result = STAGES[stage](days, folder)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
