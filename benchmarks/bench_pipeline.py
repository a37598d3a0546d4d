"""Benchmarks: speed and memory of the pipeline's stages, as ratios to a baseline of the same run.

    make bench            # or: .venv/bin/python benchmarks/bench_pipeline.py [--days N]

Each stage runs in a fresh subprocess so that its peak memory (max RSS) is its own. Ratios,
not seconds, are what to compare between machines:

* load: rows/s of the warehouse's Arrow-scan delete-then-insert vs. a row-by-row
  ``executemany`` insert (the baseline a naive loader would use; timed on 10,000 rows
  per table, as it is slow);
* reload: loading the same batch again (idempotent replace) vs. the first load;
* validate: the Great Expectations gate vs. the load of the same batch;
* models: building every SQL model vs. one full scan of the raw tables;
* generate: the sample platform producing the batch (40 companies x ``--days``) vs. loading
  it (the unit tests check what it generates, never how fast);
* plan: a registry of 20,000 companies parsed once per run, its batches passed through XCom
  as references: the XCom payload vs. the accounts it used to carry inline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STAGE = r"""
import datetime as dt, json, resource, sys, time
from pathlib import Path
stage, days, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
ROWWISE_ROWS = 10_000
PLAN_COMPANIES = 20_000

def sample_tables(days):
    from socialpulse.config import SAMPLE_COMPANIES
    from socialpulse.pipeline import account_refs
    from socialpulse.platforms.base import FetchWindow
    from socialpulse.platforms.sample import SamplePlatform
    from socialpulse.registry import load_registry
    refs = account_refs(load_registry(SAMPLE_COMPANIES), "sample")
    end = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    w = FetchWindow(end - dt.timedelta(days=days), end, dt.timedelta(days=28))
    return SamplePlatform().fetch(refs, w).tables()

def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out

if stage == "plan":
    # a large registry (PLAN_COMPANIES sample companies): parsed once, batches as references
    import yaml
    from socialpulse import pipeline
    reg = folder / "big.yaml"
    reg.write_text(yaml.safe_dump({"companies": [
        {"id": f"co-{i:05d}", "name": f"Company {i}", "segment": "craft", "employees": 3,
         "accounts": [{"platform": "sample", "handle": f"co-{i:05d}",
                       "options": {"profile": "craft"}}]}
        for i in range(PLAN_COMPANIES)]}))
    secs, plan = timed(lambda: pipeline.plan_run("bench-plan", str(reg)))
    inline = pipeline.plan_batches(str(reg))  # what XCom carried before: every account
    result = {"seconds": secs, "rows": PLAN_COMPANIES,
              "xcom_bytes": len(json.dumps(plan)),
              "xcom_bytes_inline": len(json.dumps(inline))}
elif stage == "generate":
    secs, tables = timed(lambda: sample_tables(days))
    rows = sum(t.num_rows for t in tables.values())
    import pyarrow.parquet as pq
    for name, t in tables.items():
        pq.write_table(t, folder / f"{name}.parquet")
    result = {"seconds": secs, "rows": rows}
else:
    import pyarrow.parquet as pq
    tables = {p.stem: pq.read_table(p) for p in sorted(folder.glob("*.parquet"))}
    rows = sum(t.num_rows for t in tables.values())
    from socialpulse import warehouse
    db = folder / f"{stage}.duckdb"
    if stage == "load":
        with warehouse.connect(db) as con:
            secs, _ = timed(lambda: warehouse.load_batch(con, "bench", tables))
            secs2, _ = timed(lambda: warehouse.load_batch(con, "bench", tables))
        result = {"seconds": secs, "reload_seconds": secs2, "rows": rows}
    elif stage == "load_rowwise":
        # the baseline is slow: time it on the first ROWWISE_ROWS rows of each table
        from socialpulse.records import RAW_SCHEMAS
        tables = {n: t.slice(0, ROWWISE_ROWS) for n, t in tables.items()}
        rows = sum(t.num_rows for t in tables.values())
        with warehouse.connect(db) as con:
            def rowwise():
                con.execute("begin")
                for name, t in tables.items():
                    s = RAW_SCHEMAS[name]
                    marks = ", ".join("?" for _ in s.names)
                    con.executemany(f"insert into {s.qualified} values ({marks})",
                                    [list(r.values()) for r in t.to_pylist()])
                con.execute("commit")
            secs, _ = timed(rowwise)
        result = {"seconds": secs, "rows": rows}
    elif stage == "validate":
        import great_expectations  # noqa: F401  (import cost is not the gate's)
        from socialpulse.validation import validate_batch
        secs, _ = timed(lambda: validate_batch("bench", tables, quarantine_dir=folder / "q"))
        result = {"seconds": secs, "rows": rows}
    elif stage == "models":
        from socialpulse import models
        with warehouse.connect(db) as con:
            warehouse.load_batch(con, "bench", tables)
            scan = lambda: [con.execute(f"select * from raw.{n}").to_arrow_table() for n in tables]
            scan_secs, _ = timed(scan)
            secs, _ = timed(lambda: models.build_all(con))
        result = {"seconds": secs, "scan_seconds": scan_secs, "rows": rows}
result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def run_stage(stage: str, days: int, folder: Path) -> dict:
    # the stage's data folder is the temporary one: GX results, Data Docs and quarantine of
    # the benchmark never reach the project's data/ (nor the UI page that shows them)
    proc = subprocess.run(
        [sys.executable, "-c", STAGE, stage, str(days), str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "SOCIALPULSE_DATA_DIR": str(folder / "data")},
    )
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=63, help="days of sample history (40 companies)"
    )
    parser.add_argument("--out", type=Path, default=Path("data/bench.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="socialpulse-bench-") as tmp:
        folder = Path(tmp)
        r = {
            s: run_stage(s, args.days, folder)
            for s in ("generate", "load", "load_rowwise", "validate", "models", "plan")
        }
    rows = r["generate"]["rows"]
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "days": args.days,
        "rows": rows,
        "stages": r,
        "ratios": {
            "load_speedup_vs_rowwise": (r["load"]["rows"] / r["load"]["seconds"])
            / (r["load_rowwise"]["rows"] / r["load_rowwise"]["seconds"]),
            "reload_vs_first_load": r["load"]["reload_seconds"] / r["load"]["seconds"],
            "validate_vs_load": r["validate"]["seconds"] / r["load"]["seconds"],
            "models_vs_raw_scan": r["models"]["seconds"] / r["models"]["scan_seconds"],
            "generate_vs_load": r["generate"]["seconds"] / r["load"]["seconds"],
            "plan_xcom_vs_inline_accounts": r["plan"]["xcom_bytes"]
            / r["plan"]["xcom_bytes_inline"],
            "load_memory_vs_generate": r["load"]["max_rss_mb"] / r["generate"]["max_rss_mb"],
        },
    }
    print(f"{rows:,} raw rows ({args.days} days x 40 sample companies)\n")
    print(f"{'stage':<14}{'seconds':>10}{'rows/s':>14}{'max RSS MB':>12}")
    for name, s in r.items():
        print(
            f"{name:<14}{s['seconds']:>10.2f}{s['rows'] / s['seconds']:>14,.0f}{s['max_rss_mb']:>12.0f}"
        )
    plan = r["plan"]
    print(
        f"\nplan of {plan['rows']:,} companies: {plan['seconds']:.1f} s, XCom "
        f"{plan['xcom_bytes']:,} bytes (the accounts inline: {plan['xcom_bytes_inline']:,})"
    )
    print("\nratios (same run):")
    for k, v in report["ratios"].items():
        print(f"  {k:<28}{v:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
