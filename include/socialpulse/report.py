"""The period report: one self-contained HTML page and the period's marts as CSV and Parquet.

:func:`build_report` opens the warehouse read-only and writes into
``<out_dir>/<period_type>-<period_start>/``:

* ``report.html``: readable without the internet (inline CSS, charts as inline SVG drawn
  here, no scripts, no external URL): per segment the success-index ranking, each company's
  dimension scores beside the segment median, the segment benchmarks, the trend of the last
  eight weeks, data coverage and data-quality notes (fetch errors, quarantined batches).
* ``csv/<mart>.csv`` and ``parquet/<mart>.parquet``: the rows of ``marts.company_metrics``,
  ``marts.success_index`` and ``marts.segment_benchmarks`` for that period (DuckDB ``COPY``).

Every text that comes from data (company names, handles, error messages) is HTML-escaped;
a missing value is shown as "–".
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialpulse.records import PERIOD_TYPES
from socialpulse.registry import DIMENSIONS, SEGMENTS
from socialpulse.warehouse import dict_rows, has_table, sql_string

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import duckdb

#: the marts exported per period, with the order of their rows (identifiers: an allow-list)
MART_ORDER = {
    "company_metrics": "segment, company_id",
    "success_index": "segment, segment_rank, company_id",
    "segment_benchmarks": "segment, metric",
}
TREND_WEEKS = 8
MAX_FETCH_ERRORS_SHOWN = 200
NULL = "\u2013"  # en dash

#: metric -> (label, format): count, pct (1 decimal), pct2 (2 decimals), hours, num (1 decimal)
METRIC_FORMATS: dict[str, tuple[str, str]] = {
    "followers": ("Followers", "count"),
    "follower_growth_weekly": ("Follower growth per week", "pct2"),
    "posts_per_week": ("Posts per week", "num"),
    "interactions": ("Interactions", "count"),
    "engagement_rate": ("Engagement rate per post", "pct2"),
    "likes_per_1k": ("Likes per 1,000 followers", "num"),
    "service_level": ("Service level (replies answered)", "pct"),
    "response_hours_median": ("Response time, median", "hours"),
    "unique_interactors": ("Unique interactors", "count"),
    "repeat_interactor_share": ("Repeat interactors", "pct"),
    "interactions_per_effort_hour": ("Interactions per effort hour", "num"),
    "probe_answer_rate": ("Field study: answer rate", "pct"),
    "probe_response_hours_median": ("Field study: response time, median", "hours"),
    "findability": ("Findability (manual, 0-100)", "num"),
    "image": ("Image (manual, 0-100)", "num"),
}
SEGMENT_LABELS = {"craft": "Craft businesses", "corporation": "Corporations"}
SEGMENT_COLORS = {"craft": "#b45f06", "corporation": "#1f5fa8"}
OTHER_COLORS = ("#2e7d32", "#6a1b9a", "#c62828", "#00838f")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2329;background:#fff;margin:0 auto;max-width:1100px;padding:1.5rem;line-height:1.45}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{margin-top:2.5rem;border-bottom:2px solid #d8dee4;
 padding-bottom:.25rem}h3{margin-top:1.75rem}
.lead{color:#4a5560;max-width:60rem}.muted{color:#6a737d;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.92rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e1e4e8;text-align:left;vertical-align:middle}
th{background:#f6f8fa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
nav a{margin-right:1rem}
.cards{display:flex;flex-wrap:wrap;gap:.75rem}
.company-card{border:1px solid #e1e4e8;border-radius:6px;padding:.5rem .75rem;margin:0;width:300px}
.company-card figcaption{font-weight:600;margin-bottom:.25rem}
.company-card .facts{font-weight:400;color:#4a5560;font-size:.85rem}
.legend-swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin:0 .3rem 0 .8rem;
 vertical-align:middle}
.severity-error,.severity-configuration{color:#b00020;font-weight:600}.severity-warning{color:#8a6d00;font-weight:600}
.ok{color:#2e7d32}.quarantine-batch{border-left:4px solid #b00020;padding:.25rem .75rem;margin:.5rem 0}
svg text{font-family:inherit}svg.trend-chart{max-width:100%;height:auto}
@media print{.company-card{break-inside:avoid}}
"""


class ReportError(RuntimeError):
    """The report cannot be built (no such period, no marts). The message says why."""


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    csv_dir: Path
    parquet_dir: Path


@dataclass(frozen=True)
class Period:
    type: str
    start: dt.date
    end: dt.date  # exclusive
    is_complete: bool

    @property
    def title(self) -> str:
        last = self.end - dt.timedelta(days=1)
        name = f"ISO week {self.start:%G-W%V}" if self.type == "week" else f"{self.start:%B %Y}"
        return f"{name} ({self.start:%d %b %Y} to {last:%d %b %Y})"

    @property
    def folder(self) -> str:
        return f"{self.type}-{self.start.isoformat()}"


@dataclass
class ReportData:
    period: Period
    success: list[dict[str, Any]]
    benchmarks: list[dict[str, Any]]
    dimension_medians: dict[str, dict[str, float | None]]
    weights: dict[tuple[str, str], float]
    trend_weeks: list[dt.date]
    segment_trend: dict[str, dict[dt.date, float | None]]
    company_trend: dict[str, dict[dt.date, float | None]]
    coverage: dict[str, Any]
    fetch_errors: list[dict[str, Any]]
    quarantine: list[dict[str, Any]] | None
    quarantine_dir: Path | None
    warehouse: Path
    segments: list[str] = field(default_factory=list)


# --- public entry point -------------------------------------------------------------------


def build_report(
    warehouse: Path,
    out_dir: Path,
    period_type: str = "week",
    period_start: dt.date | None = None,
    quarantine_dir: Path | None = None,
) -> ReportPaths:
    """Write the report of one period (default: the latest complete one) under ``out_dir``.

    Raises :class:`ReportError` when the period has no rows in the marts (or the warehouse
    has no marts), ``ValueError`` for an unknown ``period_type``.
    """
    import duckdb

    if period_type not in PERIOD_TYPES:
        raise ValueError(f"period_type must be one of {PERIOD_TYPES}, got {period_type!r}")
    warehouse = Path(warehouse)
    if not warehouse.is_file():
        raise ReportError(f"warehouse {warehouse} does not exist: run the pipeline first")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException) as exc:  # a writer holds the lock
        raise ReportError(f"cannot open {warehouse} read-only: {exc}") from exc
    try:
        con.execute("set TimeZone = 'UTC'")
        period = resolve_period(con, period_type, period_start)
        data = load_data(con, period, warehouse, quarantine_dir)
        target = Path(out_dir) / period.folder
        paths = ReportPaths(
            html=target / "report.html", csv_dir=target / "csv", parquet_dir=target / "parquet"
        )
        paths.csv_dir.mkdir(parents=True, exist_ok=True)
        paths.parquet_dir.mkdir(parents=True, exist_ok=True)
        export_marts(con, period, paths.csv_dir, paths.parquet_dir)
    finally:
        con.close()
    paths.html.write_text(render_html(data), encoding="utf-8")
    return paths


# --- reading the warehouse ----------------------------------------------------------------


def resolve_period(
    con: duckdb.DuckDBPyConnection, period_type: str, period_start: dt.date | None
) -> Period:
    """The period asked for, or the latest complete one of ``period_type``."""
    if not has_table(con, "marts", "success_index"):
        raise ReportError("the warehouse has no marts.success_index: build the models first")
    if period_start is None:
        found = con.execute(
            "select max(period_start) from marts.success_index where period_type = ? and is_complete",
            [period_type],
        ).fetchone()
        if found is None or found[0] is None:
            raise ReportError(f"no complete {period_type} in marts.success_index yet")
        period_start = found[0]
    rows = dict_rows(
        con,
        "select min(period_end) as period_end, bool_and(is_complete) as is_complete "
        "from marts.success_index where period_type = ? and period_start = ?",
        [period_type, period_start],
    )
    if rows[0]["period_end"] is None:
        raise ReportError(
            f"no data for the {period_type} starting {period_start} in marts.success_index"
            f" ({_available(con, period_type)})"
        )
    return Period(period_type, period_start, rows[0]["period_end"], bool(rows[0]["is_complete"]))


def _available(con: duckdb.DuckDBPyConnection, period_type: str) -> str:
    first, last, n = con.execute(
        "select min(period_start), max(period_start), count(distinct period_start) "
        "from marts.success_index where period_type = ?",
        [period_type],
    ).fetchone()
    if not n:
        return f"it has no {period_type} at all"
    return f"it has {n} {period_type}(s) starting {first} to {last}"


def load_data(
    con: duckdb.DuckDBPyConnection, period: Period, warehouse: Path, quarantine_dir: Path | None
) -> ReportData:
    key = [period.type, period.start]
    success = dict_rows(
        con,
        "select * from marts.success_index where period_type = ? and period_start = ? "
        "order by segment, segment_rank, company_name, company_id",
        key,
    )
    benchmarks = dict_rows(
        con,
        "select segment, metric, n, p25, median, p75 from marts.segment_benchmarks "
        "where period_type = ? and period_start = ? order by segment, metric",
        key,
    )
    weeks, segment_trend, company_trend = _trends(con, period)
    data = ReportData(
        period=period,
        success=success,
        benchmarks=benchmarks,
        dimension_medians=_dimension_medians(con, period),
        weights=_weights(con),
        trend_weeks=weeks,
        segment_trend=segment_trend,
        company_trend=company_trend,
        coverage=_coverage(con, period),
        fetch_errors=_fetch_errors(con, period),
        quarantine=read_quarantine(quarantine_dir) if quarantine_dir is not None else None,
        quarantine_dir=quarantine_dir,
        warehouse=warehouse,
    )
    present = {r["segment"] for r in success}
    data.segments = list(SEGMENTS) + sorted(present - set(SEGMENTS))
    return data


def _dimension_medians(
    con: duckdb.DuckDBPyConnection, period: Period
) -> dict[str, dict[str, float | None]]:
    cols = ", ".join(f"median({d}_score) as {d}" for d in DIMENSIONS)  # allow-listed names
    rows = dict_rows(
        con,
        f"select segment, {cols} from marts.success_index "
        "where period_type = ? and period_start = ? group by segment",
        [period.type, period.start],
    )
    return {r["segment"]: {d: r[d] for d in DIMENSIONS} for r in rows}


def _weights(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], float]:
    if not has_table(con, "ref", "company_weights"):
        return {}
    rows = con.execute("select company_id, dimension, weight from ref.company_weights").fetchall()
    return {(c, d): w for c, d, w in rows}


_TREND_WEEKS_SQL = """
with weeks as (
    select period_start
    from marts.success_index
    where period_type = 'week' and period_start < ? and (is_complete or period_start = ?)
    group by period_start
    order by period_start desc
    limit ?
)
"""


def _trends(
    con: duckdb.DuckDBPyConnection, period: Period
) -> tuple[list[dt.date], dict[str, dict[dt.date, float | None]], dict[str, dict]]:
    params = [period.end, period.start, TREND_WEEKS]
    rows = dict_rows(
        con,
        _TREND_WEEKS_SQL + "select s.company_id, s.segment, s.period_start, s.success_index "
        "from marts.success_index as s join weeks using (period_start) "
        "where s.period_type = 'week' order by s.period_start",
        params,
    )
    medians = dict_rows(
        con,
        _TREND_WEEKS_SQL + "select s.segment, s.period_start, median(s.success_index) as m "
        "from marts.success_index as s join weeks using (period_start) "
        "where s.period_type = 'week' group by s.segment, s.period_start",
        params,
    )
    weeks = sorted({r["period_start"] for r in rows})
    segment_trend: dict[str, dict[dt.date, float | None]] = {}
    for r in medians:
        segment_trend.setdefault(r["segment"], {})[r["period_start"]] = r["m"]
    company_trend: dict[str, dict[dt.date, float | None]] = {}
    for r in rows:
        company_trend.setdefault(r["company_id"], {})[r["period_start"]] = r["success_index"]
    return weeks, segment_trend, company_trend


def _coverage(con: duckdb.DuckDBPyConnection, period: Period) -> dict[str, Any]:
    """Companies observed in the period (METRICS.md rule 8); accounts, posts and thread
    coverage per platform."""
    start = dt.datetime.combine(period.start, dt.time())
    end = dt.datetime.combine(period.end, dt.time())
    companies = dict_rows(
        con,
        """
        select c.company_id, c.company_name, c.segment, c.is_observed as has_data
        from marts.success_index as c
        where c.period_type = ? and c.period_start = ?
        order by c.segment, c.company_name
        """,
        [period.type, period.start],
    )
    platforms = dict_rows(
        con,
        """
        with registered as (
            select platform, count(*) as accounts_registered from ref.accounts group by platform
        ),
        snaps as (
            select platform, count(distinct account_id) as accounts_observed, count(*) as snapshots
            from raw.account_snapshots where observed_at >= ? and observed_at < ?
            group by platform
        ),
        posts as (
            select platform, count(distinct account_id) as accounts_with_posts,
                   count(distinct post_id) as posts_observed, count(*) as post_observations
            from raw.post_observations where observed_at >= ? and observed_at < ?
            group by platform
        )
        select platform,
               coalesce(accounts_registered, 0) as accounts_registered,
               coalesce(accounts_observed, 0) as accounts_observed,
               coalesce(snapshots, 0) as snapshots,
               coalesce(accounts_with_posts, 0) as accounts_with_posts,
               coalesce(posts_observed, 0) as posts_observed,
               coalesce(post_observations, 0) as post_observations
        from registered
        full outer join snaps using (platform)
        full outer join posts using (platform)
        order by platform
        """,
        [start, end, start, end],
    )
    return {
        "companies": companies,
        "platforms": platforms,
        "threads": thread_coverage(con, period.start, period.end),
    }


def thread_coverage(
    con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date
) -> list[dict[str, Any]]:
    """Per platform, the threads of own original posts created in ``[start, end)``.

    ``threads_read``: posts whose thread was read (at least one reply row);
    ``threads_short``: posts whose latest fetch recorded that it read fewer direct replies
    than the post counts (the connectors' thread warnings, e.g. Mastodon's anonymous
    ``/context`` cap of 60 descendants), with the replies read and counted over them. A
    warning counts only while no later fetch observed the post without one.
    """
    from socialpulse.platforms.base import thread_shortfall

    if not (has_table(con, "raw", "post_observations") and has_table(con, "raw", "thread_replies")):
        return []
    lo, hi = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())
    posts = {
        (r["platform"], r["post_id"]): r
        for r in dict_rows(
            con,
            """
            with threads as (
                select distinct platform, root_post_id as post_id from raw.thread_replies
            )
            select p.platform, p.post_id, max(p.observed_at) as last_observed_at,
                   bool_or(t.post_id is not null) as thread_read
            from raw.post_observations as p
            left join threads as t using (platform, post_id)
            where p.kind = 'original' and p.created_at >= ? and p.created_at < ?
            group by p.platform, p.post_id
            """,
            [lo, hi],
        )
    }
    shortfalls: dict[tuple[str, str], tuple[dt.datetime, int, int]] = {}
    if has_table(con, "ops", "fetch_errors"):
        for w in dict_rows(
            con,
            "select platform, error, recorded_at from ops.fetch_errors "
            "where severity = 'warning' and error like 'thread of post %'",
        ):
            parsed = thread_shortfall(w["error"])
            key = (w["platform"], parsed[0]) if parsed else None
            post = posts.get(key) if key else None
            # current: recorded by the fetch that last observed the post (or a later one)
            if parsed is None or post is None or w["recorded_at"] < post["last_observed_at"]:
                continue
            if key not in shortfalls or w["recorded_at"] > shortfalls[key][0]:
                shortfalls[key] = (w["recorded_at"], parsed[1], parsed[2])
    out: dict[str, dict[str, Any]] = {}
    for (platform, post_id), post in sorted(posts.items()):
        short = shortfalls.get((platform, post_id))
        if not post["thread_read"] and short is None:
            continue
        row = out.setdefault(
            platform,
            {
                "platform": platform,
                "threads_read": 0,
                "threads_short": 0,
                "replies_read": 0,
                "replies_counted": 0,
            },
        )
        row["threads_read"] += 1
        if short is not None:
            row["threads_short"] += 1
            row["replies_read"] += short[1]
            row["replies_counted"] += short[2]
    return list(out.values())


def _fetch_errors(con: duckdb.DuckDBPyConnection, period: Period) -> list[dict[str, Any]]:
    if not has_table(con, "ops", "fetch_errors"):
        return []
    names = "left join ref.companies as c using (company_id)"
    if not has_table(con, "ref", "companies"):
        names = "left join (select null::varchar as company_id, null::varchar as name) as c using (company_id)"
    return dict_rows(
        con,
        "select e.recorded_at, e.severity, e.platform, e.company_id, c.name as company_name, "
        "e.handle, e.error, e.batch_id from ops.fetch_errors as e "
        f"{names} where e.recorded_at >= ? "
        "order by e.severity <> 'warning' desc, e.recorded_at desc, e.company_id",
        [dt.datetime.combine(period.start, dt.time())],
    )


def read_quarantine(quarantine_dir: Path) -> list[dict[str, Any]]:
    """Each ``<quarantine_dir>/<batch>/validation_result.json``: batch id, rows, failures."""
    folder = Path(quarantine_dir)
    if not folder.is_dir():
        return []
    found = []
    for batch in sorted(p for p in folder.iterdir() if p.is_dir()):
        result = batch / "validation_result.json"
        if not result.is_file():
            continue
        try:
            doc = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            doc = {"failures": [f"unreadable validation_result.json: {exc}"]}
        if not isinstance(doc, dict):
            doc = {"failures": ["validation_result.json is not a JSON object"]}
        found.append(
            {
                "batch_id": str(doc.get("batch_id") or batch.name),
                "rows": doc.get("rows"),
                "failures": [str(f) for f in doc.get("failures") or []],
                "modified": dt.datetime.fromtimestamp(result.stat().st_mtime, dt.UTC),
            }
        )
    return found


# --- the marts as files -------------------------------------------------------------------


def export_marts(
    con: duckdb.DuckDBPyConnection, period: Period, csv_dir: Path, parquet_dir: Path
) -> None:
    """The period's rows of each mart as ``<mart>.csv`` and ``<mart>.parquet``."""
    for mart, order in MART_ORDER.items():
        query = (
            f"select * from marts.{mart} where period_type = ? and period_start = ? "
            f"order by {order}"
        )
        key = [period.type, period.start]
        # the target as a quoted literal: DuckDB 1.5 binds no parameter in COPY's target
        csv, parquet = (
            sql_string(str(d / f"{mart}.{s}"))
            for d, s in ((csv_dir, "csv"), (parquet_dir, "parquet"))
        )
        con.execute(f"copy ({query}) to {csv} (format csv, header true)", key)
        con.execute(f"copy ({query}) to {parquet} (format parquet)", key)


# --- formatting ---------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_score(value: float | None) -> str:
    """A 0-100 score with one decimal."""
    return NULL if _missing(value) else f"{value:.1f}"


def fmt_pct(value: float | None, decimals: int = 1) -> str:
    """A share or rate (0.123) as a percentage (12.3%)."""
    return NULL if _missing(value) else f"{value * 100:.{decimals}f}%"


def fmt_hours(value: float | None) -> str:
    return NULL if _missing(value) else f"{value:.1f} h"


def fmt_count(value: float | None) -> str:
    """A count, whole; a fractional quartile of small counts keeps one decimal (2.5)."""
    if _missing(value):
        return NULL
    if float(value).is_integer() or abs(value) >= 100:
        return f"{round(value):,}"
    return f"{value:.1f}"


def fmt_metric(metric: str, value: float | None) -> str:
    """A metric value formatted by its kind (see :data:`METRIC_FORMATS`)."""
    kind = METRIC_FORMATS.get(metric, (metric, "num"))[1]
    if kind == "count":
        return fmt_count(value)
    if kind in ("pct", "pct2"):
        return fmt_pct(value, 2 if kind == "pct2" else 1)
    if kind == "hours":
        return fmt_hours(value)
    return fmt_score(value)


def metric_label(metric: str) -> str:
    return METRIC_FORMATS.get(metric, (metric.replace("_", " "), "num"))[0]


def segment_label(segment: str) -> str:
    return SEGMENT_LABELS.get(segment, segment)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _attr(value: Any) -> str:
    """A raw value for a data- attribute: full precision, '' for null."""
    if _missing(value):
        return ""
    return _e(repr(value) if isinstance(value, float) else value)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def _color(segment: str, i: int) -> str:
    return SEGMENT_COLORS.get(segment, OTHER_COLORS[i % len(OTHER_COLORS)])


# --- SVG ----------------------------------------------------------------------------------


def _polyline_runs(points: Iterable[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """Split points at gaps (None): a missing week is not drawn as a line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if r]


def _poly(run: list[tuple[float, float]], color: str, width: float) -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
    return (
        f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}" '
        'stroke-linejoin="round" stroke-linecap="round"/>'
    )


def sparkline_svg(values: Sequence[float | None], color: str = "#1d2329") -> str:
    """A 0-100 sparkline, one point per week; gaps where the value is null."""
    w, h, pad = 110, 26, 3
    if all(_missing(v) for v in values):
        return NULL
    step = (w - 2 * pad) / max(len(values) - 1, 1)
    pts = [
        None if _missing(v) else (pad + i * step, h - pad - (h - 2 * pad) * float(v) / 100)
        for i, v in enumerate(values)
    ]
    body = "".join(_poly(run, color, 1.5) for run in _polyline_runs(pts))
    last = next((p for p in reversed(pts) if p is not None), None)
    if last is not None:
        body += f'<circle cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.2" fill="{color}"/>'
    return (
        f'<svg class="sparkline" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
        f"<title>{_e('Success index per week: ' + ', '.join(fmt_score(v) for v in values))}"
        f'</title><rect x="0" y="0" width="{w}" height="{h}" fill="#f6f8fa"/>{body}</svg>'
    )


def line_chart_svg(
    weeks: Sequence[dt.date], series: dict[str, dict[dt.date, float | None]], colors: dict
) -> str:
    """Median success index per week and segment (0-100), with grid and week labels."""
    # room on the right for half of the last week's label ("23 Nov" is centred on its point)
    w, h, left, right, top, bottom = 680, 260, 44, 30, 14, 34
    pw, ph = w - left - right, h - top - bottom
    step = pw / max(len(weeks) - 1, 1)

    def y(v: float) -> float:
        return top + ph - ph * v / 100

    parts = [f'<svg class="trend-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">']
    for g in (0, 25, 50, 75, 100):
        parts.append(
            f'<line x1="{left}" y1="{y(g):.1f}" x2="{w - right}" y2="{y(g):.1f}" stroke="#e1e4e8"/>'
            f'<text x="{left - 6}" y="{y(g) + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#6a737d">{g}</text>'
        )
    for i, week in enumerate(weeks):
        parts.append(
            f'<text x="{left + i * step:.1f}" y="{h - 12}" font-size="11" text-anchor="middle" '
            f'fill="#4a5560">{week:%d %b}</text>'
        )
    for segment, values in series.items():
        color = colors[segment]
        pts = [
            None if _missing(values.get(wk)) else (left + i * step, y(float(values[wk])))
            for i, wk in enumerate(weeks)
        ]
        parts.extend(_poly(run, color, 2.5) for run in _polyline_runs(pts))
        for wk, p in zip(weeks, pts, strict=True):
            if p is not None:
                tip = f"{segment_label(segment)}, week of {wk}: {fmt_score(values[wk])}"
                parts.append(
                    f'<circle cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="3.5" fill="{color}">'
                    f"<title>{_e(tip)}</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def dimension_chart_svg(
    scores: dict[str, float | None],
    medians: dict[str, float | None],
    weights: dict[str, float],
    color: str,
) -> str:
    """One bar per dimension (the company's score, 0-100) and a tick at the segment median."""
    # label_w: room for the longest dimension name in bold 12 px, "Relationships"
    label_w, bar_w, row_h, top = 104, 130, 19, 16
    w, h = label_w + bar_w + 84, top + row_h * len(DIMENSIONS) + 4
    parts = [
        f'<svg class="dimension-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
        f'<text x="{label_w + bar_w + 6}" y="10" font-size="10" fill="#6a737d">score</text>'
        f'<text x="{label_w + bar_w + 46}" y="10" font-size="10" fill="#6a737d">median</text>'
    ]
    for i, d in enumerate(DIMENSIONS):
        score, median = scores.get(d), medians.get(d)
        y0 = top + i * row_h
        weight = weights.get(d)
        weight_note = "" if weight is None else f", weight {weight:g} in the success index"
        tip = f"{d}: {fmt_score(score)} (segment median {fmt_score(median)}{weight_note})"
        bold = ' font-weight="700"' if weight else ""
        parts.append(
            f'<g class="dim" data-dimension="{d}" data-score="{_attr(score)}" '
            f'data-median="{_attr(median)}"><title>{_e(tip)}</title>'
            f'<text x="0" y="{y0 + 13}" font-size="12"{bold}>{d.capitalize()}</text>'
            f'<rect x="{label_w}" y="{y0 + 3}" width="{bar_w}" height="12" fill="#eef1f4"/>'
        )
        if not _missing(score):
            parts.append(
                f'<rect x="{label_w}" y="{y0 + 3}" width="{bar_w * float(score) / 100:.1f}" '
                f'height="12" fill="{color}" opacity="0.85"/>'
            )
        if not _missing(median):
            mx = label_w + bar_w * float(median) / 100
            parts.append(
                f'<line x1="{mx:.1f}" y1="{y0 + 1}" x2="{mx:.1f}" y2="{y0 + 17}" '
                'stroke="#1d2329" stroke-width="2"/>'
            )
        parts.append(
            f'<text class="dim-score" x="{label_w + bar_w + 6}" y="{y0 + 13}" font-size="12">'
            f"{fmt_score(score)}</text>"
            f'<text class="dim-median" x="{label_w + bar_w + 46}" y="{y0 + 13}" font-size="11" '
            f'fill="#6a737d">{fmt_score(median)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- HTML ---------------------------------------------------------------------------------


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (no external resources)."""
    p = data.period
    title = f"Social media success report: {p.title}"
    status = "" if p.is_complete else " This period is still running: numbers will change."
    nav = "".join(
        f'<a href="#segment-{_slug(s)}">{_e(segment_label(s))}</a>' for s in data.segments
    )
    body = [
        f'<h1 id="title" data-period-type="{_e(p.type)}" data-period-start="{p.start}">'
        f"{_e(title)}</h1>",
        f'<p class="lead">Each company is measured against its own goals and compared only with '
        f"companies of its own segment. Scores run from 0 (lowest of the segment) to 100 "
        f"(highest); the success index weighs them by the company's goals.{_e(status)}</p>",
        f'<nav>{nav}<a href="#trends">Trends</a><a href="#coverage">Data coverage</a>'
        f'<a href="#quality">Data quality</a></nav>',
        _overview_html(data),
        _trends_html(data),
        *(_segment_html(data, s, i) for i, s in enumerate(data.segments)),
        _coverage_html(data),
        _quality_html(data),
        _footer_html(data),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _table(
    head: Sequence[tuple[str, bool]], rows: Iterable[str], cls: str, caption: str = ""
) -> str:
    ths = "".join(f"<th{' class=num' if num else ''}>{_e(h)}</th>" for h, num in head)
    cap = f"<caption class=muted>{_e(caption)}</caption>" if caption else ""
    return f'<table class="{cls}">{cap}<thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _td(cls: str, text: str, value: Any = None, num: bool = True) -> str:
    classes = f"{cls} num" if num else cls
    data = "" if value is None else f' data-value="{_attr(value)}"'
    return f'<td class="{classes}"{data}>{text}</td>'


def _overview_html(data: ReportData) -> str:
    rows = []
    for s in data.segments:
        members = [r for r in data.success if r["segment"] == s]
        scored = [r for r in members if not _missing(r["success_index"])]
        best = max(scored, key=lambda r: r["success_index"], default=None)
        rows.append(
            f'<tr class="overview-row" data-segment="{_e(s)}">'
            f'<td><a href="#segment-{_slug(s)}">{_e(segment_label(s))}</a></td>'
            + _td("companies", str(len(members)))
            + _td("scored", str(len(scored)))
            + _td("median-index", fmt_score(_median([r["success_index"] for r in scored])))
            + _td("best-company", _e(best["company_name"]) if best else NULL, num=False)
            + _td("best-index", fmt_score(best["success_index"]) if best else NULL)
            + "</tr>"
        )
    head = [
        ("Segment", False),
        ("Companies", True),
        ("With a success index", True),
        ("Median success index", True),
        ("Best company", False),
        ("Its index", True),
    ]
    return '<h2 id="overview">Overview</h2>' + _table(head, rows, "overview")


def _median(values: Sequence[float]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _trends_html(data: ReportData) -> str:
    weeks = data.trend_weeks
    out = [f'<h2 id="trends">Trends: the last {len(weeks)} weeks</h2>']
    if not weeks:
        return out[0] + "<p>No weekly success index yet.</p>"
    colors = {s: _color(s, i) for i, s in enumerate(data.segments)}
    series = {s: data.segment_trend.get(s, {}) for s in data.segments}
    legend = "".join(
        f'<span class="legend-swatch" style="background:{colors[s]}"></span>{_e(segment_label(s))}'
        for s in data.segments
    )
    out.append(
        "<p>Median success index of each segment per ISO week (the week's Monday shown).</p>"
        f'<p class="legend">{legend}</p>{line_chart_svg(weeks, series, colors)}'
    )
    head = [("Week", False)] + [(segment_label(s), True) for s in data.segments]
    rows = [
        f'<tr class="trend-row" data-week="{wk}"><td>{wk:%G-W%V} ({wk})</td>'
        + "".join(
            _td("trend-median", fmt_score(series[s].get(wk)), series[s].get(wk), num=True)
            for s in data.segments
        )
        + "</tr>"
        for wk in weeks
    ]
    out.append(
        "<details><summary>The values</summary>" + _table(head, rows, "trend-table") + "</details>"
    )
    return "".join(out)


def _segment_html(data: ReportData, segment: str, i: int) -> str:
    members = [r for r in data.success if r["segment"] == segment]
    head = (
        f'<section class="segment" id="segment-{_slug(segment)}" data-segment="{_e(segment)}">'
        f"<h2>{_e(segment_label(segment))}</h2>"
    )
    if not members:
        return head + "<p>No companies of this segment in this period.</p></section>"
    color = _color(segment, i)
    return (
        head
        + _ranking_html(data, members, color)
        + _dimensions_html(data, segment, members, color)
        + _benchmarks_html(data, segment)
        + "</section>"
    )


def _attainment(row: dict[str, Any]) -> str:
    if _missing(row.get("goal_attainment")):
        return NULL
    return f"{fmt_pct(row['goal_attainment'])} ({row['targets_met']} of {row['targets_evaluated']})"


def _ranking_html(data: ReportData, members: list[dict[str, Any]], color: str) -> str:
    rows = []
    for r in members:
        trend = data.company_trend.get(r["company_id"], {})
        spark = sparkline_svg([trend.get(wk) for wk in data.trend_weeks], color)
        rows.append(
            f'<tr class="rank-row" data-company="{_e(r["company_id"])}">'
            + _td("rank", str(r["segment_rank"]) if not _missing(r["success_index"]) else NULL)
            + _td("company", _e(r["company_name"]), num=False)
            + _td("success-index", fmt_score(r["success_index"]), r["success_index"])
            + _td("goal-attainment", _attainment(r), r["goal_attainment"])
            + _td("sparkline", spark, num=False)
            + "</tr>"
        )
    head = [
        ("Rank", True),
        ("Company", False),
        ("Success index", True),
        ("Goal attainment (targets met)", True),
        (f"Success index, last {len(data.trend_weeks)} weeks", False),
    ]
    note = (
        '<p class="muted">Goal attainment: the share of the company\'s own targets it met in '
        f"this period; {NULL} when it set none (or none could be evaluated).</p>"
    )
    return "<h3>Ranking by success index</h3>" + _table(head, rows, "ranking") + note


def _dimensions_html(
    data: ReportData, segment: str, members: list[dict[str, Any]], color: str
) -> str:
    medians = data.dimension_medians.get(segment, {})
    cards = []
    for r in members:
        scores = {d: r.get(f"{d}_score") for d in DIMENSIONS}
        weights = {
            d: data.weights[(r["company_id"], d)]
            for d in DIMENSIONS
            if (r["company_id"], d) in data.weights
        }
        cards.append(
            f'<figure class="company-card" data-company="{_e(r["company_id"])}">'
            f"<figcaption>{_e(r['company_name'])}<br><span class=facts>success index "
            f'<span class="card-index">{fmt_score(r["success_index"])}</span>, goal attainment '
            f'<span class="card-attainment">{_attainment(r)}</span></span></figcaption>'
            f"{dimension_chart_svg(scores, medians, weights, color)}</figure>"
        )
    return (
        "<h3>Dimension scores against the segment median</h3>"
        '<p class="muted">Bar: the company\'s score (0-100). Black tick and grey number: the '
        "segment's median score. Dimensions in bold count toward the company's success index "
        "(its goals).</p>" + f'<div class="cards">{"".join(cards)}</div>'
    )


def _benchmarks_html(data: ReportData, segment: str) -> str:
    found = {b["metric"]: b for b in data.benchmarks if b["segment"] == segment}
    order = [m for m in METRIC_FORMATS if m in found] + sorted(set(found) - set(METRIC_FORMATS))
    rows = [
        f'<tr class="benchmark-row" data-metric="{_e(m)}">'
        f"<td>{_e(metric_label(m))}</td>"
        + _td("n", str(found[m]["n"]), found[m]["n"])
        + "".join(_td(q, fmt_metric(m, found[m][q]), found[m][q]) for q in ("p25", "median", "p75"))
        + "</tr>"
        for m in order
    ]
    missing = [metric_label(m) for m in METRIC_FORMATS if m not in found]
    note = (
        f'<p class="muted">Not benchmarked (fewer than 3 companies with a value): '
        f"{_e(', '.join(missing))}.</p>"
        if missing
        else ""
    )
    head = [
        ("Metric", False),
        ("Companies", True),
        ("25th percentile", True),
        ("Median", True),
        ("75th percentile", True),
    ]
    table = _table(head, rows, "benchmarks") if rows else "<p>No metric has 3 or more values.</p>"
    return "<h3>Benchmarks: what is normal in this segment</h3>" + table + note


def _coverage_html(data: ReportData) -> str:
    companies = data.coverage["companies"]
    without = [c for c in companies if not c["has_data"]]
    with_data = len(companies) - len(without)
    out = [
        '<h2 id="coverage">Data coverage</h2>',
        f'<p>Companies observed in this period: <strong id="companies-with-data">{with_data}'
        f'</strong> of <span id="companies-total">{len(companies)}</span>. Not observed (no '
        "successful fetch looked at the period: no metrics from the platforms and no success "
        f'index, never zeros): <span id="companies-without-data">{len(without)}</span>'
        + (
            ": "
            + ", ".join(
                f'<span class="no-data-company">{_e(c["company_name"])}</span>' for c in without
            )
            if without
            else ""
        )
        + ".</p>",
    ]
    head = [
        ("Platform", False),
        ("Accounts in the registry", True),
        ("Accounts observed", True),
        ("Account snapshots", True),
        ("Accounts with posts", True),
        ("Posts observed", True),
        ("Post observations", True),
    ]
    cols = (
        "accounts_registered",
        "accounts_observed",
        "snapshots",
        "accounts_with_posts",
        "posts_observed",
        "post_observations",
    )
    rows = [
        f'<tr class="platform-row" data-platform="{_e(r["platform"])}"><td>{_e(r["platform"])}</td>'
        + "".join(_td(c.replace("_", "-"), fmt_count(r[c]), r[c]) for c in cols)
        + "</tr>"
        for r in data.coverage["platforms"]
    ]
    out.append(_table(head, rows, "coverage", "Observations made during the period, per platform"))
    out.append(_threads_html(data.coverage.get("threads") or []))
    return "".join(out)


def _threads_html(threads: list[dict[str, Any]]) -> str:
    intro = (
        "<h3>Threads read</h3><p>Threads under the own posts of the period. A thread is cut "
        "short when the platform counted more direct replies than its API returned (Mastodon "
        "returns at most 60 descendants to anonymous requests; a token lifts that): the "
        "liveliness and relationship metrics then miss those replies.</p>"
    )
    if not threads:
        return intro + "<p class=muted>No thread read in this period.</p>"
    head = [
        ("Platform", False),
        ("Threads read", True),
        ("Cut short", True),
        ("Direct replies read / counted there", True),
    ]
    rows = [
        f'<tr class="thread-row" data-platform="{_e(r["platform"])}"><td>{_e(r["platform"])}</td>'
        + _td("threads-read", fmt_count(r["threads_read"]), r["threads_read"])
        + (
            f'<td class="num threads-short severity-warning">{fmt_count(r["threads_short"])}</td>'
            if r["threads_short"]
            else _td("threads-short", "0", 0)
        )
        + _td(
            "replies-read",
            f"{fmt_count(r['replies_read'])} / {fmt_count(r['replies_counted'])}"
            if r["threads_short"]
            else NULL,
        )
        + "</tr>"
        for r in threads
    ]
    return intro + _table(head, rows, "threads", "Thread coverage per platform")


def _quality_html(data: ReportData) -> str:
    return (
        '<h2 id="quality">Data quality</h2>'
        + _fetch_errors_html(data)
        + _quarantine_html(data.quarantine, data.quarantine_dir)
    )


def _fetch_errors_html(data: ReportData) -> str:
    errors = data.fetch_errors
    n_err = sum(1 for e in errors if e["severity"] != "warning")  # configuration included
    n_warn = len(errors) - n_err
    out = [
        f"<h3>Fetch problems recorded since {data.period.start}</h3>"
        f'<p><span id="fetch-error-count">{n_err}</span> error(s), '
        f'<span id="fetch-warning-count">{n_warn}</span> warning(s). An error cost the account '
        "its data of that run; a warning only a detail.</p>"
    ]
    if not errors:
        return out[0].replace("</p>", ' <span class="ok">Nothing to report.</span></p>')
    shown = errors[:MAX_FETCH_ERRORS_SHOWN]
    rows = [
        f'<tr class="fetch-error" data-severity="{_e(e["severity"])}">'
        f"<td>{e['recorded_at']:%Y-%m-%d %H:%M}</td>"
        f'<td class="severity-{_slug(str(e["severity"]))}">{_e(e["severity"])}</td>'
        f"<td>{_e(e['platform'])}</td><td>{_e(e['company_name'] or e['company_id'])}</td>"
        f'<td>{_e(e["handle"])}</td><td class="message">{_e(e["error"])}</td></tr>'
        for e in shown
    ]
    head = [
        ("Recorded (UTC)", False),
        ("Severity", False),
        ("Platform", False),
        ("Company", False),
        ("Account", False),
        ("Message", False),
    ]
    out.append(_table(head, rows, "fetch-errors"))
    if len(errors) > len(shown):
        out.append(
            f"<p class=muted>... and {len(errors) - len(shown)} more in ops.fetch_errors.</p>"
        )
    return "".join(out)


def _quarantine_html(batches: list[dict[str, Any]] | None, folder: Path | None) -> str:
    out = ["<h3>Quarantined batches</h3>"]
    if batches is None:
        return out[0] + "<p class=muted>No quarantine folder was given: not checked.</p>"
    del folder  # a path on the pipeline's server means nothing to the report's readers
    if not batches:
        return out[0] + '<p><span class="ok">None</span>: every batch passed validation.</p>'
    out.append(
        f'<p><span id="quarantine-count">{len(batches)}</span> batch(es) failed validation '
        "and were not loaded: their data is missing from the numbers above (the pipeline keeps "
        "them, with the failed checks, in its quarantine folder).</p>"
    )
    for b in batches:
        rows = b["rows"]
        rows_text = (
            ", ".join(f"{_e(k)}: {_e(v)}" for k, v in rows.items())
            if isinstance(rows, dict)
            else _e(rows if rows is not None else NULL)
        )
        failures = "".join(f'<li class="quarantine-failure">{_e(f)}</li>' for f in b["failures"])
        out.append(
            f'<div class="quarantine-batch" data-batch="{_e(b["batch_id"])}">'
            f"<strong>{_e(b['batch_id'])}</strong> "
            f'<span class="muted">(quarantined {b["modified"]:%Y-%m-%d %H:%M} UTC; rows: '
            f"{rows_text})</span><ul>{failures or '<li>no failure recorded</li>'}</ul></div>"
        )
    return "".join(out)


def _footer_html(data: ReportData) -> str:
    now = dt.datetime.now(dt.UTC)
    return (
        '<hr><p class="muted">How to read: a metric score is the company\'s percent rank among '
        "the companies of its segment with a value (null with fewer than 3); a dimension score "
        "is the mean of its metric scores; the success index is their mean weighted by the "
        "company's goals; goal attainment is the share of the company's targets met. "
        f"Source: {_e(data.warehouse.name)}; generated {now:%Y-%m-%d %H:%M} UTC. "
        "The period's marts are beside this file as CSV and Parquet.</p>"
    )
