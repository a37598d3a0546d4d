"""The one interface every platform implements (the sample platform is one of them).

A platform turns a batch of registry accounts and a fetch window into normalised raw rows
(``socialpulse.records``) plus per-account errors. It never raises for one bad account:
the error is recorded and the other accounts go on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from socialpulse.records import RAW_SCHEMAS


@dataclass(frozen=True)
class AccountRef:
    """What a platform needs to know of one registry account (small: travels through XCom)."""

    company_id: str
    handle: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"company_id": self.company_id, "handle": self.handle, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccountRef:
        return cls(d["company_id"], d["handle"], dict(d.get("options") or {}))


@dataclass(frozen=True)
class FetchWindow:
    """What one fetch covers, in UTC.

    ``start``/``end`` are the run's data interval. Posts created in
    ``[end - lookback, end)`` are (re-)observed so that their counts keep growing.
    """

    start: dt.datetime
    end: dt.datetime
    lookback: dt.timedelta = dt.timedelta(days=28)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if v.tzinfo is None:
                object.__setattr__(self, name, v.replace(tzinfo=dt.UTC))
        if self.end <= self.start:
            raise ValueError(f"fetch window end {self.end} is not after start {self.start}")


@dataclass(frozen=True)
class FetchError:
    platform: str
    company_id: str
    handle: str
    error: str


@dataclass
class FetchResult:
    """Rows per raw table, plus the accounts that could not be fetched."""

    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in RAW_SCHEMAS}
    )
    errors: list[FetchError] = field(default_factory=list)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)

    def count(self, table: str) -> int:
        return len(self.rows[table])


class Platform(Protocol):
    name: ClassVar[str]

    def fetch(self, accounts: list[AccountRef], window: FetchWindow) -> FetchResult: ...
