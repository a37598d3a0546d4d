"""The ``fetch`` stage: the Mastodon connector against the local emulator (benchmarks/emulator.py).

Both functions run the real connector through its public entry point
(``get_platform("mastodon", context).fetch(accounts, window)``) with socialpulse's
``HttpClient`` (default ``HttpPolicy``) over real HTTP on 127.0.0.1, and return a
JSON-serialisable dict. Every account of the emulator costs 12 requests: the lookup,
three timeline pages (80 of its 100 statuses lie in the window) and eight threads.

* :func:`fetch_limited`: a scaled-down Mastodon limit (300 / 5 min -> 60 / 10 s), 50 ms
  per request; how much of the limit the client's pacing uses, and how many 429s it gets.
* :func:`fetch_unlimited`: no limit; the throughput against the most the production
  concurrency allows (``concurrency / latency``).

Either raises :class:`FetchBenchError` when the connector recorded a fetch error.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from emulator import NOW, MastodonEmulator

if TYPE_CHECKING:
    from pathlib import Path

    from socialpulse.platforms.base import AccountRef, FetchResult

#: requests the connector makes per emulated account (lookup, 3 pages, 8 threads)
REQUESTS_PER_ACCOUNT = 12
#: per-request latency: a platform answering from another data centre (a European Mastodon
#: instance answers in 50-150 ms). At 20 ms, loopback-like, the client's own ~3.5 ms of CPU
#: per request (requests, urllib3, the JSON) caps the no-limit ratio near 0.85, and a loaded
#: 2-core machine brought it to 0.72 (docs/benchmarks.md)
LATENCY = 0.05
#: (limit, window seconds, accounts): full spans 5-6 windows (~55 s), quick 3 (~6 s)
LIMITED = {False: (60, 10.0, 25), True: (20, 2.0, 5)}
#: accounts of the run without a limit: full ~600 requests (~13 s), quick 60
UNLIMITED_ACCOUNTS = {False: 50, True: 5}


class FetchBenchError(RuntimeError):
    """The connector did not read the emulated accounts cleanly."""


def _window() -> Any:
    from socialpulse.platforms.base import FetchWindow

    # since = NOW - 20 days: statuses 0..79 of each account (6 h apart, the newest 3 h old)
    return FetchWindow(NOW - dt.timedelta(days=1), NOW, dt.timedelta(days=20))


def _refs(emu: MastodonEmulator) -> list[AccountRef]:
    from socialpulse.platforms.base import AccountRef

    return [AccountRef(f"co-{i:04d}", emu.handle_of(i)) for i in range(emu.accounts)]


def _fetch(refs: list[AccountRef], folder: Path) -> FetchResult:
    """One fetch task: a client and a connector of its own, as one Airflow task has."""
    from socialpulse.http import HttpClient, HttpPolicy
    from socialpulse.platforms import get_platform
    from socialpulse.platforms.base import PlatformContext

    client = HttpClient(policy=HttpPolicy())
    context = PlatformContext(state_dir=folder, http=client, clock=lambda: NOW)
    try:
        return get_platform("mastodon", context).fetch(refs, _window())
    finally:
        client.session.close()


def _check(results: list[FetchResult], emu: MastodonEmulator) -> None:
    errors = [e for r in results for e in r.errors]
    if errors:
        shown = "; ".join(f"{e.handle}: {e.error}" for e in errors[:3])
        raise FetchBenchError(
            f"the connector recorded {len(errors)} fetch error(s) against the emulator: {shown}"
        )
    expected = REQUESTS_PER_ACCOUNT * emu.accounts
    if emu.requests - emu.throttled != expected:
        raise FetchBenchError(
            f"{emu.requests - emu.throttled} requests answered, expected {expected} "
            f"({REQUESTS_PER_ACCOUNT} per account): the emulator's data and the bench disagree"
        )


def fetch_limited(quick: bool, folder: Path) -> dict[str, Any]:
    """One fetch task (the pool's one slot) against a rate-limited emulator.

    ``used`` is the share of the limit the client used: the requests answered within the
    limit in the windows lying *wholly* inside the run, over ``limit`` times their number.
    The client runs at full speed until its reserve, then waits for the reset, so requests
    come in bursts at the start of each window; a run starts and ends somewhere inside a
    window (the windows are aligned to the clock, as Mastodon's). Counting the partial
    first and last windows would distort the figure either way: a run ending just after a
    burst would show a whole window's requests in a fraction of its time (over 100%), one
    ending just after a reset almost nothing. Whole windows measure the steady state a
    long fetch sees. ``requests_per_second`` is over the same windows; ``seconds`` and
    ``requests`` are the whole run's.
    """
    limit, window, accounts = LIMITED[quick]
    folder.mkdir(parents=True, exist_ok=True)
    with MastodonEmulator(accounts, limit=limit, window=window, latency=LATENCY) as emu:
        emu.prepare()
        start, t0 = emu.clock(), time.perf_counter()
        result = _fetch(_refs(emu), folder)
        seconds, end = time.perf_counter() - t0, emu.clock()
    _check([result], emu)
    whole = emu.windows(start, end)
    if not whole:
        raise FetchBenchError(f"the run ({seconds:.1f} s) did not span one whole window")
    answered = sum(ok for _, ok, _ in whole)
    rps = answered / (len(whole) * window)
    return {
        "seconds": seconds,
        "rows": emu.requests,
        "requests": emu.requests,
        "http_429": emu.throttled,
        "limit": limit,
        "window_seconds": window,
        "latency_seconds": LATENCY,
        "limit_per_second": limit / window,
        "requests_per_second": rps,
        "used": rps / (limit / window),
        "whole_windows": len(whole),
        "accounts": accounts,
    }


def fetch_unlimited(quick: bool, folder: Path) -> dict[str, Any]:
    """The emulator without a limit, at production's concurrency: the Airflow pool's slots
    for Mastodon (``POOLS``), one fetch task per slot, each reading its share of the
    accounts one after another with a client of its own (threads here, processes in
    Airflow). The most those tasks can do is one request per task and ``latency``:
    ``baseline_rps = concurrency / latency``; ``ratio`` is the measured throughput over it
    (what the client and the connector cost per request on top of the server's latency).
    """
    from socialpulse.config import FETCH_POOLS, POOLS

    concurrency = POOLS[FETCH_POOLS["mastodon"]][0]
    accounts = UNLIMITED_ACCOUNTS[quick]
    folder.mkdir(parents=True, exist_ok=True)
    with MastodonEmulator(accounts, limit=None, latency=LATENCY) as emu:
        emu.prepare()
        refs = _refs(emu)
        shares = [refs[n::concurrency] for n in range(concurrency)]
        with ThreadPoolExecutor(concurrency) as pool:
            t0 = time.perf_counter()
            results = list(pool.map(lambda share: _fetch(share, folder), shares))
            seconds = time.perf_counter() - t0
    _check(results, emu)
    rps = emu.requests / seconds
    baseline = concurrency / LATENCY
    return {
        "seconds": seconds,
        "rows": emu.requests,
        "requests": emu.requests,
        "concurrency": concurrency,
        "latency_seconds": LATENCY,
        "requests_per_second": rps,
        "baseline_rps": baseline,
        "ratio": rps / baseline,
        "accounts": accounts,
    }
