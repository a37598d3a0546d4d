"""The command line: `make summary` reads the analytics copy, never the locked warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import duckdb

from tests.conftest import PROJECT_ROOT

# craft week 2024-01-29: indexes 40, 50, 90 -> median 50, best Gamma 90; one corporation
# company without an index (not observed): scored 0 of 1, no median
ROWS = [
    ("a", "Alpha", "craft", 40.0),
    ("b", "Beta", "craft", 50.0),
    ("c", "Gamma", "craft", 90.0),
    ("x", "Xeno", "corporation", None),
]


def test_summary_reads_the_analytics_copy_while_a_writer_holds_the_warehouse(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    con = duckdb.connect(str(data / "analytics.duckdb"))
    con.execute("create schema marts")
    con.execute(
        "create table marts.success_index (company_id varchar, company_name varchar, "
        "segment varchar, period_type varchar, period_start date, period_end date, "
        "is_complete boolean, success_index double)"
    )
    for cid, name, segment, index in ROWS:
        con.execute(
            "insert into marts.success_index values "
            "(?, ?, ?, 'week', date '2024-01-29', date '2024-02-05', true, ?)",
            [cid, name, segment, index],
        )
    con.close()
    # a pipeline task writing the warehouse: DuckDB locks every other process out of it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(data / "warehouse.duckdb")!r})
                print("locked", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = {**os.environ, "SOCIALPULSE_DATA_DIR": str(data)}
        env.pop("SOCIALPULSE_WAREHOUSE", None)
        env.pop("SOCIALPULSE_ANALYTICS", None)
        proc = subprocess.run(
            [sys.executable, "-m", "socialpulse.cli", "summary"],
            capture_output=True,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Success index per segment, ISO week 2024-W05 (2024-01-29 to 2024-02-04)"
    rows = {line.split()[0]: line.split() for line in lines[4:6]}
    assert rows["craft"] == ["craft", "3", "3", "50.0", "Gamma", "90.0"]
    assert rows["corporation"] == ["corporation", "1", "0", "-", "-", "-"]
    assert f"(from the analytics copy {data / 'analytics.duckdb'})" in proc.stdout
