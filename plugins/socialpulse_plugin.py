"""The socialpulse page in the Airflow UI: latest success index per segment, data quality.

Mounted by the API server at ``/socialpulse`` (``fastapi_apps``) and linked in the UI's
navigation (``external_views``, shown inside the UI as an iframe at ``/plugin/socialpulse``):

* ``GET /socialpulse/``: server-rendered HTML (inline CSS, no scripts, no external URL).
* ``GET /socialpulse/api/status``: the same data as JSON.
* ``GET /socialpulse/reports/<registry>/<type>-<start>/report.html``: a published report.
* ``GET /socialpulse/data-docs/<path>``: the Great Expectations Data Docs site that
  ``socialpulse.validation`` builds in ``<data_dir>/gx_docs`` (every batch's validation).
* ``GET /socialpulse/data-docs/static/<path>``: the site's images, CSS, JS and fonts (GX's own
  and the vendored Bootstrap, jQuery, Font Awesome, Vega: no validation data), the one path
  served without the login: the Data Docs pages run sandboxed, in an opaque origin, so their
  browser sends no cookie when they load these files.

Every other route requires the Airflow UI login: the app-level dependency
``requires_access_view(AccessView.WEBSITE)`` from ``airflow.api_fastapi.core_api.security``
accepts the JWT as ``Authorization: Bearer`` or as the UI's ``_token`` cookie and answers
401/403 otherwise.

Airflow imports this module in every component that loads plugins (scheduler, DAG
processor, workers), so it imports nothing heavy: FastAPI, the Airflow API security module
and ``socialpulse`` are imported when the API server serves the first request, and DuckDB
only inside a request, read-only, on the analytics copy.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations
# (``Request``), which are imported inside create_app, not at module level.
import re
import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/socialpulse"
#: report folders written by socialpulse.report.build_report: <period_type>-<YYYY-MM-DD>
REPORT_FOLDER = re.compile(r"(week|month)-(\d{4}-\d{2}-\d{2})")
#: one folder of reports per registry (socialpulse.config.Settings.registry_key)
REGISTRY_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_FETCH_ERRORS = 50
MAX_LOADS = 20
MAX_ALERTS = 20
MAX_REPORTS = 12
#: pages and reports may only use their own inline CSS / SVG and be framed by the Airflow UI
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
#: GX Data Docs use inline scripts and styles, and Bootstrap, jQuery, Font Awesome and Vega,
#: which socialpulse.validation.localise_docs copies into the site (no CDN): allowed on the
#: data-docs route only, from the site itself, in a sandbox (an opaque origin: its scripts
#: cannot read the Airflow UI's cookie or call the API as the user), without forms or
#: requests to anywhere else
DATA_DOCS_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; font-src 'self' data:; form-action 'none'; base-uri 'none';"
        " frame-ancestors 'self'; sandbox allow-scripts allow-popups"
    ),
}
#: the site's static assets: public files (also to the pages' opaque origin, which loads the
#: fonts with CORS), served with the same policy
DATA_DOCS_ASSET_HEADERS = {**DATA_DOCS_HEADERS, "Access-Control-Allow-Origin": "*"}
DATA_DOCS_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".otf": "font/otf",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
#: the suffixes of the static assets served: no page, no JSON
DATA_DOCS_ASSET_TYPES = frozenset(DATA_DOCS_TYPES) - {".html", ".json"}


# --- data ---------------------------------------------------------------------------------


def _success_index(con: Any) -> dict[str, Any]:
    from socialpulse.warehouse import dict_rows, has_table

    if not has_table(con, "marts", "success_index"):
        return {"period_start": None, "period_end": None, "segments": []}
    latest = con.execute(
        "select max(period_start) from marts.success_index "
        "where period_type = 'week' and is_complete"
    ).fetchone()[0]
    if latest is None:
        return {"period_start": None, "period_end": None, "segments": []}
    segments = dict_rows(
        con,
        """
        select
          segment,
          median(success_index) as median_success_index,
          count(*) as companies,
          count(success_index) as companies_scored,
          string_agg(company_name, ', ' order by company_name)
            filter (where segment_rank = 1 and success_index is not null) as best_company,
          max(success_index) as best_success_index,
          max(period_end) as period_end
        from marts.success_index
        where period_type = 'week' and period_start = ?
        group by segment
        order by segment
        """,
        [latest],
    )
    period_end = segments[0]["period_end"] if segments else None
    for s in segments:
        s.pop("period_end")
    return {"period_start": latest, "period_end": period_end, "segments": segments}


def _alerts(con: Any) -> list[dict[str, Any]]:
    """The latest rows of marts.alerts (liveliness or service level dropped), newest first."""
    from socialpulse.warehouse import dict_rows, has_table

    if not has_table(con, "marts", "alerts"):
        return []
    return dict_rows(
        con,
        """
        select
          company_id, company_name, segment, period_type, period_start, period_end,
          liveliness_score, previous_liveliness_score, liveliness_drop, is_liveliness_alert,
          service_level, previous_service_level, service_level_drop, is_service_level_alert
        from marts.alerts
        order by period_end desc, period_type, segment, company_name, company_id
        limit ?
        """,
        [MAX_ALERTS],
    )


def _threads(con: Any, index: dict[str, Any]) -> list[dict[str, Any]]:
    """Thread coverage per platform for the posts of the week the page shows."""
    from socialpulse.report import thread_coverage

    if index["period_start"] is None or index["period_end"] is None:
        return []
    return thread_coverage(con, index["period_start"], index["period_end"])


def _fetch_errors(con: Any) -> dict[str, Any]:
    from socialpulse.warehouse import dict_rows, has_table

    if not has_table(con, "ops", "fetch_errors"):
        return {"errors": 0, "warnings": 0, "latest": [], "configuration": []}
    errors, warnings = con.execute(
        "select count(*) filter (where severity <> 'warning'), "
        "count(*) filter (where severity = 'warning') from ops.fetch_errors"
    ).fetchone()
    # what a person has to fix (an expired token, a missing permission, a used-up quota):
    # the configuration errors of the latest run that recorded any problem, one per account
    configuration = dict_rows(
        con,
        "select recorded_at, platform, company_id, handle, error, run_id "
        "from ops.fetch_errors where severity = 'configuration' and run_id = "
        "(select run_id from ops.fetch_errors order by recorded_at desc limit 1) "
        "qualify row_number() over (partition by platform, company_id, handle "
        "order by recorded_at desc) = 1 order by platform, company_id, handle",
    )
    latest = dict_rows(
        con,
        "select recorded_at, severity, platform, company_id, handle, error, batch_id "
        "from ops.fetch_errors order by recorded_at desc, severity, company_id, handle limit ?",
        [MAX_FETCH_ERRORS],
    )
    return {
        "errors": errors,
        "warnings": warnings,
        "latest": latest,
        "configuration": configuration,
    }


def _loads(con: Any) -> list[dict[str, Any]]:
    from socialpulse.warehouse import dict_rows, has_table

    if not has_table(con, "ops", "load_log"):
        return []
    return dict_rows(
        con,
        """
        select
          batch_id,
          max(loaded_at) as loaded_at,
          sum(rows_in_batch)::bigint as rows_in_batch,
          sum(rows_replaced)::bigint as rows_replaced,
          string_agg(table_name, ', ' order by table_name) as tables
        from ops.load_log
        group by batch_id
        order by loaded_at desc, batch_id
        limit ?
        """,
        [MAX_LOADS],
    )


def _quarantine(settings: Any) -> list[dict[str, Any]]:
    from socialpulse.report import read_quarantine

    found = read_quarantine(settings.quarantine_dir)
    return sorted(found, key=lambda q: q["modified"], reverse=True)


def _reports(settings: Any, root_path: str) -> list[dict[str, Any]]:
    """The published reports of every registry (``<reports>/<registry>/<type>-<start>/``)."""
    root = settings.reports_dir
    found = []
    for registry in sorted(root.iterdir()) if root.is_dir() else []:
        if not REGISTRY_FOLDER.fullmatch(registry.name) or not registry.is_dir():
            continue
        for sub in registry.iterdir():
            match = REPORT_FOLDER.fullmatch(sub.name)
            if match and (sub / "report.html").is_file():
                found.append(
                    {
                        "registry": registry.name,
                        "period_type": match.group(1),
                        "period_start": match.group(2),
                        "url": f"{root_path}/reports/{registry.name}/{sub.name}/report.html",
                    }
                )
    found.sort(key=lambda r: (r["period_start"], r["period_type"], r["registry"]), reverse=True)
    return found[:MAX_REPORTS]


def collect_status(root_path: str = URL_PREFIX) -> dict[str, Any]:
    """Everything the page shows. Never raises for missing or unreadable data: says so."""
    import datetime as dt

    from socialpulse.config import settings

    s = settings()
    status: dict[str, Any] = {
        "analytics_copy": {"available": False, "published_at": None, "message": None},
        "success_index": {"period_start": None, "period_end": None, "segments": []},
        "alerts": [],
        "fetch_errors": {"errors": 0, "warnings": 0, "latest": []},
        "threads": [],
        "loads": [],
        "quarantine": _quarantine(s),
        "reports": _reports(s, root_path),
        "data_docs": (
            f"{root_path}/data-docs/index.html"
            if (s.gx_docs_dir / "index.html").is_file()
            else None
        ),
    }
    copy = status["analytics_copy"]
    if not s.analytics.is_file():
        copy["message"] = (
            "The analytics copy does not exist yet: no models run has published it. "
            "Run the pipeline (socialpulse_ingest, then socialpulse_models)."
        )
        return status
    import duckdb

    copy["published_at"] = dt.datetime.fromtimestamp(s.analytics.stat().st_mtime, dt.UTC)
    try:
        con = duckdb.connect(str(s.analytics), read_only=True)
    except duckdb.Error as exc:
        copy["message"] = f"The analytics copy cannot be opened read-only: {exc}"
        return status
    try:
        con.execute("set TimeZone = 'UTC'")
        status["success_index"] = _success_index(con)
        status["threads"] = _threads(con, status["success_index"])
        status["alerts"] = _alerts(con)
        status["fetch_errors"] = _fetch_errors(con)
        status["loads"] = _loads(con)
        copy["available"] = True
        if not status["success_index"]["segments"]:
            copy["message"] = "The analytics copy has no complete week in marts.success_index yet."
    except duckdb.Error as exc:
        copy["message"] = f"The analytics copy cannot be read: {exc}"
    finally:
        con.close()
    return status


# --- HTML ---------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2329;background:#fff;margin:0 auto;max-width:1100px;padding:1.25rem;line-height:1.45}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{margin-top:2rem;border-bottom:2px solid #d8dee4;
 padding-bottom:.25rem;font-size:1.2rem}
.muted{color:#6a737d;font-size:.9rem}.note{background:#fff8e1;border-left:4px solid #f0b400;
 padding:.5rem .75rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e1e4e8;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num,th.num{text-align:right;
 font-variant-numeric:tabular-nums}
.error{color:#b00020;font-weight:600}.warning{color:#8a6100;font-weight:600}.ok{color:#2e7d32}
.quarantine-batch{border-left:4px solid #b00020;padding:.25rem .75rem;margin:.5rem 0}
"""
NULL = "\u2013"


def _e(value: Any) -> str:
    import html

    if value is None:
        return NULL
    if hasattr(value, "isoformat") and hasattr(value, "hour"):
        return html.escape(value.strftime("%Y-%m-%d %H:%M"))
    return html.escape(str(value))


def _count(n: int, noun: str) -> str:
    """``1 warning``, ``2 warnings``, ``1 quarantined batch``, ``0 quarantined batches``."""
    plural = noun + ("es" if noun.endswith(("ch", "sh", "s", "x")) else "s")
    return f"{n} {noun if n == 1 else plural}"


def _data_docs_link(url: str | None) -> list[str]:
    """The link to the GX Data Docs, once built (the ingest run's data_docs task)."""
    import html

    if not url:
        return []
    return [
        f"<p class='data-docs'><a href='{html.escape(url, quote=True)}'>"
        "Great Expectations Data Docs</a> <span class='muted'>(every batch's validation"
        " results)</span></p>"
    ]


def _threads_html(threads: list[dict[str, Any]]) -> list[str]:
    """Thread coverage per platform (the posts of the week shown at the top)."""
    if not threads:
        return []
    out = [
        "<h3>Threads read (posts of the week above)</h3>"
        "<table class='threads'><tr><th>Platform</th><th class='num'>Threads read</th>"
        "<th class='num'>Cut short</th><th class='num'>Direct replies read / counted"
        " there</th></tr>"
    ]
    for t in threads:
        short = t["threads_short"]
        out.append(
            f"<tr><td>{_e(t['platform'])}</td><td class='num'>{_e(t['threads_read'])}</td>"
            f"<td class='num{' warning' if short else ''}'>{_e(short)}</td>"
            f"<td class='num'>"
            + (f"{_e(t['replies_read'])} / {_e(t['replies_counted'])}" if short else NULL)
            + "</td></tr>"
        )
    out.append("</table>")
    if any(t["threads_short"] for t in threads):
        out.append(
            "<p class='muted'>A thread is cut short when the platform counts more direct"
            " replies than its API returned (Mastodon: at most 60 descendants without a"
            " token; set one in the connection mastodon_default).</p>"
        )
    return out


def _alerts_html(alerts: list[dict[str, Any]]) -> list[str]:
    """The latest liveliness alerts (marts.alerts)."""
    from socialpulse.report import fmt_score

    out = ["<h2>Alerts: liveliness dropped</h2>"]
    if not alerts:
        out.append(
            "<p class='muted'>No alerts: no liveliness score or service level fell by"
            " more than its threshold against the period before.</p>"
        )
        return out

    def share(value: Any) -> str:
        return NULL if value is None else f"{value:.0%}"

    out.append(
        f"<p class='muted'>The latest {MAX_ALERTS} at most, newest first: a drop against the"
        " previous period of the same type (both observed).</p>"
        "<table class='alerts'><tr><th>Company</th><th>Segment</th><th>Period</th>"
        "<th class='num'>Liveliness score</th><th class='num'>Service level</th></tr>"
    )
    for a in alerts:
        live = (
            f"{fmt_score(a['previous_liveliness_score'])} &rarr; {fmt_score(a['liveliness_score'])}"
        )
        service = f"{share(a['previous_service_level'])} &rarr; {share(a['service_level'])}"
        out.append(
            f"<tr><td>{_e(a['company_name'])}</td><td>{_e(a['segment'])}</td>"
            f"<td>{_e(a['period_type'])} {_e(a['period_start'])}</td>"
            f"<td class='num{' error' if a['is_liveliness_alert'] else ''}'>{live}</td>"
            f"<td class='num{' error' if a['is_service_level_alert'] else ''}'>{service}</td></tr>"
        )
    out.append("</table>")
    return out


def _configuration_html(configuration: list[dict[str, Any]]) -> list[str]:
    """The configuration errors of the latest run with problems: what a person must fix."""
    if not configuration:
        return []
    out = [
        "<h3 class='error'>Configuration to fix</h3>"
        f"<p>The latest run with problems (<code>{_e(configuration[0]['run_id'])}</code>) could "
        "not read these accounts until a person acts: renew a token, grant a permission, "
        "wait for or raise a quota. Credentials live in Airflow connections (Admin &gt; "
        "Connections).</p><table class='configuration-errors'><tr><th>Recorded (UTC)</th>"
        "<th>Platform</th><th>Company</th><th>Handle</th><th>What to do</th></tr>"
    ]
    for e in configuration:
        out.append(
            f"<tr><td>{_e(e['recorded_at'])}</td><td>{_e(e['platform'])}</td>"
            f"<td>{_e(e['company_id'])}</td><td>{_e(e['handle'])}</td>"
            f"<td>{_e(e['error'])}</td></tr>"
        )
    out.append("</table>")
    return out


def render_page(status: dict[str, Any], root_path: str = URL_PREFIX) -> str:
    """The status as one self-contained HTML page; every text from data is escaped."""
    import html

    from socialpulse.report import fmt_score

    copy = status["success_index"]
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>socialpulse</title><style>{CSS}</style></head><body>",
        "<h1>socialpulse</h1>",
        "<p class='muted'>Latest complete week from the analytics copy"
        f" (published {_e(status['analytics_copy']['published_at'])} UTC)."
        f" <a href='{html.escape(root_path, quote=True)}/api/status'>JSON</a></p>",
    ]
    if status["analytics_copy"]["message"]:
        out.append(f"<p class='note'>{_e(status['analytics_copy']['message'])}</p>")

    out.append("<h2>Success index per segment</h2>")
    if copy["segments"]:
        out.append(
            f"<p class='muted'>Week {_e(copy['period_start'])} to {_e(copy['period_end'])}"
            " (end exclusive).</p>"
        )
        out.append(
            "<table class='success-index'><tr><th>Segment</th><th class='num'>Median success"
            " index</th><th class='num'>Companies</th><th class='num'>Scored</th>"
            "<th>Best company</th><th class='num'>Best index</th></tr>"
        )
        for s in copy["segments"]:
            out.append(
                f"<tr><td class='segment'>{_e(s['segment'])}</td>"
                f"<td class='num'>{fmt_score(s['median_success_index'])}</td>"
                f"<td class='num'>{_e(s['companies'])}</td>"
                f"<td class='num'>{_e(s['companies_scored'])}</td>"
                f"<td>{_e(s['best_company'])}</td>"
                f"<td class='num'>{fmt_score(s['best_success_index'])}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p class='muted'>No complete week yet.</p>")

    out += _alerts_html(status.get("alerts") or [])

    out.append("<h2>Reports</h2>")
    if status["reports"]:
        out.append("<ul class='reports'>")
        for r in status["reports"]:
            out.append(
                f"<li><a href='{html.escape(r['url'], quote=True)}'>{_e(r['period_type'])}"
                f" starting {_e(r['period_start'])}</a> <span class='muted'>registry"
                f" {_e(r['registry'])}</span></li>"
            )
        out.append("</ul>")
    else:
        out.append("<p class='muted'>No report published yet.</p>")

    errors = status["fetch_errors"]
    quarantine = status["quarantine"]
    out.append("<h2>Data quality</h2>")
    clean = not errors["errors"] and not errors["warnings"] and not quarantine
    out.append(
        "<p>"
        + (
            "<span class='ok'>No fetch errors, no quarantined batches.</span>"
            if clean
            else f"<span class='error'>{_count(errors['errors'], 'fetch error')}</span>, "
            f"<span class='warning'>{_count(errors['warnings'], 'warning')}</span>, "
            f"<span class='error'>{_count(len(quarantine), 'quarantined batch')}</span>."
        )
        + "</p>"
    )
    out += _configuration_html(errors.get("configuration") or [])
    if errors["latest"]:
        out.append(
            f"<h3>Fetch errors and warnings (latest {MAX_FETCH_ERRORS})</h3>"
            "<table class='fetch-errors'><tr><th>Recorded (UTC)</th><th>Severity</th>"
            "<th>Platform</th><th>Company</th><th>Handle</th><th>Message</th><th>Batch</th></tr>"
        )
        for e in errors["latest"]:
            severity = "warning" if e["severity"] == "warning" else "error"
            out.append(
                f"<tr><td>{_e(e['recorded_at'])}</td><td class='{severity}'>"
                f"{_e(e['severity'])}</td><td>{_e(e['platform'])}</td>"
                f"<td>{_e(e['company_id'])}</td><td>{_e(e['handle'])}</td>"
                f"<td>{_e(e['error'])}</td><td>{_e(e['batch_id'])}</td></tr>"
            )
        out.append("</table>")
    out += _threads_html(status.get("threads") or [])
    out += _data_docs_link(status.get("data_docs"))
    if quarantine:
        out.append("<h3>Quarantined batches</h3>")
        for q in quarantine:
            out.append(
                f"<div class='quarantine-batch'><strong>{_e(q['batch_id'])}</strong>"
                f" <span class='muted'>({_e(q['modified'])} UTC)</span><ul>"
                + "".join(f"<li>{_e(f)}</li>" for f in q["failures"])
                + "</ul></div>"
            )

    out.append("<h2>Latest loads</h2>")
    if status["loads"]:
        out.append(
            "<table class='loads'><tr><th>Loaded (UTC)</th><th>Batch</th><th>Tables</th>"
            "<th class='num'>Rows</th><th class='num'>Rows replaced</th></tr>"
        )
        for load in status["loads"]:
            out.append(
                f"<tr><td>{_e(load['loaded_at'])}</td><td>{_e(load['batch_id'])}</td>"
                f"<td>{_e(load['tables'])}</td><td class='num'>{_e(load['rows_in_batch'])}</td>"
                f"<td class='num'>{_e(load['rows_replaced'])}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p class='muted'>No loads recorded.</p>")
    out.append("</body></html>")
    return "\n".join(out)


# --- the FastAPI app ----------------------------------------------------------------------


def create_app() -> Any:
    """The FastAPI app; every route requires the Airflow UI login (401/403 otherwise), but
    the Data Docs' static assets."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    app = FastAPI(
        title="socialpulse",
        dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
        # no unauthenticated /docs, /redoc or /openapi.json under /socialpulse
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def root_path(request: Request) -> str:
        return str(request.scope.get("root_path") or URL_PREFIX).rstrip("/")

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        prefix = root_path(request)
        html_text = render_page(collect_status(prefix), prefix)
        return HTMLResponse(html_text, headers=SECURITY_HEADERS)

    @app.get("/api/status")
    def api_status(request: Request) -> JSONResponse:
        status = collect_status(root_path(request))
        return JSONResponse(jsonable_encoder(status), headers={"Cache-Control": "no-store"})

    @app.get("/reports/{registry}/{folder}/report.html")
    def report(registry: str, folder: str) -> FileResponse:
        from socialpulse.config import settings

        if not REGISTRY_FOLDER.fullmatch(registry) or not REPORT_FOLDER.fullmatch(folder):
            raise HTTPException(status_code=404, detail="no such report")
        base = settings().reports_dir.resolve()
        path = (base / registry / folder / "report.html").resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    def data_docs_asset(request: Request) -> FileResponse:
        path = request.path_params["path"]
        return _data_docs_file("static", path, DATA_DOCS_ASSET_HEADERS, assets_only=True)

    # a mount, which the app-level login does not cover, and before the data-docs route, which
    # would answer these paths too (behind the login)
    app.mount("/data-docs/static", Starlette(routes=[Route("/{path:path}", data_docs_asset)]))

    @app.get("/data-docs/{path:path}")
    def data_docs(path: str) -> FileResponse:
        return _data_docs_file(".", path, DATA_DOCS_HEADERS)

    return app


def _data_docs_file(
    folder: str, path: str, headers: dict[str, str], assets_only: bool = False
) -> Any:
    """A FileResponse of ``path`` under ``<gx_docs>/<folder>``; 404 outside it, or when
    ``assets_only`` and it is no static asset."""
    from fastapi import HTTPException
    from fastapi.responses import FileResponse

    from socialpulse.config import settings

    base = (settings().gx_docs_dir / folder).resolve()
    try:
        target = (base / (path or "index.html")).resolve()
    except (OSError, ValueError):  # e.g. a NUL byte
        raise HTTPException(status_code=404, detail="no such file") from None
    suffix = target.suffix.lower()
    if not target.is_relative_to(base) or not target.is_file():
        raise HTTPException(status_code=404, detail="no such file")
    if assets_only and suffix not in DATA_DOCS_ASSET_TYPES:
        raise HTTPException(status_code=404, detail="no such file")
    media_type = DATA_DOCS_TYPES.get(suffix, "application/octet-stream")
    return FileResponse(target, media_type=media_type, headers=headers)


class LazyApp:
    """An ASGI app that builds :func:`create_app` at its first request (fast plugin import)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.get()(scope, receive, send)


class SocialPulsePlugin(AirflowPlugin):
    name = "socialpulse"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "socialpulse"}]
    external_views = [
        {
            "name": "socialpulse",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            # shown inside the Airflow UI (iframe) at /plugin/socialpulse
            "url_route": "socialpulse",
        }
    ]
