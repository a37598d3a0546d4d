"""The data dictionary: generated from the model headers and record schemas, never drifting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from socialpulse.dictionary import DEFAULT_OUT, main, render_dictionary, write_dictionary
from socialpulse.models import discover
from socialpulse.records import RAW_SCHEMAS
from tests.conftest import PROJECT_ROOT

COMMITTED = PROJECT_ROOT / "docs" / "data-dictionary.md"


@pytest.fixture(scope="module")
def text() -> str:
    return render_dictionary()


def _section(text: str, heading: str) -> str:
    """The text of one '### heading' section, up to the next heading of level 2 or 3."""
    start = text.index(f"\n### {heading}\n")
    ends = [i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i > 0]
    return text[start : min(ends, default=len(text))]


def test_committed_dictionary_is_up_to_date(text):
    assert DEFAULT_OUT == COMMITTED
    assert COMMITTED.is_file(), f"{COMMITTED} is missing: run `make docs` and commit it"
    assert COMMITTED.read_text(encoding="utf-8") == text, (
        f"{COMMITTED} is out of date with the SQL model headers / record schemas: "
        "run `make docs` (python -m socialpulse.dictionary) and commit the result"
    )


def test_render_is_deterministic_and_ends_with_one_newline(text):
    assert render_dictionary() == text
    assert render_dictionary(list(reversed(discover()))) == text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_title_intro_contents_and_section_order(text):
    lines = text.splitlines()
    assert lines[0].startswith("# ")
    intro = lines[2]
    for needle in ("make docs", "YAML headers", "records.py", "../shared/METRICS.md"):
        assert needle in intro
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## Contents", "## Marts", "## Intermediate", "## Staging", "## Raw tables"]


def test_every_model_has_a_section_with_description_and_upstream(text):
    for model in discover():
        section = _section(text, model.qualified)
        assert model.description in section
        for dep in model.depends_on:
            assert f"[`{dep}`]" in section.split("- Used by:")[0], (model.qualified, dep)
        assert f"](#{model.qualified.replace('.', '')})" in text  # listed in the contents


def test_every_marts_column_appears_with_its_header_description(text):
    marts = [m for m in discover() if m.layer == "marts"]
    assert {m.name for m in marts} >= {"company_metrics", "segment_benchmarks", "success_index"}
    for model in marts:
        section = _section(text, model.qualified)
        for column, description in model.columns.items():
            row = f"| `{column}` | {description.replace('|', chr(92) + '|')} |"
            assert row in section.splitlines(), (model.qualified, column)


def test_every_raw_column_appears_with_type_nullability_and_description(text):
    for table, schema in RAW_SCHEMAS.items():
        section = _section(text, f"raw.{table}")
        assert schema.description in section
        assert "Natural key: " + ", ".join(f"`{k}`" for k in schema.key) in section
        rows = section.splitlines()
        for c in schema.columns:
            prefix = (
                f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description} |"
            )
            assert any(r.startswith(prefix) for r in rows), (table, c.name)


def test_raw_allowed_values_and_ranges_are_listed(text):
    probes = _section(text, "raw.probes").splitlines()
    quality = next(r for r in probes if r.startswith("| `quality` |"))
    assert quality.rstrip().endswith("| 1 to 5 |")
    channel = next(r for r in probes if r.startswith("| `channel` |"))
    assert "`direct_message`" in channel and "`web_form`" in channel


def test_write_dictionary_reports_whether_it_changed(tmp_path):
    out = tmp_path / "docs" / "data-dictionary.md"
    assert write_dictionary(out) is True
    assert out.read_text(encoding="utf-8") == render_dictionary()
    assert write_dictionary(out) is False
    out.write_text("stale\n", encoding="utf-8")
    assert write_dictionary(out) is True


def test_check_exits_1_on_a_stale_file_and_0_on_a_fresh_one(tmp_path, capsys):
    out = tmp_path / "data-dictionary.md"
    assert main(["--check", "--out", str(out)]) == 1  # missing
    out.write_text(render_dictionary().replace("Marts", "Marts (old)", 1), encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 1
    assert "make docs" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") != render_dictionary()  # --check writes nothing
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0


def test_module_entry_point_check(tmp_path):
    out = tmp_path / "data-dictionary.md"
    out.write_text("stale\n", encoding="utf-8")

    def check() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "socialpulse.dictionary", "--check", "--out", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)

    stale = check()
    assert stale.returncode == 1
    assert "out of date" in stale.stderr and "make docs" in stale.stderr
    out.write_text(render_dictionary(), encoding="utf-8")
    assert check().returncode == 0
