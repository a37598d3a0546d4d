"""Real Airflow DAG runs: a migrated metadata DB (SQLite) and dag.test()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from socialpulse.cli import airflow_env


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the session's Airflow metadata DB once (the home is set in tests/conftest.py)."""
    env = airflow_env(Path(os.environ["AIRFLOW_HOME"]))
    os.environ.update(env)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run(
        [airflow, "db", "migrate"], env={**os.environ}, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env


@pytest.fixture(scope="session")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=airflow_db["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag.dags
