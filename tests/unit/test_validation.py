"""Great Expectations gate: every expectation of every raw suite rejects a crafted bad batch."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from socialpulse import records, validation
from socialpulse.validation import (
    BatchRejected,
    build_docs,
    expectations_for,
    localise_docs,
    prune_results,
    validate_batch,
)
from socialpulse.vendor_gx_assets import CDN_HOSTS, css_references, template_cdn_urls, verify

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 2, 20, 8, 0, tzinfo=dt.UTC)
OBS = dt.datetime(2026, 2, 28, 0, 0, tzinfo=dt.UTC)


def good_rows() -> dict[str, list[dict]]:
    return {
        "account_snapshots": [
            dict(
                platform="sample",
                company_id="c1",
                account_id="a1",
                handle="a1",
                observed_at=OBS,
                followers=1200,
                following=80,
                posts_total=310,
                posts_since=OBS - dt.timedelta(days=35),
            ),
            dict(
                platform="sample",
                company_id="c2",
                account_id="a2",
                handle="a2",
                observed_at=OBS,
                followers=0,
                following=None,
                posts_total=None,
                posts_since=None,
            ),
        ],
        "post_observations": [
            dict(
                platform="sample",
                post_id=f"p{i}",
                account_id="a1",
                company_id="c1",
                created_at=T0,
                kind="original",
                likes=3,
                replies=1,
                reposts=0,
                quotes=0,
                views=None,
                url="https://example.invalid/p",
                observed_at=OBS,
            )
            for i in range(3)
        ],
        "thread_replies": [
            dict(
                platform="sample",
                reply_id="r1",
                account_id="a1",
                company_id="c1",
                root_post_id="p0",
                in_reply_to_id="p0",
                author_id="u9",
                author_is_company=False,
                created_at=T0,
                observed_at=OBS,
            ),
            dict(
                platform="sample",
                reply_id="r2",
                account_id="a1",
                company_id="c1",
                root_post_id="p0",
                in_reply_to_id="r1",
                author_id="a1",
                author_is_company=True,
                created_at=T0 + dt.timedelta(hours=2),
                observed_at=OBS,
            ),
        ],
        "probes": [
            dict(
                probe_id="q1",
                company_id="c1",
                platform=None,
                channel="email",
                sent_at=T0,
                question_ref=None,
                answered_at=T0 + dt.timedelta(hours=5),
                answer_ref=None,
                quality=4,
                observed_at=OBS,
            ),
        ],
        "manual_metrics": [
            dict(
                company_id="c1",
                metric="findability",
                period_type="month",
                period_start=dt.date(2026, 2, 1),
                value=55.0,
                observed_at=OBS,
            ),
        ],
    }


def batch(rows: dict[str, list[dict]], only: str | None = None):
    return {
        t: records.to_arrow(records.RAW_SCHEMAS[t], r) for t, r in rows.items() if only in (None, t)
    }


def test_good_batch_passes(tmp_path):
    report = validate_batch("good", batch(good_rows()), now=NOW, quarantine_dir=tmp_path)
    assert report.success
    assert report.rows == {
        "account_snapshots": 2,
        "post_observations": 3,
        "thread_replies": 2,
        "probes": 1,
        "manual_metrics": 1,
    }
    assert not any(tmp_path.iterdir())
    # GX's fingerprint of every row (a quarter of the gate's time at 1.2 M rows) is off
    for result in report.results.values():
        assert "pandas_data_fingerprint" not in result["meta"]["batch_markers"]
        assert "ge_load_time" in result["meta"]["batch_markers"]


def _set(table, row, **values):
    def mutate(rows):
        rows[table][row].update(values)

    return mutate


def _dup(table, source, target):
    def mutate(rows):
        rows[table][target] = dict(rows[table][source])

    return mutate


CASES = [
    # (table, mutation, expectation type, row named)
    (
        "account_snapshots",
        _set("account_snapshots", 1, account_id=None),
        "expect_column_values_to_not_be_null",
        1,
    ),
    (
        "account_snapshots",
        _set("account_snapshots", 0, followers=-5),
        "expect_column_values_to_be_between",
        0,
    ),
    (
        "account_snapshots",
        _set("account_snapshots", 0, followers=5_000_000_000),
        "expect_column_values_to_be_between",
        0,
    ),
    (
        "account_snapshots",
        _set("account_snapshots", 1, platform="myspace"),
        "expect_column_values_to_be_in_set",
        1,
    ),
    (
        "account_snapshots",
        _set("account_snapshots", 0, observed_at=NOW + dt.timedelta(days=2)),
        "expect_column_values_to_be_between",
        0,
    ),
    (  # beyond pandas' nanosecond range: still a row failing the range, not a crash
        "account_snapshots",
        _set("account_snapshots", 0, observed_at=dt.datetime(2999, 1, 1)),
        "expect_column_values_to_be_between",
        0,
    ),
    (
        "account_snapshots",
        _set("account_snapshots", 1, observed_at=dt.datetime(2003, 12, 31)),
        "expect_column_values_to_be_between",
        1,
    ),
    (
        "account_snapshots",
        _dup("account_snapshots", 0, 1),
        "expect_compound_columns_to_be_unique",
        0,
    ),
    (
        "post_observations",
        _set("post_observations", 2, kind="story"),
        "expect_column_values_to_be_in_set",
        2,
    ),
    (
        "post_observations",
        _set("post_observations", 1, likes=-1),
        "expect_column_values_to_be_between",
        1,
    ),
    (
        "post_observations",
        _set("post_observations", 1, quotes=None),
        "expect_column_values_to_not_be_null",
        1,
    ),
    (
        "post_observations",
        _set("post_observations", 0, created_at=OBS + dt.timedelta(hours=1)),
        "expect_column_pair_values_a_to_be_greater_than_b",
        0,
    ),
    (
        "post_observations",
        _set("post_observations", 2, post_id="p1"),
        "expect_compound_columns_to_be_unique",
        1,
    ),
    (
        "thread_replies",
        _set("thread_replies", 0, author_id=None),
        "expect_column_values_to_not_be_null",
        0,
    ),
    (
        "thread_replies",
        _set("thread_replies", 1, author_is_company=None),
        "expect_column_values_to_not_be_null",
        1,
    ),
    (
        "thread_replies",
        _set("thread_replies", 1, created_at=OBS + dt.timedelta(days=1)),
        "expect_column_pair_values_a_to_be_greater_than_b",
        1,
    ),
    ("probes", _set("probes", 0, channel="pigeon"), "expect_column_values_to_be_in_set", 0),
    ("probes", _set("probes", 0, quality=7), "expect_column_values_to_be_between", 0),
    (
        "probes",
        _set("probes", 0, answered_at=T0 - dt.timedelta(hours=1)),
        "expect_column_pair_values_a_to_be_greater_than_b",
        0,
    ),
    (
        "manual_metrics",
        _set("manual_metrics", 0, value=140.0),
        "expect_column_values_to_be_between",
        0,
    ),
    (
        "manual_metrics",
        _set("manual_metrics", 0, metric="coolness"),
        "expect_column_values_to_be_in_set",
        0,
    ),
    (
        "manual_metrics",
        _set("manual_metrics", 0, period_type="quarter"),
        "expect_column_values_to_be_in_set",
        0,
    ),
]


@pytest.mark.parametrize(("table", "mutate", "expectation", "row"), CASES)
def test_each_expectation_rejects_a_bad_batch(tmp_path, table, mutate, expectation, row):
    rows = good_rows()
    mutate(rows)
    with pytest.raises(BatchRejected) as err:
        validate_batch("bad-batch", batch(rows, only=table), now=NOW, quarantine_dir=tmp_path)
    failures = err.value.failures
    assert expectation in {f.expectation for f in failures}
    failure = next(f for f in failures if f.expectation == expectation)
    assert failure.table == table
    assert row in failure.rows
    message = str(err.value)
    assert f"raw.{table}: {expectation}" in message
    assert f"row {row}" in message
    # quarantined: the batch's rows and the GX result, nothing loaded
    q = tmp_path / "bad-batch"
    assert (q / f"{table}.parquet").exists()
    saved = json.loads((q / "validation_result.json").read_text())
    assert saved["batch_id"] == "bad-batch"
    assert any(f.startswith(f"raw.{table}: {expectation}(") for f in saved["failures"])
    assert saved["results"][table]["success"] is False


def test_missing_column_is_caught_by_the_column_list(tmp_path):
    table = batch(good_rows(), only="probes")["probes"]
    broken = table.drop_columns(["quality"])
    with pytest.raises(BatchRejected, match="expect_table_columns_to_match_ordered_list"):
        validate_batch("cols", {"probes": broken}, now=NOW, quarantine_dir=tmp_path)


def test_every_column_rule_of_the_record_schema_becomes_an_expectation():
    for schema in records.RAW_SCHEMAS.values():
        exps = expectations_for(schema, NOW)
        not_null = {
            e.column for e in exps if e.expectation_type == "expect_column_values_to_not_be_null"
        }
        assert not_null == {c.name for c in schema.columns if not c.nullable}, schema.table
        in_set = {
            e.column for e in exps if e.expectation_type == "expect_column_values_to_be_in_set"
        }
        assert in_set == {c.name for c in schema.columns if c.allowed}, schema.table


# --- Great Expectations Data Docs -----------------------------------------------------------


def _status(html: str) -> str | None:
    """The "Status:" line of a GX validation result page: Succeeded or Failed."""
    m = re.search(r'Status:</span>\s*<i class="fas fa-[\w-]+ text-\w+"[^>]*></i>\s*(\w+)', html)
    return m and m.group(1)


def _unexpected_values(html: str) -> list[list[str]]:
    """The cells of each "Unexpected Value" table of a GX result page."""
    tables = re.findall(r"Unexpected Value\s*</th>.*?<tbody>(.*?)</tbody>", html, re.S)
    return [re.findall(r'show-scrollbars">([^<]*)</div>', t) for t in tables]


def _result_pages(docs, batch_id: str) -> dict[str, list]:
    """table -> the Data Docs pages of ``batch_id``'s runs (validations/raw/<table>/<run>/...)."""
    pages: dict[str, list] = {}
    for page in sorted((docs / "validations" / "raw").glob(f"*/{batch_id}/*/*.html")):
        pages.setdefault(page.parent.parent.parent.name, []).append(page)
    return pages


def test_data_docs_are_built_for_a_passing_and_a_failing_batch(data_dir):
    docs = data_dir / "gx_docs"
    good = batch(good_rows())
    report = validate_batch("docs-good", good, now=NOW, quarantine_dir=data_dir / "q")
    assert report.docs_dir == docs
    assert (docs / "index.html").is_file()
    pages = _result_pages(docs, "docs-good")
    assert set(pages) == set(good) and all(len(p) == 1 for p in pages.values())
    for table, [page] in pages.items():
        html = page.read_text(encoding="utf-8")
        assert f"raw.{table}" in html and _status(html) == "Succeeded"
    # one page per suite, linked from the result pages
    assert {p.stem for p in (docs / "expectations" / "raw").glob("*.html")} == set(
        records.RAW_SCHEMAS
    )

    rows = good_rows()
    rows["probes"][0]["quality"] = 7
    with pytest.raises(BatchRejected) as err:
        validate_batch("docs-bad", batch(rows), now=NOW, quarantine_dir=data_dir / "q")
    assert err.value.docs_dir == docs
    assert f"Data Docs: {docs / 'index.html'}" in str(err.value)
    bad = _result_pages(docs, "docs-bad")
    assert set(bad) == set(good)
    probes = bad["probes"][0].read_text(encoding="utf-8")
    assert _status(probes) == "Failed"
    # the failing expectation (GX renders it as prose, not by its type name) and its row:
    # quality 7 set on probes[0] -> one unexpected value 7, seen once, at index 0
    assert "quality" in probes and "greater than or equal to" in probes
    assert _unexpected_values(probes) == [["7", "1", "0"]]
    # the passing batch's pages are still there, and the index lists both runs
    assert _result_pages(docs, "docs-good") == pages
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "docs-good" in index and "docs-bad" in index
    for table in good:
        assert f"validations/raw/{table}/docs-bad/" in index


def test_a_batchs_frames_are_freed_by_the_next_validation(tmp_path, monkeypatch):
    """GX holds the frames in reference cycles; a process validating batch after batch (the
    quarantine path, the benchmark) must not keep every batch's frames until a full
    collection."""
    import weakref

    made = []
    frame = validation._frame

    def tracked(data):
        out = frame(data)
        made.append(weakref.ref(out))
        return out

    monkeypatch.setattr(validation, "_frame", tracked)
    validate_batch("first", batch(good_rows()), now=NOW, quarantine_dir=tmp_path)
    first = list(made)
    assert len(first) == 5  # one frame per table with rows
    # GX's current context keeps the last batch's frames until the next one replaces it;
    # after the next validation, nothing of the first batch is left
    validate_batch("second", batch(good_rows()), now=NOW, quarantine_dir=tmp_path)
    assert [ref() is None for ref in first] == [True] * 5


def test_deferred_docs_are_rendered_once_for_every_batch_of_a_run(data_dir):
    """The ingest DAG's validate tasks only store results; data_docs renders them all."""
    docs = data_dir / "gx_docs"
    one = batch(good_rows(), only="probes")
    validate_batch("b000", one, now=NOW, docs=False)
    rows = good_rows()
    rows["probes"][0]["quality"] = 7
    report = validate_batch(
        "b001", batch(rows, only="probes"), now=NOW, quarantine=False, docs=False
    )
    assert not report.success
    assert report.docs_dir == docs  # where its page will be
    assert not docs.exists()  # nothing rendered yet

    assert build_docs() == {"docs": str(docs), "pages": 2}
    [passed] = _result_pages(docs, "b000")["probes"]
    [failed] = _result_pages(docs, "b001")["probes"]
    assert _status(passed.read_text(encoding="utf-8")) == "Succeeded"
    assert _status(failed.read_text(encoding="utf-8")) == "Failed"
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "b000" in index and "b001" in index
    assert {p.stem for p in (docs / "expectations" / "raw").glob("*.html")} == set(
        records.RAW_SCHEMAS
    )
    _check_offline_site(docs)

    # the next run renders only its own results; the earlier pages stay as they were
    before = passed.stat().st_mtime_ns
    assert build_docs()["pages"] == 0
    validate_batch("b002", one, now=NOW, docs=False)
    assert build_docs()["pages"] == 1
    assert passed.stat().st_mtime_ns == before
    assert len(_result_pages(docs, "b002")["probes"]) == 1


def test_a_rerun_of_a_batch_adds_pages_and_keeps_the_earlier_ones(data_dir):
    one = batch(good_rows(), only="probes")
    validate_batch("rerun", one, now=NOW, quarantine_dir=data_dir / "q")
    validate_batch("rerun", one, now=NOW, quarantine_dir=data_dir / "q")
    assert len(_result_pages(data_dir / "gx_docs", "rerun")["probes"]) == 2


def _age_run(root, batch_id: str, run_time: str) -> None:
    """Rename the run-time folders of ``batch_id``'s runs under ``root`` to ``run_time``."""
    for folder in list(root.glob(f"raw/*/{batch_id}/*")):
        folder.rename(folder.with_name(run_time))


def test_results_older_than_the_retention_are_pruned_with_their_pages(data_dir, monkeypatch):
    monkeypatch.setenv("SOCIALPULSE_GX_RETENTION_DAYS", "30")
    results, docs = data_dir / "gx" / "validations", data_dir / "gx_docs"
    one = batch(good_rows(), only="probes")
    validate_batch("old-run", one, now=NOW, quarantine_dir=data_dir / "q")
    assert len(_result_pages(docs, "old-run")["probes"]) == 1
    # as if old-run had run 31 days before the next one
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=31)).strftime("%Y%m%dT%H%M%S.%fZ")
    _age_run(results, "old-run", old)
    _age_run(docs / "validations", "old-run", old)

    validate_batch("new-run", one, now=NOW, quarantine_dir=data_dir / "q")
    assert _result_pages(docs, "old-run") == {}
    assert not (results / "raw" / "probes" / "old-run").exists()  # no empty folders left
    assert not (docs / "validations" / "raw" / "probes" / "old-run").exists()
    assert len(_result_pages(docs, "new-run")["probes"]) == 1
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "new-run" in index and "old-run" not in index


def test_prune_keeps_recent_results_and_files_it_does_not_know(tmp_path):
    results, docs = tmp_path / "results", tmp_path / "docs"
    now = dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)
    files = {
        # 2026-03-01 11:59 is 30 days and 1 minute before now: older than 30 days
        "raw/probes/b1/20260301T115900.000000Z/x.json": True,
        "raw/probes/b2/20260301T120100.000000Z/x.json": False,  # 29 days 23:59 old
        "raw/probes/b3/not-a-time/x.json": False,
    }
    for rel in files:
        for path in (results / rel, docs / "validations" / rel.replace(".json", ".html")):
            path.parent.mkdir(parents=True)
            path.write_text("{}")
    assert prune_results(results, docs, keep_days=30, now=now) == 1
    for rel, pruned in files.items():
        assert (results / rel).exists() is not pruned, rel
        page = docs / "validations" / rel.replace(".json", ".html")
        assert page.exists() is not pruned, rel
    assert not (results / "raw/probes/b1").exists()
    assert (results / "raw/probes").is_dir()
    assert prune_results(tmp_path / "missing", docs, keep_days=30, now=now) == 0


#: a URL on one of the CDNs GX's page templates load their CSS, JS and fonts from
CDN_URL = re.compile(r"(?:https?:)?//(?:" + "|".join(map(re.escape, CDN_HOSTS)) + r")\b")
#: the files a page loads: src / href of its script, link and img tags
ASSET_REF = re.compile(r"""<(?:script|link|img)\b[^>]*?\s(?:src|href)="([^"]+)\"""")


def _check_offline_site(docs) -> None:
    """No page of the site ``docs`` asks a CDN for anything, and every file a page or a
    stylesheet of it loads is in the site."""
    pages = sorted(docs.rglob("*.html"))
    assert {p.relative_to(docs).parts[0] for p in pages} == {
        "index.html",
        "expectations",
        "validations",
    }
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert CDN_URL.findall(html) == [], page
        assert "integrity=" not in html and "crossorigin=" not in html, page
        refs = [r for r in ASSET_REF.findall(html) if not r.startswith(("#", "https://"))]
        assert len(refs) >= 17, (page, refs)  # 15 vendored files, the logo and the favicon
        for ref in refs:
            assert (page.parent / ref).resolve().is_file(), (page, ref)
    for css in (docs / "static" / "vendor").rglob("*.css"):
        for ref in css_references(css.read_text(encoding="utf-8")):
            assert (css.parent / ref).resolve().is_file(), (css, ref)


def test_data_docs_load_nothing_from_cdns(data_dir):
    """Offline and behind a firewall the pages need their CSS, JS and fonts from the site."""
    validate_batch("offline", batch(good_rows(), only="probes"), now=NOW)
    docs = data_dir / "gx_docs"
    _check_offline_site(docs)
    # the relative paths hold at every depth of the site
    [result] = _result_pages(docs, "offline")["probes"]
    jquery = "static/vendor/jquery-3.7.1/dist/jquery.min.js"
    for page, up in [
        (docs / "index.html", ""),
        (docs / "expectations" / "raw" / "probes.html", "../../"),
        (result, "../../../../../"),
    ]:
        assert f'<script src="{up}{jquery}"></script>' in page.read_text(encoding="utf-8")
    assert (docs / "static" / "vendor" / "manifest.json").is_file()


def test_localising_upgrades_an_old_site_once_then_only_new_pages(data_dir, monkeypatch):
    one = batch(good_rows(), only="probes")
    docs = data_dir / "gx_docs"
    # a site built before the pages were localised: every page asks the CDNs
    with monkeypatch.context() as m:
        m.setattr(validation, "localise_docs", lambda docs: 0)
        validate_batch("old", one, now=NOW)
    [old] = _result_pages(docs, "old")["probes"]
    assert CDN_URL.search(old.read_text(encoding="utf-8"))
    assert not (docs / "static" / "vendor").exists()

    validate_batch("new", one, now=NOW)  # copies the assets, localises every page
    _check_offline_site(docs)

    def state() -> dict:
        """path -> (mtime, content) of every file of the site but the mark of the last pass"""
        stamp = docs / "static" / "vendor" / "manifest.json"
        files = [p for p in docs.rglob("*") if p.is_file() and p != stamp]
        return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}

    before = state()
    assert localise_docs(docs) == 0  # idempotent: nothing left to do, nothing rewritten
    assert state() == before
    validate_batch("newer", one, now=NOW)
    after = state()
    # the pages of the earlier runs stay as they were; the new run's page is localised
    for page in (old, *_result_pages(docs, "new")["probes"]):
        assert after[page] == before[page]
    _check_offline_site(docs)


def test_vendored_assets_are_those_gx_loads_and_match_their_manifest():
    """gx_assets/ holds what its manifest lists (sha256 as recorded), and the manifest maps
    every CDN URL of the installed GX's templates (a GX upgrade that changes them fails here:
    run ``python -m socialpulse.vendor_gx_assets``)."""
    assert verify() == []
    manifest = json.loads((validation.GX_ASSETS / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["urls"]) == template_cdn_urls()
    assert manifest["cdn_hosts"] == list(CDN_HOSTS)
    # each package with its licence file
    paths = {f["path"] for f in manifest["files"]}
    assert all(p["licence_file"] in paths for p in manifest["packages"])
