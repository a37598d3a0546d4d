"""The period report: numbers in the HTML equal the marts, the page is offline, files export.

The warehouse is the SQL tests' hand-made fixture (tests/sql/conftest.py), with company
``b`` renamed to a name full of HTML, two fetch errors (one before the period) and a
quarantined batch beside it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from socialpulse import models
from socialpulse.registry import DIMENSIONS
from socialpulse.report import (
    MART_ORDER,
    NULL,
    ReportError,
    ReportPaths,
    build_report,
    fmt_count,
    fmt_hours,
    fmt_metric,
    fmt_pct,
    fmt_score,
)
from socialpulse.warehouse import connect, load_batch, replace_reference_tables
from tests.conftest import query
from tests.sql.conftest import raw_tables, ref_tables

if TYPE_CHECKING:
    from pathlib import Path

WEEK = dt.date(2024, 1, 8)  # week 2 of the fixture: most of its rows
TRICKY_NAME = 'Beta <b>& "Joinery"'
QUARANTINE_FAILURE = (
    "raw.post_observations: expect_column_values_to_be_between(column='likes', "
    "min_value=0.0) failed on 1 row(s): row 3 (platform=mastodon, post_id=<p3>)"
)
FETCH_ERRORS = [
    # batch_id, platform, company_id, handle, severity, error, recorded_at
    ("b-1", "mastodon", "a", "a-m", "error", "HTTP 404 <not found>", "2024-01-10 06:00"),
    ("b-1", "bluesky", "c", "c-b", "warning", "probe question deleted", "2024-01-09 06:00"),
    ("b-0", "mastodon", "x", "x-m", "error", "recorded before the period", "2023-12-01 00:00"),
]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report-warehouse") / "warehouse.duckdb"
    refs = ref_tables()
    companies = refs["companies"]
    names = [
        TRICKY_NAME if cid == "b" else name
        for cid, name in zip(
            companies["company_id"].to_pylist(), companies["name"].to_pylist(), strict=True
        )
    ]
    refs["companies"] = companies.set_column(
        companies.schema.get_field_index("name"), "name", pa.array(names, pa.string())
    )
    with connect(path) as con:
        replace_reference_tables(con, refs)
        load_batch(con, "fixture-1", raw_tables())
        models.build_all(con, models.discover())
        con.executemany(
            "insert into ops.fetch_errors (batch_id, run_id, platform, company_id, handle, "
            "severity, error, recorded_at) values (?, 'run-1', ?, ?, ?, ?, ?, ?)",
            [[*e[:-1], dt.datetime.fromisoformat(e[-1])] for e in FETCH_ERRORS],
        )
    return path


@pytest.fixture(scope="module")
def quarantine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quarantine")
    batch = root / "sample-2024-01-09-0"
    batch.mkdir()
    (batch / "validation_result.json").write_text(
        json.dumps(
            {
                "batch_id": "sample-2024-01-09-0",
                "rows": {"post_observations": 4},
                "failures": [QUARANTINE_FAILURE],
                "results": {},
            }
        )
    )
    (root / "not-a-batch.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def report(
    warehouse: Path, quarantine: Path, tmp_path_factory: pytest.TempPathFactory
) -> ReportPaths:
    out = tmp_path_factory.mktemp("reports")
    return build_report(warehouse, out, "week", WEEK, quarantine_dir=quarantine)


@pytest.fixture(scope="module")
def page(report: ReportPaths) -> Page:
    return Page(report.html.read_text(encoding="utf-8"))


# --- a small HTML reader ------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "source", "col", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], context: dict[str, str]) -> None:
        self.tag, self.attrs, self.context = tag, attrs, context
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Page(HTMLParser):
    """Every element with its attributes, text and the data- attributes of its ancestors."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(source)
        self.close()

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> Element:
        own = {k: v or "" for k, v in attrs}
        context = {k: v for e in self._open for k, v in e.attrs.items() if k.startswith("data-")}
        context.update({k: v for k, v in own.items() if k.startswith("data-")})
        element = Element(tag, own, context)
        self.elements.append(element)
        return element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = self._element(tag, attrs)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    def find(self, cls: str | None = None, tag: str | None = None, **context: str) -> list[Element]:
        want = {f"data-{k.replace('_', '-')}": v for k, v in context.items()}
        return [
            e
            for e in self.elements
            if (cls is None or cls in e.classes)
            and (tag is None or e.tag == tag)
            and all(e.context.get(k) == v for k, v in want.items())
        ]

    def one(self, cls: str | None = None, tag: str | None = None, **context: str) -> Element:
        found = self.find(cls, tag, **context)
        assert len(found) == 1, f"{cls} {tag} {context}: {len(found)} elements"
        return found[0]

    def by_id(self, element_id: str) -> Element:
        return next(e for e in self.elements if e.attrs.get("id") == element_id)


# --- the numbers equal the marts ----------------------------------------------------------


def test_writes_into_period_folder(report: ReportPaths) -> None:
    folder = report.html.parent
    assert folder.name == f"week-{WEEK}"
    assert report.html.name == "report.html"
    assert report.csv_dir == folder / "csv"
    assert report.parquet_dir == folder / "parquet"


def test_title_names_the_period(page: Page) -> None:
    title = page.by_id("title")
    assert title.attrs["data-period-start"] == str(WEEK)
    assert "ISO week 2024-W02" in title.text
    assert "08 Jan 2024 to 14 Jan 2024" in title.text


def test_both_segments_appear(page: Page) -> None:
    sections = {e.attrs["data-segment"] for e in page.find("segment", tag="section")}
    assert sections == {"craft", "corporation"}
    for segment in ("craft", "corporation"):
        assert page.find("rank-row", segment=segment)
        assert page.find("company-card", segment=segment)
    assert page.find("benchmark-row", segment="craft")
    # two corporations only: no metric reaches n >= 3, and the page says so
    corporations = page.one("segment", tag="section", segment="corporation")
    assert "No metric has 3 or more values" in corporations.text


def test_ranking_equals_success_index_mart(page: Page, warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select * from marts.success_index where period_type = 'week' and period_start = ?",
        [WEEK],
    )
    assert len(rows) == 5
    assert len(page.find("rank-row")) == 5
    for r in rows:
        row = page.one("rank-row", segment=r["segment"], company=r["company_id"])
        cells = {c: page.one(c, tag="td", company=r["company_id"]) for c in ("rank", "company")}
        index = page.one("success-index", tag="td", company=r["company_id"])
        assert cells["company"].text == r["company_name"]
        assert row.context["data-segment"] == r["segment"]
        if r["success_index"] is None:
            assert index.text == NULL
            assert cells["rank"].text == NULL
        else:
            assert index.text == f"{r['success_index']:.1f}"
            assert float(index.attrs["data-value"]) == pytest.approx(r["success_index"])
            assert cells["rank"].text == str(r["segment_rank"])
        attainment = page.one("goal-attainment", tag="td", company=r["company_id"])
        if r["goal_attainment"] is None:
            assert attainment.text == NULL
        else:
            expected = f"{r['goal_attainment'] * 100:.1f}% ({r['targets_met']} of "
            assert attainment.text == expected + f"{r['targets_evaluated']})"


def test_ranking_order_follows_segment_rank(page: Page, warehouse: Path) -> None:
    for segment in ("craft", "corporation"):
        shown = [e.attrs["data-company"] for e in page.find("rank-row", segment=segment)]
        ranked = query(
            warehouse,
            "select company_id from marts.success_index where period_type = 'week' "
            "and period_start = ? and segment = ? order by segment_rank, company_name",
            [WEEK, segment],
        )
        assert shown == [r["company_id"] for r in ranked]


def test_benchmarks_equal_segment_benchmarks_mart(page: Page, warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select * from marts.segment_benchmarks where period_type = 'week' and period_start = ?",
        [WEEK],
    )
    assert rows, "the fixture week has benchmarks"
    assert len(page.find("benchmark-row")) == len(rows)
    for r in rows:
        where = {"segment": r["segment"], "metric": r["metric"]}
        assert page.one("n", tag="td", **where).text == str(r["n"])
        for q in ("p25", "median", "p75"):
            cell = page.one(q, tag="td", **where)
            assert cell.text == fmt_metric(r["metric"], r[q])
            assert float(cell.attrs["data-value"]) == pytest.approx(r[q])


def test_dimension_scores_beside_segment_medians(page: Page, warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select * from marts.success_index where period_type = 'week' and period_start = ?",
        [WEEK],
    )
    for r in rows:
        peers = [p for p in rows if p["segment"] == r["segment"]]
        card = page.one("company-card", company=r["company_id"])
        assert card.context["data-segment"] == r["segment"]
        assert page.one("card-index", company=r["company_id"]).text == fmt_score(r["success_index"])
        for d in DIMENSIONS:
            g = page.one("dim", company=r["company_id"], dimension=d)
            score = r[f"{d}_score"]
            values = [p[f"{d}_score"] for p in peers if p[f"{d}_score"] is not None]
            median = statistics.median(values) if values else None
            assert page.one("dim-score", company=r["company_id"], dimension=d).text == (
                fmt_score(score)
            )
            assert page.one("dim-median", company=r["company_id"], dimension=d).text == (
                fmt_score(median)
            )
            if score is None:
                assert g.attrs["data-score"] == ""
            else:
                assert float(g.attrs["data-score"]) == pytest.approx(score)


def test_trend_is_weekly_segment_median_up_to_the_period(page: Page, warehouse: Path) -> None:
    rows = page.find("trend-row", tag="tr")
    weeks = [dt.date.fromisoformat(e.attrs["data-week"]) for e in rows]
    assert weeks == [dt.date(2024, 1, 1), WEEK]  # the fixture starts a week earlier
    assert page.find("trend-chart", tag="svg")
    medians = query(
        warehouse,
        "select segment, period_start, median(success_index) as m from marts.success_index "
        "where period_type = 'week' and period_start <= ? group by all",
        [WEEK],
    )
    segments = ["craft", "corporation"]  # the order of the columns
    for m in medians:
        row = page.one("trend-row", week=str(m["period_start"]))
        cells = [e for e in page.find("trend-median", tag="td", week=str(m["period_start"]))]
        assert cells[segments.index(m["segment"])].text == fmt_score(m["m"]), row.text
    assert page.find("sparkline", tag="svg")


def test_coverage_counts_observations_in_the_period(page: Page) -> None:
    # every company has a snapshot in week 2 (x's only one, on 01-10)
    assert page.by_id("companies-with-data").text == "5"
    assert page.by_id("companies-total").text == "5"
    # Mastodon accounts a-m, b-m, c-m, x-m, y-m: all five registered and observed
    assert page.one("accounts-registered", tag="td", platform="mastodon").text == "5"
    assert page.one("accounts-observed", tag="td", platform="mastodon").text == "5"
    assert page.one("accounts-registered", tag="td", platform="bluesky").text == "2"
    assert page.one("accounts-observed", tag="td", platform="bluesky").text == "2"
    assert page.one("snapshots", tag="td", platform="mastodon").text == "5"


def test_coverage_names_companies_not_observed(warehouse: Path, tmp_path: Path) -> None:
    # week 4 (2024-01-22): only a-m's 02-05 12:00 snapshot looked at it (its fetch re-read
    # the posts since 01-01 12:00, L = 35 days; METRICS.md rule 8). Every other company's
    # last snapshot (01-15 at the latest) was taken before the week began.
    paths = build_report(warehouse, tmp_path, "week", dt.date(2024, 1, 22))
    page = Page(paths.html.read_text(encoding="utf-8"))
    assert page.by_id("companies-with-data").text == "1"
    names = {e.text for e in page.find("no-data-company")}
    assert names == {TRICKY_NAME, "Gamma Print", "Xeno Corp", "Ypsilon AG"}


def test_thread_coverage_per_platform(warehouse: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "w.duckdb"
    shutil.copy(warehouse, copy)
    with connect(copy) as con:
        con.executemany(
            "insert into ops.fetch_errors (batch_id, run_id, platform, company_id, handle, "
            "severity, error, recorded_at) values ('b-9', 'run-9', 'mastodon', ?, ?, "
            "'warning', ?, ?)",
            [
                # current: recorded after p-a1's last observation (01-20 00:00)
                ["a", "a-m", "thread of post p-a1: read 4 of 6 direct replies (capped)",
                 dt.datetime(2024, 1, 20, 12)],
                # stale: p-b1 was observed again (01-14 00:00) after this warning
                ["b", "b-m", "thread of post p-b1: read 1 of 3 direct replies (capped)",
                 dt.datetime(2024, 1, 13)],
            ],
        )  # fmt: skip
    page = Page(build_report(copy, tmp_path / "r", "week", WEEK).html.read_text("utf-8"))
    # own originals created in week 2 whose thread was read (thread rows): mastodon p-a1
    # (r1 ...), p-b1 (s1, s3), p-c1 (t1), p-y1 (z1) -> 4; cut short: p-a1, 4 of 6.
    # bluesky's p-a5 and p-c2 have no thread rows: no row for bluesky.
    assert [e.attrs["data-platform"] for e in page.find("thread-row")] == ["mastodon"]
    assert page.one("threads-read", tag="td", platform="mastodon").text == "4"
    assert page.one("threads-short", tag="td", platform="mastodon").text == "1"
    assert page.one("replies-read", tag="td", platform="mastodon").text == "4 / 6"


# --- the page is self-contained and safe --------------------------------------------------


def test_no_external_resources(page: Page) -> None:
    refs = [
        (e.tag, k, v) for e in page.elements for k, v in e.attrs.items() if k in ("src", "href")
    ]
    assert refs, "the navigation links exist"
    for tag, attr, value in refs:
        assert value.startswith("#"), (tag, attr, value)
        assert "//" not in value and not value.lower().startswith(("http:", "https:", "data:"))
    assert not page.find(tag="script")
    assert not page.find(tag="link")
    assert not page.find(tag="iframe")
    source = page.source.lower()
    for banned in ("<script", "<link", "@import", "url(", "http://", "https://", "xmlns"):
        assert banned not in source, banned


def test_company_names_and_messages_are_escaped(page: Page) -> None:
    assert "Beta &lt;b&gt;&amp; &quot;Joinery&quot;" in page.source
    assert "<b>&" not in page.source
    assert not page.find(tag="b")
    assert not page.find(tag="p3")
    assert not page.find(tag="not")
    assert page.one("company", tag="td", company="b").text == TRICKY_NAME


def test_formatting_is_consistent() -> None:
    assert fmt_score(62.54) == "62.5"
    assert fmt_score(None) == NULL == "\u2013"
    assert fmt_pct(0.1234) == "12.3%"
    assert fmt_pct(float("nan")) == NULL
    assert fmt_hours(2.04) == "2.0 h"
    assert fmt_count(58348.25) == "58,348"
    assert fmt_count(2.5) == "2.5"
    assert fmt_metric("service_level", 0.5) == "50.0%"
    assert fmt_metric("engagement_rate", 0.0047) == "0.47%"
    assert fmt_metric("response_hours_median", 24) == "24.0 h"
    assert fmt_metric("followers", 1500) == "1,500"
    assert fmt_metric("posts_per_week", 3) == "3.0"


# --- CSV and Parquet ----------------------------------------------------------------------


@pytest.mark.parametrize("mart", sorted(MART_ORDER))
def test_exports_hold_exactly_the_periods_rows(
    report: ReportPaths, warehouse: Path, mart: str
) -> None:
    expected = query(
        warehouse,
        f"select * from marts.{mart} where period_type = 'week' and period_start = ?",
        [WEEK],
    )
    columns = [
        r["column_name"]
        for r in query(
            warehouse,
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = ? order by ordinal_position",
            [mart],
        )
    ]
    assert expected
    with (report.csv_dir / f"{mart}.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(expected)
    assert list(rows[0]) == columns
    assert {(r["period_type"], r["period_start"]) for r in rows} == {("week", str(WEEK))}
    table = pq.read_table(report.parquet_dir / f"{mart}.parquet")
    assert table.num_rows == len(expected)
    assert table.column_names == columns
    assert set(table["period_start"].to_pylist()) == {WEEK}
    total = query(warehouse, f"select count(*) as n from marts.{mart}")[0]["n"]
    assert total > len(expected)  # the mart has other periods, left out


def test_company_name_survives_csv(report: ReportPaths) -> None:
    with (report.csv_dir / "success_index.csv").open(newline="", encoding="utf-8") as f:
        names = {r["company_id"]: r["company_name"] for r in csv.DictReader(f)}
    assert names["b"] == TRICKY_NAME


# --- periods ------------------------------------------------------------------------------


def test_default_period_is_latest_complete_week(warehouse: Path, tmp_path: Path) -> None:
    # the last snapshot is 2024-02-05 12:00: the week from 2024-01-29 ended 02-05 00:00
    # (complete), the week from 02-05 is still running
    latest = dt.date(2024, 1, 29)
    paths = build_report(warehouse, tmp_path)
    assert paths.html.parent.name == f"week-{latest}"
    page = Page(paths.html.read_text(encoding="utf-8"))
    assert page.by_id("title").attrs["data-period-start"] == str(latest)
    assert page.find("segment", tag="section")


def test_month_report(warehouse: Path, tmp_path: Path) -> None:
    paths = build_report(warehouse, tmp_path, "month", dt.date(2024, 1, 1))
    page = Page(paths.html.read_text(encoding="utf-8"))
    assert "January 2024" in page.by_id("title").text
    rows = query(
        warehouse,
        "select company_id, success_index from marts.success_index "
        "where period_type = 'month' and period_start = '2024-01-01'",
    )
    assert len(rows) == 5  # the five companies
    for r in rows:
        cell = page.one("success-index", tag="td", company=r["company_id"])
        assert cell.text == fmt_score(r["success_index"])
    # the trend of a month: its ISO weeks, the Mondays 2024-01-01 to 2024-01-29
    weeks = [e.attrs["data-week"] for e in page.find("trend-row", tag="tr")]
    assert weeks == ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]


def test_period_without_data_raises(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no data for the week starting 2023-01-02"):
        build_report(warehouse, tmp_path, "week", dt.date(2023, 1, 2))
    assert not any(tmp_path.iterdir()), "nothing written for a period without data"


def test_unknown_period_type_raises(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="period_type"):
        build_report(warehouse, tmp_path, "year")


def test_warehouse_locked_by_a_writer_raises(warehouse: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    writer = duckdb.connect(str(copy))
    try:
        with pytest.raises(ReportError, match="cannot open .* read-only"):
            build_report(copy, tmp_path / "out")
    finally:
        writer.close()


def test_missing_warehouse_raises(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path / "nope.duckdb", tmp_path / "out")


# --- data quality -------------------------------------------------------------------------


def test_quarantined_batches_are_listed(page: Page) -> None:
    batch = page.one("quarantine-batch")
    assert batch.attrs["data-batch"] == "sample-2024-01-09-0"
    failures = [e.text for e in page.find("quarantine-failure")]
    assert failures == [QUARANTINE_FAILURE]
    assert page.by_id("quarantine-count").text == "1"


def test_fetch_errors_since_period_start_are_listed(page: Page) -> None:
    assert page.by_id("fetch-error-count").text == "1"
    assert page.by_id("fetch-warning-count").text == "1"
    rows = page.find("fetch-error", tag="tr")
    assert [r.attrs["data-severity"] for r in rows] == ["error", "warning"]
    messages = [e.text for e in page.find("message", tag="td")]
    assert messages == ["HTTP 404 <not found>", "probe question deleted"]
    assert "recorded before the period" not in page.source
    assert "Alpha Bakery" in rows[0].text


def test_without_quarantine_dir_it_says_not_checked(warehouse: Path, tmp_path: Path) -> None:
    paths = build_report(warehouse, tmp_path, "week", WEEK)
    page = Page(paths.html.read_text(encoding="utf-8"))
    assert not page.find("quarantine-batch")
    assert "not checked" in page.source


def test_empty_quarantine_dir_and_no_errors(warehouse: Path, tmp_path: Path) -> None:
    (tmp_path / "quarantine").mkdir()
    paths = build_report(
        warehouse, tmp_path / "out", "week", dt.date(2024, 1, 22), tmp_path / "quarantine"
    )
    page = Page(paths.html.read_text(encoding="utf-8"))
    assert not page.find("quarantine-batch")
    # no path of the pipeline's server in a report for people ("None in /srv/.../quarantine")
    assert "None</span>: every batch passed validation." in page.source
    assert str(tmp_path) not in page.source
    # both fetch problems were recorded before 2024-01-22
    assert page.by_id("fetch-error-count").text == "0"
    assert not page.find("fetch-error", tag="tr")
