"""Task bodies: each Airflow task is one call into this module (no Airflow import here).

Flow of one ingestion run (write-audit-publish)::

    plan_batches -> fetch_batch -> validate_staged -> load_staged   (per batch of accounts)
                 \\-> sync_registry (ref tables)

Batches travel between tasks as small dicts (paths and counts), never as data frames: the
rows themselves are Parquet files in the run's staging folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from socialpulse.config import safe_name, settings
from socialpulse.platforms import RESOLVES_PROBES
from socialpulse.platforms.base import AccountRef, FetchResult, FetchWindow, PlatformContext
from socialpulse.registry import Probe, Registry, load_registry

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    import pyarrow as pa

log = logging.getLogger(__name__)

#: pseudo-platform for what the registry itself delivers (probe CSV, manual metrics CSV)
REGISTRY_SOURCE = "registry"


class FetchFailed(RuntimeError):
    """Some accounts could not be fetched; the others were loaded."""


def _registry(path: str | Path | None = None) -> Registry:
    return load_registry(path or settings().companies)


def is_offline(platform: str) -> bool:
    """Sources that need no Airflow connection: the sample platform and the registry itself."""
    return platform in ("sample", REGISTRY_SOURCE)


def plan_batches(
    companies: str | None = None, batch_size: int | None = None
) -> list[dict[str, Any]]:
    """Check the registry (fail fast, before any fetch) and cut its accounts into batches.

    One batch = up to ``batch_size`` accounts of one platform. The registry's own inputs
    (probes and manual metrics CSVs) form one more batch when present.
    """
    registry = _registry(companies)
    size = batch_size or settings().batch_size
    batches: list[dict[str, Any]] = []
    for platform in registry.platforms():
        refs = [ref.to_dict() for ref in account_refs(registry, platform)]
        for n, start in enumerate(range(0, len(refs), size)):
            batches.append(
                {"platform": platform, "batch_no": n, "accounts": refs[start : start + size]}
            )
    if registry.probes or registry.manual_metrics:
        batches.append({"platform": REGISTRY_SOURCE, "batch_no": 0, "accounts": []})
    log.info(
        "registry %s: %d companies, %d batches (%s)",
        registry.path,
        len(registry.companies),
        len(batches),
        ", ".join(sorted({b["platform"] for b in batches})),
    )
    return batches


def account_refs(registry: Registry, platform: str) -> list[AccountRef]:
    """The registry's accounts on ``platform``, each with the probes that platform resolves."""
    return [
        AccountRef(
            c.id,
            a.handle,
            dict(a.options),
            tuple(
                p.model_dump(mode="json")
                for p in registry.probes
                if p.company_id == c.id and p.platform == platform and resolved_by_platform(p)
            ),
        )
        for c, a in registry.accounts(platform)
    ]


def resolved_by_platform(probe: Probe) -> bool:
    """A public post on a platform that reads threads: its connector finds the answer."""
    return (
        probe.channel == "public_post"
        and probe.platform in RESOLVES_PROBES
        and bool(probe.question_ref)
    )


def sync_registry(companies: str | None = None, warehouse: str | None = None) -> dict[str, int]:
    """Replace the warehouse's ``ref`` tables with the registry's current content."""
    from socialpulse.registry import reference_tables
    from socialpulse.warehouse import connect, replace_reference_tables

    tables = reference_tables(_registry(companies))
    with connect(warehouse) as con:
        replace_reference_tables(con, tables)
    return {name: t.num_rows for name, t in tables.items()}


def fetch_window(
    data_interval_start: dt.datetime,
    data_interval_end: dt.datetime,
    backfill_days: int = 0,
    lookback_days: int | None = None,
) -> FetchWindow:
    """The run's data interval, widened to ``backfill_days`` before its end when asked."""
    start = data_interval_start
    if backfill_days and backfill_days > 0:
        start = min(start, data_interval_end - dt.timedelta(days=backfill_days))
    lookback = dt.timedelta(days=lookback_days or settings().lookback_days)
    return FetchWindow(start=start, end=data_interval_end, lookback=lookback)


def batch_id(batch: dict[str, Any], window: FetchWindow) -> str:
    """Stable per platform, batch and interval, so a rerun of an interval reuses it."""
    return (
        f"{batch['platform']}-{window.start:%Y%m%dT%H%M}-{window.end:%Y%m%dT%H%M}"
        f"-b{batch['batch_no']:03d}"
    )


def fetch_batch(
    batch: dict[str, Any],
    window: FetchWindow,
    run_id: str,
    companies: str | None = None,
    connection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fetch one batch and stage its rows as Parquet. Returns the staged batch's description.

    ``connection``: the platform's Airflow connection (``<platform>_default``) as a dict.
    """
    import pyarrow.parquet as pq

    bid = batch_id(batch, window)
    if batch["platform"] == REGISTRY_SOURCE:
        result = registry_rows(_registry(companies), window)
    else:
        from socialpulse.platforms import get_platform

        context = PlatformContext(
            connection=connection, state_dir=settings().data_dir / "state" / batch["platform"]
        )
        context.state_dir.mkdir(parents=True, exist_ok=True)
        platform = get_platform(batch["platform"], context)
        accounts = [AccountRef.from_dict(a) for a in batch["accounts"]]
        result = platform.fetch(accounts, window)
    folder = settings().staging_dir / safe_name(run_id) / bid
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    rows: dict[str, int] = {}
    for table, data in result.tables().items():
        path = folder / f"{table}.parquet"
        pq.write_table(data, path)
        paths[table] = str(path)
        rows[table] = data.num_rows
    errors = [{**e.__dict__, "severity": "error"} for e in result.errors]
    errors += [{**e.__dict__, "severity": "warning"} for e in result.warnings]
    for e in errors:
        log.warning(
            "fetch %s %s account %s (%s): %s",
            e["severity"],
            e["platform"],
            e["handle"],
            e["company_id"],
            e["error"],
        )
    log.info("batch %s staged: %s", bid, rows)
    return {
        "batch_id": bid,
        "platform": batch["platform"],
        "batch_no": batch["batch_no"],
        "run_id": run_id,
        "folder": str(folder),
        "paths": paths,
        "rows": rows,
        "errors": errors,
        "observed_until": window.end.isoformat(),
    }


def registry_rows(registry: Registry, window: FetchWindow) -> FetchResult:
    """The registry's hand-entered inputs (probe CSV, manual metrics CSV) as raw rows.

    Probes that a platform resolves (public posts on Mastodon, Bluesky) are left to that
    platform's batch, so that exactly one batch writes each probe.

    They are observed when the file is read (now), whatever interval the run covers: their
    natural keys (probe_id; company, metric, period) carry no observation time, so a rerun
    replaces them.
    """
    del window  # the files hold their own timestamps
    result = FetchResult()
    observed = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    for p in registry.probes:
        if not resolved_by_platform(p):
            result.add("probes", {**p.model_dump(), "observed_at": observed})
    for m in registry.manual_metrics:
        result.add("manual_metrics", {**m.model_dump(), "observed_at": observed})
    return result


def _read_staged(staged: dict[str, Any]) -> dict[str, pa.Table]:
    import pyarrow.parquet as pq

    return {table: pq.read_table(path) for table, path in staged["paths"].items()}


def validate_staged(staged: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """Run the Great Expectations suites on a staged batch; quarantine and raise on failure."""
    from socialpulse.validation import validate_batch

    report = validate_batch(staged["batch_id"], _read_staged(staged), now=now)
    log.info("batch %s passed validation: %s", staged["batch_id"], report.rows)
    return {**staged, "validated": True}


def load_staged(staged: dict[str, Any], warehouse: str | None = None) -> dict[str, Any]:
    """Load a validated batch into the raw tables (one transaction), then drop its staging."""
    from socialpulse.warehouse import connect, load_batch, record_fetch_errors

    if not staged.get("validated"):
        raise RuntimeError(f"batch {staged['batch_id']} was not validated; refusing to load it")
    tables = _read_staged(staged)
    with connect(warehouse) as con:
        counts = load_batch(con, staged["batch_id"], tables)
        record_fetch_errors(con, staged["batch_id"], staged["run_id"], staged["errors"])
    shutil.rmtree(staged["folder"], ignore_errors=True)
    log.info("batch %s loaded: %s", staged["batch_id"], counts)
    return {
        "batch_id": staged["batch_id"],
        "platform": staged["platform"],
        "batch_no": staged["batch_no"],
        "rows": counts,
        "errors": staged["errors"],
    }


def raw_table_counts(warehouse: str | None = None) -> dict[str, int]:
    from socialpulse.warehouse import connect, table_counts

    with connect(warehouse) as con:
        return table_counts(con, "raw")


def check_loads(loaded: Iterable[dict[str, Any]] | Mapping[str, Any]) -> dict[str, Any]:
    """Fail the run visibly when any account could not be fetched (the rest is loaded).

    ``loaded``: the load results of the mapped batches. Airflow hands a downstream task the
    one result itself (a dict) when the registry made a single batch, a sequence otherwise.
    """
    batches = [loaded] if isinstance(loaded, Mapping) else list(loaded)
    return _check_batches(batches)


def _check_batches(loaded: list[Mapping[str, Any]]) -> dict[str, Any]:
    problems = [e for batch in loaded for e in batch["errors"]]
    errors = [e for e in problems if e.get("severity", "error") == "error"]
    for w in problems:
        if w.get("severity") == "warning":
            log.warning("%s %s (%s): %s", w["platform"], w["handle"], w["company_id"], w["error"])
    summary = {
        "batches": len(loaded),
        "rows": _sum_rows(loaded),
        "fetch_errors": len(errors),
        "fetch_warnings": len(problems) - len(errors),
    }
    if errors:
        listing = "\n".join(
            f"  - {e['platform']} {e['handle']} ({e['company_id']}): {e['error']}" for e in errors
        )
        raise FetchFailed(
            f"{len(errors)} account(s) could not be fetched; the others were loaded:\n{listing}"
        )
    return summary


def _sum_rows(loaded: list[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for batch in loaded:
        for t, n in batch["rows"].items():
            total[t] = total.get(t, 0) + n
    return total


def build_source_snapshot(warehouse: str | None = None) -> dict[str, int]:
    """The staging layer, every model in one transaction: the models run's snapshot of the
    raw and ref tables (later models read only it, so a concurrent load is never half seen).
    """
    from socialpulse.models import SOURCE_LAYER, build_in_one_transaction, discover
    from socialpulse.warehouse import connect

    staging = [m for m in discover() if m.layer == SOURCE_LAYER]
    with connect(warehouse) as con:
        rows = build_in_one_transaction(con, staging)
    log.info("source snapshot (%d staging models): %s", len(rows), rows)
    return rows


def build_model(qualified: str, warehouse: str | None = None) -> int | None:
    """Build one SQL model (``layer.name``) in the warehouse."""
    from socialpulse.models import build_model as build
    from socialpulse.models import discover
    from socialpulse.warehouse import connect

    model = {m.qualified: m for m in discover()}[qualified]
    with connect(warehouse) as con:
        return build(con, model)


def cleanup_staging(run_id: str) -> None:
    shutil.rmtree(settings().staging_dir / safe_name(run_id), ignore_errors=True)


def publish_analytics(warehouse: str | None = None) -> str:
    """After a models build: the analytics copy that analysts query (see the README)."""
    from socialpulse.warehouse import connect, publish_analytics_copy

    dest = settings().analytics
    with connect(warehouse) as con:
        publish_analytics_copy(con, dest)
    log.info("published the analytics copy %s", dest)
    return str(dest)


def build_reports(period_types: tuple[str, ...] = ("week", "month")) -> dict[str, str]:
    """The published report (HTML, CSV, Parquet) of the latest complete week and month.

    Reads the analytics copy, read-only: it needs no DuckDB writer slot.
    """
    from socialpulse.report import build_report

    s = settings()
    out: dict[str, str] = {}
    for period_type in period_types:
        paths = build_report(
            s.analytics, s.reports_dir, period_type, quarantine_dir=s.quarantine_dir
        )
        out[period_type] = str(paths.html)
        log.info("report of the latest complete %s: %s", period_type, paths.html)
    return out
