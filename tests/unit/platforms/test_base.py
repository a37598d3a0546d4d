"""What every connector shares (``socialpulse.platforms.base``): one row per raw key."""

from __future__ import annotations

import datetime as dt
import logging

from socialpulse.platforms.base import AccountRef, FetchResult, FetchWindow
from socialpulse.platforms.sample import SamplePlatform
from socialpulse.records import RAW_SCHEMAS

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EARLIER = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def reply(reply_id: str, company: str, account: str, observed: dt.datetime = NOW) -> dict:
    return {
        "platform": "bluesky",
        "reply_id": reply_id,
        "account_id": account,
        "company_id": company,
        "root_post_id": f"root-of-{company}",
        "in_reply_to_id": f"root-of-{company}",
        "author_id": "did:plc:bob",
        "author_is_company": False,
        "created_at": EARLIER,
        "observed_at": observed,
    }


def keys(result: FetchResult, table: str) -> list[tuple]:
    return [tuple(r[c] for c in RAW_SCHEMAS[table].key) for r in result.rows[table]]


def test_drop_duplicates_keeps_the_first_row_per_raw_key_and_names_both_accounts(caplog):
    result = FetchResult()
    korn = [
        reply("at://bob/1", "korn", "did:plc:korn"),
        reply("at://alice/2", "korn", "did:plc:korn"),
    ]
    nord = [
        reply("at://bob/1", "nordbank", "did:plc:nord"),  # the same key: dropped
        reply("at://bob/1", "nordbank", "did:plc:nord", EARLIER),  # another time: another key
        reply("at://carol/3", "nordbank", "did:plc:nord"),
    ]
    result.extend({"thread_replies": korn})
    result.extend({"thread_replies": nord})
    probe = {"probe_id": "p1", "company_id": "korn", "observed_at": NOW}
    result.add("probes", probe)
    result.add("probes", {**probe, "company_id": "nordbank"})  # probes: probe_id is the key
    snapshot = {"platform": "bluesky", "account_id": "did:plc:korn", "observed_at": NOW}
    result.add("account_snapshots", {**snapshot, "company_id": "korn"})
    result.add("account_snapshots", {**snapshot, "company_id": "korn-holding"})  # one DID twice

    with caplog.at_level(logging.WARNING, logger="socialpulse.platforms.base"):
        assert result.drop_duplicates() == 3

    assert result.rows["thread_replies"] == [korn[0], korn[1], nord[1], nord[2]]
    assert result.rows["probes"] == [probe]
    assert [r["company_id"] for r in result.rows["account_snapshots"]] == ["korn"]
    for table in result.rows:
        assert len(keys(result, table)) == len(set(keys(result, table)))
    assert [r.getMessage() for r in caplog.records] == [
        "bluesky: account_snapshots platform=bluesky, account_id=did:plc:korn, "
        f"observed_at={NOW} came for korn-holding (did:plc:korn) and already for korn "
        "(did:plc:korn); kept the first, dropped the second",
        f"bluesky: thread_replies platform=bluesky, reply_id=at://bob/1, observed_at={NOW} came "
        "for nordbank (did:plc:nord) and already for korn (did:plc:korn); kept the first, "
        "dropped the second",
        "fetch: probes probe_id=p1 came for nordbank and already for korn; kept the first, "
        "dropped the second",
    ]
    assert result.drop_duplicates() == 0  # nothing left to drop


def test_the_sample_platform_delivers_each_key_once_for_two_companies_on_one_handle(caplog):
    window = FetchWindow(dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 4, tzinfo=UTC))
    first = AccountRef("baeckerei-test", "baeckerei-test", {"profile": "craft"})
    second = AccountRef("baeckerei-holding", "baeckerei-test", {"profile": "craft"})
    alone = SamplePlatform(seed=0).fetch([first], window)
    with caplog.at_level(logging.WARNING, logger="socialpulse.platforms.base"):
        both = SamplePlatform(seed=0).fetch([first, second], window)
    assert both.errors == []
    for table in ("account_snapshots", "post_observations", "thread_replies"):
        # the handle is the sample account's id: the holding's rows repeat many keys (the
        # posts of days on which both generate posts, ...); the first account's rows stay
        mine = alone.rows[table]
        assert both.rows[table][: len(mine)] == mine, table
        assert len(keys(both, table)) == len(set(keys(both, table))), table
    # the probes are the companies' own (their ids name the company): both kept
    assert {r["company_id"] for r in both.rows["probes"]} == {
        "baeckerei-test",
        "baeckerei-holding",
    }
    # one warning per table, with the number of keys both companies' rows have
    holding = SamplePlatform(seed=0).fetch([second], window)
    twice = {
        t: len(set(keys(alone, t)) & set(keys(holding, t)))
        for t in ("account_snapshots", "post_observations", "thread_replies")
    }
    assert twice["account_snapshots"] == 3  # one a day
    assert twice["post_observations"] > 1 and twice["thread_replies"] > 1
    dropped = [r.getMessage() for r in caplog.records]
    assert [m.split(" (the first: ")[0] for m in dropped] == [
        f"sample: {n} {t} rows" for t, n in twice.items()
    ]
    assert all(
        m.endswith(
            "came for baeckerei-holding (baeckerei-test) and already for baeckerei-test "
            "(baeckerei-test); kept the first, dropped the second"
        )
        for m in dropped
    )
