"""Real Airflow DAG runs: a migrated metadata DB (SQLite) and dag.test()."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from socialpulse.cli import airflow_env
from tests.conftest import FIXTURES
from tests.integration.api_server import Server, start_api_server

if TYPE_CHECKING:
    from collections.abc import Iterator


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

    from socialpulse.notify import without_deadline

    bag = DagBag(dag_folder=airflow_db["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    # dag.test() of Airflow 3.3.2 cannot run a DAG with a DeadlineAlert (apache/airflow#73428)
    return {dag_id: without_deadline(dag) for dag_id, dag in bag.dags.items()}


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real ``airflow api-server`` with the plugin and fixture data, logged in as admin."""
    yield from start_api_server(tmp_path_factory.mktemp("api-server"))


@pytest.fixture
def small_registry(tmp_path, monkeypatch):
    """A copy of tests/fixtures/registry (small.yaml: 3 craft + 3 corporations) as the
    registry, and a fresh data folder of the test's own."""
    reg = tmp_path / "registry"
    shutil.copytree(FIXTURES / "registry", reg)
    monkeypatch.setenv("SOCIALPULSE_COMPANIES", str(reg / "small.yaml"))
    monkeypatch.setenv("SOCIALPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SOCIALPULSE_WAREHOUSE", raising=False)
    return reg
