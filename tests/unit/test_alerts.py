"""Alert messages and channels: Airflow's SMTP and Slack notifiers against local servers.

The connections are ``AIRFLOW_CONN_*`` environment variables (no metadata DB here); the SMTP
server is a real aiosmtpd on 127.0.0.1, the Slack webhook a pytest-httpserver endpoint.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse import alerts, notify

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pytest_httpserver import HTTPServer

TRICKY = "likes < 0 & {{ 7 * 7 }} <script>alert(1)</script>"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            (envelope, email.message_from_bytes(envelope.content, policy=email.policy.default))
        )
        return "250 OK"

    def wait(self, n: int) -> list[Any]:
        deadline = time.monotonic() + 10
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smtp_conn(port: int, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, **extra},
        }
    )


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Inbox]:
    from aiosmtpd.controller import Controller

    box = _Inbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_conn(port, to="ops@example.test"))
    monkeypatch.delenv("SOCIALPULSE_ALERT_EMAIL", raising=False)
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def slack(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    httpserver.expect_request("/services/T0/B0/hook", method="POST").respond_with_data("ok")
    url = httpserver.url_for("/services/T0/B0/hook")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_DEFAULT", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    return httpserver


@pytest.fixture
def no_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither connection defined (and no metadata DB to ask)."""
    monkeypatch.setattr(notify, "_connection", lambda conn_id: None)


def test_failure_message_names_the_dag_task_label_error_and_links() -> None:
    m = alerts.failure_message(
        dag_id="socialpulse_ingest",
        task_id="sample.fetch",
        run_id="scheduled__2026-11-30T00:00:00+00:00",
        error="FetchFailed: sample tele-mitte (tele-mitte): HTTP 404",
        run_url="http://ui/dags/socialpulse_ingest/runs/x",
        map_index=3,
        map_label="sample-b003",
        try_number=3,
        task_url="http://ui/dags/socialpulse_ingest/runs/x/tasks/sample.fetch/mapped/3",
    )
    assert m.subject == "[socialpulse] socialpulse_ingest: sample.fetch [sample-b003] failed"
    text = m.text()
    assert "Task: sample.fetch (map index 3, sample-b003)" in text
    assert "Try: 3" in text and "sample tele-mitte (tele-mitte): HTTP 404" in text
    assert "Run in the Airflow UI: http://ui/dags/socialpulse_ingest/runs/x" in text
    assert "Task log: http://ui/dags/socialpulse_ingest/runs/x/tasks/sample.fetch/mapped/3" in text
    unmapped = alerts.failure_message(
        dag_id="d", task_id="t", run_id="r", error="e", run_url="http://ui/r"
    )
    assert unmapped.subject == "[socialpulse] d: t failed" and "Task: t\n" in unmapped.text()


def test_deadline_message_reads_the_context_airflow_passes() -> None:
    m = alerts.deadline_message(
        dag_id="socialpulse_ingest",
        run_id="scheduled__2026-11-30T00:00:00+00:00",
        deadline_time="2026-12-01T06:00:00+00:00",
        queued_at="2026-12-01T00:00:02.5Z",
        state="running",
        hours=6.0,
        run_url="http://ui/run",
    )
    assert m.subject == (
        "[socialpulse] socialpulse_ingest: run not succeeded by 2026-12-01 06:00 UTC"
    )
    assert "(6 h after it was queued)" in m.text()
    assert "Queued at: 2026-12-01 00:00 UTC" in m.text() and "State now: running" in m.text()


def test_email_and_slack_carry_the_message_verbatim(inbox: _Inbox, slack: HTTPServer) -> None:
    message = alerts.Message(
        "[socialpulse] x: t failed", ("Error:", TRICKY), (("Run", "http://ui/r?a=1&b=2"),)
    )
    assert notify.notify(message) == ["email", "slack"]

    [(envelope, mail)] = inbox.wait(1)
    assert envelope.rcpt_tos == ["ops@example.test"]  # the connection's extra "to"
    assert envelope.mail_from == notify.DEFAULT_FROM
    assert mail["Subject"] == "[socialpulse] x: t failed"
    body = mail.get_body(preferencelist=("html",)).get_content()
    # escaped, and never rendered as a Jinja template
    assert "likes &lt; 0 &amp; {{ 7 * 7 }} &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>" not in body and "49" not in body
    assert "href='http://ui/r?a=1&amp;b=2'" in body

    [(request, _)] = slack.log
    payload = json.loads(request.get_data())
    assert payload["text"] == (
        "*[socialpulse] x: t failed*\nError:\n"
        "likes &lt; 0 &amp; {{ 7 * 7 }} &lt;script&gt;alert(1)&lt;/script&gt;\n"
        "<http://ui/r?a=1&b=2|Run>"
    )


def test_recipients_from_the_setting_win_over_the_connection(
    inbox: _Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "_connection", _only_smtp())
    monkeypatch.setenv("SOCIALPULSE_ALERT_EMAIL", "a@example.test; b@example.test")
    assert notify.notify(alerts.Message("s", ("l",))) == ["email"]
    [(envelope, _)] = inbox.wait(1)
    assert envelope.rcpt_tos == ["a@example.test", "b@example.test"]


def _only_smtp():
    real = notify._connection
    return lambda conn_id: real(conn_id) if conn_id == notify.SMTP_CONN_ID else None


def test_an_smtp_connection_without_recipients_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_conn(_free_port()))
    monkeypatch.delenv("SOCIALPULSE_ALERT_EMAIL", raising=False)
    monkeypatch.setattr(notify, "_connection", _only_smtp())
    assert notify.channels() == {}
    assert "SOCIALPULSE_ALERT_EMAIL" in caplog.text


def test_nothing_configured_sends_nothing_and_raises_nothing(no_channels: None) -> None:
    assert notify.notify(alerts.Message("s", ("l",))) == []

    class TI:
        dag_id, task_id, run_id, map_index, try_number = "d", "t", "r", -1, 1

    notify.task_failed({"ti": TI(), "exception": RuntimeError("boom")})
    notify.ingest_deadline_missed({"dag_run": {"dag_id": "d", "dag_run_id": "r"}}, hours=6)


def test_a_failing_channel_is_named_and_does_not_stop_the_other(
    slack: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _free_port()  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_conn(closed, to="ops@example.test"))
    with pytest.raises(alerts.AlertDeliveryError, match=r"not delivered: email: "):
        notify.notify(alerts.Message("[socialpulse] s", ("l",)))
    assert len(slack.log) == 1  # Slack got it all the same


# --- liveliness alerts: each sent once per channel ------------------------------------------

WEEK = dt.date(2026, 5, 25)
MONTH = dt.date(2026, 5, 1)


def _warehouse(path: Path) -> None:
    """ops.* (connect creates them) and the two marts send_new_alerts reads, by hand."""
    from socialpulse.warehouse import connect

    with connect(path) as con:
        con.execute(
            "create table marts.success_index as select * from (values "
            "('week', date '2026-05-18', true), ('week', date '2026-05-25', true), "
            "('week', date '2026-06-01', false), ('month', date '2026-05-01', true)) "
            "as t(period_type, period_start, is_complete)"
        )
        con.execute(
            "create table marts.alerts as select * from (values "
            # an older week: never sent late
            "('a', 'Alpha', 'craft', 'week', date '2026-05-18', 50.0, 80.0, 30.0, .5, .5, 0.0,"
            " true, false), "
            "('a', 'Alpha', 'craft', 'week', date '2026-05-25', 10.0, 50.0, 40.0, .2, .5, .3,"
            " true, true), "
            "('b', 'Beta', 'corporation', 'month', date '2026-05-01', 40.0, 45.0, 5.0, .1, .9, .8,"
            " false, true)) as t(company_id, company_name, segment, period_type, period_start,"
            " liveliness_score, previous_liveliness_score, liveliness_drop, service_level,"
            " previous_service_level, service_level_drop, is_liveliness_alert,"
            " is_service_level_alert)"
        )


def test_liveliness_alerts_are_sent_once_per_channel(tmp_path: Path) -> None:
    from socialpulse.warehouse import connect

    path = tmp_path / "w.duckdb"
    _warehouse(path)
    got: dict[str, list[alerts.Message]] = {"email": [], "slack": []}
    email_up = False

    def send_email(m: alerts.Message) -> None:
        if not email_up:
            raise ConnectionRefusedError("smtp down")
        got["email"].append(m)

    channels = {"email": send_email, "slack": got["slack"].append}
    with pytest.raises(alerts.AlertDeliveryError, match="email: ConnectionRefusedError"):
        alerts.send_new_alerts(channels, "run-1", warehouse=path)
    [message] = got["slack"]
    assert message.subject == (
        "[socialpulse] Liveliness dropped: 2 companies (month 2026-05-01, week 2026-05-25)"
    )
    assert [line for line in message.lines if line.startswith("- ")] == [
        "- Alpha (a, craft), week 2026-05-25: liveliness score 10.0 (was 50.0, -40.0 points)",
        "- Alpha (a, craft), week 2026-05-25: service level 20% (was 50%, -30 percentage points)",
        "- Beta (b, corporation), month 2026-05-01: service level 10% (was 90%,"
        " -80 percentage points)",
    ]
    # Slack's are recorded, e-mail's stay pending; the next run sends them by e-mail only
    email_up = True
    assert alerts.send_new_alerts(channels, "run-2", warehouse=path)["sent"] == {
        "email": 3,
        "slack": 0,
    }
    assert len(got["email"]) == 1 and len(got["slack"]) == 1
    assert alerts.send_new_alerts(channels, "run-3", warehouse=path)["sent"] == {
        "email": 0,
        "slack": 0,
    }
    with connect(path, read_only=True) as con:
        sent = con.execute(
            "select channel, run_id, count(*) from ops.alerts_sent group by all order by all"
        ).fetchall()
    assert sent == [("email", "run-2", 3), ("slack", "run-1", 3)]
    # with no channel configured nothing is sent and nothing recorded
    assert alerts.send_new_alerts({}, "run-4", warehouse=path) == {"channels": [], "sent": {}}


def test_an_older_warehouse_gets_the_threshold_columns(tmp_path: Path, monkeypatch) -> None:
    """ref.settings of a warehouse from before the alerts: migrated in place, then synced."""
    import duckdb

    from socialpulse.config import SAMPLE_COMPANIES
    from socialpulse.registry import load_registry, reference_tables
    from socialpulse.warehouse import connect, replace_reference_tables

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema ref")
        con.execute("create table ref.settings (lookback_days bigint)")
        con.execute("insert into ref.settings values (35)")
    monkeypatch.setenv("SOCIALPULSE_ALERT_SERVICE_LEVEL_DROP", "0.25")
    with connect(path) as con:
        # before the next registry sync: the new columns are null (stg_settings: defaults)
        assert con.execute("select * from ref.settings").fetchall() == [(35, None, None)]
        tables = reference_tables(load_registry(SAMPLE_COMPANIES))
        replace_reference_tables(con, {"settings": tables["settings"]})
        assert con.execute("select * from ref.settings").fetchall() == [(35, 20.0, 0.25)]
