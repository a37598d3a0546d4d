"""Great Expectations gate: one suite per raw table, built from the record schemas.

A batch (one fetch of one platform's accounts) is validated table by table before it may be
loaded (write-audit-publish). A failing batch is written to the quarantine folder together
with the GX results, and :class:`BatchRejected` says which expectation failed on which rows.

Every batch's results (pass or fail) are also kept as GX Data Docs: the validation results are
stored as JSON under ``<data_dir>/gx/validations`` (one file per suite and run, never
overwritten) and rendered into the static site ``<data_dir>/gx_docs`` (``index.html``, one
page per suite and run under ``validations/``, one page per suite under ``expectations/``),
which the socialpulse page in the Airflow UI serves. Several validate tasks may run at once:
the result files are unique per run, and the site is updated under an exclusive file lock.
Results and pages of runs older than ``SOCIALPULSE_GX_RETENTION_DAYS`` (90) are deleted when
the site is updated, so the folder and the index build stay bounded.

``great_expectations`` is imported lazily: it costs seconds and must never load at DAG parse
time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from socialpulse.config import safe_name, settings
from socialpulse.records import EARLIEST_TIMESTAMP, RAW_SCHEMAS, RecordSchema

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

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
    #: the GX Data Docs site holding this batch's results (None if building it failed)
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
    ctx = gx.get_context(project_config=config, mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def validate_batch(
    batch_id: str,
    tables: Mapping[str, pa.Table],
    now: dt.datetime | None = None,
    quarantine_dir: Path | None = None,
    quarantine: bool = True,
) -> ValidationReport:
    """Validate every table of a batch; quarantine and raise :class:`BatchRejected` on failure.

    With ``quarantine=False`` a failing batch is only reported (``report.success`` False,
    its failures naming rows and companies), for the caller to split by company.
    Pass or fail, the results are added to the GX Data Docs site (``Settings.gx_docs_dir``).
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    now = now or dt.datetime.now(dt.UTC)
    config = settings()
    docs, results = config.gx_docs_dir, config.gx_results_dir
    ctx = _context(docs, results)
    source = ctx.data_sources.add_pandas(name="socialpulse")
    # every raw suite, so that the site always holds a page for each (the index drops pages
    # of suites missing from the context), even when the batch has no rows for a table
    suites = {}
    for table, schema in RAW_SCHEMAS.items():
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"raw.{table}"))
        for exp in expectations_for(schema, now):
            suite.add_expectation(exp)
        suites[table] = suite
    # the run: one per call; its name is the batch, its time makes every result file unique
    run_id = RunIdentifier(run_name=safe_name(batch_id), run_time=dt.datetime.now(dt.UTC))
    report = ValidationReport(batch_id, True, {}, [], {})
    stored: list[Any] = []
    for table, data in tables.items():
        schema = RAW_SCHEMAS[table]
        report.rows[table] = data.num_rows
        if data.num_rows == 0:
            continue
        frame = data.to_pandas()
        asset = source.add_dataframe_asset(name=table)
        batch_def = asset.add_batch_definition_whole_dataframe(name=f"{table}_batch")
        definition = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"raw.{table}", data=batch_def, suite=suites[table])
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": SHOW_ROWS},
            run_id=run_id,
        )
        stored += _result_keys(ctx, result.suite_name, run_id)
        report.results[table] = result.to_json_dict()
        for r in result.results:
            if r.success:
                continue
            report.success = False
            report.failures.append(_failure(schema, frame, r))
    report.docs_dir = _build_docs(ctx, docs, stored, results, config.gx_retention_days)
    if not report.success and quarantine:
        where = _quarantine(report, tables, quarantine_dir)
        raise BatchRejected(batch_id, report.failures, where, report.docs_dir)
    return report


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


def quarantine(
    report: ValidationReport, tables: Mapping[str, pa.Table], root: Path | None = None
) -> Path:
    """Write ``tables`` and the report's GX result to ``<quarantine>/<batch_id>/``."""
    return _quarantine(report, tables, root)


def _result_keys(ctx: Any, suite_name: str, run_id: Any) -> list[Any]:
    """The keys under which :meth:`ValidationDefinition.run` stored this run's result."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    prefix = (*ExpectationSuiteIdentifier(name=suite_name).to_tuple(), *run_id.to_tuple())
    backend = ctx.validation_results_store.store_backend
    return [ValidationResultIdentifier.from_tuple(k) for k in backend.list_keys(prefix)]


def _build_docs(
    ctx: Any, docs: Path, stored: list[Any], results: Path, keep_days: int
) -> Path | None:
    """Render this run's result pages, the suite pages and the index; never fails the batch.

    Only this run's results are rendered (the pages of earlier runs stay as they are); the
    index lists the newest :data:`DOCS_INDEX_LIMIT` results of every run so far. Runs older
    than ``keep_days`` are pruned first (:func:`prune_results`). An exclusive lock on
    ``gx_docs.lock`` serialises concurrent validate tasks: the index is rewritten whole, and
    the index builder removes pages whose result it does not find.
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
                ctx.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=suites + stored)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except Exception:
        log.warning("could not build the GX Data Docs in %s", docs, exc_info=True)
        return None
    return docs


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


def _quarantine(
    report: ValidationReport, tables: Mapping[str, pa.Table], root: Path | None
) -> Path:
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
