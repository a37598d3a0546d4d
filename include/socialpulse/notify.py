"""Sending alerts through Airflow's own notifiers: e-mail (SMTP provider), Slack (webhook).

Every channel is an Airflow connection (metadata DB, secrets backend or an
``AIRFLOW_CONN_<ID>`` environment variable), never a setting of ours:

* ``smtp_default`` (type ``smtp``): the SMTP server, sent with the provider's
  ``SmtpNotifier``. Recipients: ``SOCIALPULSE_ALERT_EMAIL`` (comma-separated), else the
  connection's extra ``to``; the sender is its extra ``from_email`` (else
  ``socialpulse@localhost``).
* ``slack_default`` (type ``slackwebhook``): an incoming webhook, sent with the provider's
  ``SlackWebhookNotifier``.

A channel without its connection is left out; with none, nothing is sent and nothing fails.

The three alerts (:mod:`socialpulse.alerts` builds the messages):

* :func:`task_failed`: ``on_failure_callback`` of every task (``DEFAULT_ARGS``);
* :func:`ingest_deadline_missed`: the callback of :func:`ingest_deadline`, the
  ``DeadlineAlert`` of ``socialpulse_ingest`` (run by the scheduler's executor);
* :func:`send_liveliness_alerts`: the models DAG's ``send_alerts`` task.

Imported at DAG parse time (through ``socialpulse.orchestration``): the providers and
everything heavy are imported only when a message is sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from socialpulse.alerts import (
    AlertDeliveryError,
    Message,
    deadline_message,
    failure_message,
    send_new_alerts,
)

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

SMTP_CONN_ID = "smtp_default"
SLACK_CONN_ID = "slack_default"
DEFAULT_FROM = "socialpulse@localhost"
#: the socialpulse page inside the Airflow UI (plugins/socialpulse_plugin.py)
PLUGIN_PATH = "/plugin/socialpulse"


def _connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def recipients(conn: Any) -> list[str]:
    """``SOCIALPULSE_ALERT_EMAIL``, else the extra ``to`` of the SMTP connection."""
    from socialpulse.config import settings

    raw: Any = settings().alert_email or (conn.extra_dejson or {}).get("to") or ""
    if isinstance(raw, list | tuple):
        raw = ",".join(str(r) for r in raw)
    return [a for a in re.split(r"[,;\s]+", str(raw)) if a]


def _send_email(message: Message, conn: Any, to: list[str]) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    notifier = SmtpNotifier(
        to=to,
        from_email=(conn.extra_dejson or {}).get("from_email") or DEFAULT_FROM,
        subject=message.subject,
        html_content=message.html(),
        smtp_conn_id=SMTP_CONN_ID,
    )
    # notify(), not notifier(context): the texts are final (an error message must never be
    # read as a Jinja template)
    notifier.notify({})


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _send_slack(message: Message) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    links = "\n".join(f"<{url}|{_slack_escape(label)}>" for label, url in message.links)
    text = f"*{_slack_escape(message.subject)}*\n" + _slack_escape("\n".join(message.lines))
    if links:
        text += "\n" + links
    SlackWebhookNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=text).notify({})


def channels() -> dict[str, Callable[[Message], None]]:
    """The configured channels: name -> a function that delivers a message (raises if not)."""
    found: dict[str, Callable[[Message], None]] = {}
    smtp = _connection(SMTP_CONN_ID)
    if smtp is not None:
        to = recipients(smtp)
        if to:
            found["email"] = lambda message: _send_email(message, smtp, to)
        else:
            log.warning(
                "connection %s has no recipients: set SOCIALPULSE_ALERT_EMAIL or its extra"
                " 'to'; no alert e-mail is sent",
                SMTP_CONN_ID,
            )
    if _connection(SLACK_CONN_ID) is not None:
        found["slack"] = _send_slack
    return found


def notify(message: Message) -> list[str]:
    """Send ``message`` on every configured channel; the channels it was delivered on.

    Tries every channel, then raises :class:`AlertDeliveryError` naming those that failed.
    """
    configured = channels()
    if not configured:
        log.info(
            "no alert channel configured (%s, %s): %s", SMTP_CONN_ID, SLACK_CONN_ID, message.subject
        )
        return []
    errors = {}
    for name, send in configured.items():
        try:
            send(message)
        except Exception as exc:
            log.exception("alert %r could not be sent by %s", message.subject, name)
            errors[name] = exc
    if errors:
        raise AlertDeliveryError(
            f"alert {message.subject!r} not delivered: "
            + "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in errors.items())
        )
    return sorted(configured)


def base_url() -> str:
    """The Airflow UI's address: ``[api] base_url`` (``AIRFLOW__API__BASE_URL``)."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or "http://localhost:8080").rstrip("/")


def run_url(dag_id: str, run_id: str) -> str:
    """The DAG run's page in the Airflow UI."""
    return f"{base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _error_text(exc: BaseException | str | None) -> str:
    """The exception's message; a task's fail_fast wrapper names its cause's type."""
    if exc is None:
        return "(no exception recorded)"
    if isinstance(exc, str):
        return exc
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {exc}"


def task_failed(context: Any) -> None:
    """``on_failure_callback`` of every task: the DAG, the task, the error and the links."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    message = failure_message(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        error=_error_text(context.get("exception")),
        run_url=run_url(ti.dag_id, ti.run_id),
        map_index=-1 if map_index is None else map_index,
        map_label=getattr(ti, "rendered_map_index", None),
        try_number=getattr(ti, "try_number", None),
        task_url=getattr(ti, "log_url", None),
    )
    notify(message)


def ingest_deadline_missed(
    context: dict[str, Any] | None = None, hours: float | None = None
) -> None:
    """The ``DeadlineAlert`` callback: the run had not succeeded ``hours`` after it was queued.

    Airflow calls it (a ``SyncCallback``, in the scheduler's executor) with the run as
    ``context["dag_run"]`` (the REST API's DAG run fields) and ``context["deadline"]``.
    """
    context = context or {}
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    dag_id = run.get("dag_id") or "socialpulse_ingest"
    run_id = run.get("dag_run_id") or run.get("run_id") or "unknown"
    message = deadline_message(
        dag_id=dag_id,
        run_id=run_id,
        deadline_time=deadline.get("deadline_time"),
        queued_at=run.get("queued_at"),
        state=run.get("state"),
        hours=hours,
        run_url=run_url(dag_id, run_id),
    )
    notify(message)


def ingest_deadline() -> Any:
    """The ``DeadlineAlert`` of socialpulse_ingest: succeeded within
    ``SOCIALPULSE_INGEST_DEADLINE_HOURS`` (6) of being queued, else :func:`ingest_deadline_missed`.

    Read when the DAG file is parsed. A run that succeeds in time cancels its deadline; one
    that failed or is still running when it passes gets the alert.
    """
    from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

    from socialpulse.config import settings

    hours = settings().ingest_deadline_hours
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(hours=hours),
        callback=SyncCallback(ingest_deadline_missed, kwargs={"hours": hours}),
        name="ingest succeeded in time",
    )


def without_deadline(dag: Any) -> Any:
    """``dag`` made fit for ``dag.test()``: its DeadlineAlert removed (in memory only).

    ``dag.test()`` of Airflow 3.3.2 crashes once a run of a DAG with a deadline succeeds
    (apache/airflow#73428: its in-memory scheduler DAG holds the encoded alerts where
    ``DagRun.update_state`` expects their ids). A ``dag.test()`` run is never queued, so no
    deadline would be created for it anyway; the metadata DB keeps the deadline, since
    ``dag.test()`` writes the DAG files' own parse there. ``make run`` and the tests run the
    DAGs through this; the scheduler (``make airflow``) never needs it.
    """
    dag.deadline = None
    return dag


def send_liveliness_alerts(dag_id: str, run_id: str) -> dict[str, Any]:
    """The models DAG's ``send_alerts``: one message per channel listing the new liveliness
    alerts of the latest complete week and month (each alert once per channel)."""
    links = [
        ("socialpulse page", base_url() + PLUGIN_PATH),
        ("Run in the Airflow UI", run_url(dag_id, run_id)),
    ]
    return send_new_alerts(channels(), run_id, links)
