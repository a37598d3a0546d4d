"""Test isolation: every test session gets its own Airflow home and data folder.

Set before anything imports Airflow (its configuration is read once, at first import).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from socialpulse.cli import airflow_env

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="socialpulse-tests-"))
# this repo's dags/ and plugins/, a SQLite metadata DB of the session's own, no examples
os.environ.update(airflow_env(_SESSION_DIR / "airflow"))
os.environ["SOCIALPULSE_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ.pop("SOCIALPULSE_COMPANIES", None)
os.environ.pop("SOCIALPULSE_WAREHOUSE", None)

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
