"""The ``parse`` stage: what parsing each DAG file costs, against an empty DAG file.

    .venv/bin/python benchmarks/parse_bench.py [--quick]

Each file of ``dags/`` and an empty DAG (one EmptyOperator) written into ``folder`` is parsed
with ``DagBag(dag_folder=<file>)`` in a fresh process in which Airflow and DagBag are already
imported before the clock starts, as Airflow's DAG processor does (it forks a child per file
from a parent that has imported Airflow and called ``gc.freeze()``): one interpreter imports
them once (``--serve``), freezes its objects, then forks one child per measurement. The figure is the file's own parse cost, not Airflow's
import. The measurements run round-robin (every file once, then again), so that a change in
the machine's load touches all files alike; each file's median and minimum are reported.

Each child also lists the heavy modules (``HEAVY`` of tests/dags/test_dag_integrity.py, read
from that file: one list) that parsing the file imported: ``sys.modules`` after minus before.

The environment is the one the tests and ``make airflow`` parse in: ``socialpulse.cli``'s
Airflow settings (no examples) with an Airflow home under ``folder``, ``PYTHONPATH=include``,
the project's data folder replaced by one under ``folder`` (parsing must not create it: that
would be I/O at parse time) and no other ``SOCIALPULSE_*`` setting. As in the Makefile,
``PYTHONDONTWRITEBYTECODE=1``: the venv holds no bytecode, so a module first imported while a
file is parsed is compiled from source then, and that is part of what the file costs.

Airflow 3.3's DagBag has no ``include_examples`` argument: ``AIRFLOW__CORE__LOAD_EXAMPLES``
is False in that environment instead.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGS = PROJECT_ROOT / "dags"
INCLUDE = PROJECT_ROOT / "include"
INTEGRITY_TEST = PROJECT_ROOT / "tests" / "dags" / "test_dag_integrity.py"
#: the issue's target: each DAG file parses in less than this
TARGET_SECONDS = 0.5
#: measurements of each file (quick, full)
REPEATS = {True: 2, False: 5}
EMPTY_NAME = "empty_dag.py"
EMPTY_DAG = '''"""The baseline: a DAG with one EmptyOperator."""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="parse_bench_empty", schedule=None, start_date=dt.datetime(2026, 1, 1)):
    EmptyOperator(task_id="nothing")
'''


def heavy_modules() -> list[str]:
    """``HEAVY`` of the DAG integrity test, read from its source (importing it sets env)."""
    for node in ast.parse(INTEGRITY_TEST.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "HEAVY" for t in targets):
                return list(ast.literal_eval(node.value))
    raise LookupError(f"no HEAVY = (...) in {INTEGRITY_TEST}")


def parse_env(folder: Path) -> dict[str, str]:
    """The parsing process's environment; nothing in it points into the project's data/."""
    from socialpulse.cli import airflow_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SOCIALPULSE_"))}
    env.update(airflow_env(folder / "airflow"))
    env["SOCIALPULSE_DATA_DIR"] = str(folder / "parse-data")
    env["PYTHONPATH"] = str(INCLUDE)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def parse(quick: bool, folder: Path) -> dict[str, Any]:
    """Parse times of every ``dags/*.py`` and of an empty DAG file, with what each imported."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / EMPTY_NAME
    empty.write_text(EMPTY_DAG)
    files = {p.name: p for p in sorted(DAGS.glob("*.py"))}
    if EMPTY_NAME in files:
        raise ValueError(f"dags/{EMPTY_NAME} would be confused with the baseline")
    env = parse_env(folder)
    request = {
        "files": {name: str(p) for name, p in {**files, EMPTY_NAME: empty}.items()},
        "repeats": REPEATS[quick],
        "heavy": heavy_modules(),
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"parsing failed:\n{proc.stderr[-3000:]}")
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    stats = {name: _summary(runs) for name, runs in served["runs"].items()}
    empty_stats = stats.pop(EMPTY_NAME)
    medians = {name: s["median"] for name, s in stats.items()}
    worst = max(medians, key=medians.__getitem__)
    return {
        "seconds": sum(medians.values()),
        "rows": len(stats),
        "files": stats,
        "empty_seconds": empty_stats["median"],
        "empty_min_seconds": empty_stats["min"],
        "empty_cpu_seconds": empty_stats["cpu_median"],
        "worst_file": worst,
        "worst_seconds": medians[worst],
        "ratio_worst": medians[worst] / empty_stats["median"],
        "target_seconds": TARGET_SECONDS,
        "repeats": REPEATS[quick],
        "heavy_imported_before_parse": served["heavy_preloaded"],
        "data_dir_created": (folder / "parse-data").exists(),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    for run in runs:
        if run["import_errors"]:
            raise RuntimeError(f"{run['file']} failed to parse: {run['import_errors']}")
    secs = [run["seconds"] for run in runs]
    return {
        "median": statistics.median(secs),
        "min": min(secs),
        # CPU time of the parse: less sensitive than wall time to other load on the machine
        "cpu_median": statistics.median(run["cpu_seconds"] for run in runs),
        "heavy_imports": sorted({m for run in runs for m in run["heavy_imports"]}),
        "dag_ids": runs[0]["dag_ids"],
        "modules_imported": runs[0]["modules_imported"],
    }


# -- the parsing process: Airflow imported once, one forked child per measurement -----------


def _loaded(heavy: list[str], modules: set[str]) -> list[str]:
    return [h for h in heavy if any(m == h or m.startswith(h + ".") for m in modules)]


def _measure(path: str, heavy: list[str]) -> dict[str, Any]:
    """In the forked child: parse ``path`` once, on the clock."""
    from airflow.dag_processing.dagbag import DagBag

    before = set(sys.modules)
    cpu, start = time.process_time(), time.perf_counter()
    bag = DagBag(dag_folder=path)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    new = set(sys.modules) - before
    return {
        "file": path,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
        "heavy_imports": _loaded(heavy, new),
        "modules_imported": len(new),
    }


def _forked(path: str, heavy: list[str]) -> dict[str, Any]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, send the result, exit without the parent's cleanup
        os.close(read)
        try:
            out = json.dumps(_measure(path, heavy)).encode()
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
            code = 1
        with os.fdopen(write, "wb") as w:
            w.write(out)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    if "error" in result:
        raise RuntimeError(f"parsing {path}: {result['error']}")
    return result


def serve() -> int:
    request = json.loads(sys.stdin.read())
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401 - imported before any clock

    # as the DAG processor's manager before it forks its parsers: the objects of the imports
    # above are never scanned by a child's garbage collection (without it, a full collection
    # over all of Airflow's objects lands in some parses and not others)
    gc.freeze()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in request["files"]}
    for _ in range(request["repeats"]):
        for name, path in request["files"].items():
            runs[name].append(_forked(path, request["heavy"]))
    preloaded = _loaded(request["heavy"], set(sys.modules))
    print(json.dumps({"runs": runs, "heavy_preloaded": preloaded}))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{REPEATS[True]} runs per file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="socialpulse-parse-") as tmp:
        r = parse(args.quick, Path(tmp))
    print(f"{'file':<28}{'median s':>10}{'min s':>10}{'cpu s':>8}{'x empty':>9}  heavy imports")
    empty = {
        "median": r["empty_seconds"],
        "min": r["empty_min_seconds"],
        "cpu_median": r["empty_cpu_seconds"],
    }
    rows = {**r["files"], EMPTY_NAME: empty}
    for name, s in rows.items():
        ratio = s["median"] / r["empty_seconds"]
        heavy = ", ".join(s.get("heavy_imports", [])) or "-"
        secs = f"{s['median']:>10.3f}{s['min']:>10.3f}{s['cpu_median']:>8.3f}"
        print(f"{name:<28}{secs}{ratio:>9.1f}  {heavy}")
    print(f"\ntarget < {r['target_seconds']} s per file; worst {r['worst_file']}")
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
