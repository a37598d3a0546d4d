r"""Task bodies: each Airflow task is one call into this module (no Airflow import here).

Flow of one ingestion run (write-audit-publish)::

    plan_run -> fetch_batch -> validate_staged -> load_staged   (per batch of accounts)
             \-> sync_registry (ref tables)
    record_run (every batch's outcome and fetch errors into ops.fetch_errors) -> check_run

``plan_run`` parses the registry once per run and writes the run's plan into the run's
staging folder (``<data>/staging/<run_id>/plan``): the batches' accounts, the ref tables
and the registry's own rows. Batches travel between tasks as small dicts (a path, counts),
never as data frames or account lists: the rows themselves are Parquet files in the run's
staging folder. Every stage writes the batch's outcome to ``<run>/status/<batch>.json``
when it happens, so that ``record_run`` can name every failed account and batch even when
a batch never reached its load.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialpulse.config import safe_name, settings
from socialpulse.platforms import RESOLVES_PROBES
from socialpulse.platforms.base import (
    CONFIGURATION,
    ERROR,
    WARNING,
    AccountRef,
    FetchResult,
    FetchWindow,
    PlatformContext,
)
from socialpulse.registry import Probe, Registry, load_registry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import pyarrow as pa

    from socialpulse.http import HttpPolicy

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
    companies: str | None = None,
    batch_size: int | None = None,
    registry: Registry | None = None,
) -> list[dict[str, Any]]:
    """Check the registry (fail fast, before any fetch) and cut its accounts into batches.

    One batch = up to ``batch_size`` accounts of one platform. The registry's own inputs
    (probes and manual metrics CSVs) form one more batch when present.
    """
    registry = registry or _registry(companies)
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


def batch_label(platform: str, batch_no: int) -> str:
    """``<platform>-b<nnn>``: a batch of a run (the grid's map index, the status file)."""
    return f"{platform}-b{batch_no:03d}"


def run_dir(run_id: str) -> Path:
    """The run's own folder: its plan, its batches' status and its staged rows."""
    return settings().staging_dir / safe_name(run_id)


def plan_run(
    run_id: str,
    companies: str | None = None,
    batch_size: int | None = None,
    platforms: Iterable[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """Parse the registry once for the whole run and write the run's plan to disk.

    ``<run>/plan/``: ``<platform>-b<nnn>.json`` (each batch's accounts), ``ref/*.parquet``
    (the ref tables ``sync_registry`` loads), ``registry/*.parquet`` (the registry's own
    rows: probes and manual metrics). Returns the batches per platform as small references
    (platform, batch number, account count, plan file), with an entry (maybe empty) for
    every platform in ``platforms`` and for the registry's own batch: XCom carries paths,
    never the registry. Stale folders of earlier runs are removed first.
    """
    import pyarrow.parquet as pq

    from socialpulse.registry import reference_tables

    remove_stale_runs(keep=run_id)
    registry = _registry(companies)
    batches = plan_batches(registry=registry, batch_size=batch_size)
    plan = run_dir(run_id) / "plan"
    for sub in ("ref", "registry"):
        (plan / sub).mkdir(parents=True, exist_ok=True)
    for table, data in reference_tables(registry).items():
        pq.write_table(data, plan / "ref" / f"{table}.parquet")
    for table, data in registry_rows(registry).tables().items():
        pq.write_table(data, plan / "registry" / f"{table}.parquet")
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in (*platforms, REGISTRY_SOURCE)}
    for batch in batches:
        path = plan / f"{batch_label(batch['platform'], batch['batch_no'])}.json"
        path.write_text(json.dumps(batch["accounts"]), encoding="utf-8")
        out.setdefault(batch["platform"], []).append(
            {
                "platform": batch["platform"],
                "batch_no": batch["batch_no"],
                "size": len(batch["accounts"]),
                "plan": str(path),
            }
        )
    (plan / "batches.json").write_text(json.dumps(out), encoding="utf-8")
    return out


def planned_batches(run_id: str, source: str) -> list[dict[str, Any]]:
    """The batches of one source (a platform, or the registry's own rows) in the run's plan."""
    plan = run_dir(run_id) / "plan" / "batches.json"
    return list(json.loads(plan.read_text(encoding="utf-8")).get(source, []))


def planned_accounts(batch: dict[str, Any]) -> list[AccountRef]:
    """A batch's accounts: inline (``accounts``) or from the run's plan file (``plan``)."""
    if "accounts" in batch:
        return [AccountRef.from_dict(a) for a in batch["accounts"]]
    return [
        AccountRef.from_dict(a) for a in json.loads(Path(batch["plan"]).read_text(encoding="utf-8"))
    ]


def sync_registry(
    companies: str | None = None, warehouse: str | None = None, run_id: str | None = None
) -> dict[str, int]:
    """Replace the warehouse's ``ref`` tables with the registry's current content (from the
    run's plan when ``run_id`` has one, so the registry is parsed once per run)."""
    import pyarrow.parquet as pq

    from socialpulse.registry import reference_tables
    from socialpulse.warehouse import connect, replace_reference_tables

    planned = run_dir(run_id) / "plan" / "ref" if run_id else None
    if planned is not None and planned.is_dir():
        tables = {p.stem: pq.read_table(p) for p in sorted(planned.glob("*.parquet"))}
    else:
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


def run_window(
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
    run_after: dt.datetime,
    backfill_days: int = 0,
) -> FetchWindow:
    """The fetch window of a DAG run: its data interval when it has one; else (a manual run
    without a logical date) the day before its ``run_after`` time, up to that time."""
    if interval_start is None or interval_end is None:
        interval_end = run_after
        interval_start = run_after - dt.timedelta(days=1)
    return fetch_window(interval_start, interval_end, backfill_days)


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
    connections: Callable[[str], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Fetch one batch and stage its rows as Parquet. Returns the staged batch's description.

    ``connection``: the platform's Airflow connection (``<platform>_default``) as a dict;
    ``connections``: looks up any other connection by id (one an account's options name).
    """
    bid = batch_id(batch, window)
    label = batch_label(batch["platform"], batch["batch_no"])
    started = time.monotonic()
    try:
        tables, errors = _fetch(batch, window, run_id, companies, connection, connections)
        folder = run_dir(run_id) / bid
        paths, rows = _stage(folder, tables)
    except Exception as exc:
        accounts = [] if batch["platform"] == REGISTRY_SOURCE else planned_accounts(batch)
        write_status(
            run_id,
            label,
            batch_id=bid,
            stage="fetch failed",
            problem=f"{type(exc).__name__}: {exc}",
            accounts=[{"company_id": a.company_id, "handle": a.handle} for a in accounts],
        )
        raise
    for e in errors:
        log.warning(
            "fetch %s %s account %s (%s): %s",
            e["severity"],
            e["platform"],
            e["handle"],
            e["company_id"],
            e["error"],
        )
    # recorded now: a batch that fails later (validation, load) still names its accounts
    write_status(run_id, label, batch_id=bid, stage="fetched", rows=rows, errors=errors)
    n_err = sum(1 for e in errors if e["severity"] != WARNING)
    log.info(
        "batch %s: %s accounts of %s fetched (%d failed, %d warnings) for %s to %s in %.1f s; "
        "rows staged: %s",
        bid,
        batch.get("size", len(batch.get("accounts") or [])),
        batch["platform"],
        n_err,
        len(errors) - n_err,
        f"{window.since:%Y-%m-%d %H:%M}",
        f"{window.end:%Y-%m-%d %H:%M}",
        time.monotonic() - started,
        rows or "none",
    )
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


def _fetch(
    batch: dict[str, Any],
    window: FetchWindow,
    run_id: str,
    companies: str | None,
    connection: dict[str, Any] | None,
    connections: Callable[[str], dict[str, Any] | None] | None = None,
) -> tuple[dict[str, pa.Table], list[dict[str, Any]]]:
    """The batch's rows (Arrow tables per raw table) and its accounts' errors and warnings."""
    import pyarrow.parquet as pq

    if batch["platform"] == REGISTRY_SOURCE:
        planned = run_dir(run_id) / "plan" / "registry"
        if planned.is_dir():  # read when the run was planned: the registry is parsed once
            return {p.stem: pq.read_table(p) for p in sorted(planned.glob("*.parquet"))}, []
        return registry_rows(_registry(companies), window).tables(), []
    from socialpulse.platforms import get_platform

    context = PlatformContext(
        connection=connection,
        state_dir=settings().data_dir / "state" / batch["platform"],
        policy=http_policy(),
        connections=connections,
    )
    context.state_dir.mkdir(parents=True, exist_ok=True)
    platform = get_platform(batch["platform"], context)
    result = platform.fetch(planned_accounts(batch), window)
    # errors keep their severity ("error" or "configuration": a person has to act)
    errors = [dict(e.__dict__) for e in result.errors]
    errors += [{**e.__dict__, "severity": WARNING} for e in result.warnings]
    return result.tables(), errors


def http_policy() -> HttpPolicy:
    """The HTTP limits of the settings (``SOCIALPULSE_HTTP_*``, ``..._ACCOUNT_BUDGET_SECONDS``)."""
    from socialpulse.http import HttpPolicy

    s = settings()
    return HttpPolicy(
        deadline=float(s.http_deadline_seconds),
        max_bytes=s.http_max_bytes,
        account_budget=float(s.account_budget_seconds),
    )


def _stage(folder: Path, tables: Mapping[str, pa.Table]) -> tuple[dict[str, str], dict[str, int]]:
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    rows: dict[str, int] = {}
    for table, data in tables.items():
        path = folder / f"{table}.parquet"
        pq.write_table(data, path)
        paths[table] = str(path)
        rows[table] = data.num_rows
    return paths, rows


def registry_rows(registry: Registry, window: FetchWindow | None = None) -> FetchResult:
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
    """Run the Great Expectations suites on a staged batch before it may be loaded.

    Rows that fail an expectation cost only their company: its rows of every table are
    quarantined (with the GX result), each such account is recorded as a fetch error, and
    the other companies' rows are validated again and go on to the load. A failure that
    names no rows (a wrong column list) quarantines the whole batch and raises
    :class:`BatchRejected`, as does a remainder that still fails.
    """
    from socialpulse.validation import BatchRejected, split_by_company, validate_batch

    label = batch_label(staged["platform"], staged["batch_no"])
    tables = _read_staged(staged)
    try:
        # the results are stored; the run's data_docs task renders them (build_docs)
        report = validate_batch(staged["batch_id"], tables, now=now, quarantine=False, docs=False)
        errors = list(staged["errors"])
        if not report.success:
            bad, good = split_by_company(report, tables)
            if not bad or not any(t.num_rows for t in good.values()):
                # raises, quarantines all
                validate_batch(staged["batch_id"], tables, now=now, docs=False)
            quarantined = _quarantine_companies(staged, report, tables, bad)
            errors += quarantined
            report = validate_batch(f"{staged['batch_id']}-accepted", good, now=now, docs=False)
            paths, _ = _stage(Path(staged["folder"]) / "accepted", good)
            staged = {**staged, "paths": paths, "errors": errors}
    except BatchRejected as exc:
        _failed(staged, "quarantined", str(exc), tables, quarantine=exc.quarantine)
        raise
    write_status(
        staged["run_id"], label, batch_id=staged["batch_id"], stage="validated", errors=errors
    )
    log.info(
        "batch %s passed validation: %d expectations on %s",
        staged["batch_id"],
        sum(len(r.get("results", [])) for r in report.results.values()),
        report.rows,
    )
    return {**staged, "validated": True}


def _failed(
    staged: dict[str, Any],
    stage: str,
    problem: str,
    tables: Mapping[str, pa.Table],
    quarantine: Path | None = None,
) -> None:
    """Record that a staged batch stopped at ``stage``, with the accounts it costs."""
    write_status(
        staged["run_id"],
        batch_label(staged["platform"], staged["batch_no"]),
        batch_id=staged["batch_id"],
        stage=stage,
        problem=problem,
        quarantine=str(quarantine) if quarantine else None,
        errors=staged["errors"],
        accounts=_accounts_of(tables),
    )


def _accounts_of(tables: Mapping[str, pa.Table]) -> list[dict[str, str]]:
    """(company, handle) of the batch's accounts, from its snapshots (else its companies)."""
    seen: dict[str, str] = {}
    for table in ("account_snapshots", *tables):
        data = tables.get(table)
        if data is None or "company_id" not in data.column_names:
            continue
        handles = data["handle"].to_pylist() if "handle" in data.column_names else None
        for i, company in enumerate(data["company_id"].to_pylist()):
            seen.setdefault(company, handles[i] if handles else company)
    return [{"company_id": c, "handle": h} for c, h in sorted(seen.items())]


def _quarantine_companies(
    staged: dict[str, Any],
    report: Any,
    tables: Mapping[str, pa.Table],
    bad: Mapping[str, pa.Table],
) -> list[dict[str, Any]]:
    """Quarantine the failing companies' rows; one fetch error per such account."""
    from socialpulse.validation import quarantine_batch

    where = quarantine_batch(report, bad)
    companies = {c for t in bad.values() for c in t["company_id"].to_pylist()}
    handles = {a["company_id"]: a["handle"] for a in _accounts_of(tables)}
    reasons: dict[str, list[str]] = {c: [] for c in companies}
    for failure in report.failures:
        for company in failure.companies:
            reasons.setdefault(company, []).append(str(failure))
    log.error("batch %s: rows of %s quarantined to %s", staged["batch_id"], companies, where)
    return [
        {
            "platform": staged["platform"],
            "company_id": company,
            "handle": handles.get(company, company),
            "severity": "error",
            "error": f"rows failed validation and were quarantined to {where}: "
            + "; ".join(reasons.get(company) or ["(see the GX result there)"]),
        }
        for company in sorted(companies)
    ]


def load_staged(staged: dict[str, Any], warehouse: str | None = None) -> dict[str, Any]:
    """Load a validated batch into the raw tables (one transaction), then drop its staging.

    Its accounts' fetch errors are recorded by :func:`record_run`, for every batch of the
    run, loaded or not.
    """
    from socialpulse.warehouse import connect, load_batch

    if not staged.get("validated"):
        raise RuntimeError(f"batch {staged['batch_id']} was not validated; refusing to load it")
    label = batch_label(staged["platform"], staged["batch_no"])
    tables = _read_staged(staged)
    started = time.monotonic()
    try:
        with connect(warehouse) as con:
            # validated: the gate's suites passed the natural key unique in every table
            counts = load_batch(con, staged["batch_id"], tables, keys_unique=True)
            replaced = dict(
                con.execute(
                    "select table_name, rows_replaced from ops.load_log where batch_id = ?",
                    [staged["batch_id"]],
                ).fetchall()
            )
    except Exception as exc:
        _failed(staged, "load failed", f"{type(exc).__name__}: {exc}", tables)
        raise
    write_status(
        staged["run_id"],
        label,
        batch_id=staged["batch_id"],
        stage="loaded",
        rows=counts,
        errors=staged["errors"],
    )
    shutil.rmtree(staged["folder"], ignore_errors=True)
    log.info(
        "batch %s loaded in %.1f s: rows %s, of which replaced an earlier load's %s",
        staged["batch_id"],
        time.monotonic() - started,
        counts,
        replaced,
    )
    return {
        "batch_id": staged["batch_id"],
        "platform": staged["platform"],
        "batch_no": staged["batch_no"],
        "rows": counts,
        "errors": staged["errors"],
    }


# --- the run's record: what happened to every batch ------------------------------------------

#: a batch's outcome, from its status file
LOADED, NOT_RUN = "loaded", "not run"


def write_status(run_id: str, label: str, **fields: Any) -> None:
    """Record a batch's outcome now (``<run>/status/<label>.json``, replaced atomically)."""
    folder = run_dir(run_id) / "status"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{label}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"label": label, **fields}, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _statuses(run_id: str) -> dict[str, dict[str, Any]]:
    folder = run_dir(run_id) / "status"
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in found}


def record_run(run_id: str, warehouse: str | None = None) -> dict[str, Any]:
    """Every batch's outcome, and its accounts' errors and warnings into ``ops.fetch_errors``.

    Runs after every batch finished, whatever happened to it: a batch quarantined, or failed
    at its fetch or load, still has its fetch errors recorded, and one error per account it
    cost. Returns the run's summary for :func:`check_run`.
    """
    from socialpulse.warehouse import connect, record_fetch_errors

    plan = run_dir(run_id) / "plan" / "batches.json"
    if not plan.is_file():
        raise FetchFailed(
            f"run {run_id} has no plan ({plan}): plan_run did not succeed, nothing was fetched"
        )
    planned = json.loads(plan.read_text(encoding="utf-8"))
    statuses = _statuses(run_id)
    labels = {batch_label(b["platform"], b["batch_no"]) for bs in planned.values() for b in bs}
    batches = []
    with connect(warehouse) as con:
        for label in sorted(labels | set(statuses)):
            status = statuses.get(label, {"label": label, "stage": NOT_RUN})
            errors = list(status.get("errors") or [])
            if status["stage"] != LOADED:
                errors += _batch_errors(label, status)
            if status.get("batch_id"):
                record_fetch_errors(con, status["batch_id"], run_id, errors)
            batches.append({**status, "errors": errors})
    loaded = [b for b in batches if b["stage"] == LOADED]
    log.info(
        "run %s: %d of %d batches loaded; %s",
        run_id,
        len(loaded),
        len(batches),
        ", ".join(f"{b['label']} {b['stage']}" for b in batches) or "no batches",
    )
    return {"run_id": run_id, "batches": batches, "loaded": len(loaded), "rows": _sum_rows(loaded)}


def _batch_errors(label: str, status: dict[str, Any]) -> list[dict[str, Any]]:
    """One error per account a batch that did not load cost (the registry's batch: one)."""
    platform = label.rsplit("-b", 1)[0]
    problem = status.get("problem") or "the batch's task did not run (an upstream task failed)"
    accounts = status.get("accounts") or [{"company_id": "-", "handle": label}]
    return [
        {
            "platform": platform,
            "company_id": a["company_id"],
            "handle": a["handle"],
            "severity": "error",
            "error": f"batch {label} {status['stage']}: {problem}".splitlines()[0][:500],
        }
        for a in accounts
    ]


def check_run(summary: dict[str, Any]) -> dict[str, Any]:
    """Fail the run visibly, naming every failed account and batch (the rest is loaded)."""
    batches = summary["batches"]
    # an error or a configuration error (an expired token, a used-up quota) fails the run
    errors = [e for b in batches for e in b["errors"] if e.get("severity", ERROR) != WARNING]
    warnings = [e for b in batches for e in b["errors"] if e.get("severity") == WARNING]
    for w in warnings:
        log.warning("%s %s (%s): %s", w["platform"], w["handle"], w["company_id"], w["error"])
    failed = [b for b in batches if b["stage"] != LOADED]
    result = {
        "batches": len(batches),
        "loaded": summary["loaded"],
        "rows": summary["rows"],
        "fetch_errors": len(errors),
        "fetch_warnings": len(warnings),
    }
    if errors or failed:
        lines = [
            f"{len(failed)} of {len(batches)} batch(es) not loaded, "
            f"{len(errors)} account error(s); everything else was loaded:"
        ]
        lines += [
            f"  - batch {b['label']}: {b['stage']}"
            + (f" ({b['quarantine']})" if b.get("quarantine") else "")
            for b in failed
        ]
        lines += [
            f"  - {e['platform']} {e['handle']} ({e['company_id']}): "
            + ("configuration: " if e.get("severity") == CONFIGURATION else "")
            + e["error"]
            for e in errors
        ]
        raise FetchFailed("\n".join(lines))
    return result


def remove_stale_runs(keep: str, older_than: dt.timedelta = dt.timedelta(hours=13)) -> list[str]:
    """Remove the staging folders of runs that cannot be running any more.

    A run is given at most ``dagrun_timeout`` (12 h, ``socialpulse_ingest``): a folder in
    which nothing changed for longer belongs to a run that was killed or timed out.
    """
    root = settings().staging_dir
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than.total_seconds()
    removed = []
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name == safe_name(keep):
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if max(newest, folder.stat().st_mtime) < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info("removed the staging folders of %d stale run(s): %s", len(removed), removed)
    return removed


def raw_table_counts(warehouse: str | None = None) -> dict[str, int]:
    from socialpulse.warehouse import connect, table_counts

    with connect(warehouse) as con:
        return table_counts(con, "raw")


def _sum_rows(loaded: list[dict[str, Any]]) -> dict[str, int]:
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
    started = time.monotonic()
    with connect(warehouse) as con:
        rows = build(con, model)
    log.info(
        "built %s %s: %d rows in %.1f s", model.materialization, qualified, rows,
        time.monotonic() - started,
    )  # fmt: skip
    return rows


def cleanup_staging(run_id: str) -> None:
    shutil.rmtree(run_dir(run_id), ignore_errors=True)


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
            s.analytics, s.registry_reports_dir, period_type, quarantine_dir=s.quarantine_dir
        )
        out[period_type] = str(paths.html)
        log.info("report of the latest complete %s: %s", period_type, paths.html)
    return out
