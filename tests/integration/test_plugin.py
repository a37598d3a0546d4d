"""The socialpulse UI page, served by a real ``airflow api-server``, behind the Airflow login.

The server and its data are built once for the session (``api_server`` in conftest.py, see
``tests/integration/api_server.py``); these tests talk HTTP to it, the browser tests drive
headless Chromium against the same server.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

import pytest

from tests.conftest import PROJECT_ROOT
from tests.integration.api_server import TOKEN_EXPIRED, XSS, Server

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def server(api_server: Server) -> Server:
    return api_server


@pytest.mark.parametrize(
    "path",
    [
        "/socialpulse/",
        "/socialpulse/api/status",
        "/socialpulse/reports/x/y/report.html",
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
    # include/companies/sample.yaml: 20 craft businesses, 20 corporations
    assert {s["segment"]: s["companies"] for s in index["segments"]} == {
        "craft": 20,
        "corporation": 20,
    }

    errors = status["fetch_errors"]
    # an error and a configuration error; two warnings
    assert (errors["errors"], errors["warnings"]) == (2, 2)
    assert {e["error"] for e in errors["latest"]} - {
        XSS,
        "rate limited, retried",
        TOKEN_EXPIRED,
    } == {e["error"] for e in errors["latest"] if e["error"].startswith("thread of post ")}
    # what a person has to fix: the latest run's configuration errors
    assert [(e["platform"], e["handle"], e["error"]) for e in errors["configuration"]] == [
        ("facebook", "baeckereischmidt", TOKEN_EXPIRED)
    ]
    # thread coverage of the week: one thread cut short (58 of 62, the fixture's warning)
    [threads] = status["threads"]
    assert threads == {
        "platform": "sample",
        "threads_read": server.expected["threads_read"],
        "threads_short": 1,
        "replies_read": 58,
        "replies_counted": 62,
    }
    # liveliness dropped (marts.alerts): the latest alerts, newest first
    assert [
        (
            a["company_name"],
            a["period_type"],
            a["period_start"],
            a["is_liveliness_alert"],
            a["is_service_level_alert"],
        )
        for a in status["alerts"]
    ] == server.expected["alerts"]
    assert status["alerts"][0]["period_end"] == "2026-06-01"
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
        assert "<h3 class='error'>Configuration to fix</h3>" in page
        fix = page.split("<table class='configuration-errors'>", 1)[1].split("</table>", 1)[0]
        assert "<td>facebook</td>" in fix and html.escape(TOKEN_EXPIRED) in fix
        assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<td class='num warning'>1</td><td class='num'>58 / 62</td>" in page
        assert "http://" not in page and "https://" not in page  # no external URL
        assert "href='/socialpulse/data-docs/index.html'>Great Expectations Data Docs" in page
        assert "<h2>Alerts: liveliness dropped</h2>" in page
        alerts = page.split("<table class='alerts'>", 1)[1].split("</table>", 1)[0]
        rows = alerts.split("<tr>")[2:]  # after the header row
        assert len(rows) == len(server.expected["alerts"])
        for row, (name, ptype, start, live, service) in zip(
            rows, server.expected["alerts"], strict=True
        ):
            cells = row.split("<td")[1:]
            assert cells[0] == f">{html.escape(name)}</td>"
            assert cells[2] == f">{ptype} {start}</td>"
            # the value that dropped by more than its threshold is marked
            assert cells[3].startswith(" class='num error'>") == live
            assert cells[4].startswith(" class='num error'>") == service


def test_report_is_served(server: Server) -> None:
    url = f"/socialpulse/reports/{server.expected['report']}/report.html"
    resp = server.get(url, token=server.token)
    assert resp.status_code == 200
    latest = server.expected["latest"].isoformat()
    assert f'data-period-type="week" data-period-start="{latest}"' in resp.text
    assert "bad-batch" in resp.text  # the report's data-quality notes list the quarantine
    assert resp.headers["content-type"].startswith("text/html")
    missing = server.get(
        "/socialpulse/reports/sample/week-1999-01-04/report.html", token=server.token
    )
    assert missing.status_code == 404
    # reports are kept per registry: another registry's week does not replace this one
    other = server.get("/socialpulse/reports/other/" + server.expected["report"].split("/")[1]
                       + "/report.html", token=server.token)  # fmt: skip
    assert other.status_code == 404


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


#: what the data-docs pages load from the site, by suffix
ASSET_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


def test_data_docs_load_their_assets_from_the_site(server: Server) -> None:
    """No CDN: the policy of the data-docs route names no host, the pages load Bootstrap,
    jQuery, Font Awesome and Vega from the site, and the browser gets them without the login
    cookie (which the sandboxed pages' opaque origin does not send), fonts with CORS."""
    resp = server.get("/socialpulse/data-docs/index.html", token=server.token)
    assert resp.status_code == 200, resp.text
    csp = resp.headers["content-security-policy"]
    assert "http" not in csp and "sandbox allow-scripts allow-popups" in csp
    policy = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    for directive in ("script-src", "style-src", "font-src", "img-src"):
        assert "'self'" in policy[directive].split(), directive
    assets = re.findall(r'<(?:script|link|img)\b[^>]*\s(?:src|href)="(static/[^"]+)"', resp.text)
    assert len([a for a in assets if a.startswith("static/vendor/")]) == 15
    fonts = [
        f"static/vendor/fontawesome-free-6.6.0/webfonts/fa-{name}.woff2"
        for name in ("solid-900", "regular-400", "brands-400")
    ]
    for path in [*assets, *fonts]:
        asset = server.get(f"/socialpulse/data-docs/{path}")  # anonymous, as the pages ask
        assert asset.status_code == 200, path
        suffix = path[path.rindex(".") :]
        assert asset.headers["content-type"].startswith(ASSET_TYPES[suffix]), path
        assert asset.headers["access-control-allow-origin"] == "*"
        assert asset.headers["x-content-type-options"] == "nosniff"
    # without the login: static assets only, no page, no JSON, nothing outside static/
    for path in (
        "index.html",
        "static/vendor/manifest.json",
        "static/..%2Findex.html",
        "static/vendor/..%2F..%2F..%2Fsecret.txt",
    ):
        refused = server.get(f"/socialpulse/data-docs/{path}")
        assert refused.status_code in (401, 403, 404), path
        assert "docs-fixture" not in refused.text and "not for the web" not in refused.text


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
        "/socialpulse/reports/sample/%2e%2e/report.html",
        "/socialpulse/reports/%2e%2e/week-2026-05-25/report.html",
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
