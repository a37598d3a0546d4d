"""The task bodies without Airflow: plan, fetch, validate, load, and their failure paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from socialpulse import pipeline
from socialpulse.registry import RegistryError
from socialpulse.validation import BatchRejected
from socialpulse.warehouse import connect, table_counts
from tests.conftest import FIXTURES

SMALL = FIXTURES / "registry" / "small.yaml"
END = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def window(days=2):
    return pipeline.fetch_window(
        END - dt.timedelta(days=1), END, backfill_days=days, lookback_days=7
    )


def test_batches_cut_accounts_per_platform_and_add_the_registry_inputs():
    batches = pipeline.plan_batches(str(SMALL), batch_size=4)
    assert [(b["platform"], b["batch_no"], len(b["accounts"])) for b in batches] == [
        ("sample", 0, 4),
        ("sample", 1, 2),
        ("registry", 0, 0),
    ]
    assert batches[0]["accounts"][0] == {
        "company_id": "baeckerei-korn",
        "handle": "baeckerei-korn",
        "options": {"profile": "craft"},
        "probes": [],
    }


def test_a_malformed_registry_fails_before_any_fetch(tmp_path):
    bad = tmp_path / "companies.yaml"
    bad.write_text(SMALL.read_text().replace("segment: corporation", "segment: multinational", 1))
    with pytest.raises(
        RegistryError, match=r"companies\.yaml: company 'nordbank': field 'segment'"
    ):
        pipeline.plan_batches(str(bad))


def test_backfill_widens_the_window_to_days_before_its_end():
    w = pipeline.fetch_window(END - dt.timedelta(days=1), END, backfill_days=10, lookback_days=5)
    assert (w.start, w.end, w.lookback) == (END - dt.timedelta(days=10), END, dt.timedelta(days=5))
    assert pipeline.fetch_window(END - dt.timedelta(days=1), END).start == END - dt.timedelta(
        days=1
    )


def run_batches(w, run_id="run-1", companies=SMALL, staged_paths=None):
    """One ingestion run as the DAG does it: plan, every batch through fetch, validate and
    load (a failing stage stops only its batch), then record the run."""
    loaded = []
    plan = pipeline.plan_run(run_id, str(companies))
    for batch in [b for batches in plan.values() for b in batches]:
        try:
            staged = pipeline.fetch_batch(batch, w, run_id, companies=str(companies))
            if staged_paths is not None:
                staged_paths += [Path(p) for p in staged["paths"].values()]
            loaded.append(pipeline.load_staged(pipeline.validate_staged(staged)))
        except (BatchRejected, RuntimeError):
            continue
    return loaded, pipeline.record_run(run_id)


def test_fetch_validate_load_is_idempotent_per_interval(data_dir):
    pipeline.sync_registry(str(SMALL))
    staged: list[Path] = []
    loaded, summary = run_batches(window(2), staged_paths=staged)
    with connect() as con:
        first = table_counts(con)
        refs = table_counts(con, "ref")
        mail = con.execute(
            "select probe_id from raw.probes where probe_id like 'mail-%' order by 1"
        ).fetchall()
    assert first["account_snapshots"] == 6 * 2  # six accounts, two daily observations
    assert mail == [("mail-korn-1",), ("mail-nordbank-1",)]  # the registry's probes CSV
    assert first["manual_metrics"] == 2
    # 6 companies x 9 dimensions; korn's 2 targets
    assert refs == {
        "accounts": 6,
        "companies": 6,
        "company_targets": 2,
        "company_weights": 54,
        "settings": 1,  # the lookback the models need (rule 8)
    }
    assert len(loaded) == 2
    checked = pipeline.check_run(summary)
    assert (checked["loaded"], checked["fetch_errors"]) == (2, 0)  # sample and registry batch
    # staged in the run's folder, and removed after the load
    assert staged and all(p.is_relative_to(data_dir / "staging" / "run-1") for p in staged)
    assert not any(p.exists() for p in staged)

    run_batches(window(2), run_id="run-2")
    with connect() as con:
        assert table_counts(con) == first


def _set_likes(path: str, company: str, likes: int) -> int:
    """Give every post of ``company`` in the staged file ``likes``; returns how many."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    hit = pc.equal(table["company_id"], company)
    new = pc.if_else(hit, pa.scalar(likes, pa.int64()), table["likes"])
    pq.write_table(table.set_column(table.schema.get_field_index("likes"), "likes", new), path)
    return pc.sum(hit.cast(pa.int64())).as_py()


def test_failing_rows_cost_only_their_company(data_dir):
    import pyarrow.parquet as pq

    w = window(1)
    pipeline.plan_run("run-q", str(SMALL))
    [batch] = pipeline.planned_batches("run-q", "sample")
    staged = pipeline.fetch_batch(batch, w, "run-q")
    bad_posts = _set_likes(staged["paths"]["post_observations"], "nordbank", -1)
    assert bad_posts > 0
    checked = pipeline.validate_staged(staged)
    # nordbank's rows of every table are quarantined with the GX result, as one error
    [error] = [e for e in checked["errors"] if e["severity"] == "error"]
    assert (error["company_id"], error["handle"]) == ("nordbank", "nordbank")
    assert "expect_column_values_to_be_between(column='likes'" in error["error"]
    folder = data_dir / "quarantine" / staged["batch_id"]
    quarantined = pq.read_table(folder / "account_snapshots.parquet")
    assert set(quarantined["company_id"].to_pylist()) == {"nordbank"}
    assert (folder / "validation_result.json").exists()
    # the five other companies load
    pipeline.load_staged(checked)
    with connect() as con:
        companies = con.execute(
            "select distinct company_id from raw.account_snapshots order by 1"
        ).fetchall()
    assert [c for (c,) in companies] == [
        "baeckerei-korn", "blumen-ada", "fernreisen", "tele-mitte", "tischlerei-holm",
    ]  # fmt: skip
    summary = pipeline.record_run("run-q")
    with pytest.raises(pipeline.FetchFailed, match=r"sample nordbank \(nordbank\): rows failed"):
        pipeline.check_run(summary)


def test_a_batch_whose_failure_names_no_rows_is_quarantined_whole(data_dir, tmp_path):
    import pyarrow.parquet as pq

    # tele-mitte cannot be fetched (a fetch error), then the whole batch is quarantined: its
    # fetch error must still be recorded and named (it used to be recorded at load only)
    companies = tmp_path / "companies.yaml"
    companies.write_text(
        SMALL.read_text().replace(
            "{platform: sample, handle: tele-mitte, options: {profile: corporation}}",
            '{platform: sample, handle: tele-mitte, options: {fail: "HTTP 404: unknown account"}}',
        )
    )
    for csv in ("small_probes.csv", "small_manual.csv"):
        (tmp_path / csv).write_text((FIXTURES / "registry" / csv).read_text())
    w = window(1)
    pipeline.plan_run("run-w", str(companies))
    [batch] = pipeline.planned_batches("run-w", "sample")
    staged = pipeline.fetch_batch(batch, w, "run-w")
    path = staged["paths"]["post_observations"]
    pq.write_table(pq.read_table(path).drop_columns(["views"]), path)  # a wrong column list
    with pytest.raises(BatchRejected) as err:
        pipeline.validate_staged(staged)
    assert "expect_table_columns_to_match_ordered_list" in str(err.value)
    assert (data_dir / "quarantine" / staged["batch_id"] / "post_observations.parquet").exists()
    with pytest.raises(RuntimeError, match="was not validated"):
        pipeline.load_staged(staged)
    with connect() as con:
        assert table_counts(con)["post_observations"] == 0
    # the run names the batch and every account it cost
    summary = pipeline.record_run("run-w")
    with pytest.raises(pipeline.FetchFailed) as failed:
        pipeline.check_run(summary)
    message = str(failed.value)
    assert "batch sample-b000: quarantined" in message
    assert "batch registry-b000: not run" in message  # never fetched in this test
    for company in ("baeckerei-korn", "nordbank", "fernreisen"):
        assert f"sample {company} ({company}): batch sample-b000 quarantined" in message
    assert "sample tele-mitte (tele-mitte): HTTP 404: unknown account" in message
    with connect() as con:
        recorded = con.execute(
            "select company_id, error from ops.fetch_errors where batch_id = ? order by 1, 2",
            [staged["batch_id"]],
        ).fetchall()
    # the fetch error, and one error per account the quarantined batch had rows of (5)
    assert [c for c, _ in recorded] == [
        "baeckerei-korn", "blumen-ada", "fernreisen", "nordbank", "tele-mitte",
        "tischlerei-holm",
    ]  # fmt: skip
    assert ("tele-mitte", "HTTP 404: unknown account") in recorded


def test_one_failing_account_is_recorded_and_fails_the_check_while_others_load(data_dir, tmp_path):
    companies = tmp_path / "companies.yaml"
    companies.write_text(
        SMALL.read_text().replace(
            "{platform: sample, handle: tele-mitte, options: {profile: corporation}}",
            '{platform: sample, handle: tele-mitte, options: {fail: "HTTP 404: unknown account"}}',
        )
    )
    (tmp_path / "small_probes.csv").write_text(
        (FIXTURES / "registry" / "small_probes.csv").read_text()
    )
    (tmp_path / "small_manual.csv").write_text(
        (FIXTURES / "registry" / "small_manual.csv").read_text()
    )
    loaded, summary = run_batches(window(1), companies=companies)
    with connect() as con:
        assert table_counts(con)["account_snapshots"] == 5
        errors = con.execute(
            "select platform, company_id, handle, error from ops.fetch_errors"
        ).fetchall()
    assert errors == [("sample", "tele-mitte", "tele-mitte", "HTTP 404: unknown account")]
    assert len(loaded) == 2  # the sample batch (5 accounts) and the registry's batch
    with pytest.raises(
        pipeline.FetchFailed,
        match=r"(?s)0 of 2 batch\(es\) not loaded, 1 account error.*"
        r"sample tele-mitte \(tele-mitte\): HTTP 404",
    ):
        pipeline.check_run(summary)


def test_public_post_probes_go_to_the_platform_that_reads_their_thread(tmp_path):
    (tmp_path / "probes.csv").write_text(
        "probe_id,company_id,platform,channel,sent_at,question_ref,answered_at,answer_ref,quality\n"
        "q-masto,nordbank,mastodon,public_post,2026-01-05T09:00:00Z,https://m.example/@me/11,,,\n"
        "q-mail,nordbank,,email,2026-01-05T09:00:00Z,mail#1,2026-01-05T10:00:00Z,,4\n"
        "q-sample,nordbank,sample,public_post,2026-01-05T09:00:00Z,https://x/1,,,\n"
    )
    text = SMALL.read_text().replace("probes_file: small_probes.csv", "probes_file: probes.csv")
    text = text.replace(
        "      - {platform: sample, handle: nordbank, options: {profile: corporation}}",
        "      - {platform: sample, handle: nordbank, options: {profile: corporation}}\n"
        "      - {platform: mastodon, handle: https://m.example/@nordbank}",
    )
    (tmp_path / "small_manual.csv").write_text(
        (FIXTURES / "registry" / "small_manual.csv").read_text()
    )
    companies = tmp_path / "companies.yaml"
    companies.write_text(text)

    batches = {b["platform"]: b for b in pipeline.plan_batches(str(companies))}
    [masto] = batches["mastodon"]["accounts"]
    assert [p["probe_id"] for p in masto["probes"]] == ["q-masto"]
    assert masto["probes"][0]["question_ref"] == "https://m.example/@me/11"
    # the sample platform does not read threads: its probe stays with the registry's batch
    assert all(not a["probes"] for a in batches["sample"]["accounts"])

    from socialpulse.registry import load_registry

    rows = pipeline.registry_rows(load_registry(companies), window(1)).rows["probes"]
    assert sorted(r["probe_id"] for r in rows) == ["q-mail", "q-sample"]


def test_warnings_are_counted_but_do_not_fail_the_run():
    warning = {
        "platform": "mastodon",
        "company_id": "c1",
        "handle": "@c1@m.example",
        "severity": "warning",
        "error": "probe p4: the question is gone",
    }
    batch = {"label": "mastodon-b000", "stage": "loaded", "rows": {}, "errors": [warning]}
    summary = {"batches": [batch], "loaded": 1, "rows": {}}
    assert pipeline.check_run(summary)["fetch_warnings"] == 1
    error = {**warning, "severity": "error"}
    with pytest.raises(pipeline.FetchFailed, match="0 of 1 batch.*, 1 account error"):
        pipeline.check_run({**summary, "batches": [{**batch, "errors": [error]}]})


def test_a_run_without_a_logical_date_fetches_up_to_its_run_after_time():
    after = dt.datetime(2026, 2, 1, 14, 30, tzinfo=dt.UTC)
    w = pipeline.run_window(None, None, after, backfill_days=0)
    assert (w.start, w.end) == (dt.datetime(2026, 1, 31, 14, 30, tzinfo=dt.UTC), after)
    w = pipeline.run_window(None, None, after, backfill_days=5)
    assert w.start == dt.datetime(2026, 1, 27, 14, 30, tzinfo=dt.UTC)
    # a scheduled run keeps its data interval
    w = pipeline.run_window(END - dt.timedelta(days=1), END, after)
    assert (w.start, w.end) == (END - dt.timedelta(days=1), END)


def test_the_registry_is_parsed_once_per_run_and_xcom_carries_references(data_dir, tmp_path):
    """plan_run reads the registry; sync_registry and the registry's own batch read the
    run's plan. A registry file changed (or broken) after planning changes nothing of the
    run, and the batches passed between tasks name a plan file, not the accounts."""
    import json

    registry = tmp_path / "small.yaml"
    registry.write_text(SMALL.read_text())
    for csv in ("small_probes.csv", "small_manual.csv"):
        (tmp_path / csv).write_text((FIXTURES / "registry" / csv).read_text())
    plan = pipeline.plan_run("run-once", str(registry))
    registry.write_text("companies: [this is not a registry")  # parsed again: it would fail
    [batch] = plan["sample"]
    assert set(batch) == {"platform", "batch_no", "size", "plan"} and batch["size"] == 6
    assert len(json.dumps(plan)) < 1000
    assert pipeline.sync_registry(str(registry), run_id="run-once")["companies"] == 6
    [own] = plan["registry"]
    staged = pipeline.fetch_batch(own, window(1), "run-once", companies=str(registry))
    assert staged["rows"] == {"probes": 2, "manual_metrics": 2}
