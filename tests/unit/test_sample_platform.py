"""The sample platform: deterministic, window-additive, consistent raw rows; the sample registry."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from socialpulse.platforms import get_platform
from socialpulse.platforms.base import AccountRef, FetchResult, FetchWindow
from socialpulse.platforms.sample import SamplePlatform, boundaries
from socialpulse.records import EARLIEST_TIMESTAMP, RAW_SCHEMAS, to_arrow
from socialpulse.registry import load_registry

SAMPLE_YAML = Path(__file__).resolve().parents[2] / "include" / "companies" / "sample.yaml"
UTC = dt.UTC
DAY = dt.timedelta(days=1)
START = dt.datetime(2025, 3, 1, tzinfo=UTC)
OBSERVED_TABLES = ("account_snapshots", "post_observations", "thread_replies")
TIMESTAMPS = {
    "account_snapshots": ("observed_at",),
    "post_observations": ("created_at", "observed_at"),
    "thread_replies": ("created_at", "observed_at"),
    "probes": ("sent_at", "answered_at", "observed_at"),
}

ACCOUNTS = [
    AccountRef("baeckerei-test", "baeckerei-test", {"profile": "craft"}),
    AccountRef("tischlerei-test", "tischlerei.test", {"profile": "craft"}),
    AccountRef("bank-test", "bank_test", {"profile": "corporation"}),
    AccountRef("airline-test", "airline-test", {"profile": "corporation"}),
]


def window(start: dt.datetime, days: int, lookback_days: int = 28) -> FetchWindow:
    return FetchWindow(start, start + days * DAY, dt.timedelta(days=lookback_days))


def canonical(result: FetchResult) -> str:
    """Rows and errors as one JSON text (datetimes with their offset)."""
    body = {
        "rows": result.rows,
        "errors": [e.__dict__ for e in result.errors],
    }
    return json.dumps(body, default=lambda v: v.isoformat(), sort_keys=True)


def sort_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def registry_accounts() -> list[AccountRef]:
    reg = load_registry(SAMPLE_YAML)
    return [AccountRef(c.id, a.handle, dict(a.options)) for c, a in reg.accounts("sample")]


@pytest.fixture(scope="module")
def sixty_days() -> FetchResult:
    """The sample registry's accounts over 60 days (shared by the read-only tests)."""
    return SamplePlatform(seed=0).fetch(registry_accounts(), window(START, 60))


# --- window semantics and determinism ---------------------------------------------------


def test_daily_run_observes_once_at_the_interval_end() -> None:
    d = dt.datetime(2025, 4, 10, tzinfo=UTC)
    assert boundaries(FetchWindow(d, d + DAY)) == [d + DAY]
    assert boundaries(FetchWindow(d + dt.timedelta(hours=3), d + dt.timedelta(hours=20))) == []
    assert boundaries(FetchWindow(d - dt.timedelta(hours=1), d + dt.timedelta(hours=1))) == [d]
    assert len(boundaries(window(d, 63))) == 63

    result = SamplePlatform().fetch(ACCOUNTS, FetchWindow(d, d + DAY))
    for table in OBSERVED_TABLES + ("probes",):
        assert result.rows[table], table
        assert {r["observed_at"] for r in result.rows[table]} == {d + DAY}, table
    assert result.count("account_snapshots") == len(ACCOUNTS)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    w = window(START, 10)
    first = SamplePlatform(seed=7).fetch(ACCOUNTS, w)
    second = SamplePlatform(seed=7).fetch(ACCOUNTS, w)
    assert canonical(first) == canonical(second)
    assert canonical(SamplePlatform(seed=8).fetch(ACCOUNTS, w)) != canonical(first)
    # the pipeline's factory builds the default seed
    default = SamplePlatform(seed=0).fetch(ACCOUNTS, w)
    assert canonical(get_platform("sample").fetch(ACCOUNTS, w)) == canonical(default)


def test_same_rows_in_a_separate_process_with_another_hash_seed() -> None:
    w = window(START, 5)
    script = (
        "import datetime as dt, json, sys\n"
        "from socialpulse.platforms.base import AccountRef, FetchWindow\n"
        "from socialpulse.platforms.sample import SamplePlatform\n"
        "accounts = [AccountRef(**a) for a in json.loads(sys.argv[1])]\n"
        "w = FetchWindow(dt.datetime.fromisoformat(sys.argv[2]), dt.datetime.fromisoformat(sys.argv[3]),"
        " dt.timedelta(days=28))\n"
        "r = SamplePlatform(seed=3).fetch(accounts, w)\n"
        "body = {'rows': r.rows, 'errors': [e.__dict__ for e in r.errors]}\n"
        "sys.stdout.write(json.dumps(body, default=lambda v: v.isoformat(), sort_keys=True))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            json.dumps([a.to_dict() for a in ACCOUNTS]),
            w.start.isoformat(),
            w.end.isoformat(),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert out.stdout == canonical(SamplePlatform(seed=3).fetch(ACCOUNTS, w))


@pytest.mark.parametrize("lookback_days", [28, 2])
def test_three_day_window_equals_three_daily_windows(lookback_days: int) -> None:
    platform = SamplePlatform(seed=1)
    whole = platform.fetch(ACCOUNTS, window(START, 3, lookback_days))
    daily = [platform.fetch(ACCOUNTS, window(START + i * DAY, 1, lookback_days)) for i in range(3)]
    for table in OBSERVED_TABLES:
        assert sort_rows(whole.rows[table]) == sort_rows(
            [r for part in daily for r in part.rows[table]]
        ), table
    # probes are keyed by probe_id alone: loading the daily batches one after the other
    # (last state wins) gives the state the 3-day batch carries
    loaded: dict[str, dict] = {}
    for part in daily:
        for r in part.rows["probes"]:
            loaded[r["probe_id"]] = r
    assert sort_rows(whole.rows["probes"]) == sort_rows(list(loaded.values()))


def test_long_backfill_equals_daily_runs_for_posts_and_snapshots() -> None:
    platform = SamplePlatform(seed=2)
    account = ACCOUNTS[2:3]
    whole = platform.fetch(account, window(START, 20))
    daily = [platform.fetch(account, window(START + i * DAY, 1)) for i in range(20)]
    for table in ("account_snapshots", "post_observations"):
        assert sort_rows(whole.rows[table]) == sort_rows([r for p in daily for r in p.rows[table]])


# --- consistency of the rows ------------------------------------------------------------


def test_every_table_converts_to_arrow_with_exactly_the_schema_columns() -> None:
    result = SamplePlatform(seed=4).fetch(ACCOUNTS, window(START, 60))
    for table, schema in RAW_SCHEMAS.items():
        rows = result.rows[table]
        assert rows or table == "manual_metrics", table
        required = [c.name for c in schema.columns if not c.optional]
        for row in rows[:50]:
            assert list(row) == required, table
        arrow = to_arrow(schema, rows)
        assert arrow.num_rows == len(rows)
        for column in schema.columns:
            values = arrow.column(column.name).to_pylist()
            if not column.nullable:
                assert None not in values, (table, column.name)
            if column.allowed is not None:
                assert set(values) - {None} <= set(column.allowed), (table, column.name)
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if column.min_value is not None and numbers:
                assert min(numbers) >= column.min_value, (table, column.name)
            if column.max_value is not None and numbers:
                assert max(numbers) <= column.max_value, (table, column.name)


def test_natural_keys_are_unique_within_a_fetch(sixty_days) -> None:
    # the validation gate rejects a batch with a repeated key
    for table, schema in RAW_SCHEMAS.items():
        keys = [tuple(r[k] for k in schema.key) for r in sixty_days.rows[table]]
        assert len(keys) == len(set(keys)), table


def test_every_raw_table_but_manual_metrics_gets_rows(sixty_days) -> None:
    assert not sixty_days.errors
    for table in RAW_SCHEMAS:
        if table == "manual_metrics":
            assert sixty_days.count(table) == 0
        else:
            assert sixty_days.count(table) > 0, table
    companies = {r["company_id"] for r in sixty_days.rows["account_snapshots"]}
    assert len(companies) == 40
    assert {r["company_id"] for r in sixty_days.rows["probes"]} == companies
    assert sixty_days.count("account_snapshots") == 40 * 60


def test_timestamps_are_utc_and_never_after_the_observation(sixty_days) -> None:
    earliest = EARLIEST_TIMESTAMP.replace(tzinfo=UTC)
    for table, columns in TIMESTAMPS.items():
        for row in sixty_days.rows[table]:
            for c in columns:
                v = row[c]
                if v is None:
                    continue
                assert v.tzinfo is not None and v.utcoffset() == dt.timedelta(0), (table, c)
                assert earliest <= v <= row["observed_at"], (table, c, row)
            assert row["observed_at"].time() == dt.time(0), table


def test_post_counts_never_decrease_and_posts_are_in_the_lookback(sixty_days) -> None:
    lookback = dt.timedelta(days=28)
    by_post: dict[str, list[dict]] = defaultdict(list)
    for r in sixty_days.rows["post_observations"]:
        assert r["observed_at"] - lookback <= r["created_at"] < r["observed_at"]
        assert r["url"] == f"https://sample.socialpulse.invalid/{r['account_id']}/{r['post_id']}"
        by_post[r["post_id"]].append(r)
    assert any(len(obs) >= 20 for obs in by_post.values())
    for obs in by_post.values():
        obs.sort(key=lambda r: r["observed_at"])
        assert len({(r["created_at"], r["kind"], r["account_id"]) for r in obs}) == 1
        for before, after in zip(obs, obs[1:], strict=False):
            for count in ("likes", "replies", "reposts", "quotes", "views"):
                if before[count] is None or after[count] is None:
                    assert before[count] is after[count] is None
                else:
                    assert after[count] >= before[count], (count, before, after)
    kinds = {r["kind"] for r in sixty_days.rows["post_observations"]}
    assert kinds == {"original", "reply", "repost"}
    assert any(r["views"] is None for r in sixty_days.rows["post_observations"])
    assert any(r["views"] is not None for r in sixty_days.rows["post_observations"])


def test_original_posts_count_the_thread_replies_seen_so_far(sixty_days) -> None:
    seen: dict[tuple[str, dt.datetime], int] = defaultdict(int)
    for r in sixty_days.rows["thread_replies"]:
        seen[(r["root_post_id"], r["observed_at"])] += 1
    for p in sixty_days.rows["post_observations"]:
        if p["kind"] == "original":
            assert p["replies"] == seen[(p["post_id"], p["observed_at"])]
        else:
            assert seen[(p["post_id"], p["observed_at"])] == 0  # threads only under originals


def test_threads_answers_follow_their_questions(sixty_days) -> None:
    latest: dict[str, dict] = {}
    for r in sixty_days.rows["thread_replies"]:
        latest[r["reply_id"]] = r
    posts = {r["post_id"]: r for r in sixty_days.rows["post_observations"]}
    answered_third_party = unanswered = followups = 0
    answered_ids = {r["in_reply_to_id"] for r in latest.values() if r["author_is_company"]}
    for r in latest.values():
        root = posts[r["root_post_id"]]
        assert root["kind"] == "original" and root["account_id"] == r["account_id"]
        assert r["company_id"] == root["company_id"]
        assert r["created_at"] > root["created_at"]
        assert r["author_is_company"] == (r["author_id"] == r["account_id"])
        parent = latest.get(r["in_reply_to_id"])
        if parent is None:
            assert r["in_reply_to_id"] == r["root_post_id"]
        else:
            assert parent["root_post_id"] == r["root_post_id"]
            assert r["created_at"] > parent["created_at"]
            if parent["author_is_company"]:
                followups += 1
        if r["author_is_company"]:
            assert parent is not None and not parent["author_is_company"]
        elif r["in_reply_to_id"] == r["root_post_id"]:
            if r["reply_id"] in answered_ids:
                answered_third_party += 1
            else:
                unanswered += 1
    assert answered_third_party and unanswered and followups


def test_repeat_interactors_exist_per_company(sixty_days) -> None:
    authors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    latest = {r["reply_id"]: r for r in sixty_days.rows["thread_replies"]}
    for r in latest.values():
        if not r["author_is_company"]:
            authors[r["company_id"]][r["author_id"]] += 1
    with_repeats = [c for c, a in authors.items() if any(n >= 2 for n in a.values())]
    assert len(with_repeats) >= 30


def test_probes_are_consistent_and_get_answered_by_later_fetches() -> None:
    platform = SamplePlatform(seed=0)
    accounts = registry_accounts()
    batches = [
        platform.fetch(accounts, window(START + i * DAY, 1, lookback_days=1)) for i in range(40)
    ]
    states: dict[str, list[dict]] = defaultdict(list)
    for batch in batches:
        for p in batch.rows["probes"]:
            states[p["probe_id"]].append(p)
            answered = p["answered_at"] is not None
            assert (p["answer_ref"] is not None) == answered
            assert (p["quality"] is not None) == answered
            if answered:
                assert p["sent_at"] < p["answered_at"] < p["observed_at"]
                assert 1 <= p["quality"] <= 5
            on_platform = p["channel"] in ("public_post", "direct_message")
            assert p["platform"] == ("sample" if on_platform else None)
    # the same probe, first open, later answered (same id, same sending)
    updated = [
        obs
        for obs in states.values()
        if obs[0]["answered_at"] is None and obs[-1]["answered_at"] is not None
    ]
    assert updated
    for obs in states.values():
        assert len({(o["sent_at"], o["channel"], o["company_id"]) for o in obs}) == 1
        answers = {o["answered_at"] for o in obs} - {None}
        assert len(answers) <= 1  # once answered, the answer time never changes
    assert any(o[-1]["answered_at"] is None for o in states.values())  # some never answered


def test_followers_mostly_grow_sometimes_shrink(sixty_days) -> None:
    series: dict[str, list[int]] = defaultdict(list)
    for r in sorted(sixty_days.rows["account_snapshots"], key=lambda r: r["observed_at"]):
        series[r["account_id"]].append(r["followers"])
    changes = [b - a for s in series.values() for a, b in zip(s, s[1:], strict=False)]
    assert any(c < 0 for c in changes) and any(c > 0 for c in changes)
    # daily noise is small: no account loses or gains more than 5 % from one day to the next
    for s in series.values():
        for a, b in zip(s, s[1:], strict=False):
            assert abs(b - a) <= 0.05 * a


# --- errors -----------------------------------------------------------------------------


def test_fail_option_gives_an_error_for_that_account_only() -> None:
    broken = AccountRef("broken-co", "broken.handle", {"fail": "HTTP 503 from sample"})
    bad_profile = AccountRef("odd-co", "odd", {"profile": "startup"})
    result = SamplePlatform().fetch(
        [ACCOUNTS[0], broken, bad_profile, ACCOUNTS[2]], window(START, 3)
    )
    assert len(result.errors) == 2
    error = result.errors[0]
    assert (error.platform, error.company_id, error.handle) == (
        "sample",
        "broken-co",
        "broken.handle",
    )
    assert error.error == "HTTP 503 from sample"
    assert result.errors[1].company_id == "odd-co" and "profile" in result.errors[1].error
    for table in OBSERVED_TABLES + ("probes",):
        companies = {r["company_id"] for r in result.rows[table]}
        assert companies == {ACCOUNTS[0].company_id, ACCOUNTS[2].company_id}, table


def test_empty_window_without_boundary_gives_no_rows() -> None:
    d = dt.datetime(2025, 4, 10, 1, tzinfo=UTC)
    result = SamplePlatform().fetch(ACCOUNTS, FetchWindow(d, d + dt.timedelta(hours=5)))
    assert all(not rows for rows in result.rows.values())
    assert not result.errors


# --- the sample registry ----------------------------------------------------------------


def test_sample_registry_has_40_companies_20_per_segment() -> None:
    reg = load_registry(SAMPLE_YAML)
    assert len(reg.companies) == 40
    segments = [c.segment for c in reg.companies]
    assert segments.count("craft") == 20 and segments.count("corporation") == 20
    for c in reg.companies:
        assert [a.platform for a in c.accounts] == ["sample"]
        assert c.accounts[0].options.get("profile") == c.segment
    assert any(not c.goals for c in reg.companies)
    assert any(c.effort_hours_per_week is None for c in reg.companies)
    assert any(c.targets for c in reg.companies)
    assert len({a.handle for _, a in reg.accounts()}) == 40


def test_segments_differ_as_the_profiles_say(sixty_days) -> None:
    reg = load_registry(SAMPLE_YAML)
    segment = {c.id: c.segment for c in reg.companies}
    last = max(r["observed_at"] for r in sixty_days.rows["account_snapshots"])
    followers: dict[str, list[int]] = defaultdict(list)
    for r in sixty_days.rows["account_snapshots"]:
        if r["observed_at"] == last:
            followers[segment[r["company_id"]]].append(r["followers"])
    assert statistics.median(followers["corporation"]) > 10 * statistics.median(followers["craft"])
    assert min(followers["corporation"]) > max(followers["craft"])
    # rankings inside a segment are spread: no two companies share a follower count
    assert len(set(followers["craft"])) == 20 and len(set(followers["corporation"])) == 20

    posts: dict[str, int] = defaultdict(int)
    for r in sixty_days.rows["post_observations"]:
        if r["kind"] == "original" and r["observed_at"] == last:
            posts[segment[r["company_id"]]] += 1
    assert posts["corporation"] > 2 * posts["craft"]


# --- scale -------------------------------------------------------------------------------


def test_forty_accounts_sixty_three_days_at_once() -> None:
    # how fast this is, is `make bench`'s business (stage "generate"): tests assert no times
    accounts = [
        AccountRef(f"co-{i}", f"handle-{i}", {"profile": "craft" if i % 2 else "corporation"})
        for i in range(40)
    ]
    result = SamplePlatform(seed=5).fetch(accounts, window(START, 63))
    assert result.count("account_snapshots") == 40 * 63
    assert result.errors == []
