"""Operating socialpulse as a data engineer does: `make airflow`, the REST API, the CLI, logs.

One real `python -m socialpulse.cli airflow` (API server, DAG processor, scheduler, triggerer
with LocalExecutor) on a small registry in a temporary home:

* it listens on 127.0.0.1 only and starts no log server of its own;
* the DAGs are unpaused only once the API server answers, so the first scheduled run
  succeeds without a single retry;
* a manual run without a logical date (REST with ``"logical_date": null``, and
  ``airflow dags trigger``) fetches up to its ``run_after`` time and succeeds;
* the task logs, read through the REST API, say what each task did.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import FIXTURES, PROJECT_ROOT

# the module's Airflow stops gracefully (SIGINT, up to 60 s) in the last test's teardown,
# which counts against that test's timeout: 300 s was not always enough on 2 cores
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PASSWORD = "operate-" + secrets.token_hex(4)
STARTUP = 300  # s: migrate, pools, four components, the DAGs parsed
RUN_TIMEOUT = 420  # s: one small ingest run, queued behind another


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_on_all_interfaces() -> set[int]:
    """Ports with a listening TCP socket bound to every interface (0.0.0.0 or ::)."""
    ports: set[int] = set()
    for table, anywhere in (("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "0" * 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and address == anywhere:  # 0A = LISTEN
                ports.add(int(port, 16))
    return ports


class Airflow:
    def __init__(self, base: str, env: dict[str, str], log: Path) -> None:
        self.base, self.env, self.log = base, env, log
        self.token = ""

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.base}/api/v2{path}", headers=headers, timeout=30, **kwargs
        )

    def wait_for_run(self, dag_id: str, run_id: str) -> dict:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return run
            time.sleep(3)
        pytest.fail(f"{dag_id} {run_id} not done in {RUN_TIMEOUT} s:\n{self.tail()}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")
        return body.json()["task_instances"]

    def log_of(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        resp = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1",
            params={"map_index": map_index},
            headers={"Accept": "application/json"},
        )
        assert resp.status_code == 200, resp.text
        content = resp.json()["content"]
        return "\n".join(e.get("event", "") if isinstance(e, dict) else str(e) for e in content)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("operate")
    registry = root / "registry"
    shutil.copytree(FIXTURES / "registry", registry)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "SOCIALPULSE_")) and k != "AIRFLOW_HOME"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "SOCIALPULSE_COMPANIES": str(registry / "small.yaml"),
            "SOCIALPULSE_DATA_DIR": str(root / "data"),
        }
    )
    log = root / "make-airflow.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "socialpulse.cli", "airflow"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    af = Airflow(f"http://127.0.0.1:{port}", env, log)
    try:
        deadline = time.monotonic() + STARTUP
        while "DAGs unpaused" not in log.read_text(errors="replace"):
            assert proc.poll() is None, af.tail()
            if time.monotonic() > deadline:
                pytest.fail(f"make airflow not ready in {STARTUP} s:\n{af.tail()}")
            time.sleep(1)
        login = requests.post(
            f"{af.base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30
        )
        assert login.status_code == 201, login.text
        af.token = login.json()["access_token"]
        af.port = port  # type: ignore[attr-defined]
        yield af
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_it_listens_on_loopback_only_and_says_where(airflow):
    exposed = _listening_on_all_interfaces()
    assert airflow.port not in exposed
    assert not {8793, 8794} & exposed  # the scheduler's and triggerer's log servers
    assert f"Airflow UI: http://localhost:{airflow.port}" in airflow.log.read_text()


def test_the_first_scheduled_run_succeeds_without_a_retry(airflow):
    runs = airflow.api("GET", "/dags/socialpulse_ingest/dagRuns", params={"run_type": "scheduled"})
    deadline = time.monotonic() + RUN_TIMEOUT
    while not runs.json()["dag_runs"]:
        assert time.monotonic() < deadline, airflow.tail()
        time.sleep(3)
        runs = airflow.api(
            "GET", "/dags/socialpulse_ingest/dagRuns", params={"run_type": "scheduled"}
        )
    first = runs.json()["dag_runs"][0]
    done = airflow.wait_for_run("socialpulse_ingest", first["dag_run_id"])
    assert done["state"] == "success", airflow.tail()
    tries = {
        (ti["task_id"], ti["map_index"]): ti["try_number"]
        for ti in airflow.task_instances("socialpulse_ingest", first["dag_run_id"])
        if ti["state"] != "skipped"
    }
    assert tries and set(tries.values()) == {1}, tries


def test_a_manual_run_without_a_logical_date_succeeds_from_rest_and_cli(airflow):
    created = airflow.api(
        "POST",
        "/dags/socialpulse_ingest/dagRuns",
        json={"logical_date": None, "conf": {"backfill_days": 1}},
    )
    assert created.status_code in (200, 201), created.text
    rest_run = created.json()
    assert rest_run["logical_date"] is None
    airflow_cli = str(Path(sys.executable).with_name("airflow"))
    triggered = subprocess.run(
        [airflow_cli, "dags", "trigger", "socialpulse_ingest", "--output", "json"],
        env=airflow.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert triggered.returncode == 0, triggered.stderr[-2000:]
    runs = airflow.api("GET", "/dags/socialpulse_ingest/dagRuns", params={"run_type": "manual"})
    run_ids = {r["dag_run_id"] for r in runs.json()["dag_runs"]}
    assert rest_run["dag_run_id"] in run_ids and len(run_ids) == 2
    for run_id in sorted(run_ids):
        done = airflow.wait_for_run("socialpulse_ingest", run_id)
        assert done["state"] == "success", (run_id, airflow.tail())

    # the task logs say what was done, in a few lines a person reads in the UI
    fetch = airflow.log_of("socialpulse_ingest", rest_run["dag_run_id"], "sample.fetch", 0)
    assert "6 accounts of sample fetched (0 failed, 0 warnings)" in fetch
    assert "rows staged:" in fetch and "account_snapshots" in fetch
    load = airflow.log_of("socialpulse_ingest", rest_run["dag_run_id"], "sample.load", 0)
    assert "loaded in" in load and "replaced an earlier load's" in load
    validate = airflow.log_of("socialpulse_ingest", rest_run["dag_run_id"], "sample.validate", 0)
    assert "passed validation:" in validate and "expectations on" in validate
    record = airflow.log_of("socialpulse_ingest", rest_run["dag_run_id"], "record_run")
    assert "2 of 2 batches loaded" in record
    for text in (fetch, load, validate, record):
        assert airflow.env["AIRFLOW__API_AUTH__JWT_SECRET"] not in text
