"""End to end: one daily run of N companies through the real Airflow code path.

    .venv/bin/python benchmarks/e2e_bench.py --companies 1000 [--folder DIR]

:func:`e2e` (called by the bench runner) does, in ``folder``:

1. writes a registry of ``companies`` companies on the offline ``sample`` platform: the 40
   sample companies (``include/companies/sample.yaml``) tiled, each copy with its own id,
   name and handle (``<id>-0007``) and the sample's segment, employees, goals, targets and
   ``options.profile``, so the mix of craft businesses and corporations is the sample's;
2. starts a real Airflow (``airflow db migrate`` and the pools, then API server, DAG
   processor and scheduler with the LocalExecutor, each its own process group, the home
   and the data folder under ``folder``; the metadata DB in PostgreSQL on a loopback port,
   as deploy/docker-compose.local.yaml runs one small machine, or SQLite as ``make
   airflow`` does, whose scheduler died of "database is locked" at 1,000 companies), triggers
   ``socialpulse_ingest`` through the REST API for one data interval (yesterday, UTC) and
   waits for the asset-triggered ``socialpulse_models`` run to finish. Measured: the wall
   time from the trigger to the models run's end, every task instance's duration and queue
   wait (REST API), the CPU seconds of each Airflow component's process tree;
3. stops Airflow, then does the same work without Airflow, in one fresh process on a fresh
   data folder: the functions of ``socialpulse.pipeline`` the tasks call, in the DAGs'
   order, each stage timed (the baseline);
4. returns the figures (JSON-serialisable): ``seconds`` (Airflow, trigger to models done),
   ``direct_seconds`` (the baseline's stages summed), ``overhead_seconds``,
   ``overhead_ratio``, ``startup_seconds`` (migrate to ready, not in ``seconds``), ...

Everything started is stopped, also on errors. The processes' logs stay in
``folder/logs``, the task logs in ``folder/airflow/home/logs``; a failed run raises
:class:`E2EFailed` naming them, with the tail of every failed task's log.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INGEST_DAG = "socialpulse_ingest"
MODELS_DAG = "socialpulse_models"
#: the issue's target for the whole run of 1,000 companies on 2 cores
TARGET_SECONDS = 600
STARTUP_TIMEOUT = 300.0
RUN_TIMEOUT = 3600.0
STOP_TIMEOUT = 30.0
POLL_SECONDS = 3.0
PASSWORD = "socialpulse-e2e-" + secrets.token_hex(4)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def python_env(env: dict[str, str], pycache: Path | None) -> dict[str, str]:
    """``env`` as given (``make`` exports PYTHONDONTWRITEBYTECODE=1 and uv installs no .pyc:
    every process compiles what it imports), or with compiled modules cached in ``pycache``."""
    if pycache is None:
        return env
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


#: what a task process imports (warmed into the bytecode cache before a cached run)
WARM_IMPORTS = (
    "great_expectations, pandas, pyarrow.parquet, duckdb, yaml, requests, airflow.sdk, "
    "airflow.sdk.execution_time.task_runner, airflow.sdk.execution_time.supervisor, "
    "airflow.cli.cli_parser, airflow.jobs.scheduler_job_runner, airflow.api_fastapi.app, "
    "airflow.dag_processing.manager, socialpulse.pipeline, socialpulse.validation, "
    "socialpulse.models, socialpulse.report, socialpulse.warehouse, socialpulse.alerts, "
    "socialpulse.notify, socialpulse.platforms.sample"
)


def warm_pycache(pycache: Path, home: Path) -> float:
    """Compile what the processes import into ``pycache`` once; the seconds it took."""
    from socialpulse.cli import airflow_env

    t0 = time.monotonic()
    env = python_env({**os.environ, **airflow_env(home)}, pycache)
    for dag in ("socialpulse_ingest", "socialpulse_models"):
        code = f"import {WARM_IMPORTS}; import runpy; runpy.run_path('dags/{dag}.py')"
        warm = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
        )
        if warm.returncode != 0:
            raise E2EFailed(f"warming the bytecode cache failed:\n{warm.stderr[-3000:]}")
    return time.monotonic() - t0


class E2EFailed(RuntimeError):
    """The Airflow run did not succeed (or did not start); the message says where the logs are."""


# --- 1. the registry ---------------------------------------------------------------------------


#: settings of the caller's environment that reach both runs (to measure their effect, e.g.
#: ``SOCIALPULSE_BATCH_SIZE=100``); every other ``SOCIALPULSE_*`` is dropped
TUNING = ("SOCIALPULSE_BATCH_SIZE", "SOCIALPULSE_DUCKDB_MEMORY_LIMIT")


def tuning() -> dict[str, str]:
    return {k: os.environ[k] for k in TUNING if os.environ.get(k)}


def write_registry(companies: int, folder: Path) -> Path:
    """``companies`` companies: the sample's 40 tiled, each copy with ids and handles of its own."""
    import yaml

    from socialpulse.config import SAMPLE_COMPANIES

    sample = yaml.safe_load(SAMPLE_COMPANIES.read_text(encoding="utf-8"))["companies"]
    out = []
    for i in range(companies):
        tile, company = divmod(i, len(sample))
        c = copy.deepcopy(sample[company])
        suffix = f"{tile:04d}"
        c["id"] = f"{c['id']}-{suffix}"
        c["name"] = f"{c['name']} {suffix}"
        for account in c["accounts"]:
            account["handle"] = f"{account['handle']}-{suffix}"
        out.append(c)
    path = folder / f"e2e-{companies}.yaml"
    path.write_text(yaml.safe_dump({"companies": out}, allow_unicode=True, sort_keys=False))
    return path


def one_day(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The daily DAG's latest complete interval: yesterday 00:00 to today 00:00 UTC."""
    now = now or dt.datetime.now(dt.UTC)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return end - dt.timedelta(days=1), end


# --- processes ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(parent pid, start time in ticks, CPU seconds of it and its reaped children) or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) starttime(19)
    cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
    return int(fields[1]), int(fields[19]), cpu


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of ``root`` and every process below it (now)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents.setdefault(st[0], []).append(int(entry.name))
                starts[int(entry.name)] = st[1]
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in starts:
            found[pid] = starts[pid]
            todo.extend(parents.get(pid, []))
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root``'s process tree: the live processes and the children they reaped."""
    total = 0.0
    for pid in _descendants(root):
        st = _stat(pid)
        if st is not None:
            total += st[2]
    return total


class Postgres:
    """PostgreSQL on a loopback port for the metadata DB (trust auth, user ``airflow``), in a
    folder of its own that its unprivileged user can reach (as root it runs as ``postgres``
    or ``nobody``: PostgreSQL refuses root), removed by :meth:`stop`; the log goes to ``log``."""

    USER = "airflow"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="socialpulse-e2e-pg-"))
        self.run_as: dict[str, Any] = {}
        self.started = False

    @staticmethod
    def bin_dir() -> Path | None:
        import glob
        import shutil

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = found[-1] if found else shutil.which("initdb")
        return Path(initdb).parent if initdb else None

    def start(self) -> Postgres:
        import pwd

        bin_dir = self.bin_dir()
        if bin_dir is None:
            raise E2EFailed("PostgreSQL (initdb) not found: apt-get install postgresql")
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    owner = pwd.getpwnam(name)
                    os.chown(self.root, owner.pw_uid, owner.pw_gid)
                    self.run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
                    break
        data = self.root / "data"
        self.pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
        init = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", self.USER, "--auth=trust"]
            + ["-E", "UTF8", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            cwd=self.root,
            **self.run_as,
        )
        if init.returncode != 0:
            raise E2EFailed(f"initdb failed:\n{init.stderr[-3000:]}")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        start = subprocess.run(
            [*self.pg_ctl, "-o", options, "-l", str(self.root / "postgres.log"), "-w", "start"],
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            cwd=self.root,
            **self.run_as,
        )
        self.started = start.returncode == 0
        if not self.started:
            raise E2EFailed(f"PostgreSQL did not start:\n{start.stdout}{start.stderr}")
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.USER, dbname="postgres")
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute("create database airflow")
        finally:
            con.close()
        return self

    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        return None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        import shutil

        try:
            if self.started:
                subprocess.run(
                    [*self.pg_ctl, "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT)), "stop"],
                    capture_output=True,
                    timeout=STOP_TIMEOUT + 10,
                    cwd=self.root,
                    **self.run_as,
                )
            with contextlib.suppress(OSError):
                shutil.copy(self.root / "postgres.log", self.log)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class CpuSampler:
    """Samples the CPU seconds of every process below the Airflow components twice a second,
    so that the task processes' CPU (gone when they exit) is known per task instance.

    A process is named by its title: ``airflow worker -- <ti id>`` is a task process,
    ``airflow worker -- LocalExecutor: ...`` an executor worker (it supervises its tasks).
    Up to one interval of each process's CPU is missed (its last half second); what the
    processes already running at the start had used is not counted.
    """

    def __init__(self, roots: dict[str, int], every: float = 0.5, bucket: float = 30.0) -> None:
        import threading

        self.roots = roots
        self.every = every
        self.bucket = bucket
        self.t0 = time.monotonic()
        #: CPU seconds per time bucket (``bucket`` seconds from the start) and kind
        self.timeline: dict[int, dict[str, float]] = {}
        self.seen: dict[tuple[int, int], tuple[str, str, float]] = {}
        self.baseline: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self.sample()  # what the processes running now had used before: not counted
        self.baseline = {key: cpu for key, (_, _, cpu) in self.seen.items()}
        self.timeline.clear()
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        for component, root in self.roots.items():
            for pid, started in _descendants(root).items():
                try:
                    raw = Path(f"/proc/{pid}/stat").read_text()
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                fields = raw[raw.rindex(")") + 2 :].split()
                own = (int(fields[11]) + int(fields[12])) / CLK_TCK
                name = title.replace(b"\0", b" ").decode(errors="replace").strip()
                # an exiting process (a zombie) has no command line: keep the one seen before
                name = name or self.seen.get((pid, started), (component, "", 0.0))[1]
                before = self.seen.get((pid, started), (component, name, own))[2]
                self.seen[(pid, started)] = (component, name, own)
                if own > before:
                    slot = self.timeline.setdefault(
                        int((time.monotonic() - self.t0) // self.bucket), {}
                    )
                    kind = self._kind(component, name, {})
                    slot[kind] = slot.get(kind, 0.0) + own - before

    def by_kind(self, task_of: dict[str, str]) -> dict[str, float]:
        """CPU seconds per kind of process: each component's own processes, the executor's
        workers, and the task processes per task id (``task:<task_id>``)."""
        out: dict[str, float] = {}
        for key, (component, name, cpu) in self.seen.items():
            kind = self._kind(component, name, task_of)
            out[kind] = out.get(kind, 0.0) + cpu - self.baseline.get(key, 0.0)
        return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}

    @staticmethod
    def _kind(component: str, name: str, task_of: dict[str, str]) -> str:
        if name.startswith("airflow worker -- LocalExecutor"):
            return "executor workers"
        if name.startswith("airflow worker -- "):
            ti = name.removeprefix("airflow worker -- ").split()[0]
            return f"task:{task_of.get(ti, 'other')}" if task_of else "tasks"
        return component

    def cpu_timeline(self) -> list[dict[str, Any]]:
        """Per ``bucket`` seconds since the trigger: CPU seconds per kind (components,
        executor workers, tasks); a value near ``2 * bucket`` means both cores were busy."""
        return [
            {"from": n * self.bucket, **{k: round(v, 1) for k, v in sorted(kinds.items())}}
            for n, kinds in sorted(self.timeline.items())
        ]


def bytecode(pycache: Path | None, warm: float | None) -> str:
    """Whether the processes found compiled modules (a venv installed by uv has none, and
    ``make`` sets PYTHONDONTWRITEBYTECODE=1: then every process compiles its imports)."""
    import importlib.util

    if pycache is not None:
        return f"cached in {pycache} (warmed in {warm or 0:.0f} s)"
    spec = importlib.util.find_spec("great_expectations")
    origin = (spec.origin if spec else None) or ""
    if origin and Path(importlib.util.cache_from_source(origin)).exists():
        return "the venv's .pyc files"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return "compiled by every process (no .pyc in the venv, PYTHONDONTWRITEBYTECODE=1)"
    return "compiled once, then Python's __pycache__"


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: all but idle and iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


class Airflow:
    """API server, DAG processor and scheduler (LocalExecutor, SQLite) under ``root``."""

    COMPONENTS = (
        ("api-server", ["api-server", "--host", "127.0.0.1", "--workers", "1"]),
        ("dag-processor", ["dag-processor"]),
        ("scheduler", ["scheduler", "--skip-serve-logs"]),
    )

    def __init__(
        self, root: Path, registry: Path, pycache: Path | None = None, metadata: str = "postgres"
    ) -> None:
        self.root = root
        self.pycache = pycache
        self.metadata = metadata
        self.postgres: Postgres | None = None
        self.home = root / "airflow" / "home"
        self.data = root / "airflow" / "data"
        self.logs = root / "logs"
        self.registry = registry
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.session: Any = None
        self.timings: dict[str, float] = {}

    def env(self) -> dict[str, str]:
        from socialpulse.cli import airflow_env

        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({"admin": PASSWORD}))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "SOCIALPULSE_", "AIRFLOW_CONN_"))
            and k != "AIRFLOW_HOME"
        }
        env.update(airflow_env(self.home))  # this repo's dags/, plugins/, SQLite in the home
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                # paused until the run is triggered: unpausing the daily DAG first would make
                # the scheduler create the same interval's scheduled run beside ours
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "SOCIALPULSE_COMPANIES": str(self.registry),
                "SOCIALPULSE_DATA_DIR": str(self.data),
                **tuning(),
            }
        )
        if self.postgres is not None:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.postgres.url
        return python_env(env, self.pycache)

    def start(self) -> Airflow:
        """Migrate, create the pools, start the components; ready once the DAGs are stored."""
        for d in (self.home, self.data, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        if self.metadata == "postgres":
            self.postgres = Postgres(self.logs / "postgres.log")
            self.postgres.start()
            self.timings["postgres_seconds"] = time.monotonic() - t0
        self.environ = self.env()
        with (self.logs / "bootstrap.log").open("w") as log:
            boot = subprocess.run(
                [sys.executable, "-m", "socialpulse.cli", "bootstrap"],
                env=self.environ,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=STARTUP_TIMEOUT,
            )
        if boot.returncode != 0:
            raise E2EFailed(f"bootstrap (db migrate, pools) failed:\n{self.tail('bootstrap')}")
        self.timings["migrate_seconds"] = time.monotonic() - t0
        for name, args in self.COMPONENTS:
            log = (self.logs / f"{name}.log").open("w")
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, *args],
                env=self.environ,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
        t1 = time.monotonic()
        self._wait_healthy(t1 + STARTUP_TIMEOUT)
        self.timings["healthy_seconds"] = time.monotonic() - t1
        self.login()
        for dag_id in (INGEST_DAG, MODELS_DAG):
            self._wait_dag(dag_id, t1 + STARTUP_TIMEOUT)
        self.timings["processes_ready_seconds"] = time.monotonic() - t1
        return self

    def _wait_healthy(self, deadline: float) -> None:
        import requests

        while True:
            self.check_alive()
            with contextlib.suppress(requests.RequestException, ValueError):
                body = requests.get(f"{self.base}/api/v2/monitor/health", timeout=3).json()
                parts = ("metadatabase", "scheduler", "dag_processor")
                if all((body.get(p) or {}).get("status") == "healthy" for p in parts):
                    return
            if time.monotonic() > deadline:
                raise E2EFailed(f"Airflow not healthy within {STARTUP_TIMEOUT:.0f} s{self.where()}")
            time.sleep(0.5)

    def _wait_dag(self, dag_id: str, deadline: float) -> None:
        while self.session.get(f"{self.base}/api/v2/dags/{dag_id}", timeout=30).status_code != 200:
            self.check_alive()
            if time.monotonic() > deadline:
                raise E2EFailed(f"DAG {dag_id} not parsed in {STARTUP_TIMEOUT:.0f} s{self.where()}")
            time.sleep(0.5)

    def login(self) -> None:
        import requests

        resp = requests.post(
            f"{self.base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30
        )
        if resp.status_code != 201:
            raise E2EFailed(f"login failed: {resp.status_code} {resp.text[:500]}{self.where()}")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call; a GET is tried again on a server error (a busy metadata DB)."""
        import requests

        for attempt in range(1, 7):
            try:
                resp = self.session.request(
                    method, f"{self.base}/api/v2{path}", timeout=60, **kwargs
                )
            except requests.RequestException as exc:
                if method != "GET" or attempt == 6:
                    raise E2EFailed(f"{method} {path}: {exc}{self.where()}") from exc
                time.sleep(2)
                continue
            if resp.ok:
                return resp.json()
            if method != "GET" or resp.status_code < 500 or attempt == 6:
                raise E2EFailed(f"{method} {path}: {resp.status_code} {resp.text[:1000]}")
            time.sleep(2)
        raise AssertionError("unreachable")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(out)},
            )
            out += page["task_instances"]
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise E2EFailed(f"Airflow processes exited: {dead}{self.where()}")

    def roots(self) -> dict[str, int]:
        """The root process of each component, and of PostgreSQL when it holds the metadata."""
        roots = {n: p.pid for n, p in self.procs.items() if p.poll() is None}
        if self.postgres is not None and self.postgres.pid():
            roots["postgres"] = self.postgres.pid()
        return roots

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each component's process tree (the scheduler's: the
        LocalExecutor's workers and the task processes they ran; PostgreSQL's)."""
        return {n: tree_cpu(pid) for n, pid in self.roots().items()}

    def workloads(self) -> dict[str, float]:
        """Task instance id -> seconds its supervisor ran it (the scheduler's log): from the
        fork of the task process to its exit, more than the task instance's own duration."""
        out: dict[str, float] = {}
        path = self.logs / "scheduler.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if "Workload finished" in line and "workload_id=" in line:
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                with contextlib.suppress(KeyError, ValueError):
                    out[fields["workload_id"]] = float(fields["duration"])
        return out

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def where(self) -> str:
        tails = "\n".join(f"--- {n}.log ---\n{self.tail(n, 1500)}" for n in self.procs)
        return f"\nlogs: {self.logs} (tasks: {self.home / 'logs'})\n{tails}"

    def failed_task_logs(self, dag_id: str, run_id: str, chars: int = 4000) -> str:
        out = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] not in ("failed", "up_for_retry"):
                continue
            folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            found = sorted(folder.glob(f"task_id={ti['task_id']}/**/attempt=*.log"))
            text = found[-1].read_text(errors="replace")[-chars:] if found else "(no log)"
            out.append(
                f"--- {ti['task_id']} [{ti['map_index']}] ({found[-1] if found else ''})\n{text}"
            )
        return "\n".join(out)

    def stop(self) -> None:
        """SIGTERM every component's process group, SIGKILL what is left (tasks included),
        then stop PostgreSQL."""
        try:
            self._stop_components()
        finally:
            if self.postgres is not None:
                self.postgres.stop()

    def _stop_components(self) -> None:
        trees = {n: _descendants(p.pid) for n, p in self.procs.items()}
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for p in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for name, p in self.procs.items():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
            # processes of the tree that left the group (a task's own session): only those
            # still running with the same start time, i.e. the very processes we started
            for pid, started in trees[name].items():
                st = _stat(pid)
                if st is not None and st[1] == started:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


# --- 2. the Airflow run ------------------------------------------------------------------------


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _secs(a: str | None, b: str | None) -> float | None:
    start, end = _ts(a), _ts(b)
    return (end - start).total_seconds() if start and end else None


def run_through_airflow(
    af: Airflow, start: dt.datetime, end: dt.datetime, timeout: float = RUN_TIMEOUT
) -> dict[str, Any]:
    """Trigger one interval of the ingest DAG, wait for the models run; the figures."""
    run_id = f"e2e__{start:%Y-%m-%d}"
    af.api("PATCH", f"/dags/{MODELS_DAG}", json={"is_paused": False})
    cpu_before, busy_before = af.cpu(), machine_busy()
    with CpuSampler(af.roots()) as sampler:
        triggered_at, ingest, models, detected = _trigger_and_wait(af, run_id, start, end, timeout)
    cpu_after, busy_after = af.cpu(), machine_busy()
    tis = {
        INGEST_DAG: af.task_instances(INGEST_DAG, run_id),
        MODELS_DAG: af.task_instances(MODELS_DAG, models["dag_run_id"]),
    }
    task_of = {ti["id"]: ti["task_id"] for items in tis.values() for ti in items}
    ended = _ts(models["end_date"])
    return {
        "seconds": (ended - triggered_at).total_seconds() if ended else detected,
        "seconds_until_seen_done": detected,
        "ingest": _run_summary(ingest, triggered_at),
        "models": _run_summary(models, triggered_at),
        # from the end of publish_raw (the asset events) to the models run being queued
        "asset_trigger_gap_seconds": _secs(
            next(
                (t["end_date"] for t in tis[INGEST_DAG] if t["task_id"] == "publish_raw"),
                ingest["end_date"],
            ),
            models["queued_at"],
        ),
        "other_ingest_runs": [
            r["dag_run_id"] for r in af.runs(INGEST_DAG) if r["dag_run_id"] != run_id
        ],
        "cpu_seconds": {n: round(cpu_after.get(n, 0.0) - v, 1) for n, v in cpu_before.items()},
        "cpu_sampled": sampler.by_kind(task_of),
        "cpu_timeline": sampler.cpu_timeline(),
        # every process of the machine (a shared machine: others' too)
        "machine_busy_cpu_seconds": round(busy_after - busy_before, 1),
        "load_average": os.getloadavg()[0],
        "task_instances": {
            dag: [_ti(ti) for ti in sorted(items, key=lambda t: t["start_date"] or "")]
            for dag, items in tis.items()
        },
    }


def _trigger_and_wait(
    af: Airflow, run_id: str, start: dt.datetime, end: dt.datetime, timeout: float
) -> tuple[dt.datetime, dict[str, Any], dict[str, Any], float]:
    """Trigger the ingest run of [start, end) (REST), unpause its DAG, wait for it and for
    the models run it triggers: (trigger time, ingest run, models run, seconds until seen)."""
    triggered_at = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    af.api(
        "POST",
        f"/dags/{INGEST_DAG}/dagRuns",
        json={
            "dag_run_id": run_id,
            "logical_date": start.isoformat(),
            "data_interval_start": start.isoformat(),
            "data_interval_end": end.isoformat(),
            "conf": {},
        },
    )
    # the run exists at the DAG's next logical date: unpaused, the scheduler skips
    # creating a scheduled run of the same interval
    af.api("PATCH", f"/dags/{INGEST_DAG}", json={"is_paused": False})
    ingest, models, detected = _wait_both(af, run_id, t0, t0 + timeout)
    return triggered_at, ingest, models, detected


def _wait_both(
    af: Airflow, run_id: str, t0: float, deadline: float
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The ingest run and then the models run it triggered, both finished (or raises)."""
    ingest = _wait_run(af, INGEST_DAG, lambda r: r["dag_run_id"] == run_id, deadline)
    if ingest["state"] != "success":
        raise E2EFailed(
            f"{INGEST_DAG} run {run_id} {ingest['state']}{af.where()}\n"
            + af.failed_task_logs(INGEST_DAG, run_id)
        )
    models = _wait_run(af, MODELS_DAG, lambda r: True, deadline)
    detected = time.monotonic() - t0
    if models["state"] != "success":
        raise E2EFailed(
            f"{MODELS_DAG} run {models['dag_run_id']} {models['state']}{af.where()}\n"
            + af.failed_task_logs(MODELS_DAG, models["dag_run_id"])
        )
    return ingest, models, detected


def _wait_run(af: Airflow, dag_id: str, which: Any, deadline: float) -> dict[str, Any]:
    while True:
        run = next((r for r in af.runs(dag_id) if which(r)), None)
        if run is not None and run["state"] in ("success", "failed"):
            return run
        af.check_alive()
        if time.monotonic() > deadline:
            states = {}
            if run is not None:
                states = {
                    f"{t['task_id']}[{t['map_index']}]": t["state"]
                    for t in af.task_instances(dag_id, run["dag_run_id"])
                }
            raise E2EFailed(f"{dag_id} not done in time: {states}{af.where()}")
        # the times come from the runs' own timestamps: polling slowly only spares the
        # API server (whose CPU counts against the run on 2 cores)
        time.sleep(POLL_SECONDS)


def _run_summary(run: dict[str, Any], triggered_at: dt.datetime) -> dict[str, Any]:
    return {
        "run_id": run["dag_run_id"],
        "state": run["state"],
        "queued_after_trigger": (_ts(run["queued_at"]) - triggered_at).total_seconds(),
        "started_after_trigger": (_ts(run["start_date"]) - triggered_at).total_seconds(),
        "ended_after_trigger": (_ts(run["end_date"]) - triggered_at).total_seconds(),
        "seconds": _secs(run["start_date"], run["end_date"]),
    }


def _ti(ti: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ti["id"],
        "task_id": ti["task_id"],
        "map_index": ti["map_index"],
        "label": ti.get("rendered_map_index"),
        "state": ti["state"],
        "try_number": ti["try_number"],
        "pool": ti["pool"],
        "seconds": ti["duration"],
        "queued_wait": _secs(ti["queued_when"], ti["start_date"]),
        "scheduled_to_queued": _secs(ti["scheduled_when"], ti["queued_when"]),
        "start_date": ti["start_date"],
        "end_date": ti["end_date"],
    }


def per_task(tis: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task id: instances run, seconds summed, mean and max, queue wait summed."""
    out: dict[str, dict[str, float]] = {}
    for ti in tis:
        if ti["seconds"] is None or ti["state"] == "skipped":
            continue
        s = out.setdefault(ti["task_id"], {"n": 0, "sum": 0.0, "max": 0.0, "queued_wait_sum": 0.0})
        s["n"] += 1
        s["sum"] += ti["seconds"]
        s["max"] = max(s["max"], ti["seconds"])
        s["queued_wait_sum"] += ti["queued_wait"] or 0.0
    for s in out.values():
        s["mean"] = s["sum"] / s["n"]
        for k in ("sum", "max", "mean", "queued_wait_sum"):
            s[k] = round(s[k], 2)
    return out


# --- 3. the same work without Airflow ----------------------------------------------------------


def direct(registry: Path, data: Path, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The ingest and models DAGs' task bodies, called in this process in the DAGs' order.

    Runs in a process of its own (``SOCIALPULSE_*`` set before socialpulse is imported).
    """
    stages: dict[str, float] = {}
    batches: dict[str, list[float]] = {}

    def timed(stage: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        secs = time.perf_counter() - t0
        stages[stage] = stages.get(stage, 0.0) + secs
        batches.setdefault(stage, []).append(round(secs, 3))
        return out

    def imports() -> None:
        import duckdb  # noqa: F401
        import great_expectations  # noqa: F401
        import pyarrow  # noqa: F401

        from socialpulse import alerts, models, pipeline, platforms, report, validation  # noqa: F401

    timed("imports", imports)
    from socialpulse import pipeline, validation
    from socialpulse.alerts import send_new_alerts
    from socialpulse.models import SOURCE_LAYER, discover
    from socialpulse.platforms import IMPLEMENTATIONS

    run_id = f"direct__{start:%Y-%m-%d}"
    window = pipeline.run_window(start, end, end, 0)
    plan = timed("plan_run", pipeline.plan_run, run_id, platforms=IMPLEMENTATIONS)
    timed("sync_registry", pipeline.sync_registry, run_id=run_id)
    for source in plan:
        for batch in timed("batches", pipeline.planned_batches, run_id, source):
            fetched = timed("fetch", pipeline.fetch_batch, batch, window, run_id)
            validated = timed("validate", pipeline.validate_staged, fetched)
            timed("load", pipeline.load_staged, validated)
    summary = timed("record_run", pipeline.record_run, run_id)
    counts = timed("publish_raw", pipeline.raw_table_counts)
    timed("check_run", pipeline.check_run, summary)
    timed("data_docs", validation.build_docs)
    timed("cleanup_staging", pipeline.cleanup_staging, run_id)
    # the models DAG
    timed("snapshot", pipeline.build_source_snapshot)
    for model in discover():
        if model.layer != SOURCE_LAYER:
            timed(model.layer, pipeline.build_model, model.qualified)
    timed("publish_analytics_copy", pipeline.publish_analytics)
    timed("build_report", pipeline.build_reports)
    # send_alerts with no channel configured (none is in the Airflow run either)
    timed("send_alerts", send_new_alerts, {}, run_id)
    return {
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "calls": {k: v for k, v in batches.items() if len(v) > 1},
        "rows": sum(counts.values()),
        "raw_rows": counts,
        "loaded": summary["loaded"],
        "batches": len(summary["batches"]),
    }


def peak_concurrency(tis: list[dict[str, Any]]) -> int:
    """The most task instances running at the same moment."""
    events = []
    for ti in tis:
        if ti["start_date"] and ti["end_date"] and ti["state"] != "skipped":
            events += [(_ts(ti["start_date"]), 1), (_ts(ti["end_date"]), -1)]
    peak = running = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def run_direct(
    registry: Path, data: Path, start: dt.datetime, end: dt.datetime, pycache: Path | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALPULSE_")}
    env = python_env(env, pycache)
    env.update({"SOCIALPULSE_COMPANIES": str(registry), "SOCIALPULSE_DATA_DIR": str(data)})
    env.update(tuning())
    proc = subprocess.run(
        [sys.executable, __file__, "direct", str(registry), str(data)]
        + [start.isoformat(), end.isoformat()],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    if proc.returncode != 0:
        raise E2EFailed(f"the direct baseline failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def raw_rows(warehouse: Path) -> dict[str, int]:
    """The raw tables' rows in a (closed) warehouse, counted in a process of its own."""
    code = (
        "import json, sys; from socialpulse.warehouse import connect, table_counts\n"
        "with connect(sys.argv[1], read_only=True) as con: print(json.dumps(table_counts(con)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(warehouse)], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise E2EFailed(f"counting the rows of {warehouse} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def stopped_on_sigterm() -> Any:
    """SIGTERM raises :class:`E2EFailed` (so ``finally`` stops Airflow and PostgreSQL)
    instead of ending the process on the spot; only in the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise E2EFailed("terminated (SIGTERM): Airflow and PostgreSQL are being stopped")

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- 4. the figures ----------------------------------------------------------------------------


def e2e(
    companies: int, folder: Path, pycache: Path | None = None, metadata: str | None = None
) -> dict[str, Any]:
    """One daily run of ``companies`` companies through Airflow, against the same work done
    directly; see the module's docstring. ``folder`` keeps the logs.

    ``pycache``: cache compiled modules there (warmed first) for every process; by default
    the environment decides (``make`` sets PYTHONDONTWRITEBYTECODE=1, and the venv has no
    .pyc: each process compiles Airflow, Great Expectations, pandas ... again).
    ``metadata``: the metadata DB, ``postgres`` (the default where PostgreSQL is installed:
    the LocalExecutor layout of deploy/docker-compose.local.yaml) or ``sqlite`` (what
    ``make airflow`` uses; at 1,000 companies its scheduler died of "database is locked").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    registry = write_registry(companies, folder)
    start, end = one_day()
    warm = warm_pycache(pycache, folder / "warm-home") if pycache is not None else None
    metadata = metadata or ("postgres" if Postgres.bin_dir() else "sqlite")
    af = Airflow(folder, registry, pycache, metadata)
    t0 = time.monotonic()
    with stopped_on_sigterm():
        try:
            af.start()
            startup = time.monotonic() - t0
            run = run_through_airflow(af, start, end)
        finally:
            af.stop()
    counts = raw_rows(af.data / "warehouse.duckdb")
    base = run_direct(registry, folder / "direct" / "data", start, end, pycache)
    supervised = af.workloads()
    tis = [ti for items in run["task_instances"].values() for ti in items]
    ran = [ti for ti in tis if ti["seconds"] is not None and ti["state"] != "skipped"]
    direct_seconds = sum(base["stages"].values())
    seconds = run["seconds"]
    details = folder / "e2e-task-instances.json"
    details.write_text(json.dumps(run["task_instances"], indent=1))
    return {
        "seconds": round(seconds, 1),
        "rows": sum(counts.values()),
        "companies": companies,
        "tasks": len(ran),
        "task_seconds_sum": round(sum(ti["seconds"] for ti in ran), 1),
        "direct_seconds": round(direct_seconds, 1),
        "direct_stages": base["stages"],
        "overhead_seconds": round(seconds - direct_seconds, 1),
        "overhead_ratio": round(seconds / direct_seconds, 2),
        "startup_seconds": round(startup, 1),
        "target_seconds": TARGET_SECONDS,
        # the details
        "interval": [start.isoformat(), end.isoformat()],
        "raw_rows": counts,
        "direct_rows": base["rows"],
        "batches": base["batches"],
        "task_instances_total": len(tis),
        "tasks_skipped": sum(1 for ti in tis if ti["state"] == "skipped"),
        "retries": sum(1 for ti in tis if (ti["try_number"] or 1) > 1),
        "queued_wait_sum": round(sum(ti["queued_wait"] or 0.0 for ti in ran), 1),
        # fork of the task process to its exit, as the supervisor saw it
        "supervised_seconds_sum": round(sum(supervised.get(ti["id"], 0.0) for ti in ran), 1),
        "peak_running_tasks": peak_concurrency(tis),
        "ingest": run["ingest"],
        "models": run["models"],
        "asset_trigger_gap_seconds": run["asset_trigger_gap_seconds"],
        "per_task": {dag: per_task(items) for dag, items in run["task_instances"].items()},
        "direct_calls": base["calls"],
        "cpu_seconds": run["cpu_seconds"],
        "cpu_sampled": run["cpu_sampled"],
        "cpu_timeline": run["cpu_timeline"],
        "machine_busy_cpu_seconds": run["machine_busy_cpu_seconds"],
        "load_average": run["load_average"],
        "bytecode": bytecode(pycache, warm),
        "startup": {k: round(v, 1) for k, v in af.timings.items()},
        "other_ingest_runs": run["other_ingest_runs"],
        "cores": os.cpu_count(),
        "metadata_db": metadata,
        "settings": tuning(),
        "logs": str(af.logs),
        "task_instances_file": str(details),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "direct":
        registry, data, start, end = argv[1:5]
        result = direct(
            Path(registry),
            Path(data),
            dt.datetime.fromisoformat(start),
            dt.datetime.fromisoformat(end),
        )
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=40)
    parser.add_argument("--folder", type=Path, default=None, help="kept (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    parser.add_argument(
        "--pycache",
        type=Path,
        default=None,
        help="cache compiled modules here (PYTHONPYCACHEPREFIX)",
    )
    parser.add_argument("--metadata", choices=("postgres", "sqlite"), default=None)
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="socialpulse-e2e-"))
    result = e2e(args.companies, folder, args.pycache, args.metadata)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
