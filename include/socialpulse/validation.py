"""Great Expectations gate: one suite per raw table, built from the record schemas.

A batch (one fetch of one platform's accounts) is validated table by table before it may be
loaded (write-audit-publish). A failing batch is written to the quarantine folder together
with the GX results, and :class:`BatchRejected` says which expectation failed on which rows.

Every batch's results (pass or fail) are also kept as GX Data Docs: the validation results are
stored as JSON under ``<data_dir>/gx/validations`` (one file per suite and run, never
overwritten) and rendered into the static site ``<data_dir>/gx_docs`` (``index.html``, one
page per suite and run under ``validations/``, one page per suite under ``expectations/``),
which the socialpulse page in the Airflow UI serves. Several validate tasks may run at once:
the result files are unique per run. The ingest DAG's validate tasks only store their
results, and its ``data_docs`` task renders them all at once (:func:`build_docs`): one
rebuild of the site per run, not per batch; the site is updated under an exclusive file lock.
Results and pages of runs older than ``SOCIALPULSE_GX_RETENTION_DAYS`` (90) are deleted when
the site is updated, so the folder and the index build stay bounded. GX's pages load their CSS,
JS and fonts from CDNs; :func:`localise_docs` points them at a copy in the site itself
(``static/vendor/``, vendored in ``gx_assets/`` by ``python -m socialpulse.vendor_gx_assets``),
so that the site works offline, from ``file://`` and behind the plugin's route.

``great_expectations`` is imported lazily: it costs seconds and must never load at DAG parse
time.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialpulse.config import safe_name, settings
from socialpulse.records import EARLIEST_TIMESTAMP, RAW_SCHEMAS, RecordSchema

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pyarrow as pa

log = logging.getLogger(__name__)

#: clock skew tolerated between a platform's clock and ours for "not in the future"
FUTURE_TOLERANCE = dt.timedelta(minutes=10)
#: how many failing rows a message names
SHOW_ROWS = 5


class BatchRejected(RuntimeError):
    """A batch failed its Great Expectations suite and was quarantined instead of loaded."""

    def __init__(
        self,
        batch_id: str,
        failures: list[Failure],
        quarantine: Path | None,
        docs_dir: Path | None = None,
    ) -> None:
        self.batch_id = batch_id
        self.failures = failures
        self.quarantine = quarantine
        self.docs_dir = docs_dir
        lines = [f"batch {batch_id} failed validation; nothing of it was loaded."]
        lines += [f"  - {f}" for f in failures]
        if quarantine is not None:
            lines.append(f"  quarantined to {quarantine}")
        if docs_dir is not None:
            lines.append(f"  Data Docs: {docs_dir / 'index.html'}")
        super().__init__("\n".join(lines))


@dataclass
class Failure:
    table: str
    expectation: str
    kwargs: dict[str, Any]
    unexpected_count: int | None
    rows: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    #: every failing row (``rows`` shows the first few); empty when the failure names none
    indexes: list[int] = field(default_factory=list)
    #: the companies of the failing rows
    companies: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k != "batch_id")
        where = ""
        if self.rows:
            shown = "; ".join(
                f"row {r}" + (f" ({k})" if k else "")
                for r, k in zip(self.rows, self.keys, strict=False)
            )
            more = (self.unexpected_count or 0) - len(self.rows)
            where = f" on {self.unexpected_count} row(s): {shown}" + (
                f" and {more} more" if more > 0 else ""
            )
        return f"raw.{self.table}: {self.expectation}({args}) failed{where}"


@dataclass
class ValidationReport:
    batch_id: str
    success: bool
    rows: dict[str, int]
    failures: list[Failure]
    results: dict[str, dict[str, Any]]  # table -> GX result as JSON
    #: the GX Data Docs site holding this batch's results (None if building it failed; with
    #: ``docs=False`` the site that :func:`build_docs` will render them into)
    docs_dir: Path | None = None


def expectations_for(schema: RecordSchema, now: dt.datetime) -> list[Any]:
    """The GX expectations of one raw table, derived from its record schema."""
    import great_expectations as gx

    E = gx.expectations
    latest = now.replace(tzinfo=None) + FUTURE_TOLERANCE
    out: list[Any] = [E.ExpectTableColumnsToMatchOrderedList(column_list=schema.names)]
    for c in schema.columns:
        if not c.nullable:
            out.append(E.ExpectColumnValuesToNotBeNull(column=c.name))
        if c.allowed is not None:
            out.append(E.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.allowed)))
        if c.min_value is not None or c.max_value is not None:
            out.append(
                E.ExpectColumnValuesToBeBetween(
                    column=c.name, min_value=c.min_value, max_value=c.max_value
                )
            )
        if c.type == "TIMESTAMP":
            out.append(
                E.ExpectColumnValuesToBeBetween(
                    column=c.name, min_value=EARLIEST_TIMESTAMP, max_value=latest
                )
            )
    ordered = [("observed_at", col) for col in schema.not_after_observed]
    for later, earlier in [*ordered, *schema.not_before]:
        out.append(
            E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=later,
                column_B=earlier,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            )
        )
    if len(schema.key) == 1:
        out.append(E.ExpectColumnValuesToBeUnique(column=schema.key[0]))
    else:
        out.append(E.ExpectCompoundColumnsToBeUnique(column_list=list(schema.key)))
    return out


#: the Data Docs site's name in the GX context
DOCS_SITE = "socialpulse"
#: how many validation results (the newest) the Data Docs index lists; older pages stay on disk
DOCS_INDEX_LIMIT = 200
#: the CSS, JS and fonts GX's pages load from CDNs, vendored (socialpulse.vendor_gx_assets)
GX_ASSETS = Path(__file__).with_name("gx_assets")
#: where a site keeps its copy of them, relative to the site's root
DOCS_VENDOR = "static/vendor"
#: GX's navbar logo, loaded from GX's S3 bucket (with the data context's id appended) although
#: GX copies the same logo into every site as static/images/logo-long.png
GX_LOGO_URL = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png"
#: pages last written this much before the last localisation pass ended were done by it
MTIME_SLACK = 2.0


def _no_fingerprint() -> None:
    """Stop GX fingerprinting every pandas batch.

    GX hashes every row of a frame below ``HASH_THRESHOLD`` bytes (``hash_pandas_object``
    and md5: a quarter of the gate's time on a 1.2 M-row batch, docs/benchmarks.md) only to
    show the digest as batch metadata; the batch's identity here is its batch id. GX has
    no setting for it but that module constant.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    engine.HASH_THRESHOLD = 0


def _add_suites(ctx: Any, now: dt.datetime) -> dict[str, Any]:
    """Every raw table's suite, added to ``ctx`` (each stored once, with all its
    expectations: adding them one by one serialised the suite again for every one)."""
    import great_expectations as gx

    return {
        table: ctx.suites.add(
            gx.ExpectationSuite(name=f"raw.{table}", expectations=expectations_for(schema, now))
        )
        for table, schema in RAW_SCHEMAS.items()
    }


def _context(docs: Path | None = None, results: Path | None = None) -> Any:
    """An ephemeral GX context: suites, data sources and definitions live in memory, only the
    validation results (unique file per suite and run) and the Data Docs site are files."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults()
    config = DataContextConfig(store_backend_defaults=defaults)
    if results is not None:
        config.stores[defaults.validation_results_store_name] = {
            "class_name": "ValidationResultsStore",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(results),
                "suppress_store_backend_id": True,
            },
        }
    config.data_docs_sites = (
        {}
        if docs is None
        else {
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "validation_results_limit": DOCS_INDEX_LIMIT,
                },
            }
        }
    )
    _no_fingerprint()
    ctx = gx.get_context(project_config=config, mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def validate_batch(
    batch_id: str,
    tables: Mapping[str, pa.Table],
    now: dt.datetime | None = None,
    quarantine_dir: Path | None = None,
    quarantine: bool = True,
    docs: bool = True,
) -> ValidationReport:
    """Validate every table of a batch; quarantine and raise :class:`BatchRejected` on failure.

    With ``quarantine=False`` a failing batch is only reported (``report.success`` False,
    its failures naming rows and companies), for the caller to split by company.
    Pass or fail, the results are stored and added to the GX Data Docs site
    (``Settings.gx_docs_dir``); with ``docs=False`` only stored, for :func:`build_docs` to
    render once for many batches (the ingest DAG's ``data_docs`` task: one rebuild of the
    site per run instead of one per batch, each under the site's lock).
    """
    try:
        return _validate_batch(batch_id, tables, now, quarantine_dir, quarantine, docs)
    finally:
        # GX's objects keep the batch's pandas frames in reference cycles: free them now, not
        # at the next full collection (a process validating batch after batch grew by a
        # batch's frames per call, docs/benchmarks.md)
        gc.collect()


def _validate_batch(
    batch_id: str,
    tables: Mapping[str, pa.Table],
    now: dt.datetime | None,
    quarantine_dir: Path | None,
    quarantine: bool,
    docs: bool,
) -> ValidationReport:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    now = now or dt.datetime.now(dt.UTC)
    config = settings()
    site, results = config.gx_docs_dir, config.gx_results_dir
    ctx = _context(site, results)
    source = ctx.data_sources.add_pandas(name="socialpulse")
    # every raw suite, so that the site always holds a page for each (the index drops pages
    # of suites missing from the context), even when the batch has no rows for a table
    # (each suite is stored once, with all its expectations: adding them one by one
    # serialised the suite again for every expectation)
    suites = _add_suites(ctx, now)
    # the run: one per call; its name is the batch, its time makes every result file unique
    run_id = RunIdentifier(run_name=safe_name(batch_id), run_time=dt.datetime.now(dt.UTC))
    report = ValidationReport(batch_id, True, {}, [], {})
    stored: list[Any] = []
    for table, data in tables.items():
        schema = RAW_SCHEMAS[table]
        report.rows[table] = data.num_rows
        if data.num_rows == 0:
            continue
        frame = _frame(data)
        asset = source.add_dataframe_asset(name=table)
        batch_def = asset.add_batch_definition_whole_dataframe(name=f"{table}_batch")
        definition = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"raw.{table}", data=batch_def, suite=suites[table])
        )

        def run(result_format: str, definition: Any = definition, frame: Any = frame) -> Any:
            return definition.run(
                batch_parameters={"dataframe": frame},
                result_format={
                    "result_format": result_format,
                    "partial_unexpected_count": SHOW_ROWS,
                },
                run_id=run_id,
            )

        # BASIC counts the unexpected values; the rows' indexes (COMPLETE: every column of
        # the frame filtered per expectation, a third of the gate's time) only where a table
        # fails, whose second result replaces the first (same suite, run and batch)
        result = run("BASIC")
        if not result.success:
            result = run("COMPLETE")
        stored += _result_keys(ctx, result.suite_name, run_id)
        report.results[table] = result.to_json_dict()
        for r in result.results:
            if r.success:
                continue
            report.success = False
            report.failures.append(_failure(schema, frame, r))
    report.docs_dir = (
        _build_docs(ctx, site, lambda: stored, results, config.gx_retention_days) if docs else site
    )
    if not report.success and quarantine:
        where = quarantine_batch(report, tables, quarantine_dir)
        raise BatchRejected(batch_id, report.failures, where, report.docs_dir)
    return report


def _frame(data: pa.Table) -> Any:
    """The table as a pandas frame for GX, timestamps in nanoseconds: GX compares those
    column-wide (vectorised) but other resolutions value by value in Python (72% of the
    gate's time before, docs/benchmarks.md). A timestamp beyond the nanosecond range (after
    2262) keeps its resolution, so that the range expectation names its row."""
    import pyarrow as pa

    try:
        return data.to_pandas(coerce_temporal_nanoseconds=True)
    except pa.ArrowInvalid:
        return data.to_pandas()


def split_by_company(
    report: ValidationReport, tables: Mapping[str, pa.Table]
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """(the failing companies' rows, every other row), table by table.

    A failing row costs its company all its rows of the batch. When a failure names no rows
    (a table-level expectation: the column list) the first part is empty: nothing can be
    kept apart, the whole batch is rejected.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if any(not f.companies for f in report.failures):
        return {}, dict(tables)
    bad_companies = pa.array(sorted({c for f in report.failures for c in f.companies}))
    bad: dict[str, pa.Table] = {}
    good: dict[str, pa.Table] = {}
    for table, data in tables.items():
        mask = pc.is_in(data["company_id"], value_set=bad_companies)
        mask = pc.fill_null(mask, False)
        if pc.any(mask).as_py():
            bad[table] = data.filter(mask)
        good[table] = data.filter(pc.invert(mask))
    return bad, good


def _result_keys(ctx: Any, suite_name: str, run_id: Any) -> list[Any]:
    """The keys under which :meth:`ValidationDefinition.run` stored this run's result."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    prefix = (*ExpectationSuiteIdentifier(name=suite_name).to_tuple(), *run_id.to_tuple())
    backend = ctx.validation_results_store.store_backend
    return [ValidationResultIdentifier.from_tuple(k) for k in backend.list_keys(prefix)]


def build_docs(now: dt.datetime | None = None) -> dict[str, Any]:
    """Render every stored result that has no Data Docs page yet, the suite pages and the
    index, in one pass (the ingest DAG's ``data_docs`` task, after its batches' validations).

    A result's page is ``<docs>/validations/<its path under the results store>.html``, so a
    result whose page is missing (this run's, or an earlier run's whose rendering failed) is
    found from the files alone. Never fails: a site that cannot be built is logged, and
    ``{"docs": None}`` returned.
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

    now = now or dt.datetime.now(dt.UTC)
    config = settings()
    site, results = config.gx_docs_dir, config.gx_results_dir
    ctx = _context(site, results)
    _add_suites(ctx, now)
    backend = ctx.validation_results_store.store_backend
    keys: list[Any] = []

    def unrendered() -> list[Any]:
        """The results without a page, listed under the lock, after the pruning."""
        keys[:] = [
            ValidationResultIdentifier.from_tuple(key)
            for key in backend.list_keys()
            if key != backend.STORE_BACKEND_ID_KEY
            and not (site / "validations" / Path(*key[:-1]) / f"{key[-1]}.html").is_file()
        ]
        return keys

    built = _build_docs(ctx, site, unrendered, results, config.gx_retention_days)
    log.info("GX Data Docs: %d new result page(s) in %s", len(keys), built)
    return {"docs": str(built) if built else None, "pages": len(keys)}


def _build_docs(
    ctx: Any,
    docs: Path,
    stored: Callable[[], list[Any]],
    results: Path,
    keep_days: int,
) -> Path | None:
    """Render this run's result pages, the suite pages and the index; never fails the batch.

    Only the results ``stored()`` lists are rendered (called under the lock, after the
    pruning); the pages of earlier runs stay as they are; the index lists the newest
    :data:`DOCS_INDEX_LIMIT` results of every run so far. Runs older than ``keep_days`` are
    pruned first (:func:`prune_results`). An exclusive lock on ``gx_docs.lock`` serialises
    concurrent builders: the index is rewritten whole, and the index builder removes pages
    whose result it does not find.
    """
    import fcntl

    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suites = [ExpectationSuiteIdentifier(name=suite.name) for suite in ctx.suites.all()]
    try:
        docs.parent.mkdir(parents=True, exist_ok=True)
        with (docs.parent / "gx_docs.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                prune_results(results, docs, keep_days)
                keys = stored()  # listed under the lock, after the pruning
                ctx.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=suites + keys)
                try:
                    localise_docs(docs)
                except Exception:  # the site is there, its pages still ask the CDNs
                    log.warning("could not localise the Data Docs in %s", docs, exc_info=True)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except Exception:
        log.warning("could not build the GX Data Docs in %s", docs, exc_info=True)
        return None
    return docs


def localise_docs(docs: Path) -> int:
    """Point the pages of the Data Docs site ``docs`` at the site's own copy of their assets.

    Copies the vendored files (:data:`GX_ASSETS`) to ``<docs>/static/vendor/`` when the site's
    copy is missing or differs, and in every page replaces each CDN URL by the relative path of
    its copy (pages live at different depths), without the ``integrity``/``crossorigin``
    attributes a local file cannot satisfy; GX's S3 logo becomes the site's own copy, and
    links to the site's ``static/`` get the page's depth (GX's favicon link on validation
    pages is a level short).

    Idempotent and cheap: ``static/vendor/manifest.json``, written last, marks a completed
    pass; after it only pages written since (by GX) are read, and only pages that still hold
    a CDN URL are rewritten (atomically). Returns the number of pages rewritten.
    """
    manifest_text = (GX_ASSETS / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(manifest_text)
    vendor = docs / DOCS_VENDOR
    stamp = vendor / "manifest.json"
    since = None
    if (
        stamp.is_file()
        and stamp.read_text(encoding="utf-8") == manifest_text
        and all((vendor / entry["path"]).is_file() for entry in manifest["files"])
    ):
        since = stamp.stat().st_mtime - MTIME_SLACK
    else:
        for entry in manifest["files"]:
            _replace(vendor / entry["path"], (GX_ASSETS / entry["path"]).read_bytes())
    urls: dict[str, str] = manifest["urls"]
    markers = [*(f"//{host}/" for host in manifest["cdn_hosts"]), GX_LOGO_URL]
    rewritten = 0
    for page in docs.rglob("*.html"):
        if since is not None and page.stat().st_mtime < since:
            continue
        html = page.read_text(encoding="utf-8")
        if not any(marker in html for marker in markers):
            continue
        up = "../" * (len(page.relative_to(docs).parts) - 1)
        local = _localise_page(html, up, urls)
        if local != html:
            _replace(page, local.encode("utf-8"))
            rewritten += 1
    if since is None:
        _replace(stamp, manifest_text.encode("utf-8"))
    else:
        stamp.touch()
    if rewritten:
        log.info("pointed %d Data Docs pages in %s at their local assets", rewritten, docs)
    return rewritten


_ASSET_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_URL_ATTR = re.compile(r"(\s(?:src|href)=\")([^\"]*)(\")")
_STATIC_URL = re.compile(r"(?:\./|(?:\.\./)+)?static/(.+)")
_SRI_ATTR = re.compile(r"\s(?:integrity|crossorigin)=\"[^\"]*\"")


def _localise_page(html: str, up: str, urls: Mapping[str, str]) -> str:
    """``html`` with the CDN URLs of its script, link and img tags replaced (``up``: the
    relative path from the page to the site's root, ``../`` per level)."""

    def attribute(match: re.Match[str]) -> str:
        url = match.group(2)
        if url in urls:
            local = f"{up}{DOCS_VENDOR}/{urls[url]}"
        elif url.split("?")[0] == GX_LOGO_URL:
            local = f"{up}static/images/logo-long.png"
        elif static := _STATIC_URL.fullmatch(url):  # GX's favicon link is a level short
            local = f"{up}static/{static.group(1)}"
        else:
            return match.group(0)
        return match.group(1) + local + match.group(3)

    def tag(match: re.Match[str]) -> str:
        old = match.group(0)
        new = _URL_ATTR.sub(attribute, old)
        return old if new == old else _SRI_ATTR.sub("", new)

    return _ASSET_TAG.sub(tag, html)


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: the plugin may be serving it right now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def prune_results(results: Path, docs: Path, keep_days: int, now: dt.datetime | None = None) -> int:
    """Delete the stored results (and their Data Docs pages) of runs older than ``keep_days``.

    The age is the run time GX writes into the path,
    ``<results>/<suite...>/<run_name>/<YYYYmmddTHHMMSS.ffffffZ>/<batch>.json``; files whose
    path holds no such time are left alone. Returns the number of results deleted.
    """
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=keep_days)
    deleted = 0
    for result in sorted(results.rglob("*.json")) if results.is_dir() else []:
        try:
            run_time = dt.datetime.strptime(result.parent.name, "%Y%m%dT%H%M%S.%fZ")
        except ValueError:
            continue
        if run_time.replace(tzinfo=dt.UTC) >= cutoff:
            continue
        relative = result.relative_to(results)
        page = docs / "validations" / relative.with_suffix(".html")
        for path in (result, page):
            path.unlink(missing_ok=True)
            _remove_empty_parents(path.parent, stop=path.parents[len(relative.parts) - 1])
        deleted += 1
    if deleted:
        log.info("pruned %d GX validation results older than %d days", deleted, keep_days)
    return deleted


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``stop`` while they are empty."""
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _failure(schema: RecordSchema, frame: Any, r: Any) -> Failure:
    cfg = r.expectation_config
    res = r.result or {}
    indexes = [
        int(i) if not isinstance(i, dict) else int(i.get("index", -1))
        for i in res.get("unexpected_index_list") or []
    ]
    indexes = [i for i in indexes if 0 <= i < len(frame)]
    companies = (
        sorted({str(c) for c in frame["company_id"].iloc[indexes] if c is not None and c == c})
        if indexes and "company_id" in frame.columns
        else []
    )
    rows = indexes[:SHOW_ROWS]
    keys = []
    for i in rows:
        if 0 <= i < len(frame):
            rec = frame.iloc[i]
            keys.append(", ".join(f"{k}={rec[k]}" for k in schema.key))
        else:
            keys.append("")
    count = res.get("unexpected_count")
    if count is None and res.get("observed_value") is not None:
        keys, rows = [], []
    kwargs = {k: v for k, v in cfg.kwargs.items() if v is not None}
    if "observed_value" in res and not rows:
        kwargs["observed"] = res["observed_value"]
    return Failure(schema.table, cfg.type, kwargs, count, rows, keys, indexes, companies)


def quarantine_batch(
    report: ValidationReport, tables: Mapping[str, pa.Table], root: Path | None = None
) -> Path:
    """Write ``tables`` and the report's GX result to ``<quarantine>/<batch_id>/``."""
    import pyarrow.parquet as pq

    where = (root or settings().quarantine_dir) / safe_name(report.batch_id)
    where.mkdir(parents=True, exist_ok=True)
    for table, data in tables.items():
        pq.write_table(data, where / f"{table}.parquet")
    summary = {
        "batch_id": report.batch_id,
        "rows": report.rows,
        "failures": [str(f) for f in report.failures],
        "results": report.results,
    }
    (where / "validation_result.json").write_text(json.dumps(summary, indent=2, default=str))
    log.error("quarantined batch %s to %s", report.batch_id, where)
    return where
