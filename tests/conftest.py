"""Test isolation: every test session gets its own Airflow home and data folder.

Set before anything imports Airflow (its configuration is read once, at first import).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse.cli import airflow_env

if TYPE_CHECKING:
    from collections.abc import Sequence

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="socialpulse-tests-"))
# this repo's dags/ and plugins/, a SQLite metadata DB of the session's own, no examples
os.environ.update(airflow_env(_SESSION_DIR / "airflow"))
os.environ["SOCIALPULSE_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ.pop("SOCIALPULSE_COMPANIES", None)
os.environ.pop("SOCIALPULSE_WAREHOUSE", None)
# the embedded DuckDB file unless a test configures another warehouse
os.environ.pop("SOCIALPULSE_WAREHOUSE_CONN_ID", None)
os.environ.pop("SOCIALPULSE_WAREHOUSE_WRITERS", None)

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows of ``sql`` on the DuckDB file at ``path`` (opened read-only), as dicts."""
    from socialpulse.warehouse import connect, dict_rows

    with connect(path, read_only=True) as con:
        return dict_rows(con, sql, params)


def dag_state(obj: Any) -> str:
    """The state of a DAG run or task instance as a plain string."""
    return str(getattr(obj.state, "value", obj.state))


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh data folder (warehouse, staging, quarantine) for one test."""
    d = tmp_path / "data"
    monkeypatch.setenv("SOCIALPULSE_DATA_DIR", str(d))
    monkeypatch.delenv("SOCIALPULSE_WAREHOUSE", raising=False)
    return d


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """pytest-httpserver on 127.0.0.1 (loopback only), on a free port."""
    return ("127.0.0.1", 0)
