"""The ``parse`` benchmark stage: its report's structure, never its times (a shared machine's
load is not the code's)."""

from __future__ import annotations

import json

from benchmarks.parse_bench import DAGS, heavy_modules, parse


def test_parse_reports_every_dag_file_and_none_imports_anything_heavy(tmp_path):
    assert {"pandas", "duckdb", "great_expectations"} <= set(heavy_modules())
    r = parse(quick=True, folder=tmp_path)
    json.dumps(r)
    names = {p.name for p in DAGS.glob("*.py")}
    assert names and set(r["files"]) == names
    assert r["rows"] == len(names)
    for name, f in r["files"].items():
        assert f["heavy_imports"] == [], name
        assert 0 < f["min"] <= f["median"], name
        assert f["dag_ids"], name
    assert r["worst_file"] in names
    assert r["seconds"] == sum(f["median"] for f in r["files"].values())
    assert r["ratio_worst"] == r["worst_seconds"] / r["empty_seconds"]
    assert r["target_seconds"] == 0.5
    # parsing wrote nothing into its (temporary) data folder
    assert r["data_dir_created"] is False
