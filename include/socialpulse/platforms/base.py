"""The one interface every platform implements (the sample platform is one of them).

A platform turns a batch of registry accounts and a fetch window into normalised raw rows
(``socialpulse.records``) plus per-account errors. It never raises for one bad account:
the error is recorded and the other accounts go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from socialpulse.records import RAW_SCHEMAS, to_arrow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    import pyarrow as pa

    from socialpulse.http import HttpClient, HttpPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountRef:
    """What a platform needs to know of one registry account (small: travels through XCom).

    ``probes`` are the field-study inquiries sent to this account as public posts on this
    platform (registry rows as dicts, times as ISO strings). A platform that can read
    threads (:data:`socialpulse.platforms.RESOLVES_PROBES`) looks for the company's first
    reply to each and emits them as ``probes`` rows (see :func:`probe_row`).
    """

    company_id: str
    handle: str
    options: dict[str, Any] = field(default_factory=dict)
    probes: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "handle": self.handle,
            "options": dict(self.options),
            "probes": [dict(p) for p in self.probes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccountRef:
        return cls(
            d["company_id"],
            d["handle"],
            dict(d.get("options") or {}),
            tuple(dict(p) for p in d.get("probes") or ()),
        )


@dataclass(frozen=True)
class PlatformContext:
    """What the pipeline hands every connector besides the accounts.

    ``connection``: the Airflow connection ``<platform>_default`` as a dict (host, schema,
    login, password, port, extra), or None. ``state_dir``: a folder the connector may keep
    state in between runs (e.g. ETags for conditional GETs).
    """

    connection: dict[str, Any] | None = None
    state_dir: Path | None = None
    #: the HTTP client to use (tests inject one whose sleeps are recorded); None: a new one
    http: HttpClient | None = None
    #: the limits of a new client (deadline, size cap, account budget); None: the defaults
    policy: HttpPolicy | None = None
    #: the observation clock (tests fix it); None: the real UTC time
    clock: Callable[[], dt.datetime] | None = None
    #: looks up another Airflow connection by id (a per-account token named in the
    #: account's options, e.g. ``{connection: facebook_baeckerei_nord}``); None: none known
    connections: Callable[[str], dict[str, Any] | None] | None = None

    def client(self) -> HttpClient:
        from socialpulse.http import HttpClient

        return self.http or HttpClient(policy=self.policy)

    def named_connection(self, conn_id: str) -> dict[str, Any]:
        """The Airflow connection ``conn_id`` as a dict; :class:`ConnectionMissing` if undefined."""
        found = self.connections(conn_id) if self.connections else None
        if found is None:
            raise ConnectionMissing(
                f"Airflow connection {conn_id!r} (named in the account's options) is not "
                "defined: add it in the Airflow UI (Admin > Connections), as "
                f"AIRFLOW_CONN_{conn_id.upper()} or in the secrets backend"
            )
        return found

    def now(self) -> dt.datetime:
        """The observation time, timezone-aware (a naive test clock is taken as UTC)."""
        now = self.clock() if self.clock else dt.datetime.now(dt.UTC)
        return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


class ConnectionMissing(ValueError):
    """An Airflow connection named by the registry is not defined (a configuration error)."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (token, API key) replaced by ``***``.

    Connectors send credentials in headers, never in URLs, and strip them from the links
    an API returns; this is the last guard for messages that quote a server's words.
    Secrets shorter than 6 characters are left alone (they would mask ordinary words).
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class FetchWindow:
    """What one fetch covers, in UTC.

    ``start``/``end`` are the run's data interval (``start`` moved back for a backfill).
    Posts created since :attr:`since` (the window's start or ``end - lookback``, whichever
    is earlier) are (re-)observed, so that their counts keep growing and a backfill reads
    the whole window.
    """

    start: dt.datetime
    end: dt.datetime
    lookback: dt.timedelta = dt.timedelta(days=35)

    @property
    def since(self) -> dt.datetime:
        """Posts created at or after this are read: ``min(start, end - lookback)``."""
        return min(self.start, self.end - self.lookback)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if v.tzinfo is None:
                object.__setattr__(self, name, v.replace(tzinfo=dt.UTC))
        if self.end <= self.start:
            raise ValueError(f"fetch window end {self.end} is not after start {self.start}")


#: the severities of a :class:`FetchError` (``ops.fetch_errors.severity``)
ERROR, CONFIGURATION, WARNING = "error", "configuration", "warning"


@dataclass(frozen=True)
class FetchError:
    """One account's problem. In ``FetchResult.errors`` the severity is ``error`` (the
    account's data could not be read) or ``configuration`` (a person has to act: an expired
    token, a missing permission, a used-up quota; the message names the connection and what
    to do); in ``FetchResult.warnings`` it is ``warning``."""

    platform: str
    company_id: str
    handle: str
    error: str
    severity: str = ERROR


@dataclass
class FetchResult:
    """Rows per raw table, the accounts that could not be fetched (``errors``: they emit no
    rows and fail the run visibly) and problems that cost an account only a detail
    (``warnings``, e.g. a field-study question that was deleted: recorded, not failing)."""

    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in RAW_SCHEMAS}
    )
    errors: list[FetchError] = field(default_factory=list)
    warnings: list[FetchError] = field(default_factory=list)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)

    def extend(self, rows: Mapping[str, list[dict[str, Any]]]) -> None:
        """Add the rows of one account (rows per table)."""
        for table, table_rows in rows.items():
            self.rows[table].extend(table_rows)

    def count(self, table: str) -> int:
        return len(self.rows[table])

    def tables(self) -> dict[str, pa.Table]:
        """The rows as Arrow tables with the raw schemas, one per table that has rows."""
        return {t: to_arrow(RAW_SCHEMAS[t], rows) for t, rows in self.rows.items() if rows}

    def drop_duplicates(self) -> int:
        """Keep the first row per raw natural key (``RAW_SCHEMAS[table].key``) in each table.

        Rows come account by account, and two accounts may deliver the same key: one reply
        in the threads of two companies' posts, two registry accounts on one profile. A
        batch with a key twice cannot be loaded, so the later row is dropped and a warning
        logged naming both accounts (company and account id of the two rows; one line per
        table and pair of accounts, with the first key and the count). Connectors call this
        at the end of :meth:`Platform.fetch`. Returns the number of rows dropped.
        """
        dropped = 0
        for table, rows in self.rows.items():
            schema = RAW_SCHEMAS.get(table)
            if schema is None or len(rows) < 2:
                continue
            first: dict[tuple[Any, ...], dict[str, Any]] = {}
            kept: list[dict[str, Any]] = []
            # (later account, first account) -> (the first key dropped, rows dropped)
            pairs: dict[tuple[str, str], tuple[tuple[Any, ...], int]] = {}
            for row in rows:
                key = tuple(row.get(column) for column in schema.key)
                if key not in first:
                    first[key] = row
                    kept.append(row)
                    continue
                pair = (_owner(row), _owner(first[key]))
                example, n = pairs.get(pair, (key, 0))
                pairs[pair] = (example, n + 1)
            for (later, earlier), (key, n) in pairs.items():
                platform = first[key].get("platform") or "fetch"
                shown = ", ".join(f"{c}={v}" for c, v in zip(schema.key, key, strict=True))
                what = f"{table} {shown}" if n == 1 else f"{n} {table} rows (the first: {shown})"
                log.warning(
                    "%s: %s came for %s and already for %s; kept the first, dropped the second",
                    platform,
                    what,
                    later,
                    earlier,
                )
                dropped += n
            rows[:] = kept
        return dropped


def _owner(row: dict[str, Any]) -> str:
    """The account a row came for, as a log message names it: company (account id)."""
    account = row.get("account_id")
    company = row.get("company_id")
    return f"{company} ({account})" if account is not None else str(company)


class Platform(Protocol):
    """Constructed as ``Platform(context=PlatformContext(...))``."""

    name: ClassVar[str]

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult: ...


#: the warning a connector records when a thread holds fewer direct replies than the post
#: counts (the report and the socialpulse page read it back with :func:`thread_shortfall`)
_THREAD_SHORT = re.compile(
    r"^thread of post (?P<post_id>\S+): read (?P<read>\d+) of (?P<counted>\d+) direct replies"
)


def thread_short_warning(post_id: str, read: int, counted: int, why: str) -> str:
    """``thread of post <id>: read <read> of <counted> direct replies (<why>)``."""
    return f"thread of post {post_id}: read {read} of {counted} direct replies ({why})"


def thread_shortfall(message: str) -> tuple[str, int, int] | None:
    """(post id, replies read, replies counted) of a :func:`thread_short_warning`, else None."""
    m = _THREAD_SHORT.match(message or "")
    return (m["post_id"], int(m["read"]), int(m["counted"])) if m else None


def page_limit_warning(
    what: str, max_pages: int, since: dt.datetime, oldest: dt.datetime, items: str = "posts"
) -> str:
    """The warning of a fetch whose page limit stopped the paging before ``since``.

    ``<what>: page limit reached (max_pages <n>) before <since>: <items> before <oldest> not
    read; raise the account option max_pages`` (the rows read are kept; ``posts_since`` is
    ``oldest``).
    """
    return (
        f"{what}: page limit reached (max_pages {max_pages}) before {since:%Y-%m-%d %H:%M:%S} "
        f"UTC: {items} before {oldest:%Y-%m-%d %H:%M:%S} UTC not read; raise the account "
        "option max_pages"
    )


class Payload:
    """Checks of an API's JSON that raise the connector's own error (``error(message)``), so
    that a field missing or of the wrong type is the account's error, never a KeyError."""

    def __init__(self, error: Callable[[str], Exception]) -> None:
        self.error = error

    def obj(self, value: Any, what: str) -> dict[str, Any]:
        """``value`` as a JSON object."""
        if not isinstance(value, dict):
            raise self.error(f"{what} is not an object (got {type(value).__name__})")
        return value

    def ident(self, obj: dict[str, Any], key: str, what: str) -> str:
        """A non-empty id (a string or an integer) as a string."""
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise self.error(f"{what} has no {key!r} (got {value!r})")
        return str(value)

    def time(self, obj: dict[str, Any], key: str, what: str) -> dt.datetime:
        """A timestamp (:func:`parse_time`; ``2026-11-10T09:00:00+0000`` included)."""
        try:
            return parse_time(obj.get(key))
        except (TypeError, ValueError) as exc:
            raise self.error(f"{what} has no valid {key!r} ({exc})") from None

    def count(self, obj: dict[str, Any], key: str, what: str, required: bool) -> int | None:
        """A non-negative integer; a missing optional one is None."""
        value = obj.get(key)
        if value is None:
            if required:
                raise self.error(f"{what} has no {key!r}")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(f"{what} has {key!r} = {value!r}, not a count")
        return value


def public_post_probes(
    ref: AccountRef,
    platform: str,
    resolve: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str | None]],
    problems: list[str],
) -> list[dict[str, Any]]:
    """The ``probes`` rows of the account's field-study questions posted publicly here.

    ``resolve(probe)`` returns the probe's row (None: none this time, the last observation
    stays) and a problem (or None). Each problem, and a malformed registry probe
    (``KeyError``, ``TypeError``, ``ValueError``), is appended to ``problems`` as
    ``probe <id>: ...`` (a warning: it costs the account nothing else). Probes on another
    channel or platform are left to the registry's own batch.
    """
    rows: list[dict[str, Any]] = []
    for probe in ref.probes:
        if probe.get("channel") != "public_post" or probe.get("platform") not in (None, platform):
            continue  # not a public post here: the registry's own batch carries it
        try:
            row, problem = resolve(probe)
        except (KeyError, TypeError, ValueError) as exc:  # a malformed registry probe
            row, problem = None, f"{type(exc).__name__}: {exc}"
        if problem:
            problems.append(f"probe {probe.get('probe_id')}: {problem}")
        if row:
            rows.append(row)
    return rows


def parse_time(value: Any) -> dt.datetime:
    """An API timestamp (ISO 8601, 'Z' or offset, or epoch seconds) as an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, int | float):
        when = dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str) and value:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def probe_row(
    probe: dict[str, Any],
    observed_at: dt.datetime,
    answered_at: dt.datetime | None = None,
    answer_ref: str | None = None,
) -> dict[str, Any]:
    """A ``probes`` row for a registry probe, with the answer a connector found (if any).

    An answer recorded by hand in the registry wins over none found.
    """
    return {
        "probe_id": probe["probe_id"],
        "company_id": probe["company_id"],
        "platform": probe.get("platform"),
        "channel": probe["channel"],
        "sent_at": parse_time(probe["sent_at"]),
        "question_ref": probe.get("question_ref"),
        "answered_at": answered_at
        or (parse_time(probe["answered_at"]) if probe.get("answered_at") else None),
        "answer_ref": answer_ref or probe.get("answer_ref"),
        "quality": probe.get("quality"),
        "observed_at": observed_at,
    }
