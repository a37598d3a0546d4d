"""The company registry: good files parse into typed objects, bad ones name file, company, field."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
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


# --- one account, one company ---------------------------------------------------------------

KORN_ACCOUNT = "      - {platform: sample, handle: korn}"
NORDBANK_ACCOUNT = "      - {platform: sample, handle: nordbank}"


@pytest.mark.parametrize(
    ("korn", "nordbank", "field"),
    [
        # the platforms identify accounts case-insensitively, without '@' and blanks around
        ("{platform: sample, handle: korn}", "{platform: sample, handle: korn}", "handle"),
        ("{platform: sample, handle: korn}", "{platform: sample, handle: ' @KORN '}", "handle"),
        (
            "{platform: bluesky, handle: '@korn.bsky.social'}",
            "{platform: bluesky, handle: Korn.BSKY.social}",
            "handle",
        ),
        # a Mastodon account as @user@host, user@host or its profile URL
        (
            "{platform: mastodon, handle: '@korn@social.example'}",
            "{platform: mastodon, handle: 'https://Social.Example/@Korn'}",
            "handle",
        ),
        (
            "{platform: mastodon, handle: 'korn@social.example'}",
            "{platform: mastodon, handle: '@KORN@social.example'}",
            "handle",
        ),
        # a feed is its URL: options.feed_url, else the handle
        (
            "{platform: rss, handle: 'https://korn.example/feed'}",
            "{platform: rss, handle: blog, options: {feed_url: 'https://KORN.example/feed/'}}",
            "options.feed_url",
        ),
        (
            "{platform: rss, handle: a, options: {feed_url: 'https://korn.example/feed'}}",
            "{platform: rss, handle: b, options: {feed_url: ' http://korn.example/feed '}}",
            "options.feed_url",
        ),
    ],
)
def test_one_account_listed_under_two_companies_names_both(tmp_path, korn, nordbank, field):
    text = GOOD.replace(KORN_ACCOUNT, f"      - {korn}").replace(
        NORDBANK_ACCOUNT, f"      - {nordbank}"
    )
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    platform = korn.split(",")[0].removeprefix("{platform: ")
    assert message.startswith(f"{path}: company 'nordbank': field 'accounts.0.{field}': ")
    assert f"{platform} account" in message
    assert "also listed under company 'baeckerei-korn'" in message


@pytest.mark.parametrize(
    ("korn", "nordbank"),
    [
        ("{platform: sample, handle: korn}", "{platform: bluesky, handle: korn}"),
        ("{platform: sample, handle: korn}", "{platform: sample, handle: korn2}"),
        (
            "{platform: mastodon, handle: '@korn@social.example'}",
            "{platform: mastodon, handle: '@korn@other.example'}",
        ),
        (
            "{platform: rss, handle: 'https://korn.example/feed'}",
            "{platform: rss, handle: 'https://korn.example/blog/feed'}",
        ),
    ],
)
def test_different_accounts_are_not_duplicates(tmp_path, korn, nordbank):
    text = GOOD.replace(KORN_ACCOUNT, f"      - {korn}").replace(
        NORDBANK_ACCOUNT, f"      - {nordbank}"
    )
    assert len(load_registry(write(tmp_path, text)).accounts()) == 2


# --- more checks of a company: blank handles, platforms without a connector, effort ---------


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("handle: korn}", "handle: ''}", ["'baeckerei-korn'", "'accounts.0.handle'", "empty"]),
        ("handle: korn}", "handle: '   '}", ["'baeckerei-korn'", "'accounts.0.handle'", "empty"]),
        ("handle: korn}", "handle: ' @ '}", ["'baeckerei-korn'", "'accounts.0.handle'", "empty"]),
        # a week has 168 hours: 9 employees have at most 9 x 168 = 1512 of them
        (
            "effort_hours_per_week: 3",
            "effort_hours_per_week: 1513",
            ["'baeckerei-korn'", "'effort_hours_per_week'", "9 x 168 = 1512"],
        ),
        (
            "employees: 9\n    effort_hours_per_week: 3",
            "employees: 1\n    effort_hours_per_week: 168.5",
            ["'baeckerei-korn'", "'effort_hours_per_week'", "1 x 168 = 168"],
        ),
    ],
)
def test_more_malformed_companies_name_file_company_and_field(tmp_path, replace, by, expected):
    assert replace in GOOD
    path = write(tmp_path, GOOD.replace(replace, by, 1))
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    assert message.startswith(f"{path}: company ")
    for part in expected:
        assert part in message


def test_a_platform_without_a_connector_is_named(tmp_path, monkeypatch):
    # records.PLATFORMS may name a platform whose connector is not registered (yet)
    from socialpulse import platforms

    monkeypatch.delitem(platforms.IMPLEMENTATIONS, "youtube")
    path = write(
        tmp_path,
        GOOD.replace("platform: sample, handle: korn", "platform: youtube, handle: korn", 1),
    )
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    message = str(err.value)
    for part in (
        "'baeckerei-korn'",
        "'accounts.0.platform'",
        "no connector for platform 'youtube'",
        "available: ['bluesky', 'facebook', 'instagram', 'mastodon', 'rss', 'sample']",
    ):
        assert part in message


@pytest.mark.parametrize(
    ("employees", "effort"),
    # a team's hours add up: 9 employees may spend 9 x 168 = 1512 hours, one person 168
    [(9, 1512), (1, 168)],
)
def test_effort_up_to_168_hours_per_employee_is_accepted(tmp_path, employees, effort):
    by = f"employees: {employees}\n    effort_hours_per_week: {effort}"
    text = GOOD.replace("employees: 9\n    effort_hours_per_week: 3", by)
    reg = load_registry(write(tmp_path, text))
    assert reg.companies[0].effort_hours_per_week == effort


# --- probes and manual metrics: no times in the future or before 2004 ----------------------

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [
        # NOW is 2026-03-01 12:00 UTC; naive times are UTC
        ("p1,nordbank,,email,2026-03-01T12:00:01Z,,,,", "sent_at", "in the future"),
        ("p1,nordbank,,email,2026-03-01T12:05:00,,,,", "sent_at", "in the future"),
        ("p1,nordbank,,email,2026-03-01T14:00:00+01:00,,,,", "sent_at", "in the future"),
        ("p1,nordbank,,email,2026-03-01T09:00:00Z,,2026-03-02T09:00:00Z,,", "answered_at", "in the future"),
        ("p1,nordbank,,email,2003-12-31T23:59:59Z,,,,", "sent_at", "before 2004-01-01"),
        # 00:30 at UTC+1 is 23:30 UTC the day before
        ("p1,nordbank,,email,2004-01-01T00:30:00+01:00,,,,", "sent_at", "before 2004-01-01"),
        ("p1,nordbank,,email,1970-01-01T00:00:00Z,,2026-01-05T09:00:00Z,,", "sent_at", "before 2004-01-01"),
    ],
)  # fmt: skip
def test_probe_times_outside_now_and_2004_name_file_row_and_field(tmp_path, row, field, expected):
    (tmp_path / "probes.csv").write_text(PROBES_HEADER + row + "\n")
    path = write(tmp_path, "probes_file: probes.csv\n" + GOOD)
    with pytest.raises(RegistryError) as err:
        load_registry(path, now=NOW)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'probes.csv'}: row 2 (probe_id 'p1'): field {field!r}")
    assert expected in message


def test_probe_times_from_2004_up_to_now_are_accepted(tmp_path):
    rows = (
        "p1,nordbank,,email,2004-01-01T00:00:00Z,,2026-03-01T13:00:00+01:00,,\n"
        "p2,nordbank,,email,2026-03-01T12:00:00,,,,\n"
    )
    (tmp_path / "probes.csv").write_text(PROBES_HEADER + rows)
    reg = load_registry(write(tmp_path, "probes_file: probes.csv\n" + GOOD), now=NOW)
    assert [p.probe_id for p in reg.probes] == ["p1", "p2"]


def test_probe_times_are_checked_against_the_real_clock_by_default(tmp_path):
    (tmp_path / "probes.csv").write_text(
        PROBES_HEADER + "p1,nordbank,,email,2999-01-04T09:00:00Z,,,,\n"
    )
    with pytest.raises(RegistryError, match=r"row 2 \(probe_id 'p1'\): field 'sent_at'.*future"):
        load_registry(write(tmp_path, "probes_file: probes.csv\n" + GOOD))


@pytest.mark.parametrize(
    ("row", "now"),
    [
        ("nordbank,image,month,2026-04-01,50", NOW),
        # 2026-03-02 is the Monday after NOW (a Sunday)
        ("nordbank,image,week,2026-03-02,50", NOW),
        # 00:30 on 2026-03-01 at UTC+1 is still 2026-02-28 in UTC
        ("nordbank,image,month,2026-03-01,50", dt.datetime.fromisoformat("2026-03-01T00:30:00+01:00")),
    ],
)  # fmt: skip
def test_manual_metric_period_start_after_today_is_rejected(tmp_path, row, now):
    (tmp_path / "manual.csv").write_text(MANUAL_HEADER + row + "\n")
    path = write(tmp_path, "manual_metrics_file: manual.csv\n" + GOOD)
    with pytest.raises(RegistryError) as err:
        load_registry(path, now=now)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'manual.csv'}: row 2: field 'period_start'")
    assert "after today" in message


def test_manual_metric_period_start_up_to_today_is_accepted(tmp_path):
    rows = "nordbank,image,month,2026-03-01,50\nnordbank,image,week,2026-02-23,40\n"
    (tmp_path / "manual.csv").write_text(MANUAL_HEADER + rows)
    reg = load_registry(write(tmp_path, "manual_metrics_file: manual.csv\n" + GOOD), now=NOW)
    assert [m.period_start for m in reg.manual_metrics] == [
        dt.date(2026, 3, 1),
        dt.date(2026, 2, 23),
    ]


def test_a_probe_on_a_platform_without_connector_is_accepted(tmp_path):
    # entered by hand: only records.PLATFORMS matters, not a connector
    row = "p1,nordbank,youtube,direct_message,2026-01-05T09:00:00Z,,,,\n"
    (tmp_path / "probes.csv").write_text(PROBES_HEADER + row)
    reg = load_registry(write(tmp_path, "probes_file: probes.csv\n" + GOOD), now=NOW)
    assert reg.probes[0].platform == "youtube"


# --- the CSV files: header, columns, encoding -----------------------------------------------

PROBE_ROW = "p1,nordbank,,email,2026-01-05T09:00:00Z,,,,\n"
MANUAL_ROW = "nordbank,image,month,2026-01-01,50\n"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("probes", PROBES_HEADER.replace("\n", ",colour\n") + PROBE_ROW.replace("\n", ",red\n"), "unknown column(s) ['colour']"),
        ("probes", PROBES_HEADER.replace("\n", ",observed_at\n") + PROBE_ROW.replace("\n", ",\n"), "unknown column(s) ['observed_at']"),
        ("manual", MANUAL_HEADER.replace("\n", ",note,source\n") + MANUAL_ROW.replace("\n", ",x,y\n"), "unknown column(s) ['note', 'source']"),
        ("probes", PROBES_HEADER.replace("channel,", "") + PROBE_ROW.replace("email,", ""), "missing column(s) ['channel']"),
        ("probes", PROBES_HEADER.replace("quality", "quality,quality") + PROBE_ROW.replace("\n", ",\n"), "column(s) ['quality'] twice"),
        # no header row at all
        ("probes", "", "no header row"),
        ("probes", "\n\n", "no header row"),
        ("probes", PROBE_ROW, "no header row"),
        ("manual", MANUAL_ROW, "no header row"),
        # a row with more values than the header has columns
        ("probes", PROBES_HEADER + PROBE_ROW.replace("\n", ",5\n"), "row 2 (probe_id 'p1'): 1 value(s) beyond"),
        ("manual", MANUAL_HEADER + MANUAL_ROW.replace("\n", ",50,x\n"), "row 2: 2 value(s) beyond"),
    ],
)  # fmt: skip
def test_malformed_csv_names_file_and_columns(tmp_path, name, content, expected):
    (tmp_path / f"{name}.csv").write_text(content)
    path = write(
        tmp_path, f"{name}{'_metrics' if name == 'manual' else ''}_file: {name}.csv\n" + GOOD
    )
    with pytest.raises(RegistryError) as err:
        load_registry(path, now=NOW)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / (name + '.csv')}: ")
    assert expected in message


def test_csv_with_byte_order_mark_and_blank_trailing_values_reads(tmp_path):
    # as spreadsheets save it: a UTF-8 BOM, and empty cells beyond the header's columns
    (tmp_path / "probes.csv").write_bytes(
        b"\xef\xbb\xbf" + (PROBES_HEADER + PROBE_ROW.replace("\n", ",,\n")).encode()
    )
    reg = load_registry(write(tmp_path, "probes_file: probes.csv\n" + GOOD), now=NOW)
    assert [p.probe_id for p in reg.probes] == ["p1"]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        # 'Caf' starts at byte 21 + 10 = 31; the 0xe9 (latin-1 e-acute) is byte 34, line 3
        ("companies.yaml", b"companies:\n  - id: a\n    name: Caf\xe9\n", "byte 0xe9 at offset 34 (line 3)"),
        # the header is 89 bytes; 'caf' starts at 89 + 40 = 129; 0xe9 at 132, line 2
        ("probes.csv", PROBES_HEADER.encode() + b"p1,nordbank,,email,2026-01-05T09:00:00Z,caf\xe9,,,\n", "byte 0xe9 at offset 132 (line 2)"),
        ("manual.csv", MANUAL_HEADER.encode() + MANUAL_ROW.encode() + b"\xff", "byte 0xff at offset 84 (line 3)"),
    ],
)  # fmt: skip
def test_file_not_in_utf8_names_file_and_offset(tmp_path, name, data, expected):
    (tmp_path / name).write_bytes(data)
    path = tmp_path / "companies.yaml"
    if name != "companies.yaml":
        key = "probes_file" if name == "probes.csv" else "manual_metrics_file"
        path = write(tmp_path, f"{key}: {name}\n" + GOOD)
    with pytest.raises(RegistryError) as err:
        load_registry(path, now=NOW)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / name}: not UTF-8: ")
    assert expected in message


def test_cli_run_reports_a_non_utf8_companies_file_and_exits_2(tmp_path):
    companies = tmp_path / "companies.yaml"
    companies.write_bytes(GOOD.encode("latin-1"))  # Bäckerei: 0xe4, not UTF-8
    env = {
        **os.environ,
        "SOCIALPULSE_COMPANIES": str(companies),
        "SOCIALPULSE_DATA_DIR": str(tmp_path / "data"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
    }
    env.pop("SOCIALPULSE_WAREHOUSE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "socialpulse.cli", "run"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{companies}: not UTF-8" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
