"""Analysts never fight the pipeline for DuckDB: `make query` stays open through real DAG runs."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import PROJECT_ROOT
from tests.conftest import dag_state as state
from tests.integration.test_dag_runs import LOGICAL

pytestmark = pytest.mark.integration


class Shell:
    """``python -m socialpulse.cli query`` in its own process, driven through its stdin."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socialpulse.cli", "query"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def ask(self, text: str, expect: str, timeout: float = 60) -> str:
        """Send a line; return the output up to the first line containing ``expect``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(seen)
                continue
            seen.append(line)
            if expect in line:
                return "".join(seen)
        raise AssertionError(f"no {expect!r} within {timeout} s; got:\n{''.join(seen)}")

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(".quit\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=30)


COUNT = "select 'snapshots=' || count(*) as n from raw.account_snapshots;"


def test_a_query_shell_stays_open_through_a_full_pipeline_run(dags, small_registry, tmp_path):
    data = tmp_path / "data"
    ingest, models = dags["socialpulse_ingest"], dags["socialpulse_models"]

    assert state(ingest.test(logical_date=LOGICAL, run_conf={"backfill_days": 2})) == "success"
    assert state(models.test()) == "success"
    assert (data / "analytics.duckdb").exists()

    shell = Shell({**os.environ, "SOCIALPULSE_DATA_DIR": str(data)})
    try:
        # 6 accounts x 2 daily observations
        assert "snapshots=12" in shell.ask(COUNT, "snapshots=")

        # the pipeline writes while the shell holds the copy open: neither waits nor fails
        assert state(ingest.test(logical_date=LOGICAL, run_conf={"backfill_days": 5})) == "success"
        assert state(models.test()) == "success"

        # the open shell still reads the complete copy it opened ...
        assert "snapshots=12" in shell.ask(COUNT, "snapshots=")
        # ... and sees the new one after .reload: 6 accounts x 5 days
        shell.ask(".reload", "reopened")
        assert "snapshots=30" in shell.ask(COUNT, "snapshots=")
        # a statement that fails is reported, and the shell goes on
        assert "no_such_table" in shell.ask("select * from no_such_table;", "error:")
        # ... and the marts are there: both segments of small.yaml (corporation sorts first)
        out = shell.ask("select distinct segment from marts.success_index order by 1;", "craft")
        assert "corporation" in out
    finally:
        assert shell.close() == 0
    # nothing half-written is ever left beside the copy
    assert [p.name for p in data.glob(".analytics.duckdb.*")] == []
