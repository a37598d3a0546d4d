"""Alerts: what socialpulse tells its operators, and which liveliness alerts are still to send.

Three alerts (README, "Alerts"), each sent through the Airflow notifiers of the configured
channels (e-mail via the SMTP provider, Slack via its webhook; see
:mod:`socialpulse.orchestration`, which does the sending):

* **a task failed**: every task's ``on_failure_callback`` (:func:`failure_message`);
* **the daily ingest has not succeeded in time**: the ``DeadlineAlert`` of
  ``socialpulse_ingest`` (:func:`deadline_message`);
* **liveliness dropped**: the rows of ``marts.alerts`` for the latest complete week and month,
  sent once per channel by the models DAG (:func:`send_new_alerts`; what was sent is kept in
  ``ops.alerts_sent``).

This module builds the messages and reads and writes the warehouse; it imports no Airflow.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import duckdb

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[socialpulse]"
#: the two drops marts.alerts flags (is_liveliness_alert, is_service_level_alert)
ALERT_KINDS = ("liveliness", "service_level")


@dataclass(frozen=True)
class Message:
    """One notification: a subject, lines of plain text and labelled links."""

    subject: str
    lines: tuple[str, ...]
    links: tuple[tuple[str, str], ...] = field(default=())

    def text(self) -> str:
        """The body as plain text (Slack, logs)."""
        return "\n".join([*self.lines, "", *(f"{label}: {url}" for label, url in self.links)])

    def html(self) -> str:
        """The body as HTML (e-mail): every line escaped, links as anchors."""
        body = "".join(
            f"<p style='margin:0 0 .4em;white-space:pre-wrap'>{html.escape(line, quote=False)}</p>"
            for line in self.lines
        )
        links = "".join(
            f"<p>{html.escape(label, quote=False)}: <a href='{html.escape(url, quote=True)}'>"
            f"{html.escape(url, quote=False)}</a></p>"
            for label, url in self.links
        )
        return f"<html><body style='font-family:sans-serif'>{body}{links}</body></html>"


def _when(value: Any) -> str:
    """A timestamp (datetime or ISO text) as ``YYYY-MM-DD HH:MM UTC``."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return "unknown" if value is None else str(value)


def _hours(hours: float) -> str:
    return f"{hours:g} h"


def failure_message(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    error: str,
    run_url: str,
    map_index: int = -1,
    map_label: str | None = None,
    try_number: int | None = None,
    task_url: str | None = None,
) -> Message:
    """A task failed for good (no retry left, or an error a retry cannot mend)."""
    task = task_id
    if map_index is not None and map_index >= 0:
        task += f" [{map_label}]" if map_label else f" [map index {map_index}]"
    lines = [
        f"Task {task} of DAG {dag_id} failed.",
        f"DAG: {dag_id}",
        f"Run: {run_id}",
        f"Task: {task_id}"
        + (
            f" (map index {map_index}" + (f", {map_label})" if map_label else ")")
            if map_index is not None and map_index >= 0
            else ""
        ),
    ]
    if try_number:
        lines.append(f"Try: {try_number}")
    lines += ["Error:", error]
    links = [("Run in the Airflow UI", run_url)]
    if task_url:
        links.append(("Task log", task_url))
    return Message(f"{SUBJECT_PREFIX} {dag_id}: {task} failed", tuple(lines), tuple(links))


def deadline_message(
    *,
    dag_id: str,
    run_id: str,
    deadline_time: Any,
    queued_at: Any,
    state: str | None,
    hours: float | None,
    run_url: str,
) -> Message:
    """The run had not succeeded by its deadline (``hours`` after it was queued)."""
    lines = [
        f"DAG {dag_id} has not succeeded by {_when(deadline_time)}"
        + (f" ({_hours(hours)} after it was queued)." if hours else "."),
        f"DAG: {dag_id}",
        f"Run: {run_id}",
        f"Queued at: {_when(queued_at)}",
        f"State now: {state or 'unknown'}",
        "A failed run has sent its own failure alert; a run still going is late, or stuck.",
    ]
    return Message(
        f"{SUBJECT_PREFIX} {dag_id}: run not succeeded by {_when(deadline_time)}",
        tuple(lines),
        (("Run in the Airflow UI", run_url),),
    )


def _score(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "none" if value is None else f"{value:.0%}"


def _alert_line(a: dict[str, Any]) -> str:
    period = f"{a['period_type']} {a['period_start']:%Y-%m-%d}"
    if a["alert"] == "liveliness":
        what = (
            f"liveliness score {_score(a['liveliness_score'])}"
            f" (was {_score(a['previous_liveliness_score'])},"
            f" -{a['liveliness_drop']:.1f} points)"
        )
    else:
        what = (
            f"service level {_share(a['service_level'])}"
            f" (was {_share(a['previous_service_level'])},"
            f" -{a['service_level_drop'] * 100:.0f} percentage points)"
        )
    return f"- {a['company_name']} ({a['company_id']}, {a['segment']}), {period}: {what}"


def liveliness_message(
    alerts: Sequence[dict[str, Any]],
    thresholds: dict[str, float],
    links: Iterable[tuple[str, str]] = (),
) -> Message:
    """One message listing ``alerts`` (rows of :func:`pending_alerts`)."""
    companies = sorted({a["company_id"] for a in alerts})
    periods = sorted({f"{a['period_type']} {a['period_start']:%Y-%m-%d}" for a in alerts})
    lines = [
        f"Liveliness dropped for {len(companies)} "
        f"compan{'y' if len(companies) == 1 else 'ies'} ({', '.join(periods)}), against the"
        " previous period of the same type (thresholds: liveliness score more than"
        f" {thresholds['liveliness']:g} points, service level more than"
        f" {thresholds['service_level'] * 100:g} percentage points):",
        *(_alert_line(a) for a in alerts),
    ]
    subject = (
        f"{SUBJECT_PREFIX} Liveliness dropped: {len(companies)} "
        f"compan{'y' if len(companies) == 1 else 'ies'} ({', '.join(periods)})"
    )
    return Message(subject, tuple(lines), tuple(links))


# --- the liveliness alerts still to send --------------------------------------------------


def latest_complete_periods(con: duckdb.DuckDBPyConnection) -> dict[str, dt.date]:
    """The start of the latest complete week and month in marts.success_index."""
    from socialpulse.warehouse import has_table

    if not has_table(con, "marts", "success_index"):
        return {}
    return {
        period_type: start
        for period_type, start in con.execute(
            "select period_type, max(period_start) from marts.success_index "
            "where is_complete group by period_type order by period_type"
        ).fetchall()
    }


def pending_alerts(con: duckdb.DuckDBPyConnection, channel: str) -> list[dict[str, Any]]:
    """The alerts of the latest complete week and month not yet sent on ``channel``.

    One dict per company, period and kind (``alert``: liveliness or service_level), with the
    columns of marts.alerts. Alerts of earlier periods are never sent late: a period that
    is no longer the latest has been reported (or was before alerts were configured).
    """
    from socialpulse.warehouse import dict_rows, has_table

    latest = latest_complete_periods(con)
    if not latest or not has_table(con, "marts", "alerts"):
        return []
    return dict_rows(
        con,
        """
        with kinds as (select unnest(['liveliness', 'service_level']) as alert)
        select a.*, kinds.alert
        from marts.alerts as a
        cross join kinds
        where ((kinds.alert = 'liveliness' and a.is_liveliness_alert)
               or (kinds.alert = 'service_level' and a.is_service_level_alert))
          and ((a.period_type = 'week' and a.period_start = ?)
               or (a.period_type = 'month' and a.period_start = ?))
          and not exists (
            select 1 from ops.alerts_sent as s
            where s.company_id = a.company_id and s.period_type = a.period_type
              and s.period_start = a.period_start and s.alert = kinds.alert and s.channel = ?
          )
        order by a.period_type desc, a.period_start, a.segment, a.company_name, kinds.alert
        """,
        [latest.get("week"), latest.get("month"), channel],
    )


def thresholds(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """The thresholds the models used (staging.stg_settings), else the settings."""
    from socialpulse.warehouse import has_table

    if has_table(con, "staging", "stg_settings"):
        row = con.execute(
            "select alert_liveliness_drop, alert_service_level_drop from staging.stg_settings"
        ).fetchone()
        if row is not None:
            return {"liveliness": row[0], "service_level": row[1]}
    from socialpulse.config import settings

    s = settings()
    return {"liveliness": s.alert_liveliness_drop, "service_level": s.alert_service_level_drop}


def record_sent(
    con: duckdb.DuckDBPyConnection, alerts: Iterable[dict[str, Any]], channel: str, run_id: str
) -> None:
    """Remember that ``alerts`` were sent on ``channel`` (never sent there again)."""
    # an alert already recorded on the channel is kept as it was (`insert or ignore` would
    # need the primary key, which a DuckLake warehouse has not)
    keys = dict.fromkeys(
        (a["company_id"], a["period_type"], a["period_start"], a["alert"]) for a in alerts
    )
    con.executemany(
        "insert into ops.alerts_sent "
        "(company_id, period_type, period_start, alert, channel, run_id) "
        "select ?, ?, ?, ?, ?, ? where not exists ("
        "  select 1 from ops.alerts_sent where company_id = ? and period_type = ? "
        "  and period_start = ? and alert = ? and channel = ?)",
        [[*key, channel, run_id, *key, channel] for key in keys],
    )


class AlertDeliveryError(RuntimeError):
    """A notification could not be delivered on one or more channels (named)."""


def send_new_alerts(
    channels: dict[str, Callable[[Message], None]],
    run_id: str,
    links: Sequence[tuple[str, str]] = (),
    warehouse: Any = None,
) -> dict[str, Any]:
    """Send each channel one message listing its pending alerts, then record them as sent.

    ``channels``: name -> a function that delivers a :class:`Message` (raises on failure).
    A channel that fails keeps its alerts pending (the task's retry sends them); the others
    are recorded. With no channel configured nothing is sent and nothing recorded.
    Returns the number of alerts sent per channel.
    """
    from socialpulse.warehouse import connect

    with connect(warehouse) as con:
        pending = {name: pending_alerts(con, name) for name in channels}
        limits = thresholds(con)
    sent: dict[str, int] = {}
    errors: dict[str, BaseException] = {}
    for name, alerts in pending.items():
        if not alerts:
            sent[name] = 0
            continue
        try:
            channels[name](liveliness_message(alerts, limits, links))
        except Exception as exc:  # try the other channels first
            log.exception("liveliness alerts could not be sent by %s", name)
            errors[name] = exc
            continue
        with connect(warehouse) as con:
            record_sent(con, alerts, name, run_id)
        sent[name] = len(alerts)
        log.info("sent %d liveliness alert(s) by %s", len(alerts), name)
    if errors:
        raise AlertDeliveryError(
            "liveliness alerts not delivered: "
            + "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in errors.items())
        )
    return {"channels": sorted(channels), "sent": sent}
