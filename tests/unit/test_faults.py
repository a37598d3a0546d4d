"""Disks and permanent errors: a full or read-only disk fails at once, with its real cause,
and leaves nothing half-written behind (issue: faults and bad input)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import subprocess
import time
from typing import TYPE_CHECKING

import duckdb
import pytest

from socialpulse import pipeline
from socialpulse.platforms.base import AccountRef, FetchWindow
from socialpulse.platforms.sample import SamplePlatform
from socialpulse.warehouse import connect, load_batch, publish_analytics_copy
from tests.conftest import FIXTURES

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "512k", read_only: bool = False) -> Iterator[Path]:
    """A real small (or read-only) file system at ``path``; the test is skipped where this
    machine cannot mount one (not root, no mount namespace)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): simulated tests cover it")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def big_batch() -> dict:
    """About 100,000 rows: several MB in DuckDB, far more than the small file system."""
    refs = [AccountRef(f"c{i}", f"h{i}", {"profile": "corporation"}) for i in range(10)]
    window = FetchWindow(END - dt.timedelta(days=20), END)
    return SamplePlatform().fetch(refs, window).tables()


# --- a full disk ------------------------------------------------------------------------------


class FailingCommit:
    """A DuckDB connection whose commit fails as on a full disk; rollback then has no
    transaction left (what DuckDB does after a failed commit)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, *args: object):
        if sql == "commit":
            self.con.execute("rollback")
            raise duckdb.IOException('Could not write file "w.duckdb": No space left on device')
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.con, name)


def test_a_failed_commit_keeps_its_cause(tmp_path):
    # (on a real full tmpfs DuckDB fails in the checkpoint of the commit, and its error
    # already names the disk; a commit whose own write fails is what this guards)
    with connect(tmp_path / "w.duckdb") as con:
        with pytest.raises(duckdb.IOException, match="No space left on device"):
            load_batch(FailingCommit(con), "b", big_batch())  # type: ignore[arg-type]
        assert con.execute("select count(*) from raw.post_observations").fetchone() == (0,)


def test_a_failed_publish_leaves_no_temp_file_behind(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        load_batch(con, "big", big_batch())
        with tmpfs(tmp_path / "tiny"):
            dest = tmp_path / "tiny" / "analytics.duckdb"
            for _ in range(2):  # a retry must not leave a second one either
                with pytest.raises(duckdb.Error, match="No space left on device"):
                    publish_analytics_copy(con, dest)
            assert sorted(p.name for p in dest.parent.iterdir()) == []


def test_a_failed_publish_leaves_no_temp_file_behind_simulated(tmp_path, monkeypatch):
    class FailingCopy(FailingCommit):
        def execute(self, sql: str, *args: object):
            if sql.startswith("copy from database"):
                # what a full disk does half-way: the new file and its log exist, then fail
                raise duckdb.IOException("No space left on device")
            return self.con.execute(sql, *args)

    with connect(tmp_path / "w.duckdb") as con:
        load_batch(con, "big", big_batch())
        dest = tmp_path / "copy" / "analytics.duckdb"
        with pytest.raises(duckdb.IOException):
            publish_analytics_copy(FailingCopy(con), dest)  # type: ignore[arg-type]
    assert sorted(p.name for p in dest.parent.iterdir()) == []


# --- permanent errors fail at once --------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the disk"),
        (OSError(errno.EROFS, "Read-only file system"), "the file system is read-only"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (duckdb.IOException('Could not write "x": No space left on device'), "no space left"),
        (duckdb.IOException("Cannot open file: Read-only file system"), "read-only"),
    ],
)
def test_disk_errors_fail_the_task_at_once(error, cause):
    from airflow.sdk.exceptions import AirflowFailException

    from socialpulse.orchestration import fail_fast

    with pytest.raises(AirflowFailException, match=cause), fail_fast():
        raise RuntimeError("loading the batch failed") from error


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("read timed out"),
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        duckdb.IOException('Could not set lock on file "w.duckdb": Conflicting lock is held'),
    ],
)
def test_temporary_errors_are_left_to_the_retries(error):
    from socialpulse.orchestration import fail_fast

    with pytest.raises(type(error)), fail_fast():
        raise error


def test_a_platform_without_a_connector_fails_at_once():
    from airflow.sdk.exceptions import AirflowFailException

    from socialpulse.orchestration import fail_fast
    from socialpulse.platforms import get_platform

    with (
        pytest.raises(AirflowFailException, match="no connector for platform 'tiktok'"),
        fail_fast(),
    ):
        get_platform("tiktok")


def test_a_read_only_data_folder_fails_the_plan_with_its_cause(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from socialpulse.orchestration import fail_fast

    with tmpfs(tmp_path / "ro", read_only=True) as data:
        monkeypatch.setenv("SOCIALPULSE_DATA_DIR", str(data))
        with (
            pytest.raises(AirflowFailException, match="the file system is read-only"),
            fail_fast(),
        ):
            pipeline.plan_run("run-ro", str(FIXTURES / "registry" / "small.yaml"))


# --- stale staging ---------------------------------------------------------------------------


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(data_dir):
    stale = data_dir / "staging" / "manual__2026-05-01T00_00_00"
    recent = data_dir / "staging" / "scheduled__2026-06-01T00_00_00"
    for folder in (stale, recent):
        (folder / "sample-b000").mkdir(parents=True)
        (folder / "sample-b000" / "posts.parquet").write_bytes(b"x")
    old = time.time() - 14 * 3600  # the ingest DAG gives a run 12 hours at most
    for path in (stale, stale / "sample-b000", stale / "sample-b000" / "posts.parquet"):
        os.utime(path, (old, old))
    pipeline.plan_run("run-new", str(FIXTURES / "registry" / "small.yaml"))
    left = sorted(p.name for p in (data_dir / "staging").iterdir())
    assert left == ["run-new", "scheduled__2026-06-01T00_00_00"]


def test_http_limits_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("SOCIALPULSE_HTTP_DEADLINE_SECONDS", "7")
    monkeypatch.setenv("SOCIALPULSE_HTTP_MAX_BYTES", "65536")
    monkeypatch.setenv("SOCIALPULSE_ACCOUNT_BUDGET_SECONDS", "90")
    policy = pipeline.http_policy()
    assert (policy.deadline, policy.max_bytes, policy.account_budget) == (7.0, 65536, 90.0)
    monkeypatch.setenv("SOCIALPULSE_HTTP_MAX_BYTES", "12")
    with pytest.raises(ValueError, match="SOCIALPULSE_HTTP_MAX_BYTES=12 must be at least 1024"):
        pipeline.http_policy()


def test_the_size_cap_of_the_settings_reaches_the_connector(data_dir, httpserver, monkeypatch):
    """A Mastodon lookup of 4 KB against a cap of 1 KB set in the environment: the account
    fails naming the cap; the batch is staged with that error, nothing else breaks."""
    import json

    monkeypatch.setenv("SOCIALPULSE_HTTP_MAX_BYTES", "1024")
    account = {"id": "1", "username": "bakery", "followers_count": 5, "note": "x" * 4096}
    httpserver.expect_request("/api/v1/accounts/lookup").respond_with_data(
        json.dumps(account), content_type="application/json"
    )
    handle = f"{httpserver.url_for('/').rstrip('/')}/@bakery"
    batch = {
        "platform": "mastodon",
        "batch_no": 0,
        "accounts": [{"company_id": "b", "handle": handle, "options": {}, "probes": []}],
    }
    window = pipeline.fetch_window(END - dt.timedelta(days=1), END)
    staged = pipeline.fetch_batch(batch, window, "run-cap")
    [error] = staged["errors"]
    assert (error["company_id"], error["severity"]) == ("b", "error")
    assert "larger than the cap of 1024 bytes" in error["error"]
    assert staged["rows"] == {}
