"""The ``fetch`` benchmark's Mastodon emulator (benchmarks/emulator.py) and its stage functions.

The emulator's rate limit runs on an injected clock here (deterministic windows); the
connector runs against it for real. No assertion on how fast anything is.
"""

from __future__ import annotations

import collections
import importlib
import sys
import time
from pathlib import Path

import pytest
import requests

from socialpulse.platforms.base import FetchError, FetchResult

# the bench runner runs with benchmarks/ on sys.path: so do these tests
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
emulator = importlib.import_module("emulator")
fetch_bench = importlib.import_module("fetch_bench")
MastodonEmulator = emulator.MastodonEmulator


class Clock:
    """The emulator's clock, set by the test (epoch seconds)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def lookup(emu, session: requests.Session, user: str = "company0000") -> requests.Response:
    return session.get(f"{emu.base}/api/v1/accounts/lookup", params={"acct": user}, timeout=5)


def test_remaining_counts_down_then_429_with_the_headers_until_the_reset():
    clock = Clock(1_000_005.0)  # inside the window [1_000_000, 1_000_010)
    with MastodonEmulator(1, limit=3, window=10.0, clock=clock) as emu, requests.Session() as s:
        answers = [lookup(emu, s) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
        for r in answers:
            assert r.headers["X-RateLimit-Limit"] == "3"
            # the window's end, ISO with microseconds as Mastodon sends it
            assert r.headers["X-RateLimit-Reset"] == "1970-01-12T13:46:50.000000Z"
        assert answers[3].json() == {"error": "Too many requests"}
        assert emu.requests == 4 and emu.throttled == 1
        clock.t = 1_000_010.0  # the next window
        again = lookup(emu, s)
        assert again.status_code == 200 and again.headers["X-RateLimit-Remaining"] == "2"
        assert again.headers["X-RateLimit-Reset"] == "1970-01-12T13:47:00.000000Z"
        # every response carries the headers, a 404 too
        missing = lookup(emu, s, "nobody")
        assert missing.status_code == 404 and missing.headers["X-RateLimit-Remaining"] == "1"


def test_without_a_limit_no_rate_limit_headers_and_no_429():
    with MastodonEmulator(1, limit=None) as emu, requests.Session() as s:
        answers = [lookup(emu, s) for _ in range(5)]
    assert {r.status_code for r in answers} == {200}
    assert not any(k.lower().startswith("x-ratelimit") for k in answers[0].headers)
    assert emu.throttled == 0 and emu.requests == 5


def test_the_latency_is_applied_to_every_answer():
    with MastodonEmulator(1, limit=None, latency=0.15) as emu, requests.Session() as s:
        for user in ("company0000", "nobody"):
            start = time.perf_counter()
            lookup(emu, s, user)
            assert time.perf_counter() - start >= 0.15


def test_whole_windows_only_count():
    clock = Clock(5.0)
    with MastodonEmulator(1, limit=2, window=10.0, clock=clock) as emu, requests.Session() as s:
        for t in (5.0, 12.0, 13.0, 14.0, 25.0):  # window 0, 1 (2 ok, 1 refused), 2
            clock.t = t
            lookup(emu, s)
    # [5, 25] holds one whole window, [10, 20): the partial first and last are left out
    assert emu.windows(5.0, 25.0) == [(10.0, 2, 1)]
    assert emu.windows(0.0, 30.0) == [(0.0, 1, 0), (10.0, 2, 1), (20.0, 1, 0)]


def test_statuses_come_in_pages_linked_until_a_short_one():
    with MastodonEmulator(1, limit=None) as emu, requests.Session() as s:
        account = lookup(emu, s).json()
        url = f"{emu.base}/api/v1/accounts/{account['id']}/statuses?limit=40"
        sizes, ids = [], []
        while url:
            r = s.get(url, timeout=5)
            sizes.append(len(r.json()))
            ids += [int(x["id"]) for x in r.json()]
            url = r.links.get("next", {}).get("url")
    assert sizes == [40, 40, 20]  # a next link after a full page only, as Mastodon
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 100


def test_the_connector_reads_the_emulated_accounts_completely(tmp_path):
    with MastodonEmulator(2, limit=None) as emu:
        result = fetch_bench._fetch(fetch_bench._refs(emu), tmp_path)
        requests_made = emu.requests
    assert result.errors == [] and result.warnings == []
    assert requests_made == 2 * fetch_bench.REQUESTS_PER_ACCOUNT  # lookup, 3 pages, 8 threads
    rows = result.rows
    assert len(rows["account_snapshots"]) == 2
    # statuses 0..79 in the window (6 h apart, the newest 3 h old, since = 20 days back):
    # k % 10 == 0 originals with replies (8); k % 7 == 3 reblogs (3, 17, .., 73: 10);
    # k % 5 == 4 replies (4, 9, .., 79 but 24 and 59, reblogs: 14); 56 originals in all
    kinds = collections.Counter((r["account_id"], r["kind"]) for r in rows["post_observations"])
    for account_id in {r["account_id"] for r in rows["account_snapshots"]}:
        assert kinds[account_id, "original"] == 56
        assert kinds[account_id, "repost"] == 10
        assert kinds[account_id, "reply"] == 14
    # threads under k = 0, 10, .., 70: 2, 3, 4, 2, 3, 4, 2, 3 direct replies (23) and
    # the company's answer to the first of each (8): 31 per account
    replies = rows["thread_replies"]
    assert len(replies) == 62
    assert sum(r["author_is_company"] for r in replies) == 16


def test_fetch_errors_are_not_benchmarked():
    failed = FetchResult()
    failed.errors.append(FetchError("mastodon", "co-0000", "h", "HttpError: boom"))
    with (
        MastodonEmulator(1, limit=None) as emu,
        pytest.raises(fetch_bench.FetchBenchError, match=r"1 fetch error.*h: HttpError: boom"),
    ):
        fetch_bench._check([failed], emu)


def test_the_quick_limited_run_stays_under_the_limit(tmp_path):
    out = fetch_bench.fetch_limited(True, tmp_path)
    assert out["http_429"] == 0
    assert out["requests"] == out["rows"] == 5 * fetch_bench.REQUESTS_PER_ACCOUNT
    assert out["limit"] == 20 and out["window_seconds"] == 2.0
    assert out["whole_windows"] >= 1 and 0 < out["used"] <= 1


def test_the_quick_unlimited_run_reports_against_the_pools_concurrency(tmp_path):
    from socialpulse.config import POOLS

    out = fetch_bench.fetch_unlimited(True, tmp_path)
    assert out["concurrency"] == POOLS["socialpulse_mastodon"][0]
    assert out["requests"] == 5 * fetch_bench.REQUESTS_PER_ACCOUNT
    assert out["baseline_rps"] == out["concurrency"] / out["latency_seconds"]
    assert out["ratio"] == pytest.approx(out["requests_per_second"] / out["baseline_rps"])
