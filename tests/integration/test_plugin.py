"""The socialpulse UI page, served by a real ``airflow api-server``, behind the Airflow login.

One API server for the module: its own Airflow home (SQLite, migrated), SimpleAuthManager with
a known admin password, and a data folder holding an analytics copy built from the SQL-test
fixture rows, a fetch error and a warning, a quarantined batch and a report file.
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

from socialpulse import models
from socialpulse.cli import airflow_env
from socialpulse.warehouse import (
    connect,
    load_batch,
    publish_analytics_copy,
    record_fetch_errors,
    replace_reference_tables,
)
from tests.conftest import PROJECT_ROOT
from tests.sql.conftest import raw_tables, ref_tables

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

PASSWORD = "socialpulse-test-password"
STARTUP_TIMEOUT = 120
XSS = "<script>alert(1)</script>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_data(data: Path) -> dict[str, Any]:
    """Analytics copy, quarantine folder and a report under ``data``; returns what to expect."""
    data.mkdir(parents=True)
    with connect(data / "warehouse.duckdb") as con:
        replace_reference_tables(con, ref_tables())
        load_batch(con, "fixture-1", raw_tables())
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
    assert isinstance(latest, dt.date) and medians

    batch = data / "quarantine" / "bad-batch"
    batch.mkdir(parents=True)
    (batch / "validation_result.json").write_text(
        json.dumps({"batch_id": "bad-batch", "rows": 3, "failures": ["likes must be >= 0"]})
    )
    folder = f"week-{latest.isoformat()}"
    (data / "reports" / folder).mkdir(parents=True)
    (data / "reports" / folder / "report.html").write_text(
        "<!doctype html><p>fake weekly report</p>", encoding="utf-8"
    )
    (data / "secret.txt").write_text("not for the web")
    _build_data_docs(data)
    return {"latest": latest, "medians": medians, "report": folder}


def _build_data_docs(data: Path) -> None:
    """Real GX Data Docs in ``data/gx_docs``: validate one tiny batch with ``data`` as data dir."""
    from unittest import mock

    from socialpulse import records
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
    def __init__(self, base: str, expected: dict[str, Any]) -> None:
        self.base = base
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("plugin")
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
        srv = Server(base, expected)
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


@pytest.mark.parametrize(
    "path",
    [
        "/socialpulse/",
        "/socialpulse/api/status",
        "/socialpulse/reports/x/report.html",
        "/socialpulse/data-docs/index.html",
    ],
)
def test_anonymous_requests_are_refused(server: Server, path: str) -> None:
    assert server.get(path).status_code in (401, 403)
    assert server.get(path, token="not-a-jwt").status_code in (401, 403)
    if path.endswith("report.html"):  # a real report, too
        url = f"/socialpulse/reports/{server.expected['report']}/report.html"
        assert server.get(url).status_code in (401, 403)


def test_no_unauthenticated_openapi_docs(server: Server) -> None:
    for path in ("/socialpulse/docs", "/socialpulse/openapi.json"):
        resp = server.get(path)
        assert resp.status_code in (401, 403, 404)
        assert "openapi" not in resp.text.lower()


def test_status_json_holds_the_segment_medians(server: Server) -> None:
    resp = server.get("/socialpulse/api/status", token=server.token)
    assert resp.status_code == 200, resp.text
    status = resp.json()
    assert status["analytics_copy"]["available"] is True
    index = status["success_index"]
    assert index["period_start"] == server.expected["latest"].isoformat()
    got = {s["segment"]: s["median_success_index"] for s in index["segments"]}
    assert got.keys() == server.expected["medians"].keys()
    for segment, median in server.expected["medians"].items():
        assert got[segment] == pytest.approx(median)
    assert all(s["companies"] >= 1 for s in index["segments"])

    errors = status["fetch_errors"]
    assert (errors["errors"], errors["warnings"]) == (1, 1)
    assert {e["error"] for e in errors["latest"]} == {XSS, "rate limited, retried"}
    assert [q["batch_id"] for q in status["quarantine"]] == ["bad-batch"]
    assert status["quarantine"][0]["failures"] == ["likes must be >= 0"]
    assert {load["batch_id"] for load in status["loads"]} == {"fixture-1"}
    report_url = f"/socialpulse/reports/{server.expected['report']}/report.html"
    assert [r["url"] for r in status["reports"]] == [report_url]


def test_html_page_with_bearer_token_and_with_the_ui_cookie(server: Server) -> None:
    by_header = server.get("/socialpulse/", token=server.token)
    # the Airflow UI (and the iframe of the nav entry) sends the JWT as the `_token` cookie
    by_cookie = server.get("/socialpulse/", cookies={"_token": server.token})
    for resp in (by_header, by_cookie):
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/html")
        page = resp.text
        for segment in server.expected["medians"]:
            assert f"<td class='segment'>{segment}</td>" in page
        assert f"href='/socialpulse/reports/{server.expected['report']}/report.html'" in page
        assert "bad-batch" in page and "likes must be &gt;= 0" in page
        assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "http://" not in page and "https://" not in page  # no external URL
        assert "href='/socialpulse/data-docs/index.html'>Great Expectations Data Docs" in page


def test_report_is_served(server: Server) -> None:
    url = f"/socialpulse/reports/{server.expected['report']}/report.html"
    resp = server.get(url, token=server.token)
    assert resp.status_code == 200
    assert "fake weekly report" in resp.text
    assert resp.headers["content-type"].startswith("text/html")
    missing = server.get("/socialpulse/reports/week-1999-01-04/report.html", token=server.token)
    assert missing.status_code == 404


def test_data_docs_are_served(server: Server) -> None:
    resp = server.get("/socialpulse/data-docs/index.html", token=server.token)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert "docs-fixture" in resp.text and "validations/raw/manual_metrics/" in resp.text
    csp = resp.headers["content-security-policy"]
    assert "sandbox" in csp and "frame-ancestors 'self'" in csp
    # the page a link of the index leads to, and a static asset
    start = resp.text.index("validations/raw/manual_metrics/")
    page = resp.text[start : resp.text.index(".html", start) + 5]
    result = server.get(f"/socialpulse/data-docs/{page}", token=server.token)
    assert result.status_code == 200 and "raw.manual_metrics" in result.text
    icon = server.get("/socialpulse/data-docs/static/images/favicon.ico", token=server.token)
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    missing = server.get("/socialpulse/data-docs/nope.html", token=server.token)
    assert missing.status_code == 404
    # the relaxed policy is the data docs' own: the other routes keep theirs
    main = server.get("/socialpulse/", token=server.token)
    assert main.headers["content-security-policy"].startswith("default-src 'none'; style-src")


@pytest.mark.parametrize(
    "path",
    [
        "/socialpulse/data-docs/../secret.txt",
        "/socialpulse/data-docs/..%2Fsecret.txt",
        "/socialpulse/data-docs/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/socialpulse/data-docs/static/..%2F..%2F..%2Fsecret.txt",
        "/socialpulse/data-docs/%2Fetc%2Fpasswd",
        "/socialpulse/data-docs//etc/passwd",
        "/socialpulse/reports/../../etc/passwd",
        "/socialpulse/reports/../../../../../../etc/passwd",
        "/socialpulse/reports/../secret.txt",
        "/socialpulse/reports/..%2F..%2Fsecret.txt/report.html",
        "/socialpulse/reports/%2e%2e/report.html",
        "/socialpulse/reports/week-2024-01-01%2F..%2F..%2Fsecret.txt/report.html",
    ],
)
def test_path_traversal_is_refused(server: Server, path: str) -> None:
    assert server.raw_get(path, server.token) in (400, 404)


def test_page_without_an_analytics_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the first models run: a message (the route answers 200), not an error."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "socialpulse_plugin_under_test", PROJECT_ROOT / "plugins" / "socialpulse_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    assert "duckdb" not in vars(plugin)
    monkeypatch.setenv("SOCIALPULSE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("SOCIALPULSE_ANALYTICS", raising=False)
    status = plugin.collect_status()
    assert status["analytics_copy"]["available"] is False
    assert "does not exist yet" in status["analytics_copy"]["message"]
    assert status["success_index"]["segments"] == [] and status["reports"] == []
    assert "does not exist yet" in plugin.render_page(status)


def test_nav_entry_is_registered(server: Server) -> None:
    resp = server.get("/api/v2/plugins", token=server.token)
    assert resp.status_code == 200, resp.text
    plugin = next(p for p in resp.json()["plugins"] if p["name"] == "socialpulse")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/socialpulse"
    view = plugin["external_views"][0]
    assert (view["name"], view["href"], view["destination"]) == (
        "socialpulse",
        "/socialpulse/",
        "nav",
    )
