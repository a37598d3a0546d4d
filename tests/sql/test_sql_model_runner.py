"""socialpulse.models: discovery, ordering, errors, building, documented columns."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from socialpulse import models
from socialpulse.warehouse import connect

if TYPE_CHECKING:
    from pathlib import Path

REQUIRED_MARTS = {"marts.company_metrics", "marts.success_index", "marts.segment_benchmarks"}


def write_model(root: Path, layer: str, name: str, sql: str, header: str | None = None) -> Path:
    if header is None:
        header = "/* ---\ndescription: A test model.\ncolumns:\n  x: The value.\n--- */\n"
    path = root / layer / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + textwrap.dedent(sql), encoding="utf-8")
    return path


def test_discovery_order_respects_dependencies(all_models):
    seen: set[str] = set()
    for m in all_models:
        assert set(m.depends_on) <= seen, f"{m.qualified} built before {set(m.depends_on) - seen}"
        seen.add(m.qualified)
    assert seen >= REQUIRED_MARTS
    assert [m.qualified for m in models.discover()] == [m.qualified for m in all_models]


def test_discovery_order_is_layer_then_name_among_ready_models(tmp_path):
    # ready first: stg_b, stg_z (by name), then int_a (next layer); stg_a waits for stg_z;
    # m_a waits for stg_a
    write_model(tmp_path, "staging", "stg_a", "select x from staging.stg_z")
    write_model(tmp_path, "staging", "stg_b", "select 1 as x")
    write_model(tmp_path, "staging", "stg_z", "select 1 as x")
    write_model(tmp_path, "intermediate", "int_a", "select 1 as x")
    write_model(tmp_path, "marts", "m_a", "select x from staging.stg_a")
    assert [m.qualified for m in models.discover(tmp_path)] == [
        "staging.stg_b",
        "staging.stg_z",
        "staging.stg_a",
        "intermediate.int_a",
        "marts.m_a",
    ]


def test_model_attributes(all_models):
    by_name = {m.qualified: m for m in all_models}
    stg = by_name["staging.stg_account_snapshots"]
    # a table: the models run's frozen copy of the source (see the snapshot test below)
    assert (stg.layer, stg.name, stg.materialization) == (
        "staging",
        "stg_account_snapshots",
        "table",
    )
    assert stg.path.name == "stg_account_snapshots.sql"
    assert not stg.sql.lstrip().startswith("/*")
    mart = by_name["marts.success_index"]
    assert mart.materialization == "table"
    assert "intermediate.int_dimension_scores" in mart.depends_on
    for m in all_models:
        assert m.description
        assert all(d.startswith(("staging.", "intermediate.", "marts.")) for d in m.depends_on)


def test_discover_does_not_import_duckdb():
    code = (
        "import sys\n"
        "from socialpulse import models\n"
        "assert models.discover()\n"
        "assert 'duckdb' not in sys.modules, 'discover imported duckdb'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_references_ignore_comments_and_strings():
    sql = "select 'marts.x' as a -- staging.y\n/* intermediate.z */ from staging.real as r"
    assert models.references(sql) == {"staging.real"}


def test_references_see_quoted_identifiers():
    sql = (
        'select * from "staging"."stg_posts" join staging."stg_probes" using (x) '
        'join "intermediate".int_a using (x) join "MARTS"."Success_Index" using (x) '
        'join "my.staging".other using (x) join "staging_x".y using (x)'
    )
    assert models.references(sql) == {
        "staging.stg_posts",
        "staging.stg_probes",
        "intermediate.int_a",
        "marts.success_index",
    }


def test_a_quoted_reference_orders_the_build_or_fails_clearly(tmp_path):
    write_model(tmp_path, "staging", "stg_z", "select 1 as x")
    write_model(tmp_path, "staging", "stg_a", 'select x from "staging"."stg_z"')
    assert [m.qualified for m in models.discover(tmp_path)] == ["staging.stg_z", "staging.stg_a"]
    path = write_model(tmp_path, "marts", "m", 'select x from "staging"."stg z"')
    with pytest.raises(ValueError, match="unknown model 'staging.stg z'") as err:
        models.discover(tmp_path)
    assert str(path) in str(err.value)


def test_unknown_reference(tmp_path):
    path = write_model(tmp_path, "staging", "stg_a", "select 1 as x from staging.stg_missing")
    with pytest.raises(ValueError, match="stg_missing") as err:
        models.discover(tmp_path)
    assert str(path) in str(err.value)


def test_cycle(tmp_path):
    a = write_model(tmp_path, "intermediate", "int_a", "select x from intermediate.int_b")
    b = write_model(tmp_path, "intermediate", "int_b", "select x from intermediate.int_a")
    write_model(tmp_path, "staging", "stg_ok", "select 1 as x")
    with pytest.raises(ValueError, match="cycle") as err:
        models.discover(tmp_path)
    assert str(a) in str(err.value) and str(b) in str(err.value)
    assert "intermediate.int_a -> intermediate.int_b -> intermediate.int_a" in str(err.value)


def test_self_reference_is_a_cycle(tmp_path):
    write_model(tmp_path, "marts", "m", "select x from marts.m")
    with pytest.raises(ValueError, match="cycle"):
        models.discover(tmp_path)


def test_missing_header(tmp_path):
    path = write_model(tmp_path, "staging", "stg_a", "select 1 as x", header="")
    with pytest.raises(ValueError, match="missing header") as err:
        models.discover(tmp_path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("/* ---\ndescription: [unclosed\n--- */\n", "not valid YAML"),
        ("/* ---\ncolumns:\n  x: The value.\n--- */\n", "description"),
        ("/* ---\ndescription: A model.\n--- */\n", "columns"),
        ("/* ---\ndescription: A model.\ncolumns:\n  x:\n--- */\n", "no description"),
        ("/* ---\ndescription: A.\ncolumns:\n  x: X.\nmaterialization: mv\n--- */\n", "view"),
    ],
)
def test_invalid_header(tmp_path, header, message):
    path = write_model(tmp_path, "staging", "stg_a", "select 1 as x", header=header)
    with pytest.raises(ValueError, match=message) as err:
        models.discover(tmp_path)
    assert str(path) in str(err.value)


def test_invalid_file_name(tmp_path):
    path = write_model(tmp_path, "staging", "stg-bad", "select 1 as x")
    with pytest.raises(ValueError, match="not a valid relation name") as err:
        models.discover(tmp_path)
    assert str(path) in str(err.value)


def test_build_and_error(tmp_path):
    root = tmp_path / "sql"
    write_model(root, "staging", "stg_a", "select 1 as x union all select 2 as x")
    write_model(root, "marts", "m_a", "select x from staging.stg_a")
    found = models.discover(root)
    with connect(tmp_path / "w.duckdb") as con:
        assert models.build_all(con, found) == {"staging.stg_a": 2, "marts.m_a": 2}
        kinds = dict(
            con.execute(
                "select table_schema || '.' || table_name, table_type "
                "from information_schema.tables where table_schema in ('staging', 'marts')"
            ).fetchall()
        )
        assert kinds == {"staging.stg_a": "BASE TABLE", "marts.m_a": "BASE TABLE"}
        # rebuilding is idempotent
        assert models.build_all(con, found) == {"staging.stg_a": 2, "marts.m_a": 2}
        bad = write_model(root, "marts", "m_bad", "select no_such_column from staging.stg_a")
        model = models.parse_model(bad, "marts")
        with pytest.raises(models.ModelBuildError, match=r"model marts\.m_bad") as err:
            models.build_model(con, model)
        assert str(bad) in str(err.value)
        assert "no_such_column" in str(err.value)
        # rolled back: nothing created, the connection is usable
        assert (
            con.execute(
                "select count(*) from information_schema.tables where table_name = 'm_bad'"
            ).fetchone()[0]
            == 0
        )


def test_documented_columns_equal_output_columns(tmp_path, all_models):
    with connect(tmp_path / "empty.duckdb") as con:
        models.build_all(con, all_models)
        for m in all_models:
            actual = [r[0] for r in con.execute(f"describe {m.qualified}").fetchall()]
            assert actual == list(m.columns), f"{m.path}: documented {list(m.columns)}"


def test_company_metrics_has_every_metric(all_models):
    from socialpulse.registry import METRICS

    cols = {m.qualified: m.columns for m in all_models}["marts.company_metrics"]
    assert set(METRICS) | {"interactions"} <= set(cols)


def test_a_load_between_two_model_tasks_is_not_half_seen(tmp_path, all_models):
    """The models DAG builds staging in one task (one transaction), then one task per model.

    A batch loaded after the staging snapshot (between two model tasks of one run) must not
    reach the later models of that run: they all describe the state the run started from.
    The next run sees it. (With staging views, int_posts_measured would read the new raw
    rows while the spine and the periods came from the old ones.)
    """
    import datetime as dt

    from socialpulse.records import RAW_SCHEMAS, to_arrow
    from socialpulse.warehouse import load_batch, replace_reference_tables
    from tests.sql.conftest import raw_tables, ref_tables

    def b_week2() -> tuple:
        return con.execute(
            "select posts_per_week, interactions from marts.company_metrics where company_id "
            "= 'b' and period_type = 'week' and period_start = date '2024-01-08'"
        ).fetchone()

    late_post = {
        "platform": "mastodon",
        "post_id": "p-b9",
        "account_id": "b-m",
        "company_id": "b",
        "created_at": dt.datetime(2024, 1, 12),
        "kind": "original",
        "likes": 7,
        "replies": 0,
        "reposts": 0,
        "quotes": 0,
        "views": None,
        "url": None,
        "observed_at": dt.datetime(2024, 1, 14),
    }
    staging = [m for m in all_models if m.layer == "staging"]
    later = [m for m in all_models if m.layer != "staging"]
    with connect(tmp_path / "w.duckdb") as con:
        replace_reference_tables(con, ref_tables())
        load_batch(con, "fixture", raw_tables())
        models.build_in_one_transaction(con, staging)  # task staging.snapshot
        load_batch(
            con,
            "late",
            {"post_observations": to_arrow(RAW_SCHEMAS["post_observations"], [late_post])},
        )
        for m in later:  # the other tasks of the same run
            models.build_model(con, m)
        # b in week 2 as the run started: p-b1, p-b2 -> 2 posts, 10 + 2 + 0 + 0 + 2 = 12
        assert b_week2() == (2.0, 12)
        models.build_all(con, all_models)  # the next run
        assert b_week2() == (3.0, 12 + 7)
