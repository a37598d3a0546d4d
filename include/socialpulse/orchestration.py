"""What the DAG files share: assets (one per warehouse table, declared once) and defaults.

Imported at DAG parse time: keep it light (no pandas, duckdb, GX, requests, no I/O).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

if TYPE_CHECKING:
    from collections.abc import Iterator

from socialpulse.notify import task_failed
from socialpulse.records import RAW_SCHEMAS

OWNER = "socialpulse"

#: one Asset per raw table; the ingestion DAG updates them, the models DAG is scheduled on them
RAW_ASSETS: dict[str, Asset] = {
    table: Asset(
        name=f"raw.{table}",
        uri=f"socialpulse://warehouse/raw/{table}",
        group="socialpulse-raw",
        extra={"description": schema.description},
    )
    for table, schema in RAW_SCHEMAS.items()
}


#: the read-only copy analysts query, published after every successful models build
ANALYTICS_ASSET = Asset(
    name="analytics_copy",
    uri="socialpulse://warehouse/analytics",
    group="socialpulse-marts",
)


def mart_asset(name: str) -> Asset:
    return Asset(
        name=f"marts.{name}", uri=f"socialpulse://warehouse/marts/{name}", group="socialpulse-marts"
    )


def _retry_delay() -> dt.timedelta:
    """``SOCIALPULSE_RETRY_DELAY_SECONDS`` (default 120): read from the environment, no I/O."""
    from socialpulse.config import settings

    return dt.timedelta(seconds=settings().retry_delay_seconds)


DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": _retry_delay(),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=30),
    # an alert (e-mail, Slack: socialpulse.notify) naming the DAG, task, error and run
    "on_failure_callback": task_failed,
}

#: when the DAGs' schedules begin; catchup is off, so this only bounds manual backfills
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@contextlib.contextmanager
def fail_fast() -> Iterator[None]:
    """Errors that a retry cannot mend fail the task at once (``AirflowFailException``).

    A malformed registry, a batch rejected by its suite, accounts that could not be fetched
    (their platform already retried), a warehouse of another schema version, a broken SQL
    model, a platform without a connector, a full or read-only disk and a missing write
    permission (:func:`permanent_cause`). Network errors, timeouts and file locks stay
    ordinary exceptions and are retried.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from socialpulse.models import ModelBuildError, ModelError
    from socialpulse.pipeline import FetchFailed
    from socialpulse.platforms import UnknownPlatform
    from socialpulse.registry import RegistryError
    from socialpulse.validation import BatchRejected
    from socialpulse.warehouse import WarehouseSchemaError

    permanent = (
        RegistryError,
        BatchRejected,
        FetchFailed,
        WarehouseSchemaError,
        ModelError,
        ModelBuildError,
        UnknownPlatform,
    )
    try:
        yield
    except permanent as exc:
        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        cause = permanent_cause(exc)
        if cause is None:
            raise
        raise AirflowFailException(f"{cause}: {exc}") from exc


#: OS errors that a retry minutes later cannot mend: the disk is full or read-only, or we
#: may not write there (a person has to act)
_PERMANENT_ERRNOS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
#: the same causes as DuckDB reports them (its IOException carries the OS message)
_PERMANENT_MESSAGES = {
    "no space left on device": "no space left on the disk",
    "disk quota exceeded": "disk quota exceeded",
    "read-only file system": "the file system is read-only",
    "permission denied": "permission denied",
}


def permanent_cause(exc: BaseException) -> str | None:
    """Why ``exc`` (or an exception it was raised from) cannot be mended by a retry, or None.

    A full or read-only disk and a missing permission fail the task at once, with the cause
    in the message, instead of being retried for many minutes.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _PERMANENT_ERRNOS:
            return _PERMANENT_ERRNOS[current.errno]
        text = str(current).lower()
        if "duckdb" in type(current).__module__:  # duckdb's errors live in _duckdb
            for needle, cause in _PERMANENT_MESSAGES.items():
                if needle in text:
                    return cause
        current = current.__cause__ or current.__context__
    return None


def platform_connection(platform: str) -> dict[str, Any] | None:
    """The Airflow connection ``<platform>_default`` as a plain dict, or None when undefined.

    Connections come from the metadata DB, a secrets backend or ``AIRFLOW_CONN_<ID>``
    environment variables (JSON), never from the registry or git.
    """
    return airflow_connection(f"{platform}_default")


def airflow_connection(conn_id: str) -> dict[str, Any] | None:
    """The Airflow connection ``conn_id`` as a plain dict, or None when undefined.

    Looked up in the task (a connector asks for the connection an account's options name,
    e.g. one Page token per company); Airflow masks its password in the task's logs.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return {
        "conn_id": conn.conn_id,
        "host": conn.host,
        "schema": conn.schema,
        "port": conn.port,
        "login": conn.login,
        "password": conn.password,
        "extra": conn.extra_dejson,
    }
