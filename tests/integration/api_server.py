"""A real ``airflow api-server`` serving the socialpulse plugin, behind the Airflow login.

Shared by the plugin tests (HTTP) and the browser tests (headless Chromium): one server for
the test session, with its own Airflow home (SQLite, migrated), SimpleAuthManager with a
known admin password, and a data folder holding an analytics copy built from the SQL-test
fixture rows, a fetch error and a warning, a quarantined batch, a real period report and
real Great Expectations Data Docs.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from socialpulse import models, records
from socialpulse.cli import airflow_env
from socialpulse.config import SAMPLE_COMPANIES
from socialpulse.pipeline import account_refs
from socialpulse.platforms.base import FetchWindow
from socialpulse.platforms.sample import SamplePlatform
from socialpulse.registry import Registry, load_registry, reference_tables
from socialpulse.report import build_report
from socialpulse.warehouse import (
    connect,
    load_batch,
    publish_analytics_copy,
    record_fetch_errors,
    replace_reference_tables,
)
from tests.conftest import PROJECT_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

PASSWORD = "socialpulse-test-password"
STARTUP_TIMEOUT = 120
XSS = "<script>alert(1)</script>"
TOKEN_EXPIRED = (
    "the access token in connection facebook_default is not valid (code 190/463: Error "
    "validating access token: Session has expired): create a new long-lived token and put "
    "it in the connection's password"
)
SAMPLE_END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # a Monday: the last week is complete
SAMPLE_DAYS = 22


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_warehouse_rows(days: int = SAMPLE_DAYS) -> tuple[Registry, dict[str, pa.Table]]:
    """The offline sample platform's 40 companies (both segments), ``days`` up to SAMPLE_END."""
    reg = load_registry(SAMPLE_COMPANIES)
    window = FetchWindow(SAMPLE_END - dt.timedelta(days=days), SAMPLE_END, dt.timedelta(days=28))
    result = SamplePlatform().fetch(account_refs(reg, "sample"), window)
    assert not result.errors
    return reg, result.tables()


def _build_data(data: Path) -> dict[str, Any]:
    """Analytics copy, quarantine folder and a report under ``data``; returns what to expect."""
    data.mkdir(parents=True)
    with connect(data / "warehouse.duckdb") as con:
        registry, tables = sample_warehouse_rows()
        replace_reference_tables(con, reference_tables(registry))
        load_batch(con, "fixture-1", tables)
        record_fetch_errors(
            con,
            "fixture-1",
            "manual__1",
            [
                {"platform": "mastodon", "company_id": "a", "handle": "a-m", "error": XSS},
                {
                    "platform": "bluesky",
                    "company_id": "c",
                    "handle": "c-b",
                    "severity": "warning",
                    "error": "rate limited, retried",
                },
            ],
        )
        # a thread the connector could not read in full, under the first original post of the
        # latest complete week (2026-05-25) that has a thread
        [short] = con.execute(
            "select min(p.post_id) from raw.post_observations as p "
            "join raw.thread_replies as t on t.platform = p.platform and t.root_post_id = p.post_id "
            "where p.kind = 'original' and p.created_at >= timestamp '2026-05-25' "
            "and p.created_at < timestamp '2026-06-01'"
        ).fetchone()
        record_fetch_errors(
            con,
            "fixture-threads",
            "manual__1",
            [
                {
                    "platform": "sample",
                    "company_id": "baeckerei-schmidt",
                    "handle": "baeckerei-schmidt",
                    "severity": "warning",
                    "error": f"thread of post {short}: read 58 of 62 direct replies (capped)",
                }
            ],
        )
        # the latest run: an expired token, a configuration error a person has to fix
        record_fetch_errors(
            con,
            "fixture-facebook",
            "manual__2",
            [
                {
                    "platform": "facebook",
                    "company_id": "baeckerei-schmidt",
                    "handle": "baeckereischmidt",
                    "severity": "configuration",
                    "error": TOKEN_EXPIRED,
                }
            ],
        )
        models.build_all(con, models.discover())
        publish_analytics_copy(con, data / "analytics.duckdb")
    import duckdb

    with duckdb.connect(str(data / "analytics.duckdb"), read_only=True) as con:
        latest = con.execute(
            "select max(period_start) from marts.success_index "
            "where period_type = 'week' and is_complete"
        ).fetchone()[0]
        medians = dict(
            con.execute(
                "select segment, median(success_index) from marts.success_index "
                "where period_type = 'week' and period_start = ? group by segment",
                [latest],
            ).fetchall()
        )
        # threads read: the week's own originals that have at least one thread row
        # liveliness dropped (marts.alerts), newest first as the page lists them: the sample
        # companies' weeks give several, the latest complete week's among them
        alerts = [
            (name, ptype, start.isoformat(), live, service)
            for name, ptype, start, live, service in con.execute(
                "select company_name, period_type, period_start, is_liveliness_alert, "
                "is_service_level_alert from marts.alerts "
                "order by period_end desc, period_type, segment, company_name, company_id limit 20"
            ).fetchall()
        ]
        [threads_read] = con.execute(
            "select count(*) from (select distinct p.post_id from raw.post_observations as p "
            "semi join raw.thread_replies as t on t.root_post_id = p.post_id "
            "where p.kind = 'original' and p.created_at >= ? and p.created_at < ? + 7)",
            [latest, latest],
        ).fetchone()
    # SAMPLE_END is Monday 2026-06-01 00:00, the last snapshot: the week from 05-25 is the
    # latest complete one
    assert latest == dt.date(2026, 5, 25) and medians
    assert ("week", "2026-05-25") in {(a[1], a[2]) for a in alerts}

    batch = data / "quarantine" / "bad-batch"
    batch.mkdir(parents=True)
    (batch / "validation_result.json").write_text(
        json.dumps({"batch_id": "bad-batch", "rows": 3, "failures": ["likes must be >= 0"]})
    )
    report = build_report(
        data / "analytics.duckdb", data / "reports" / "sample", "week", latest, data / "quarantine"
    )
    (data / "secret.txt").write_text("not for the web")
    _build_data_docs(data)
    return {
        "latest": latest,
        "medians": medians,
        "report": f"sample/{report.html.parent.name}",
        "threads_read": threads_read,
        "alerts": alerts,
    }


def _build_data_docs(data: Path) -> None:
    """Real GX Data Docs in ``data/gx_docs``: validate one tiny batch with ``data`` as data dir."""
    from unittest import mock

    from socialpulse.validation import validate_batch

    row = {
        "company_id": "a",
        "metric": "findability",
        "period_type": "month",
        "period_start": dt.date(2026, 2, 1),
        "value": 55.0,
        "observed_at": dt.datetime(2026, 2, 28),
    }
    tables = {"manual_metrics": records.to_arrow(records.RAW_SCHEMAS["manual_metrics"], [row])}
    with mock.patch.dict(os.environ, {"SOCIALPULSE_DATA_DIR": str(data)}):
        validate_batch("docs-fixture", tables, now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    assert (data / "gx_docs" / "index.html").is_file()


class Server:
    def __init__(self, base: str, expected: dict[str, Any], data: Path) -> None:
        self.base = base
        self.data = data
        self.expected = expected
        self.token = ""

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.base + path, headers=headers, timeout=30, **kwargs)

    def raw_get(self, path: str, token: str) -> int:
        """GET with the path sent exactly as given (requests would normalise ``..``)."""
        host, port = self.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            body = resp.read()
            assert b"not for the web" not in body and b"root:" not in body
            return resp.status
        finally:
            conn.close()


def start_api_server(root: Path) -> Iterator[Server]:
    """Build the data under ``root``, start the API server, log in; stop it afterwards."""
    home, data = root / "airflow", root / "data"
    home.mkdir()
    expected = _build_data(data)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "SOCIALPULSE_")) and k != "AIRFLOW_HOME"
    }
    env.update(airflow_env(home))
    env.update(
        {
            "SOCIALPULSE_DATA_DIR": str(data),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    log = (root / "api-server.log").open("w")
    proc = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert proc.poll() is None, (root / "api-server.log").read_text()[-5000:]
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"api-server not healthy within {STARTUP_TIMEOUT} s:\n"
                    + (root / "api-server.log").read_text()[-5000:]
                )
            time.sleep(0.5)
        srv = Server(base, expected, data)
        login = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30
        )
        assert login.status_code == 201, login.text
        srv.token = login.json()["access_token"]
        yield srv
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)  # the server and its uvicorn worker
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        log.close()
