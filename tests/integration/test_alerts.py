"""The three alerts, delivered by Airflow's SMTP notifier to a real SMTP server on 127.0.0.1.

* **a task failed**: a real ``dag.test()`` of socialpulse_ingest on a registry with an
  account that cannot be read and a batch that fails its GX suite: one e-mail per failed
  task, naming the DAG, the task and its map index label, the error (the account, the
  expectation) and the run in the UI;
* **the ingest has not succeeded in time**: the real DeadlineAlert of socialpulse_ingest
  (parsed with a deadline of 3.6 s and synced to the metadata DB), a run queued as the
  scheduler queues it (Airflow creates its deadline), the scheduler loop's handling of a
  missed deadline and the executor's callback supervisor, which runs the callback in a
  subprocess of its own, as the LocalExecutor does;
* **liveliness dropped**: a real ``dag.test()`` of socialpulse_models on a warehouse of the
  sample companies: one e-mail listing the alerts of the latest complete week and month,
  never the same alert twice.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.conftest import dag_state as state
from tests.conftest import query

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

BASE_URL = "http://airflow.socialpulse.test:8080"
RECIPIENTS = ["ops@socialpulse.test", "oncall@socialpulse.test"]
SENDER = "airflow@socialpulse.test"
LOGICAL = dt.datetime(2026, 2, 1, 0, 0, 1, tzinfo=dt.UTC)


@dataclass
class Mail:
    subject: str
    sender: str
    recipients: list[str]
    #: the HTML body as text: tags removed, entities decoded
    body: str
    html: str


@dataclass
class Mailbox:
    port: int
    received: list[Mail] = field(default_factory=list)

    def wait(self, n: int, timeout: float = 30) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more arrives
        return list(self.received)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = msg.get_body(preferencelist=("html", "plain"))
        raw = part.get_content() if part is not None else ""
        text = html.unescape(re.sub(r"<[^>]+>", "\n", raw))
        self.box.received.append(
            Mail(
                subject=str(msg["Subject"]),
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                body=re.sub(r"\n+", "\n", text),
                html=raw,
            )
        )
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, set up as the connection smtp_default."""
    from aiosmtpd.controller import Controller

    box = Mailbox(port=_free_port())
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": box.port,
        # a plain local server: no SSL, no STARTTLS
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": SENDER, "timeout": 10},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_DEFAULT", raising=False)
    monkeypatch.setenv("SOCIALPULSE_ALERT_EMAIL", ", ".join(RECIPIENTS))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    try:
        yield box
    finally:
        controller.stop()


def run_link(dag_id: str, run_id: str) -> str:
    return f"{BASE_URL}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


# --- a task failed ---------------------------------------------------------------------------


def test_failed_tasks_send_an_email_naming_the_task_the_error_and_the_run(
    dags, small_registry, smtp, monkeypatch
):
    from socialpulse import platforms

    # tele-mitte cannot be read; nordbank's Mastodon account delivers a post with likes = -3
    monkeypatch.setitem(
        platforms.IMPLEMENTATIONS, "mastodon", "tests.integration.fakes:NegativeLikesPlatform"
    )
    path = small_registry / "small.yaml"
    text = path.read_text()
    for old, new in [
        (
            "{platform: sample, handle: tele-mitte, options: {profile: corporation}}",
            "{platform: sample, handle: tele-mitte,"
            ' options: {profile: corporation, fail: "HTTP 404: unknown account"}}',
        ),
        (
            "      - {platform: sample, handle: nordbank, options: {profile: corporation}}",
            "      - {platform: sample, handle: nordbank, options: {profile: corporation}}\n"
            "      - {platform: mastodon, handle: nordbank@bank.example}",
        ),
    ]:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)

    dagrun = dags["socialpulse_ingest"].test(logical_date=LOGICAL, run_conf={"backfill_days": 2})
    assert state(dagrun) == "failed"
    failed = sorted(
        (ti.task_id, ti.map_index) for ti in dagrun.get_task_instances() if state(ti) == "failed"
    )
    assert failed == [("all_batches_loaded", -1), ("mastodon.validate", 0)]

    mails = {m.subject: m for m in smtp.wait(2)}
    assert set(mails) == {
        "[socialpulse] socialpulse_ingest: mastodon.validate [mastodon-b000] failed",
        "[socialpulse] socialpulse_ingest: all_batches_loaded failed",
    }
    link = run_link("socialpulse_ingest", dagrun.run_id)
    for mail in mails.values():
        assert mail.sender == SENDER
        assert sorted(mail.recipients) == sorted(RECIPIENTS)
        assert "DAG: socialpulse_ingest" in mail.body
        assert f"Run: {dagrun.run_id}" in mail.body
        assert f"href='{html.escape(link, quote=True)}'" in mail.html

    validate = mails["[socialpulse] socialpulse_ingest: mastodon.validate [mastodon-b000] failed"]
    assert "Task: mastodon.validate (map index 0, mastodon-b000)" in validate.body
    # the expectation that failed, as GX names it
    assert "raw.post_observations: expect_column_values_to_be_between(column='likes'" in (
        validate.body
    )
    task_log = f"{BASE_URL}/dags/socialpulse_ingest/runs/{quote(dagrun.run_id)}"
    assert f"{task_log}/tasks/mastodon.validate/mapped/0" in validate.body

    check = mails["[socialpulse] socialpulse_ingest: all_batches_loaded failed"]
    assert "Task: all_batches_loaded\n" in check.body
    # the exception message names every account and batch that failed
    assert "FetchFailed: " in check.body
    assert "sample tele-mitte (tele-mitte): HTTP 404: unknown account" in check.body
    assert "batch mastodon-b000: quarantined" in check.body


# --- the ingest has not succeeded in time -----------------------------------------------------


def test_a_missed_ingest_deadline_sends_an_email(airflow_db, small_registry, smtp, monkeypatch):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.executors import workloads
    from airflow.models.callback import CallbackState, ExecutorCallback
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.sdk.execution_time.callback_supervisor import supervise_callback
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import delete, select

    # the DAG file parsed as the DAG processor parses it, with a deadline of 0.001 h = 3.6 s,
    # and written to the metadata DB (its DeadlineAlert with it)
    monkeypatch.setenv("SOCIALPULSE_INGEST_DEADLINE_HOURS", "0.001")
    # written now, even if a dag.test() of this session wrote it seconds ago
    monkeypatch.setenv("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0")
    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert not bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)

    logical = dt.datetime(2031, 3, 1, tzinfo=dt.UTC)  # a date no other test uses
    run_id = f"scheduled__{logical.isoformat()}"
    with create_session() as session:
        dag = SerializedDagModel.get_dag("socialpulse_ingest", session=session)
        assert dag is not None and dag.deadline
        # queued as the scheduler queues a daily run: Airflow creates the run's deadline
        run = dag.create_dagrun(
            run_id=run_id,
            logical_date=logical,
            data_interval=(logical, logical + dt.timedelta(days=1)),
            run_after=logical + dt.timedelta(days=1),
            run_type=DagRunType.SCHEDULED,
            triggered_by=DagRunTriggeredByType.TIMETABLE,
            state=DagRunState.QUEUED,
            session=session,
        )
        session.flush()
        run_pk = run.id
        [deadline] = session.scalars(select(Deadline).where(Deadline.dagrun_id == run_pk)).all()
        assert deadline.deadline_time == run.queued_at + dt.timedelta(seconds=3.6)
        wait = (deadline.deadline_time - dt.datetime.now(dt.UTC)).total_seconds()
    try:
        time.sleep(max(wait, 0) + 0.5)  # the run is still queued: it has not succeeded

        # the scheduler loop: every expired deadline not yet handled is marked missed and its
        # callback queued for the executor
        with create_session() as session:
            expired = session.scalars(
                select(Deadline)
                .where(Deadline.dagrun_id == run_pk)
                .where(Deadline.deadline_time < dt.datetime.now(dt.UTC))
                .where(~Deadline.missed)
            ).all()
            assert len(expired) == 1
            for missed in expired:
                missed.handle_miss(session)
            session.flush()
            callback = session.scalars(
                select(ExecutorCallback).where(ExecutorCallback.id == expired[0].callback_id)
            ).one()
            assert callback.state == CallbackState.PENDING
            dag_run = session.get(DagRun, run_pk)
            workload = workloads.ExecuteCallback.make(callback=callback, dag_run=dag_run)

        # what the LocalExecutor's worker runs: the callback in a supervised subprocess (here
        # with the in-process Execution API, for the connections it looks up)
        assert workload.callback.data["path"] == "socialpulse.notify.ingest_deadline_missed"
        exit_code = supervise_callback(
            id=str(workload.callback.id),
            callback_path=workload.callback.data["path"],
            callback_kwargs=workload.callback.data["kwargs"],
            dag_rel_path=workload.dag_rel_path,
            bundle_info=workload.bundle_info,
            client=InProcessTestSupervisor._api_client(),
        )
        assert exit_code == 0

        [mail] = smtp.wait(1)
        assert mail.subject.startswith("[socialpulse] socialpulse_ingest: run not succeeded by "), (
            mail.subject
        )
        assert sorted(mail.recipients) == sorted(RECIPIENTS)
        assert f"Run: {run_id}" in mail.body
        assert "State now: queued" in mail.body
        assert "(0.001 h after it was queued)" in mail.body
        deadline_text = mail.subject.rsplit(" by ", 1)[1]
        assert deadline_text.endswith(" UTC") and deadline_text in mail.body
        assert f"href='{run_link('socialpulse_ingest', run_id)}'" in mail.html
    finally:
        with create_session() as session:
            session.execute(delete(DagRun).where(DagRun.id == run_pk))


# --- liveliness dropped -----------------------------------------------------------------------


def _sample_warehouse(data: Path) -> None:
    """The 40 sample companies, 22 days up to Monday 2026-06-01 (the plugin tests' data)."""
    from socialpulse.registry import reference_tables
    from socialpulse.warehouse import connect, load_batch, replace_reference_tables
    from tests.integration.api_server import sample_warehouse_rows

    registry, tables = sample_warehouse_rows()
    with connect(data / "warehouse.duckdb") as con:
        replace_reference_tables(con, reference_tables(registry))
        load_batch(con, "sample-1", tables)


def _expected_lines(warehouse: Path) -> dict[tuple[str, str, str], str]:
    """(company, period, kind) -> the start of its line, from marts.alerts of the latest
    complete week (2026-05-25) and month (2026-05)."""
    rows = query(
        warehouse,
        "select * from marts.alerts where (period_type = 'week' and period_start = '2026-05-25')"
        " or (period_type = 'month' and period_start = '2026-05-01')",
    )
    out = {}
    for r in rows:
        period = f"{r['period_type']} {r['period_start']:%Y-%m-%d}"
        head = f"- {r['company_name']} ({r['company_id']}, {r['segment']}), {period}: "
        if r["is_liveliness_alert"]:
            out[(r["company_id"], period, "liveliness")] = (
                head + f"liveliness score {r['liveliness_score']:.1f}"
                f" (was {r['previous_liveliness_score']:.1f}, -{r['liveliness_drop']:.1f} points)"
            )
        if r["is_service_level_alert"]:
            out[(r["company_id"], period, "service_level")] = (
                head + f"service level {r['service_level']:.0%}"
                f" (was {r['previous_service_level']:.0%},"
                f" -{r['service_level_drop'] * 100:.0f} percentage points)"
            )
    return out


def test_liveliness_alerts_are_sent_once_after_a_models_run(dags, data_dir, smtp, monkeypatch):
    from socialpulse import models
    from socialpulse.notify import send_liveliness_alerts
    from socialpulse.registry import reference_tables
    from socialpulse.warehouse import connect, replace_reference_tables
    from tests.integration.api_server import sample_warehouse_rows

    _sample_warehouse(data_dir)
    warehouse = data_dir / "warehouse.duckdb"
    dagrun = dags["socialpulse_models"].test()
    assert state(dagrun) == "success"
    tis = {ti.task_id: state(ti) for ti in dagrun.get_task_instances()}
    assert tis["send_alerts"] == "success"

    expected = _expected_lines(warehouse)
    kinds = {kind for _, _, kind in expected}
    periods = {period for _, period, _ in expected}
    # the sample companies' latest week and month hold both kinds of drop
    assert kinds == {"liveliness", "service_level"}
    assert periods == {"week 2026-05-25", "month 2026-05-01"}
    companies = {c for c, _, _ in expected}

    [mail] = smtp.wait(1)
    assert mail.subject == (
        f"[socialpulse] Liveliness dropped: {len(companies)} companies"
        " (month 2026-05-01, week 2026-05-25)"
    )
    assert sorted(mail.recipients) == sorted(RECIPIENTS)
    listed = [line for line in mail.body.splitlines() if line.startswith("- ")]
    assert sorted(listed) == sorted(expected.values())
    assert "thresholds: liveliness score more than 20 points" in mail.body
    assert "service level more than 20 percentage points" in mail.body
    assert f"href='{BASE_URL}/plugin/socialpulse'" in mail.html
    assert f"href='{run_link('socialpulse_models', dagrun.run_id)}'" in mail.html
    sent = query(warehouse, "select company_id, period_type, alert, channel from ops.alerts_sent")
    assert len(sent) == len(expected) and {s["channel"] for s in sent} == {"email"}

    # never the same alert twice: a second notification finds nothing new
    assert send_liveliness_alerts("socialpulse_models", "manual__again") == {
        "channels": ["email"],
        "sent": {"email": 0},
    }
    # a lower threshold (the ingest's registry sync writes it to ref.settings) adds alerts:
    # only those are sent
    monkeypatch.setenv("SOCIALPULSE_ALERT_LIVELINESS_DROP", "5")
    with connect(warehouse) as con:
        replace_reference_tables(con, reference_tables(sample_warehouse_rows()[0]))
        models.build_all(con, models.discover())
    more = _expected_lines(warehouse)
    new = {k: v for k, v in more.items() if k not in expected}
    assert new and set(expected) <= set(more)
    result = send_liveliness_alerts("socialpulse_models", "manual__lower")
    assert result["sent"] == {"email": len(new)}
    [_, second] = smtp.wait(2)
    assert "thresholds: liveliness score more than 5 points" in second.body
    listed = [line for line in second.body.splitlines() if line.startswith("- ")]
    assert sorted(listed) == sorted(new.values())
