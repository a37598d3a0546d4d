"""Benchmarks: how every stage scales, as ratios to a baseline measured in the same run.

    make bench                 # the full run: 640, 2,560 and 10,240 companies (1x, 4x, 16x)
    make bench SIZE=quick      # 40 companies, a short fetch, no end-to-end run (CI runs it)
    .venv/bin/python benchmarks/bench_pipeline.py --size full [--only load,models]

Each stage runs in a fresh process (benchmarks/stages.py), so that its peak memory (max
RSS) is its own. Machines differ and this one is shared: compare the ratios, not seconds.

| stage | baseline (same run) | target |
|---|---|---|
| load | bare DuckDB append of the same Arrow tables (``append``) | >= 0.5 of its rows/s |
| reload (a load task) | the first load of the same batch | <= 1.5x; < 2 GiB |
| validate | the load of the same batches (GX's import apart) | <= 1.0x |
| models | one ``group by account`` scan of raw.post_observations | <= 10x; linear growth |
| fetch | the emulator's rate limit | >= 90 % used, no 429 |
| fetch, no limit | concurrency / latency | >= 0.8 |
| parse | an empty DAG file | < 0.5 s per file |
| end to end | the stages run directly (no Airflow) | < 600 s for 1,000 companies |
| memory | - | a load task (``reload``: a process, one batch) and models < 2 GiB |

The full run also writes ``docs/benchmarks.md`` (between its markers: the machine, the
table, growth, the chart's link) and the chart ``docs/benchmarks.svg``; both runs write
``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from stages import SIZES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES_SCRIPT = Path(__file__).with_name("stages.py")
#: stages run at every size, in this order (models read the warehouse load built)
PER_SIZE = ("generate", "append", "load", "reload", "validate", "models")
#: stages run once per run
ONCE = {
    "quick": ("fetch", "fetch_nolimit", "parse"),
    "full": ("fetch", "fetch_nolimit", "parse", "plan", "e2e"),
}
#: the DuckLake warehouse (PostgreSQL catalog) beside the file, at the first size of a full run
LAKE = ("load_lake", "models_lake")
MEMORY_LIMIT_MB = 2048
DOCS = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.svg"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def run_stage(stage: str, size: str, folder: Path, required: bool = True) -> dict[str, Any]:
    # the stage's data folder is the temporary one: GX results, Data Docs and quarantine of
    # the benchmark never reach the project's data/ (nor the UI page that shows them)
    print(f"  {stage} ({size}) ...", end="", flush=True, file=sys.stderr)
    pythonpath = [str(ROOT / "include"), os.environ.get("PYTHONPATH", "")]
    proc = subprocess.run(
        [sys.executable, str(STAGES_SCRIPT), stage, size, str(folder)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
            "SOCIALPULSE_DATA_DIR": str(folder / "data"),
        },
    )
    if proc.returncode != 0:
        if not required:
            print(" skipped", file=sys.stderr)
            return {"skipped": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
        raise SystemExit(f"\nstage {stage} ({size}) failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f" {result['seconds']:.1f} s", file=sys.stderr)
    return result


def rows_per_second(r: dict[str, Any]) -> float:
    return r["rows"] / r["seconds"] if r["seconds"] else float("nan")


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The printed table: stage, size, seconds, rows/s, ratio to its baseline, target, RSS."""
    out: list[dict[str, Any]] = []

    def add(
        stage: str,
        size: str,
        r: dict[str, Any],
        ratio: float | None,
        target: str,
        ok: bool | None,
        **kw: Any,
    ) -> None:
        out.append(
            {
                "stage": stage,
                "size": size,
                "seconds": r.get("seconds"),
                "rows_per_second": rows_per_second(r) if r.get("rows") else None,
                "ratio": ratio,
                "target": target,
                "met": ok,
                "max_rss_mb": r.get("max_rss_mb"),
                **kw,
            }
        )

    for size, s in results["sizes"].items():
        _size_rows(add, size, s)
    _once_rows(add, results["once"])
    return out


def _size_rows(add: Any, size: str, s: dict[str, Any]) -> None:
    if "generate" in s:
        add("generate", size, s["generate"], None, "", None)
        if "append" in s:
            add("append (baseline)", size, s["append"], None, "", None)
        if "load" in s and "append" in s:
            load = s["load"]
            ratio = rows_per_second(load) / rows_per_second(s["append"])
            add("load", size, load, ratio, ">= 0.5 x append", ratio >= 0.5)
        if "reload" in s and "load" in s:
            # one load task's shape (a process, one batch into the full warehouse): its
            # peak memory is a load task's
            reload = s["reload"]
            ratio = reload["seconds"] / s["load"]["batch_seconds"][-1]
            mem_ok = reload["max_rss_mb"] < MEMORY_LIMIT_MB
            target = "<= 1.5 x first load; < 2 GiB"
            add("reload (a load task)", size, reload, ratio, target, ratio <= 1.5 and mem_ok)
            daily = {"seconds": reload["daily_seconds"], "rows": reload["daily_rows"]}
            add("load, next day", size, daily, None, "", None)
        if "validate" in s and "load" in s:
            # the gate on every batch; the Data Docs are rendered once per run (the ingest
            # DAG's data_docs task), reported apart as GX's import is
            v = s["validate"]
            gate = {**v, "seconds": v["seconds"] - v.get("docs_seconds", 0.0)}
            ratio = gate["seconds"] / s["load"]["seconds"]
            add("validate", size, gate, ratio, "<= 1.0 x load", ratio <= 1.0)
            if "docs_seconds" in v:
                docs = {"seconds": v["docs_seconds"]}
                add("Data Docs (once per run)", size, docs, None, "", None)
        if "models" in s:
            mod = s["models"]
            ratio = mod["seconds"] / mod["scan_seconds"]
            mem_ok = mod["max_rss_mb"] < MEMORY_LIMIT_MB
            add("models", size, mod, ratio, "<= 10 x scan; < 2 GiB", ratio <= 10 and mem_ok)
    lake_load, lake_models = s.get("load_lake", {}), s.get("models_lake", {})
    if "seconds" in lake_load and "load" in s:
        ratio = lake_load["seconds"] / s["load"]["seconds"]
        add("load, DuckLake", size, lake_load, ratio, "(x the file's load)", None)
    if "seconds" in lake_models and "models" in s:
        ratio = lake_models["seconds"] / s["models"]["seconds"]
        add("models, DuckLake", size, lake_models, ratio, "(x the file's models)", None)


def _once_rows(add: Any, once: dict[str, Any]) -> None:
    if "fetch" in once:
        f = once["fetch"]
        ok = f["used"] >= 0.9 and f["http_429"] == 0
        size = f"{f['limit']}/{f['window_seconds']:.0f} s"
        add("fetch", size, f, f["used"], ">= 0.9 of limit, 0 x 429", ok, http_429=f["http_429"])
    if "fetch_nolimit" in once:
        f = once["fetch_nolimit"]
        ok = f["ratio"] >= 0.8
        add("fetch, no limit", f"x{f['concurrency']}", f, f["ratio"], ">= 0.8 x conc./latency", ok)
    if "parse" in once:
        p = once["parse"]
        worst = {"seconds": p["worst_seconds"], "max_rss_mb": p.get("max_rss_mb")}
        ok = p["worst_seconds"] < 0.5
        add("parse (worst file)", f"{p['rows']} files", worst, p["ratio_worst"], "< 0.5 s", ok)
    if "plan" in once:
        p = once["plan"]
        ratio = p["xcom_bytes"] / p["xcom_bytes_inline"]
        add("plan (XCom bytes)", f"{p['rows']:,} companies", p, ratio, "", None)
    if "e2e" in once:
        e = once["e2e"]
        size = f"{e['companies']:,} companies"
        add("end to end", size, e, e["overhead_ratio"], "< 600 s", e["seconds"] < 600)


def fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def render_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["stage", "size", "seconds", "rows/s", "ratio", "target", "met", "peak RSS MB"]
    cells = [
        [
            r["stage"],
            r["size"],
            fmt(r["seconds"], ".2f"),
            fmt(r["rows_per_second"], ",.0f"),
            fmt(r["ratio"], ".2f"),
            r["target"],
            {True: "yes", False: "**no**" if markdown else "NO", None: ""}[r["met"]],
            fmt(r["max_rss_mb"], ",.0f"),
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]
    left = (0, 1, 5)
    return "\n".join(
        "  ".join(
            x.ljust(w) if i in left else x.rjust(w)
            for i, (x, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [head, *cells]
    )


def machine() -> dict[str, Any]:
    """What the run ran on: the figures are comparable only on the same kind of machine."""
    import importlib.metadata as md

    cpuinfo = _read("/proc/cpuinfo").splitlines()
    cpu = next(
        (x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")),
        platform.processor(),
    )
    meminfo = _read("/proc/meminfo").splitlines()
    mem = next((x.split()[1] for x in meminfo if x.startswith("MemTotal")), "0")
    packages = ("duckdb", "great-expectations", "apache-airflow", "pyarrow", "pandas")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: md.version(p) for p in packages},
        "load_average": os.getloadavg(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def run(size_name: str, only: set[str] | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "size": size_name,
        "machine": machine(),
        "sizes": {},
        "once": {},
    }
    with tempfile.TemporaryDirectory(prefix="socialpulse-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the DuckLake stages' PostgreSQL runs as an unprivileged user
        for size in SIZES[size_name]:
            folder = Path(tmp) / size.name
            print(f"{size.name}: {size.companies:,} companies x {size.days} days", file=sys.stderr)
            results["sizes"][size.name] = {
                stage: run_stage(stage, size.name, folder)
                for stage in PER_SIZE
                if only is None or stage in only or stage == "generate"
            }
            results["sizes"][size.name]["companies"] = size.companies
            if size_name == "full" and size == SIZES["full"][0]:
                for stage in LAKE:
                    if only is None or stage in only:
                        done = run_stage(stage, size.name, folder, required=False)
                        results["sizes"][size.name][stage] = done
            shutil.rmtree(folder, ignore_errors=True)  # 16x is a few GB
        first = SIZES[size_name][0].name
        for stage in ONCE[size_name]:
            if only is None or stage in only:
                results["once"][stage] = run_stage(stage, first, Path(tmp) / stage)
    results["machine"]["load_average_after"] = os.getloadavg()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", help="comma-separated stages (generate always runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench.json")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="earlier results (JSON) whose stages this run did not measure are added",
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and its chart (default: for a full run of every stage)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        help="run nothing: print the table of these results (JSON) and write them again",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    results = json.loads(args.render.read_text()) if args.render else run(args.size, only)
    for earlier in map(json.loads, (p.read_text() for p in args.merge)):
        for size, stages in earlier["sizes"].items():
            results["sizes"].setdefault(size, {}).update(
                {k: v for k, v in stages.items() if k not in results["sizes"].get(size, {})}
            )
        results["once"] = {**earlier["once"], **results["once"]}
    results["table"] = table_rows(results)
    print()
    print(render_table(results["table"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.out}")
    complete = only is None or bool(args.merge) or bool(args.render)
    if args.docs or (args.docs is None and args.size == "full" and complete):
        import report_docs

        report_docs.write(results, DOCS, CHART)
        print(f"and to {DOCS.relative_to(ROOT)}, {CHART.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
