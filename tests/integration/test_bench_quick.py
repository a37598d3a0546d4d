"""`make bench SIZE=quick` runs on a fresh checkout: every stage, in its own process, with
consistent row counts (never its times: those are the benchmark's, not a test's)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    docs = PROJECT_ROOT / "docs" / "benchmarks.md"
    before = docs.read_text() if docs.exists() else None
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_pipeline.py", "--size", "quick", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a quick run never rewrites the full run's page
    assert (docs.read_text() if docs.exists() else None) == before
    return json.loads(out.read_text()), proc.stdout


def test_every_stage_ran_and_the_table_was_printed(quick):
    results, stdout = quick
    assert set(results["sizes"]["quick"]) == {
        "generate", "append", "load", "reload", "validate", "models", "companies",
    }  # fmt: skip
    assert set(results["once"]) == {"fetch", "fetch_nolimit", "parse"}
    stages = [r["stage"] for r in results["table"]]
    assert stages[:8] == [
        "generate", "append (baseline)", "load", "reload (a load task)", "load, next day",
        "validate", "Data Docs (once per run)", "models",
    ]  # fmt: skip
    for stage in ("load", "reload (a load task)", "validate", "models", "fetch", "parse (worst"):
        assert f"\n{stage} " in stdout


def test_each_stage_saw_the_rows_generate_made(quick):
    results, _ = quick
    s = results["sizes"]["quick"]
    rows = s["generate"]["rows"]
    assert rows == sum(s["generate"]["table_rows"].values()) > 0
    assert s["append"]["rows"] == s["load"]["rows"] == s["validate"]["rows"] == rows
    # the reload replaced every row of the batch (idempotent), duplicating none
    assert s["reload"]["rows_replaced"] == s["reload"]["rows"] == rows
    assert s["models"]["rows"] == s["generate"]["table_rows"]["post_observations"]
    # the next day's batch (one day of the batch's companies, probes aside) was taken out
    # again before the models ran
    assert 0 < s["reload"]["daily_rows"] < rows
    assert s["models"]["raw_rows"] == rows


def test_fetch_made_the_connectors_requests_and_parse_read_every_dag(quick):
    results, _ = quick
    fetch = results["once"]["fetch"]
    assert fetch["requests"] == fetch["accounts"] * 12  # lookup, 3 pages, 8 threads
    nolimit = results["once"]["fetch_nolimit"]
    assert nolimit["requests"] == nolimit["accounts"] * 12
    parse = results["once"]["parse"]
    assert set(parse["files"]) == {"socialpulse_ingest.py", "socialpulse_models.py"}
    assert all(f["heavy_imports"] == [] for f in parse["files"].values())
