"""Settings from the environment, with documented defaults (see README, "Configuration")."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_COMPANIES = PROJECT_ROOT / "include" / "companies" / "sample.yaml"
SQL_DIR = PROJECT_ROOT / "include" / "sql"

#: the Airflow pool every DuckDB writer task runs in (one slot: DuckDB allows one writer)
DUCKDB_POOL = "socialpulse_duckdb"
#: the fetch tasks of a rate-limited platform run in its own pool, so that mapped fetches in
#: parallel never overrun a budget the server counts per client IP (Mastodon: 300 requests
#: per 5 minutes, Bluesky's AppView: 3000); a platform not named here uses default_pool
FETCH_POOLS = {
    "mastodon": "socialpulse_mastodon",
    "bluesky": "socialpulse_bluesky",
    "rss": "socialpulse_rss",
    "facebook": "socialpulse_facebook",
    "instagram": "socialpulse_instagram",
    "youtube": "socialpulse_youtube",
}
#: every pool the DAGs use: name -> (slots, description); `make run` / `make airflow`
#: (socialpulse.cli bootstrap) and docker compose's init create them
POOLS = {
    DUCKDB_POOL: (1, "DuckDB allows one writer at a time"),
    "socialpulse_mastodon": (1, "Mastodon fetches: rate limits count per client IP"),
    "socialpulse_bluesky": (1, "Bluesky fetches: rate limits count per client IP"),
    "socialpulse_rss": (4, "RSS/Atom fetches: one host per feed, a few at a time"),
    "socialpulse_facebook": (
        1,
        "Facebook Pages fetches: Meta's rate limits count per app and page",
    ),
    "socialpulse_instagram": (1, "Instagram fetches: Meta's rate limits count per app and account"),
    "socialpulse_youtube": (1, "YouTube fetches: one daily quota per API key"),
}


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={value} must be at least {minimum}")
    return value


def _float(name: str, default: float, minimum: float = 0.0, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        bounds = (
            f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        )
        raise ValueError(f"environment variable {name}={raw} must be a number {bounds}")
    return value


#: a DuckDB memory size: a number and a unit, as ``SET memory_limit`` takes it
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)


def _memory(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not MEMORY_SIZE.fullmatch(raw):
        raise ValueError(
            f"environment variable {name}={raw!r} is not a memory size such as 1GB or 512MiB"
        )
    return raw


def safe_name(name: str) -> str:
    """``name`` as one file or folder name: anything but letters, digits, ``-_.`` becomes ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True)
class Settings:
    companies: Path
    warehouse: Path
    analytics: Path
    data_dir: Path
    lookback_days: int
    batch_size: int
    gx_retention_days: int
    #: the longest one HTTP request may take, connect + headers + body (a dripping server)
    http_deadline_seconds: int = 60
    #: the largest response body accepted (bytes)
    http_max_bytes: int = 8 * 1024 * 1024
    #: the time one account's fetch may take, retries and rate-limit waits included
    account_budget_seconds: int = 600
    #: alerts: recipients of the alert e-mails (comma-separated; or the extra "to" of the
    #: Airflow connection smtp_default)
    alert_email: str | None = None
    #: alerts: a liveliness score (0-100) falling by more than this many points against the
    #: previous period of the same type
    alert_liveliness_drop: float = 20.0
    #: alerts: a service level (share 0-1) falling by more than this against the previous period
    alert_service_level_drop: float = 0.2
    #: alerts: the daily ingest run must have succeeded this many hours after it was queued
    ingest_deadline_hours: float = 6.0
    #: the Airflow connection (type ``duckdb``) that says where the warehouse is: a DuckDB
    #: file, or DuckLake with a PostgreSQL catalog (socialpulse.warehouse.WarehouseTarget);
    #: None: the DuckDB file ``warehouse``
    warehouse_conn_id: str | None = None
    #: slots of the DuckDB writers' pool: 1 for a DuckDB file (one writer at a time); a
    #: DuckLake warehouse takes concurrent commits
    warehouse_writers: int = 1
    #: the delay before a failed task's first retry (then exponential, at most 30 minutes)
    retry_delay_seconds: int = 120
    #: DuckDB's memory limit per connection (each task's own process): beyond it DuckDB
    #: spills to its temp directory. The connection's extra ``memory_limit`` wins.
    duckdb_memory_limit: str = "1GB"

    @property
    def duckdb_temp_dir(self) -> Path:
        """Where a DuckDB connection without a file of its own (DuckLake) spills."""
        return self.data_dir / "duckdb_tmp"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def reports_dir(self) -> Path:
        """The published period reports of every registry:
        ``<registry>/<period_type>-<start>/report.html`` + exports."""
        return self.data_dir / "reports"

    @property
    def registry_key(self) -> str:
        """The registry's name in file paths: its file name without the suffix (``sample``)."""
        return safe_name(self.companies.stem)

    @property
    def registry_reports_dir(self) -> Path:
        """This registry's reports (another registry's runs never overwrite them)."""
        return self.reports_dir / self.registry_key

    @property
    def gx_docs_dir(self) -> Path:
        """The Great Expectations Data Docs site (``index.html``)."""
        return self.data_dir / "gx_docs"

    @property
    def gx_results_dir(self) -> Path:
        """The validation results behind the Data Docs (JSON, one file per suite and run)."""
        return self.data_dir / "gx" / "validations"


def pool_slots() -> dict[str, tuple[int, str]]:
    """:data:`POOLS` with the DuckDB writers' pool sized by ``SOCIALPULSE_WAREHOUSE_WRITERS``."""
    s = settings()
    if s.warehouse_writers > 1 and s.warehouse_conn_id is None:
        raise ValueError(
            f"SOCIALPULSE_WAREHOUSE_WRITERS={s.warehouse_writers}, but the warehouse is the "
            f"DuckDB file {s.warehouse}, which takes one writer at a time: set "
            "SOCIALPULSE_WAREHOUSE_CONN_ID to a DuckLake connection (docs/deploy.md) or use 1"
        )
    slots = dict(POOLS)
    if s.warehouse_writers > 1:
        slots[DUCKDB_POOL] = (
            s.warehouse_writers,
            "DuckLake warehouse: concurrent writers (SOCIALPULSE_WAREHOUSE_WRITERS)",
        )
    return slots


def settings() -> Settings:
    """Read the settings now (never at import: the environment may change in tests)."""
    data_dir = _path("SOCIALPULSE_DATA_DIR", PROJECT_ROOT / "data")
    return Settings(
        companies=_path("SOCIALPULSE_COMPANIES", SAMPLE_COMPANIES),
        warehouse=_path("SOCIALPULSE_WAREHOUSE", data_dir / "warehouse.duckdb"),
        analytics=_path("SOCIALPULSE_ANALYTICS", data_dir / "analytics.duckdb"),
        data_dir=data_dir,
        lookback_days=_int("SOCIALPULSE_LOOKBACK_DAYS", 35),
        batch_size=_int("SOCIALPULSE_BATCH_SIZE", 25),
        gx_retention_days=_int("SOCIALPULSE_GX_RETENTION_DAYS", 90),
        http_deadline_seconds=_int("SOCIALPULSE_HTTP_DEADLINE_SECONDS", 60),
        http_max_bytes=_int("SOCIALPULSE_HTTP_MAX_BYTES", 8 * 1024 * 1024, minimum=1024),
        account_budget_seconds=_int("SOCIALPULSE_ACCOUNT_BUDGET_SECONDS", 600),
        alert_email=os.environ.get("SOCIALPULSE_ALERT_EMAIL", "").strip() or None,
        alert_liveliness_drop=_float("SOCIALPULSE_ALERT_LIVELINESS_DROP", 20.0, maximum=100.0),
        alert_service_level_drop=_float("SOCIALPULSE_ALERT_SERVICE_LEVEL_DROP", 0.2, maximum=1.0),
        ingest_deadline_hours=_float("SOCIALPULSE_INGEST_DEADLINE_HOURS", 6.0, minimum=0.001),
        warehouse_conn_id=os.environ.get("SOCIALPULSE_WAREHOUSE_CONN_ID", "").strip() or None,
        warehouse_writers=_int("SOCIALPULSE_WAREHOUSE_WRITERS", 1),
        retry_delay_seconds=_int("SOCIALPULSE_RETRY_DELAY_SECONDS", 120),
        duckdb_memory_limit=_memory("SOCIALPULSE_DUCKDB_MEMORY_LIMIT", "1GB"),
    )
