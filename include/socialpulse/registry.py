"""The company registry: a YAML file of companies, their goals, targets and accounts.

A malformed file fails before any fetch with :class:`RegistryError`, whose message names
the file, the company and the field. See ``include/companies/sample.yaml`` for the format.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from socialpulse.platforms import IMPLEMENTATIONS
from socialpulse.records import (
    EARLIEST_TIMESTAMP,
    MANUAL_METRICS,
    PERIOD_TYPES,
    PLATFORMS,
    PROBE_CHANNELS,
    arrow_type,
    utc_naive,
)

if TYPE_CHECKING:
    import pyarrow as pa

SEGMENTS = ("craft", "corporation")
DIMENSIONS = (
    "reach",
    "growth",
    "engagement",
    "liveliness",
    "sympathy",
    "relationships",
    "efficiency",
    "findability",
    "image",
)
#: Dimensions weighted 1 for a company that states no goals (METRICS.md).
DEFAULT_DIMENSIONS = DIMENSIONS[:7]
METRICS = (
    "followers",
    "follower_growth_weekly",
    "posts_per_week",
    "engagement_rate",
    "likes_per_1k",
    "service_level",
    "response_hours_median",
    "unique_interactors",
    "repeat_interactor_share",
    "interactions_per_effort_hour",
    "probe_answer_rate",
    "probe_response_hours_median",
    "findability",
    "image",
)
TARGET_OPS = (">=", "<=", ">", "<")
#: a week has 168 hours: a company spends at most this many per employee
HOURS_PER_WEEK = 168
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# a Mastodon profile URL, https://host/@user (the connector also takes @user@host, user@host)
_MASTODON_PROFILE = re.compile(r"^https?://(?P<host>[^/@\s]+)/@(?P<user>[^/@\s]+)/?$")


class RegistryError(ValueError):
    """The companies file (or a file it names) is malformed. The message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Account(_Strict):
    #: a platform with a connector (socialpulse.platforms.IMPLEMENTATIONS)
    platform: str
    handle: str
    #: platform-specific options (e.g. a feed URL for RSS); passed to the connector as is
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("platform")
    @classmethod
    def _has_connector(cls, v: str) -> str:
        if v not in IMPLEMENTATIONS:
            raise ValueError(
                f"no connector for platform {v!r} yet; available: {sorted(IMPLEMENTATIONS)}"
            )
        return v

    @field_validator("handle")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip().removeprefix("@").strip():
            raise ValueError("empty handle")
        return v

    def identity(self) -> tuple[str, str]:
        """(field, key): the account as its platform identifies it; equal keys, one account.

        Case-insensitive, without blanks around and a leading '@'. A Mastodon profile URL
        https://host/@user is user@host; a feed is its URL (``options.feed_url``, else the
        handle) without scheme, fragment and trailing '/'.
        """
        if self.platform == "rss":
            field = "options.feed_url" if self.options.get("feed_url") else "handle"
            parts = urlsplit(str(self.options.get("feed_url") or self.handle).strip().casefold())
            if parts.netloc:
                path = parts.path.rstrip("/")
                return field, parts.netloc + path + (f"?{parts.query}" if parts.query else "")
            return field, parts.path
        key = self.handle.strip().removeprefix("@").strip().casefold()
        m = _MASTODON_PROFILE.match(key) if self.platform == "mastodon" else None
        return "handle", f"{m['user']}@{m['host']}" if m else key


class Target(_Strict):
    metric: Literal[METRICS]  # type: ignore[valid-type]
    op: Literal[TARGET_OPS]  # type: ignore[valid-type]
    value: Annotated[float, Field(allow_inf_nan=False)]


class Company(_Strict):
    id: str
    name: Annotated[str, Field(min_length=1)]
    segment: Literal[SEGMENTS]  # type: ignore[valid-type]
    employees: Annotated[int, Field(ge=1)]
    #: hours per week the company spends on social media, all staff together
    effort_hours_per_week: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    #: weights per dimension: finite and >= 0; {} (or none) means the defaults (METRICS.md)
    goals: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    targets: list[Target] = Field(default_factory=list)
    accounts: Annotated[list[Account], Field(min_length=1)]

    @field_validator("id")
    @classmethod
    def _id_format(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be lowercase letters, digits, '-', '_' or '.'")
        return v

    @field_validator("effort_hours_per_week")
    @classmethod
    def _effort_within_a_week(cls, v: float | None, info: ValidationInfo) -> float | None:
        employees = info.data.get("employees")
        if v is not None and employees is not None and v > employees * HOURS_PER_WEEK:
            raise ValueError(
                f"more hours than {employees} employee(s) have in a week "
                f"({employees} x {HOURS_PER_WEEK} = {employees * HOURS_PER_WEEK})"
            )
        return v

    @field_validator("goals")
    @classmethod
    def _known_dimensions(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}; known: {list(DIMENSIONS)}")
        if v and not any(w > 0 for w in v.values()):
            raise ValueError("at least one goal needs a weight above 0")
        return v

    @model_validator(mode="after")
    def _one_account_per_platform(self) -> Company:
        seen: set[str] = set()
        for a in self.accounts:
            if a.platform in seen:
                raise ValueError(f"accounts: two accounts on {a.platform}; one per platform")
            seen.add(a.platform)
        return self

    def weights(self) -> dict[str, float]:
        """Weight per dimension, as METRICS.md defines it (defaults when no goals)."""
        if not self.goals:
            return {d: (1.0 if d in DEFAULT_DIMENSIONS else 0.0) for d in DIMENSIONS}
        return {d: float(self.goals.get(d, 0.0)) for d in DIMENSIONS}


class Probe(_Strict):
    probe_id: Annotated[str, Field(min_length=1)]
    company_id: str
    platform: Literal[PLATFORMS] | None = None  # type: ignore[valid-type]
    channel: Literal[PROBE_CHANNELS]  # type: ignore[valid-type]
    sent_at: dt.datetime
    question_ref: str | None = None
    answered_at: dt.datetime | None = None
    answer_ref: str | None = None
    quality: Annotated[int, Field(ge=1, le=5)] | None = None

    @field_validator("sent_at", "answered_at")
    @classmethod
    def _between_2004_and_now(cls, v: dt.datetime | None, info: ValidationInfo) -> Any:
        # not even minutes ahead: the batch observes the file after this check, and
        # validation wants sent_at and answered_at at or before observed_at
        if v is None:
            return v
        at, now = utc_naive(v), _now(info)
        if at > now:
            raise ValueError(
                f"{at:%Y-%m-%d %H:%M:%S} UTC lies in the future (now {now:%Y-%m-%d %H:%M:%S} UTC)"
            )
        if at < EARLIEST_TIMESTAMP:
            raise ValueError(
                f"{at:%Y-%m-%d %H:%M:%S} UTC lies before {EARLIEST_TIMESTAMP:%Y-%m-%d}"
            )
        return v

    @model_validator(mode="after")
    def _order(self) -> Probe:
        if self.answered_at is not None and utc_naive(self.answered_at) < utc_naive(self.sent_at):
            raise ValueError("answered_at lies before sent_at")
        return self


class ManualMetric(_Strict):
    company_id: str
    metric: Literal[MANUAL_METRICS]  # type: ignore[valid-type]
    period_type: Literal[PERIOD_TYPES]  # type: ignore[valid-type]
    period_start: dt.date
    value: Annotated[float, Field(ge=0, le=100)]

    @field_validator("period_start")
    @classmethod
    def _period_start_begins_the_period(cls, v: dt.date, info: ValidationInfo) -> dt.date:
        period_type = info.data.get("period_type")
        if period_type == "week" and v.weekday() != 0:
            raise ValueError(f"a week starts on a Monday; {v} is a {v:%A}")
        if period_type == "month" and v.day != 1:
            raise ValueError(f"a month starts on the first day of the month; {v} is not")
        today = _now(info).date()
        if v > today:
            raise ValueError(f"{v} lies after today ({today}, UTC)")
        return v


def _now(info: ValidationInfo) -> dt.datetime:
    """The clock of a validation (``context={"now": ...}``, else the real one), naive UTC."""
    now = (info.context or {}).get("now") or dt.datetime.now(dt.UTC)
    return utc_naive(now)


class Registry(_Strict):
    path: Path
    companies: tuple[Company, ...]
    probes: tuple[Probe, ...] = ()
    manual_metrics: tuple[ManualMetric, ...] = ()

    def accounts(self, platform: str | None = None) -> list[tuple[Company, Account]]:
        return [
            (c, a)
            for c in self.companies
            for a in c.accounts
            if platform is None or a.platform == platform
        ]

    def platforms(self) -> list[str]:
        return sorted({a.platform for c in self.companies for a in c.accounts})


def load_registry(path: str | Path, now: dt.datetime | None = None) -> Registry:
    """Parse and check a companies file. Raises :class:`RegistryError` naming file/company/field.

    ``now`` (default: the real time; naive means UTC) is the clock probes and manual metrics
    are checked against: nothing sent or answered after it, no period starting after its day.
    """
    path = Path(path)
    context = {"now": utc_naive(now or dt.datetime.now(dt.UTC))}
    doc = _read_yaml(path)
    companies: list[Company] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(doc["companies"]):
        company = _company(path, i, raw)
        if company.id in seen:
            raise RegistryError(
                f"{path}: company {company.id!r}: field 'id': duplicate id "
                f"(also company #{seen[company.id] + 1})"
            )
        seen[company.id] = i
        companies.append(company)
    _check_accounts_unique(path, companies)

    probes: list[Probe] = []
    if doc.get("probes_file"):
        probes_path = path.parent / str(doc["probes_file"])
        probes = _load_csv(probes_path, Probe, "probe_id", seen, context)
    manual: list[ManualMetric] = []
    if doc.get("manual_metrics_file"):
        manual_path = path.parent / str(doc["manual_metrics_file"])
        manual = _load_csv(manual_path, ManualMetric, None, seen, context)
        keys = [(m.company_id, m.metric, m.period_type, m.period_start) for m in manual]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise RegistryError(f"{manual_path}: duplicate entry {dup}")
    return Registry(
        path=path, companies=tuple(companies), probes=tuple(probes), manual_metrics=tuple(manual)
    )


def _check_accounts_unique(path: Path, companies: list[Company]) -> None:
    """One account belongs to one company: its rows would collide on the platform's ids."""
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for c in companies:
        for i, a in enumerate(c.accounts):
            field, key = a.identity()
            shown = str(a.options["feed_url"]) if field == "options.feed_url" else a.handle
            owner = owners.setdefault((a.platform, key), (c.id, shown))
            if owner[0] != c.id:
                raise RegistryError(
                    f"{path}: company {c.id!r}: field 'accounts.{i}.{field}': {a.platform} "
                    f"account {shown!r} is also listed under company {owner[0]!r} "
                    f"(as {owner[1]!r}); an account belongs to one company"
                )


def _read_text(path: Path, what: str) -> str:
    """The file as text: UTF-8 (a byte order mark is dropped); errors name the byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RegistryError(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            f"(line {line}); save the file as UTF-8"
        ) from exc
    return text.removeprefix("\ufeff")


def _read_yaml(path: Path) -> dict[str, Any]:
    text = _read_text(path, "companies file")
    try:
        # libyaml's safe loader where PyYAML was built with it: 3x faster on a large registry
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RegistryError(f"{path}:{where} not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("companies"), list):
        raise RegistryError(f"{path}: expected a mapping with a 'companies' list at the top")
    unknown = sorted(set(doc) - {"companies", "probes_file", "manual_metrics_file"})
    if unknown:
        raise RegistryError(f"{path}: unknown top-level key(s) {unknown}")
    if not doc["companies"]:
        raise RegistryError(f"{path}: 'companies' is empty")
    return doc


def _company(path: Path, index: int, raw: Any) -> Company:
    if not isinstance(raw, dict):
        raise RegistryError(
            f"{path}: company #{index + 1}: expected a mapping, got {type(raw).__name__}"
        )
    label = f"company {raw['id']!r}" if raw.get("id") else f"company #{index + 1}"
    try:
        return Company.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(company)"
        got = first.get("input")
        shown = f" (got {got!r})" if "input" in first and not isinstance(got, dict) else ""
        raise RegistryError(f"{path}: {label}: field {field!r}: {first['msg']}{shown}") from exc


def _load_csv(
    path: Path,
    model: type[BaseModel],
    id_field: str | None,
    company_ids: dict[str, int],
    context: dict[str, Any],
) -> list[Any]:
    """A CSV beside the companies file, one record per row. Errors name file, row and field."""
    reader = csv.DictReader(io.StringIO(_read_text(path, "file"), newline=""))
    _check_header(path, model, reader)
    out: list[Any] = []
    ids: set[str] = set()
    for rowno, row in enumerate(reader, start=2):
        extra = [v for v in row.pop(None, None) or () if v.strip()]
        clean = {k.strip(): (v.strip() or None) for k, v in row.items() if v is not None}
        label = f"row {rowno}" + (f" ({id_field} {clean.get(id_field)!r})" if id_field else "")
        if extra:
            raise RegistryError(
                f"{path}: {label}: {len(extra)} value(s) beyond the header's "
                f"{len(reader.fieldnames or ())} columns: {extra}"
            )
        try:
            item = model.model_validate(clean, context=context)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(row)"
            raise RegistryError(f"{path}: {label}: field {field!r}: {first['msg']}") from exc
        if item.company_id not in company_ids:
            raise RegistryError(
                f"{path}: {label}: field 'company_id': unknown company {item.company_id!r}"
            )
        if id_field is not None:
            key = getattr(item, id_field)
            if key in ids:
                raise RegistryError(f"{path}: {label}: field {id_field!r}: duplicate {key!r}")
            ids.add(key)
        out.append(item)
    return out


def _check_header(path: Path, model: type[BaseModel], reader: csv.DictReader[str]) -> None:
    """The first line names the model's columns: each once, none it does not know."""
    known = list(model.model_fields)
    names = [n.strip() for n in reader.fieldnames or ()]
    if not any(names):
        raise RegistryError(f"{path}: no header row (the file is empty); expected {known}")
    if not set(names) & set(known):
        first = ",".join(reader.fieldnames or ())
        raise RegistryError(
            f"{path}: no header row: the first line {first!r} names none of the columns {known}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RegistryError(f"{path}: column(s) {twice} twice in the header")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RegistryError(f"{path}: unknown column(s) {unknown} in the header; known: {known}")
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    missing = [n for n in required if n not in names]
    if missing:
        raise RegistryError(f"{path}: missing column(s) {missing} in the header")


# --- the registry as reference tables in the warehouse --------------------------------------

REF_TABLES: dict[str, dict[str, str]] = {
    "companies": {
        "company_id": "VARCHAR",
        "name": "VARCHAR",
        "segment": "VARCHAR",
        "employees": "BIGINT",
        "effort_hours_per_week": "DOUBLE",
        "has_goals": "BOOLEAN",
    },
    "accounts": {"company_id": "VARCHAR", "platform": "VARCHAR", "handle": "VARCHAR"},
    "company_weights": {"company_id": "VARCHAR", "dimension": "VARCHAR", "weight": "DOUBLE"},
    "company_targets": {
        "company_id": "VARCHAR",
        "metric": "VARCHAR",
        "op": "VARCHAR",
        "target": "DOUBLE",
    },
    # the pipeline settings the models need (one row): the lookback L of METRICS.md rule 8
    # and the thresholds of marts.alerts
    "settings": {
        "lookback_days": "BIGINT",
        "alert_liveliness_drop": "DOUBLE",
        "alert_service_level_drop": "DOUBLE",
    },
}


def reference_tables(registry: Registry, lookback_days: int | None = None) -> dict[str, pa.Table]:
    """The registry as Arrow tables for the warehouse's ``ref`` schema (replaced on each run).

    ``lookback_days``: the fetch lookback (default ``SOCIALPULSE_LOOKBACK_DAYS``), kept in
    ``ref.settings`` for the models (METRICS.md rule 8), with the alert thresholds
    (``SOCIALPULSE_ALERT_LIVELINESS_DROP``, ``SOCIALPULSE_ALERT_SERVICE_LEVEL_DROP``).
    """
    import pyarrow as pa

    from socialpulse.config import settings

    s = settings()
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in REF_TABLES}
    rows["settings"].append(
        {
            "lookback_days": lookback_days or s.lookback_days,
            "alert_liveliness_drop": s.alert_liveliness_drop,
            "alert_service_level_drop": s.alert_service_level_drop,
        }
    )
    for c in registry.companies:
        rows["companies"].append(
            {
                "company_id": c.id,
                "name": c.name,
                "segment": c.segment,
                "employees": c.employees,
                "effort_hours_per_week": c.effort_hours_per_week,
                "has_goals": bool(c.goals),
            }
        )
        for a in c.accounts:
            rows["accounts"].append(
                {"company_id": c.id, "platform": a.platform, "handle": a.handle}
            )
        for d, w in c.weights().items():
            rows["company_weights"].append({"company_id": c.id, "dimension": d, "weight": w})
        for t in c.targets:
            rows["company_targets"].append(
                {"company_id": c.id, "metric": t.metric, "op": t.op, "target": t.value}
            )
    out = {}
    for table, cols in REF_TABLES.items():
        schema = pa.schema([(n, arrow_type(t)) for n, t in cols.items()])
        out[table] = pa.Table.from_pylist(rows[table], schema=schema)
    return out
