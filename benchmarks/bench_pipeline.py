"""Benchmarks: speed and memory of the pipeline's stages, as ratios to a baseline of the same run.

    make bench            # or: .venv/bin/python benchmarks/bench_pipeline.py [--days N]

Each stage (benchmarks/stages.py) runs in a fresh subprocess so that its peak memory (max
RSS) is its own. Ratios,
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

#: the stages' code (a real module, linted; each stage runs in its own process)
STAGES_SCRIPT = Path(__file__).with_name("stages.py")


def run_stage(stage: str, days: int, folder: Path) -> dict:
    # the stage's data folder is the temporary one: GX results, Data Docs and quarantine of
    # the benchmark never reach the project's data/ (nor the UI page that shows them)
    proc = subprocess.run(
        [sys.executable, str(STAGES_SCRIPT), stage, str(days), str(folder)],
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
