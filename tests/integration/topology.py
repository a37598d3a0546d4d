"""The production topology on loopback, as real processes.

PostgreSQL (metadata DB, Celery result backend, DuckLake catalog) and Redis (Celery broker)
in temporary folders, and Airflow's scheduler, DAG processor, API server, triggerer and
Celery workers started the way docker-compose.yaml starts them, each its own process group.
Everything started here is stopped by :meth:`Cluster.stop` / :meth:`Postgres.stop` /
:meth:`Redis.stop`, each bounded in time.

PostgreSQL refuses to run as root: as root, its folder belongs to an unprivileged user
(``postgres`` when the Debian package created it, else ``nobody``) and ``initdb`` and
``pg_ctl`` run as that user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import math
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from socialpulse.cli import airflow_env
from tests.conftest import PROJECT_ROOT

#: CI sets this: missing PostgreSQL / Redis fail the topology tests instead of skipping them
REQUIRE = os.environ.get("SOCIALPULSE_REQUIRE_TOPOLOGY") == "1"
HOW_TO_GET = "install them with `apt-get install postgresql redis-server` (.ci/run does)"
PASSWORD = "socialpulse-topology-password"
STOP_TIMEOUT = 20


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(what: str) -> None:
    message = f"{what} not found: {HOW_TO_GET}"
    if REQUIRE:
        pytest.fail(message + " (SOCIALPULSE_REQUIRE_TOPOLOGY=1)")
    pytest.skip(message)


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        missing("PostgreSQL (initdb)")
    return Path(initdb).parent


def _unprivileged() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    pytest.fail("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")


def _stop_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``timeout`` seconds."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children a dead leader left behind
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass
class Postgres:
    """A PostgreSQL server on a loopback port; trust authentication for user ``airflow``."""

    root: Path
    port: int = field(default_factory=free_port)
    user: str = "airflow"

    def start(self) -> Postgres:
        bin_dir = _pg_bin()
        owner = _unprivileged()
        run_as: dict[str, Any] = {}
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self._pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(self.root / "data")]
        self._run_as = run_as
        init = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(self.root / "data"), "-U", self.user]
            + ["--auth=trust", "-E", "UTF8", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            **run_as,
        )
        assert init.returncode == 0, init.stderr[-3000:]
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        start = subprocess.run(
            [*self._pg_ctl, "-o", options, "-l", str(self.root / "postgres.log"), "-w", "start"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            **run_as,
        )
        assert start.returncode == 0, start.stdout + start.stderr + self.log()
        return self

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def create_database(self, name: str) -> str:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'create database "{name}"')
        finally:
            con.close()
        return name

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        subprocess.run(
            [*self._pg_ctl, "-m", "immediate", "-w", "-t", str(STOP_TIMEOUT), "stop"],
            capture_output=True,
            timeout=STOP_TIMEOUT + 10,
            cwd=self.root,
            **self._run_as,
        )


@dataclass
class Redis:
    root: Path
    port: int = field(default_factory=free_port)

    def start(self) -> Redis:
        server = shutil.which("redis-server")
        if not server:
            missing("Redis (redis-server)")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.root)],
            stdout=(self.root / "redis.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            assert self.proc.poll() is None, (self.root / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not listen within 30 s"
            time.sleep(0.1)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        _stop_group(self.proc)


def pg_dir() -> Path:
    """A folder PostgreSQL's unprivileged user can reach (pytest's tmp dirs are private)."""
    return Path(tempfile.mkdtemp(prefix="socialpulse-pg-"))


@dataclass
class Cluster:
    """Airflow in the production topology: CeleryExecutor, PostgreSQL, Redis, separate
    scheduler, DAG processor, API server, triggerer and ``workers`` Celery workers."""

    root: Path
    postgres: Postgres
    redis: Redis
    database: str
    redis_db: int
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _env(self) -> dict[str, str]:
        self.api_port = free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({"admin": PASSWORD}))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "SOCIALPULSE_", "AIRFLOW_CONN_"))
            and k != "AIRFLOW_HOME"
        }
        env.update(airflow_env(self.home))
        db = self.postgres.url(self.database)
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url(self.redis_db),
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
                + self.postgres.url(self.database, "postgresql"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.base,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.integration.hostname.worker_name",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]),
                "SOCIALPULSE_DATA_DIR": str(self.data),
                "SOCIALPULSE_RETRY_DELAY_SECONDS": "3",
            }
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.root / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=env or self.env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self, timeout: float = 240) -> Cluster:
        self.home.mkdir(parents=True)
        self.data.mkdir(parents=True)
        self.env = self._env()
        # what docker compose's airflow-init does: migrate, then the pools (socialpulse.cli)
        bootstrap = subprocess.run(
            [sys.executable, "-m", "socialpulse.cli", "bootstrap"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=PROJECT_ROOT,
        )
        assert bootstrap.returncode == 0, bootstrap.stdout[-2000:] + bootstrap.stderr[-4000:]
        self._spawn("api-server", ["api-server", "--port", str(self.api_port), "--workers", "1"])
        self._spawn("scheduler", ["scheduler"])
        self._spawn("dag-processor", ["dag-processor"])
        self._spawn("triggerer", ["triggerer"])
        for n in range(1, self.workers + 1):
            env = {
                **self.env,
                "SOCIALPULSE_TEST_WORKER": f"worker-{n}",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            }
            self._spawn(
                f"worker-{n}",
                ["celery", "worker", "--celery-hostname", f"worker-{n}@%h", "--concurrency", "4"],
                env=env,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster was not healthy within {timeout:.0f} s\n" + self.logs())
            time.sleep(1)
        self.login()
        return self

    def _healthy(self) -> bool:
        try:
            health = requests.get(f"{self.base}/api/v2/monitor/health", timeout=3)
        except requests.RequestException:
            return False
        if health.status_code != 200:
            return False
        body = health.json()
        return all(
            (body.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, f"processes exited: {dead}\n" + self.logs()

    def logs(self, tail: int = 2500) -> str:
        out = []
        for name in self.procs:
            path = self.root / f"{name}.log"
            out.append(f"--- {name}.log ---\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def login(self) -> None:
        resp = requests.post(
            f"{self.base}/auth/token",
            json={"username": "admin", "password": PASSWORD},
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        assert resp.ok, f"{method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json()

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            found = {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 100})["dags"]}
            if set(dag_ids) <= found:
                return
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"DAGs {set(dag_ids) - found} not parsed in {timeout:.0f} s")
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )["task_instances"]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for_run(
        self, dag_id: str, run_id: str | None, timeout: float, each: Any = None
    ) -> dict[str, Any]:
        """Wait until the run (None: the first run of ``dag_id``) has finished; ``each`` is
        called with the run's task instances on every poll."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id)
            run = next((r for r in runs if run_id in (None, r["dag_run_id"])), None)
            if run is not None:
                if each is not None:
                    each(self.task_instances(dag_id, run["dag_run_id"]))
                if run["state"] in ("success", "failed"):
                    return run
            self.check_alive()
            if time.monotonic() > deadline:
                states = (
                    {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
                    if run_id
                    else {}
                )
                pytest.fail(f"{dag_id} run {run_id} not done in {timeout:.0f} s: {states}")
            time.sleep(1)

    def failed_task_logs(self, dag_id: str, run_id: str, tail: int = 4000) -> str:
        """The last lines of every failed task's latest attempt, for an assertion message."""
        out = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] != "failed":
                continue
            folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            logs = sorted(folder.glob(f"task_id={ti['task_id']}/**/attempt=*.log"))
            text = logs[-1].read_text(errors="replace")[-tail:] if logs else "(no log)"
            out.append(f"--- {ti['task_id']} [{ti['map_index']}] ---\n{text}")
        return "\n".join(out)

    def keep_logs(self, name: str) -> Path:
        """Copy the processes' and tasks' logs to test-artifacts/ (CI keeps them)."""
        dest = PROJECT_ROOT / "test-artifacts" / f"topology-{name}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for log in self.root.glob("*.log"):
            shutil.copy(log, dest)
        if (self.home / "logs").is_dir():
            shutil.copytree(self.home / "logs", dest / "tasks", dirs_exist_ok=True)
        return dest

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            _stop_group(proc)


def assert_same_rows(a: list[tuple], b: list[tuple], what: str) -> None:
    """Row for row equal; floats to 1e-9 relative (a sum's last bit depends on the order of
    the parallel aggregation, which differs between any two runs)."""
    assert len(a) == len(b), f"{what}: {len(a)} rows against {len(b)}"
    for n, (x, y) in enumerate(zip(a, b, strict=True)):
        same = len(x) == len(y) and all(
            math.isclose(u, v, rel_tol=1e-9)
            if isinstance(u, float) and isinstance(v, float)
            else u == v
            for u, v in zip(x, y, strict=True)
        )
        assert same, f"{what}, row {n}: {x} != {y}"


def task_pid(ti_id: str) -> int | None:
    """The process running task instance ``ti_id`` (its title: ``airflow worker -- <id>``)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if f"airflow worker -- {ti_id}" in cmdline.read_bytes().decode(errors="replace"):
                return int(cmdline.parent.name)
    return None


def latest_interval_start(now: dt.datetime | None = None) -> dt.datetime:
    """The logical date of the daily ingest DAG's latest complete interval (midnight UTC)."""
    now = now or dt.datetime.now(dt.UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=1)
