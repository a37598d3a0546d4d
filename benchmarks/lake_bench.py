"""The ``load`` and ``models`` stages on a DuckLake warehouse (catalog in PostgreSQL, Parquet
files in a folder), beside the DuckDB file: ``load_lake`` and ``models_lake`` in stages.py.

They run the very code of :func:`stages.load` and :func:`stages.models`, with
``socialpulse.warehouse.connect`` pointed at the lake for the stage (whatever file path the
stage names), so both warehouses see the same batches, transactions and SQL.

Each stage starts its own PostgreSQL on a free loopback port: its cluster in
``<folder>/lake/catalog`` (created by ``load_lake``, reused by ``models_lake``), its log in
``<folder>/lake/postgres.log``, the lake's Parquet files in ``<folder>/lake/data``. The
server is stopped when the stage ends, also on error. Its startup is ``catalog_seconds``,
outside ``seconds``. PostgreSQL keeps its default durability (fsync on), as in production.

As root, PostgreSQL runs as an unprivileged user (``postgres``, else ``nobody``), like
tests/integration/topology.py (not imported: it imports tests/conftest.py and pytest).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

if TYPE_CHECKING:
    from collections.abc import Iterator

    from stages import Size

    from socialpulse.warehouse import WarehouseTarget

#: the catalog's database and (trusted, loopback-only) user
DATABASE = "lake"
USER = "socialpulse"
TIMEOUT = 120


def load_lake(size: Size, folder: Path) -> dict[str, Any]:
    """:func:`stages.load` on a new DuckLake warehouse (a previous one is removed)."""
    import stages

    shutil.rmtree(folder / "lake", ignore_errors=True)
    return _on_lake(folder, lambda: stages.load(size, folder))


def models_lake(size: Size, folder: Path) -> dict[str, Any]:
    """:func:`stages.models` on the DuckLake warehouse ``load_lake`` left in ``folder``."""
    import stages

    if not (folder / "lake" / "catalog" / "PG_VERSION").exists():
        raise SystemExit(f"no DuckLake catalog in {folder / 'lake'}: run the load_lake stage first")
    return _on_lake(folder, lambda: stages.models(size, folder))


def _on_lake(folder: Path, stage: Any) -> dict[str, Any]:
    from socialpulse import warehouse

    connect = warehouse.connect
    opened: list[bool] = []

    def lake_connect(path: str | Path | None = None, read_only: bool = False) -> Any:
        opened.append(True)
        return connect(None, read_only=read_only)  # None: warehouse_target(), the lake

    start = time.perf_counter()
    with catalog(folder / "lake") as target:
        catalog_secs = time.perf_counter() - start
        with (
            mock.patch.object(warehouse, "warehouse_target", lambda: target),
            mock.patch.object(warehouse, "connect", lake_connect),
        ):
            result = stage()
    if not opened:
        raise RuntimeError("the stage never opened the warehouse: it did not run on the lake")
    return {**result, "catalog_seconds": catalog_secs}


@contextlib.contextmanager
def catalog(root: Path) -> Iterator[WarehouseTarget]:
    """A PostgreSQL server for the DuckLake catalog in ``root`` (created when new), running
    while in the block; the warehouse target naming it and the data folder beside."""
    from socialpulse.warehouse import WarehouseTarget

    server = _Postgres(root)
    try:
        server.start()
        yield WarehouseTarget(
            "ducklake",
            catalog={
                "host": "127.0.0.1",
                "port": str(server.port),
                "dbname": DATABASE,
                "user": USER,
            },
            catalog_conn_id="bench",
            data_path=str(root / "data"),
        )
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        raise SystemExit(
            "the DuckLake stages need PostgreSQL (initdb, pg_ctl) for the catalog: "
            "install the apt package postgresql (`apt-get install postgresql`)"
        )
    return Path(initdb).parent


def _run_as() -> dict[str, Any]:
    """subprocess arguments running PostgreSQL as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    raise SystemExit("running as root and no unprivileged user (postgres, nobody) for PostgreSQL")


class _Postgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "catalog"
        self.port = free_port()
        self.bin = _pg_bin()
        self.run_as = _run_as()
        self.started = False

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=self.root,
            **self.run_as,
        )

    def _fail(self, what: str, proc: subprocess.CompletedProcess[str]) -> None:
        log = self.root / "postgres.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        hint = " (as root it runs as an unprivileged user: every folder above must be readable)"
        raise SystemExit(
            f"PostgreSQL {what} failed in {self.root}{hint if self.run_as else ''}:\n"
            f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}{tail}"
        )

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            os.chown(self.root, self.run_as["user"], self.run_as["group"])
        new = not (self.data / "PG_VERSION").exists()
        if new:
            init = self._run(
                str(self.bin / "initdb"),
                *("-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"),
            )
            if init.returncode:
                self._fail("initdb", init)
        # loopback only, no Unix socket (a long folder name would exceed its path limit)
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self.started = True  # from here on, stop() tries even if the start fails half way
        start = self._run(
            str(self.bin / "pg_ctl"),
            *("-D", str(self.data), "-o", options, "-l", str(self.root / "postgres.log")),
            *("-w", "-t", str(TIMEOUT), "start"),
        )
        if start.returncode:
            self._fail("start", start)
        if new:
            created = self._run(
                str(self.bin / "createdb"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE),
            )
            if created.returncode:
                self._fail("createdb", created)

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
