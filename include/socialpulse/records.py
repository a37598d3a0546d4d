"""The raw record schemas: the one contract between connectors, validation and the warehouse.

Every raw table is declared once here. From each declaration come

* the Arrow schema the connectors' rows are converted to (:func:`to_arrow`),
* the Great Expectations suite that gates a batch (``socialpulse.validation``),
* the DuckDB DDL and the natural key used for idempotent loads (``socialpulse.warehouse``).

All timestamps are UTC. They are stored as naive ``TIMESTAMP`` values in UTC so that SQL
date arithmetic never depends on a session time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pyarrow as pa

PLATFORMS = ("sample", "mastodon", "bluesky", "rss", "facebook", "instagram", "youtube")
POST_KINDS = ("original", "reply", "repost")
PROBE_CHANNELS = ("public_post", "direct_message", "email", "web_form", "phone")
MANUAL_METRICS = ("findability", "image")
PERIOD_TYPES = ("week", "month")

#: Nothing a platform reports can predate this (the oldest networks we read started then).
EARLIEST_TIMESTAMP = dt.datetime(2004, 1, 1)
#: Follower counts above this are a broken payload, not a company (the largest accounts
#: on any network stay well below 10^9).
MAX_FOLLOWERS = 1_000_000_000


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type: VARCHAR, BIGINT, DOUBLE, BOOLEAN, TIMESTAMP, DATE
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    #: a connector may leave it out of its rows (null then): a column only some platforms
    #: have, added after the others (every other column must be in every row)
    optional: bool = False

    @property
    def is_timestamp(self) -> bool:
        return self.type in ("TIMESTAMP", "DATE")


@dataclass(frozen=True)
class RecordSchema:
    table: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    #: timestamp columns that must not lie in the future of the batch's observation time
    not_after_observed: tuple[str, ...] = field(default=())
    #: (column, earlier column): where both are known, the first must not lie before the second
    not_before: tuple[tuple[str, str], ...] = field(default=())
    #: columns whose known value survives a later observation that lacks it (an answer,
    #: once seen, stays seen even if the question is deleted afterwards)
    sticky: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def qualified(self) -> str:
        return f"raw.{self.table}"


def _ts(name: str, description: str, nullable: bool = False) -> Column:
    return Column(name, "TIMESTAMP", description, nullable=nullable)


def _count(name: str, description: str, nullable: bool = False, optional: bool = False) -> Column:
    return Column(name, "BIGINT", description, nullable=nullable, min_value=0, optional=optional)


_PLATFORM = Column("platform", "VARCHAR", "Platform the record comes from.", allowed=PLATFORMS)
_COMPANY = Column("company_id", "VARCHAR", "Registry id of the company the account belongs to.")
_ACCOUNT = Column("account_id", "VARCHAR", "The platform's stable id of the company account.")
_OBSERVED = _ts("observed_at", "When the fetch observed this state (UTC).")

ACCOUNT_SNAPSHOTS = RecordSchema(
    table="account_snapshots",
    description=(
        "One row per company account and successful fetch: the account's public counters "
        "(null where the platform has none, e.g. a feed) and how far back the fetch read."
    ),
    columns=(
        _PLATFORM,
        _COMPANY,
        _ACCOUNT,
        Column("handle", "VARCHAR", "The account's handle as configured in the registry."),
        _OBSERVED,
        Column(
            "followers",
            "BIGINT",
            "Followers at observed_at; null where the platform has none (a feed).",
            nullable=True,
            min_value=0,
            max_value=MAX_FOLLOWERS,
        ),
        _count("following", "Accounts this account follows at observed_at.", nullable=True),
        _count("posts_total", "Posts the platform reports for the account.", nullable=True),
        _ts(
            "posts_since",
            "This fetch read the account's posts created since this time (its window's start "
            "or end minus the lookback, whichever is earlier; later when a page limit stopped "
            "it); null when unknown (then the configured lookback is assumed).",
            nullable=True,
        ),
        _count(
            "fans",
            "Page likes (Facebook's fan_count) at observed_at where the platform still "
            "reports them (classic Facebook Pages); null elsewhere.",
            nullable=True,
            optional=True,
        ),
    ),
    key=("platform", "account_id", "observed_at"),
    not_after_observed=("posts_since",),
)

POST_OBSERVATIONS = RecordSchema(
    table="post_observations",
    description="One row per post of a company account and fetch: its counts at observed_at.",
    columns=(
        _PLATFORM,
        Column("post_id", "VARCHAR", "The platform's id of the post."),
        _ACCOUNT,
        _COMPANY,
        _ts("created_at", "When the post was published (UTC)."),
        Column("kind", "VARCHAR", "original, reply or repost.", allowed=POST_KINDS),
        _count(
            "likes",
            "Likes / favourites / reactions at observed_at; null where the platform hides "
            "them (an Instagram peer's hidden like count, a YouTube video's hidden likes).",
            nullable=True,
        ),
        _count("replies", "Replies at observed_at."),
        _count("reposts", "Reposts / boosts / shares at observed_at."),
        _count("quotes", "Quotes at observed_at (0 where the platform has none)."),
        _count("views", "Views at observed_at, where the platform reports them.", nullable=True),
        Column("url", "VARCHAR", "Public URL of the post.", nullable=True),
        _OBSERVED,
    ),
    key=("platform", "post_id", "observed_at"),
    not_after_observed=("created_at",),
)

THREAD_REPLIES = RecordSchema(
    table="thread_replies",
    description=(
        "One row per reply in a thread under a company post and fetch: who answered whom, when."
    ),
    columns=(
        _PLATFORM,
        Column("reply_id", "VARCHAR", "The platform's id of the reply."),
        Column("account_id", "VARCHAR", "Company account whose post the thread sits under."),
        _COMPANY,
        Column("root_post_id", "VARCHAR", "The company post the thread starts at."),
        Column("in_reply_to_id", "VARCHAR", "The post or reply this reply answers."),
        Column("author_id", "VARCHAR", "The platform's id of the reply's author."),
        Column(
            "author_is_company",
            "BOOLEAN",
            "True when the author is one of the company's own accounts.",
        ),
        _ts("created_at", "When the reply was published (UTC)."),
        _OBSERVED,
    ),
    key=("platform", "reply_id", "observed_at"),
    not_after_observed=("created_at",),
)

PROBES = RecordSchema(
    table="probes",
    description=("The field study: one row per inquiry sent to a company, and what came back."),
    columns=(
        Column("probe_id", "VARCHAR", "Unique id of the inquiry."),
        _COMPANY,
        Column(
            "platform",
            "VARCHAR",
            "Platform the inquiry was sent on; null for e-mail, phone and web forms.",
            nullable=True,
            allowed=PLATFORMS,
        ),
        Column("channel", "VARCHAR", "How the inquiry was sent.", allowed=PROBE_CHANNELS),
        _ts("sent_at", "When the inquiry was sent (UTC)."),
        Column("question_ref", "VARCHAR", "Reference to the question (URL or id).", nullable=True),
        _ts("answered_at", "When the first answer came (UTC); null if none yet.", nullable=True),
        Column("answer_ref", "VARCHAR", "Reference to the answer.", nullable=True),
        Column(
            "quality",
            "BIGINT",
            "Quality of the answer, 1 (useless) to 5 (excellent).",
            nullable=True,
            min_value=1,
            max_value=5,
        ),
        _OBSERVED,
    ),
    key=("probe_id",),
    not_after_observed=("sent_at", "answered_at"),
    not_before=(("answered_at", "sent_at"),),
    sticky=("answered_at", "answer_ref", "quality"),
)

MANUAL_METRIC_VALUES = RecordSchema(
    table="manual_metrics",
    description="Values measured by hand (survey, search checks) per company, metric and period.",
    columns=(
        _COMPANY,
        Column("metric", "VARCHAR", "findability or image.", allowed=MANUAL_METRICS),
        Column("period_type", "VARCHAR", "week (ISO week) or month.", allowed=PERIOD_TYPES),
        Column("period_start", "DATE", "First day of the ISO week or month measured."),
        Column("value", "DOUBLE", "Value 0-100.", min_value=0, max_value=100),
        _OBSERVED,
    ),
    key=("company_id", "metric", "period_type", "period_start"),
)

RAW_SCHEMAS: dict[str, RecordSchema] = {
    s.table: s
    for s in (ACCOUNT_SNAPSHOTS, POST_OBSERVATIONS, THREAD_REPLIES, PROBES, MANUAL_METRIC_VALUES)
}

_ARROW_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "BOOLEAN": "bool_",
    "TIMESTAMP": "timestamp_us",
    "DATE": "date32",
}


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type of a DuckDB column type used in the raw and reference tables."""
    import pyarrow as pa

    name = _ARROW_TYPES[sql_type]
    return pa.timestamp("us") if name == "timestamp_us" else getattr(pa, name)()


def arrow_schema(schema: RecordSchema) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in schema.columns]
    )


def utc_naive(value: Any) -> Any:
    """A datetime in UTC without tzinfo (naive input is taken to be UTC already)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def to_arrow(schema: RecordSchema, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) -> an Arrow table with exactly the schema's columns, in order.

    A row missing a column, or carrying one the schema does not know, raises ``ValueError``
    naming the table, the row number and the column: a connector bug, caught before
    validation.
    """
    import pyarrow as pa

    names = schema.names
    known = set(names)
    optional = {c.name for c in schema.columns if c.optional}
    stamps = {c.name for c in schema.columns if c.is_timestamp}
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, row in enumerate(rows):
        if len(row) != len(names) or row.keys() != known:
            extra = sorted(set(row) - known)
            if extra:
                raise ValueError(f"{schema.table} row {i}: unknown column(s) {extra}")
            missing = [n for n in names if n not in row and n not in optional]
            if missing:
                raise ValueError(f"{schema.table} row {i}: missing column {missing[0]!r}")
        for n in names:
            columns[n].append(row.get(n))
    for n in stamps:
        columns[n] = [utc_naive(v) for v in columns[n]]
    return pa.Table.from_pydict(columns, schema=_lenient(arrow_schema(schema)))


def _lenient(schema: pa.Schema) -> pa.Schema:
    """Same types, every field nullable: nulls in required columns are the GX suite's job."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])
