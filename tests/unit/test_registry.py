"""The company registry: good files parse into typed objects, bad ones name file, company, field."""

from __future__ import annotations

import textwrap

import pytest

from socialpulse.registry import RegistryError, load_registry, reference_tables
from tests.conftest import FIXTURES, PROJECT_ROOT

GOOD = """
companies:
  - id: baeckerei-korn
    name: Bäckerei Korn
    segment: craft
    employees: 9
    effort_hours_per_week: 3
    goals: {liveliness: 3, sympathy: 2}
    targets:
      - {metric: posts_per_week, op: ">=", value: 3}
    accounts:
      - {platform: sample, handle: korn}
  - id: nordbank
    name: Nordbank
    segment: corporation
    employees: 12000
    accounts:
      - {platform: sample, handle: nordbank}
"""


def write(tmp_path, text, name="companies.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file_parses_into_typed_companies(tmp_path):
    reg = load_registry(write(tmp_path, GOOD))
    korn, nordbank = reg.companies
    assert (korn.id, korn.segment, korn.employees, korn.effort_hours_per_week) == (
        "baeckerei-korn",
        "craft",
        9,
        3.0,
    )
    assert korn.targets[0].metric == "posts_per_week" and korn.targets[0].value == 3
    assert reg.platforms() == ["sample"]
    # goals given: unnamed dimensions weigh 0
    assert korn.weights()["liveliness"] == 3 and korn.weights()["reach"] == 0
    # no goals: the first seven dimensions weigh 1, findability and image 0
    w = nordbank.weights()
    assert [w[d] for d in ("reach", "growth", "engagement", "liveliness")] == [1, 1, 1, 1]
    assert [w[d] for d in ("sympathy", "relationships", "efficiency")] == [1, 1, 1]
    assert (w["findability"], w["image"]) == (0, 0)


def test_empty_goals_mean_the_default_weights(tmp_path):
    reg = load_registry(write(tmp_path, GOOD.replace("{liveliness: 3, sympathy: 2}", "{}")))
    weights = reg.companies[0].weights()
    assert [d for d, w in weights.items() if w == 1.0] == [
        "reach", "growth", "engagement", "liveliness", "sympathy", "relationships", "efficiency",
    ]  # fmt: skip
    assert (weights["findability"], weights["image"]) == (0.0, 0.0)


def test_reference_tables_hold_one_weight_per_company_and_dimension(tmp_path):
    tables = reference_tables(load_registry(write(tmp_path, GOOD)))
    assert tables["companies"].num_rows == 2
    assert tables["company_weights"].num_rows == 2 * 9
    assert tables["company_targets"].to_pylist() == [
        {"company_id": "baeckerei-korn", "metric": "posts_per_week", "op": ">=", "target": 3.0}
    ]


def test_fixture_registry_reads_its_csv_files():
    reg = load_registry(FIXTURES / "registry" / "small.yaml")
    assert len(reg.companies) == 6
    assert [p.probe_id for p in reg.probes] == ["mail-korn-1", "mail-nordbank-1"]
    assert reg.probes[1].answered_at is None
    assert [(m.company_id, m.period_type, m.value) for m in reg.manual_metrics] == [
        ("baeckerei-korn", "month", 70.0),
        ("blumen-ada", "month", 40.0),
    ]


def test_bundled_sample_registry_is_valid():
    reg = load_registry(PROJECT_ROOT / "include" / "companies" / "sample.yaml")
    segments = [c.segment for c in reg.companies]
    assert len(reg.companies) == 40
    assert segments.count("craft") == segments.count("corporation")


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("segment: craft", "segment: bakery", ["'baeckerei-korn'", "'segment'"]),
        ("employees: 9", "employees: 0", ["'baeckerei-korn'", "'employees'"]),
        ("employees: 9", "employees: nine", ["'baeckerei-korn'", "'employees'"]),
        ("{liveliness: 3, sympathy: 2}", "{liveliness: 3, speed: 2}", ["'goals'", "speed"]),
        ("{liveliness: 3, sympathy: 2}", "{liveliness: 0}", ["'goals'", "above 0"]),
        # weights, efforts and targets are finite (an infinite weight made the index NaN)
        ("{liveliness: 3, sympathy: 2}", "{liveliness: .inf}", ["'goals.liveliness'", "finite"]),
        ("{liveliness: 3, sympathy: 2}", "{liveliness: .nan}", ["'goals.liveliness'", "finite"]),
        ("effort_hours_per_week: 3", "effort_hours_per_week: .inf", ["'effort_hours_per_week'"]),
        ("value: 3}", "value: .nan}", ["'baeckerei-korn'", "'targets.0.value'", "finite"]),
        ('op: ">="', 'op: "=="', ["'baeckerei-korn'", "'targets.0.op'"]),
        ("metric: posts_per_week", "metric: likes", ["'targets.0.metric'"]),
        (
            "platform: sample, handle: korn",
            "platform: myspace, handle: korn",
            ["'accounts.0.platform'"],
        ),
        ("    name: Nordbank\n", "", ["'nordbank'", "'name'"]),
        ("id: nordbank", "id: baeckerei-korn", ["duplicate id"]),
        ("id: nordbank", "id: Nord Bank", ["'Nord Bank'", "'id'"]),
        ("effort_hours_per_week: 3", "effort_hours_per_week: 3\n    colour: red", ["'colour'"]),
    ],
)
def test_malformed_company_names_file_company_and_field(tmp_path, replace, by, expected):
    assert replace in GOOD
    path = write(tmp_path, GOOD.replace(replace, by, 1))
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "companies:\n  - id: a\n    name: [unclosed\n")
    with pytest.raises(RegistryError, match=r"companies\.yaml: line \d+ not valid YAML"):
        load_registry(path)


@pytest.mark.parametrize(
    "text",
    ["", "- just a list\n", "companies: []\n", "companies:\n  - 42\n", "companiez: []\n"],
)
def test_wrong_shape_is_rejected(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(RegistryError, match="companies"):
        load_registry(path)


def test_missing_file(tmp_path):
    with pytest.raises(RegistryError, match="cannot read companies file"):
        load_registry(tmp_path / "nope.yaml")


def test_two_accounts_on_one_platform(tmp_path):
    text = GOOD.replace(
        "      - {platform: sample, handle: korn}",
        "      - {platform: sample, handle: korn}\n      - {platform: sample, handle: korn2}",
    )
    with pytest.raises(RegistryError, match="'baeckerei-korn'.*one per platform"):
        load_registry(write(tmp_path, text))


PROBES_HEADER = (
    "probe_id,company_id,platform,channel,sent_at,question_ref,answered_at,answer_ref,quality\n"
)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("p1,nordbank,,email,not-a-date,,,,", r"row 2 \(probe_id 'p1'\): field 'sent_at'"),
        (
            "p1,nobody,,email,2026-01-05T09:00:00Z,,,,",
            r"row 2 .*'company_id': unknown company 'nobody'",
        ),
        ("p1,nordbank,,pigeon,2026-01-05T09:00:00Z,,,,", r"row 2 .*field 'channel'"),
        (
            "p1,nordbank,,email,2026-01-05T09:00:00Z,,2026-01-04T09:00:00Z,,",
            r"answered_at lies before sent_at",
        ),
        ("p1,nordbank,,email,2026-01-05T09:00:00Z,,2026-01-06T09:00:00Z,,9", r"field 'quality'"),
    ],
)
def test_malformed_probe_rows_name_file_row_and_field(tmp_path, row, expected):
    (tmp_path / "probes.csv").write_text(PROBES_HEADER + row + "\n")
    path = write(tmp_path, "probes_file: probes.csv\n" + GOOD)
    with pytest.raises(RegistryError, match=expected) as err:
        load_registry(path)
    assert "probes.csv" in str(err.value)


def test_duplicate_probe_id(tmp_path):
    row = "p1,nordbank,,email,2026-01-05T09:00:00Z,,,,\n"
    (tmp_path / "probes.csv").write_text(PROBES_HEADER + row + row)
    with pytest.raises(RegistryError, match=r"row 3 .*duplicate 'p1'"):
        load_registry(write(tmp_path, "probes_file: probes.csv\n" + GOOD))


MANUAL_HEADER = "company_id,metric,period_type,period_start,value\n"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # 2026-01-06 is a Tuesday: no ISO week starts there
        ("nordbank,image,week,2026-01-06,50", "Monday"),
        # 2026-01-05 is a Monday, but not the first day of a month
        ("nordbank,image,month,2026-01-05,50", "first day of the month"),
    ],
)
def test_manual_metric_period_start_must_begin_its_period(tmp_path, row, expected):
    (tmp_path / "manual.csv").write_text(MANUAL_HEADER + row + "\n")
    path = write(tmp_path, "manual_metrics_file: manual.csv\n" + GOOD)
    with pytest.raises(RegistryError, match=r"row 2: field 'period_start'") as err:
        load_registry(path)
    message = str(err.value)
    assert "manual.csv" in message
    assert expected in message


def test_manual_metric_period_type_is_checked(tmp_path):
    (tmp_path / "manual.csv").write_text(MANUAL_HEADER + "nordbank,image,quarter,2026-01-01,50\n")
    path = write(tmp_path, "manual_metrics_file: manual.csv\n" + GOOD)
    with pytest.raises(RegistryError, match=r"manual\.csv: row 2: field 'period_type'"):
        load_registry(path)


def test_manual_metric_week_and_month_on_the_same_day_are_two_entries(tmp_path):
    # 2026-06-01 is a Monday and the 1st: a week value and a month value may both start there
    rows = "nordbank,image,week,2026-06-01,50\nnordbank,image,month,2026-06-01,60\n"
    (tmp_path / "manual.csv").write_text(MANUAL_HEADER + rows)
    reg = load_registry(write(tmp_path, "manual_metrics_file: manual.csv\n" + GOOD))
    assert [(m.period_type, m.value) for m in reg.manual_metrics] == [
        ("week", 50.0),
        ("month", 60.0),
    ]
    # the same period twice is still a duplicate
    (tmp_path / "manual.csv").write_text(MANUAL_HEADER + rows + rows.splitlines()[0] + "\n")
    with pytest.raises(RegistryError, match="duplicate entry"):
        load_registry(write(tmp_path, "manual_metrics_file: manual.csv\n" + GOOD))
