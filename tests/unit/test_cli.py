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


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m socialpulse.cli <args>`` in a process of its own, as ``make`` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "socialpulse.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


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
        proc = cli("summary", env=env)
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


def test_waiting_for_a_retry_is_said_once_a_minute_not_every_second():
    import logging

    from socialpulse.cli import QuietWaits

    now = [0.0]
    quiet = QuietWaits(clock=lambda: now[0])
    logger = logging.getLogger("airflow.sdk.definitions.dag")
    shown: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    keep = Keep()
    logger.addHandler(keep)
    logger.addFilter(quiet)
    try:
        unrunnable = {
            f"<TaskInstance: socialpulse_ingest.task{i} [up_for_retry]>" for i in range(80)
        }
        for second in range(120):  # two minutes of waiting, a line a second
            now[0] = float(second)
            logger.warning("No tasks to run. unrunnable tasks: %s", unrunnable)
        logger.warning("something else")
    finally:
        logger.removeFilter(quiet)
        logger.removeHandler(keep)
    waits = [m for m in shown if m.startswith("No tasks to run")]
    assert len(waits) == 2  # at 0 s and at 60 s
    assert all(len(m) < 100 for m in waits)
    assert shown[-1] == "something else"


def test_make_run_refuses_while_make_airflow_holds_the_data_folder(tmp_path):
    """make airflow holds the data folder (a lock file); make run says so and exits 3
    instead of waiting on DuckDB's lock or replacing the other's registry."""
    data = tmp_path / "data"
    env = {**os.environ, "SOCIALPULSE_DATA_DIR": str(data), "AIRFLOW_HOME": str(tmp_path / "af")}
    env.pop("SOCIALPULSE_WAREHOUSE", None)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from socialpulse.cli import data_folder_lock\n"
            "with data_folder_lock('make airflow') as refused:\n"
            "    assert refused is None\n"
            "    print('held', flush=True)\n"
            "    time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = cli("run", env=env)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 3, proc.stderr
    assert f"make airflow (pid {holder.pid}, since" in proc.stderr
    assert str(data) in proc.stderr and "SOCIALPULSE_DATA_DIR" in proc.stderr
    assert not (data / "warehouse.duckdb").exists()  # nothing was started
    # the holder gone (killed, even), the folder is free again
    again = subprocess.run(
        [
            sys.executable,
            "-c",
            "from socialpulse.cli import data_folder_lock\n"
            "with data_folder_lock('make run') as refused:\n"
            "    print(refused)\n",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert again.stdout.strip() == "None", again.stderr


def test_the_query_shell_lists_every_layer(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    con = duckdb.connect(str(data / "analytics.duckdb"))
    for schema, table in [
        ("raw", "post_observations"),
        ("staging", "stg_posts"),
        ("intermediate", "int_posts_measured"),
        ("marts", "success_index"),
    ]:
        con.execute(f"create schema if not exists {schema}")
        con.execute(f"create table {schema}.{table} (x integer)")
    con.close()
    env = {**os.environ, "SOCIALPULSE_DATA_DIR": str(data)}
    env.pop("SOCIALPULSE_ANALYTICS", None)
    proc = cli("query", env=env, stdin=".tables\n.quit\n")
    assert proc.returncode == 0, proc.stderr
    for name in ("stg_posts", "int_posts_measured", "success_index", "post_observations"):
        assert name in proc.stdout, name


def test_make_run_names_the_quarantine_only_when_it_holds_something(tmp_path):
    from socialpulse.cli import quarantine_line

    folder = tmp_path / "quarantine"
    assert quarantine_line(folder) is None  # does not exist: nothing printed
    folder.mkdir()
    assert quarantine_line(folder) is None  # empty
    (folder / "sample-20260101T0000-20260102T0000-b000").mkdir()
    assert quarantine_line(folder) == f"quarantine: 1 batch(es) in {folder}"
