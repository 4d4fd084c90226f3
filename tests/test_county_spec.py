"""A yes/no field of the county template is declared once (issue 16): adding one reaches the analysts.

The change test edits ``REPORT_FIELDS`` in a copy of the checkout
(tests/project_copy.py), regenerates the docs and runs the sample, the
pipelines and the follow-up mart (whose report draws the offers' charts
from the same fields). Nothing else is edited: the column, its expectation,
the mart columns, their suite's ranges, the workbook's headers and the
docs' field tables follow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Issue 26 §1: what a developer adds to REPORT_FIELDS in etl/sources/county_template.py — and nothing else.
NEW_FIELD = """    Field(
        "Friskvårdsbidrag",
        "offers.wellness_allowance",
        YES_NO,
        "offers_wellness_allowance",
        help="Ja/Nej: erbjuder friskvårdsbidrag",
        offer=True,
        en="offer a wellness allowance",
        sv="erbjuder friskvårdsbidrag",
        asked_from=2025,  # the coming report year: reports already sent (fixtures of 2019 made by real tools) stay valid
    ),
    Field(
        "Kontaktperson","""

AFTER_RUN = r"""
import json, sys
from pathlib import Path
from openpyxl import load_workbook
from etl import expectation_suites, publish

warehouse = Path(sys.argv[1])
report = publish.read_table(str(warehouse), "county_report")
national = publish.read_table(str(warehouse), "followup_national_year").to_pylist()
book = load_workbook(warehouse / "exports" / "followup_latest.xlsx")
headers = [c.value for sheet in book.worksheets for c in sheet[1]]
print(json.dumps({
    "column": "offers_wellness_allowance" in report.column_names,
    "answered": sum(r["offers_wellness_allowance"] is not None for r in report.to_pylist()),
    "national": [r["regions_answered_offers_wellness_allowance"] for r in national if r["year"] == 2025],
    "answered_before": sum(r["offers_wellness_allowance"] is not None for r in report.to_pylist()
                         if r["report_year"] == 2024),
    "suite": [e["kwargs"]["column"] for e in expectation_suites.load_suite_json("county_report")["expectations"]
              if e["kwargs"].get("column") == "offers_wellness_allowance"],
    "mart_suite": [e["kwargs"]["column"] for e in expectation_suites.load_suite_json("followup_national_year")["expectations"]
                   if "wellness" in e["kwargs"].get("column", "")],
    "workbook": [h for h in headers if h and "Friskvårdsbidrag".lower() in str(h).lower()],
    "migrated": sorted({r["table_name"] for r in publish.read_load_log(str(warehouse)).to_pylist()
                        if r["pipeline"] == "migration"}),
    "view": __import__("duckdb").connect(str(warehouse / "followup.duckdb"), read_only=True).execute(
        "select count(offers_wellness_allowance) from county_report").fetchone()[0],
    "summary_query": [answered for year, question, yes, answered, *_ in __import__("duckdb").connect(
        str(warehouse / "followup.duckdb"), read_only=True).execute(Path("sql/06_summary_counts.sql").read_text()
        ).fetchall() if question == "offers_wellness_allowance" and year == 2025],
    "suites_from": [str(p) for p in __import__("etl.expectations").expectations.__path__],
}))
"""


@pytest.mark.slow
def test_a_new_yes_no_field_is_one_declaration_and_reaches_the_marts(tmp_path):
    """Issue 26 §1: a yes/no field added to the template's declaration, plus ``etl docs``; the template, the
    parser, the column, its expectation, the mart, the workbook, the contract and the senders' guide follow —
    also on a warehouse the checkout (without the field) wrote. No monkeypatching: a copy of the checkout is
    edited as a developer would and run."""
    from tests import project_copy

    copy = project_copy.copy_project(tmp_path / "project")
    template = "etl/sources/county_template.py"
    project_copy.edit(copy, template, '    Field(\n        "Kontaktperson",', NEW_FIELD)
    project_copy.run(copy, "-m", "etl", "docs")
    assert project_copy.changed(copy) == {
        template,
        "docs/tables.md",
        "docs/input-formats.md",
        "docs/county-report-guide.md",
        "docs/summary-rules.md",
        "sql/06_summary_counts.sql",
    }
    guide = (copy / "docs" / "county-report-guide.md").read_text(encoding="utf-8")
    assert (
        "| Friskvårdsbidrag | Ja/Nej — does the region offer a wellness allowance? (asked from report year 2025 on; "
        "earlier reports may leave it out) |" in guide
    )

    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    # The warehouse as the checkout (without the field) leaves it: the copy's run must take it from there.
    project_copy.run(
        ROOT, "-m", "etl", "sample", "--out", str(landing), "--years", "2024-2024", "--units", "1", "--unit-months", "0"
    )
    project_copy.run(
        ROOT, "-m", "etl", "run", "all", "--landing", str(landing), "--warehouse", str(warehouse), "--offline-snapshot"
    )
    # The copy's run on that warehouse and landing: the column is added (null in the published 2024 rows); then
    # the next year's reports, sent with the new field, fill it.
    project_copy.run(
        copy, "-m", "etl", "run", "all", "--landing", str(landing), "--warehouse", str(warehouse), "--offline-snapshot"
    )
    # Next year's reports arrive beside last year's: the sample writes only into a landing of its own, so
    # they are made aside and sent in (with the APIs' answers of that year).
    sent = tmp_path / "sent_2025"
    project_copy.run(
        copy, "-m", "etl", "sample", "--out", str(sent), "--years", "2025-2025", "--units", "1", "--unit-months", "0"
    )
    for path in sorted(sent.rglob("*")):
        if path.is_file() and path.parent != sent:
            (landing / path.relative_to(sent)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, landing / path.relative_to(sent))
    project_copy.run(
        copy, "-m", "etl", "run", "all", "--landing", str(landing), "--warehouse", str(warehouse), "--offline-snapshot"
    )
    # Rebuilt from the whole landing by the copy — last year's reports on the template without the field,
    # this year's with it: every report loads (a helper's rebuild saw 22 of 22 refused before asked_from).
    rebuilt = tmp_path / "rebuilt"
    project_copy.run(copy, "-m", "etl", "run", "county-reports", "--landing", str(landing), "--warehouse", str(rebuilt))
    years = [r["report_year"] for r in _county_rows(copy, rebuilt)]
    assert (years.count(2024), years.count(2025)) == (21, 21)
    # A 2025 report without the field is refused whole, naming it; a 2024 one without it would load.
    checked = project_copy.run_status(copy, "-m", "etl", "check", str(_without_field(landing, tmp_path, 2025)))
    assert checked.returncode == 1 and "'offers.wellness_allowance'" in checked.stdout + checked.stderr
    got = json.loads(project_copy.run(copy, "-c", AFTER_RUN, str(warehouse)).stdout.strip().splitlines()[-1])
    assert got["suites_from"] == [str(copy / "etl" / "expectations")]  # the copy's suites, not the checkout's
    # The published county table gained the column (one metadata commit, logged; the marts are rebuilt whole in
    # their new shape); the next year's reports fill it, and the analysts' DuckDB view has it.
    assert got["migrated"] == ["county_report"]
    assert got["view"] == got["answered"]
    assert got["column"] and got["answered"] > 0 and got["answered_before"] == 0
    assert got["national"] and got["national"][0] == got["answered"]
    assert got["suite"] == ["offers_wellness_allowance"]
    assert got["mart_suite"] == ["regions_offers_wellness_allowance", "regions_answered_offers_wellness_allowance"]
    assert "Friskvårdsbidrag" in got["workbook"]
    assert got["summary_query"] == got["national"]  # sql/06 (regenerated) counts the new question too
    assert any("regioner med ja: friskvårdsbidrag" == h.lower() for h in got["workbook"])
    # The project's own tests of the declaration hold in the edited copy: none hard-codes the fields.
    project_copy.run(
        copy,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        "tests/test_county_spec.py",
        "tests/test_county_parsers.py",
        "tests/test_summary_rules.py",
        "tests/test_report_contents.py",
        "tests/test_cli.py::test_committed_docs_are_up_to_date",
        "tests/test_cli.py::test_the_generated_sections_of_the_docs_follow_the_declarations",
        "tests/test_followup_access.py::test_workbook_files_sheets_and_swedish_headers",
        "tests/test_followup_access.py::test_sql_question_returns_the_hand_worked_answer",
        "tests/test_county_pipeline.py",
    )


def test_every_yes_no_field_has_its_phrases_and_no_suite_repeats_a_derived_expectation():
    from etl import expectation_suites, schemas
    from etl.sources import county_template as tpl

    for f in tpl.YES_NO_FIELDS:
        assert f.en and f.sv and f.label, f
    for table in schemas.all_tables():
        if not table.expectations:
            continue
        reviewed = json.loads(expectation_suites.suite_path(table.name).read_text(encoding="utf-8"))["expectations"]
        written = {(e["type"], json.dumps(e["kwargs"], sort_keys=True)) for e in reviewed}
        for expectation in table.expectations:
            key = (expectation["type"], json.dumps(expectation["kwargs"], sort_keys=True))
            assert key not in written, f"{table.name}: {key} is in the JSON suite and derived from the source"


def test_the_guides_json_example_is_a_report_that_loads():
    """The senders' guide's web-form example is written from the declaration (make docs): it has every key the
    form has — a field added to the template is in it — and it loads as it stands."""
    import re

    from etl.sources import county_reports

    guide = (ROOT / "docs" / "county-report-guide.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", guide.split("## The web form's JSON", 1)[1], re.S)
    assert block is not None
    report = county_reports.parse_report(block.group(1).encode("utf-8"), "example.json")
    assert report.error is None, report.error
    assert report.header is not None
    assert report.header["grant_sek"] == 20_000_000 and report.header["spend_competence_use_sek"] == 5_000_000
    assert len(report.initiatives) == 1 and len(report.services) == 1


def _county_rows(copy: Path, warehouse: Path) -> list[dict]:
    """The published county_report rows of ``warehouse``, read by the copy's code."""
    from tests import project_copy

    script = "import json, sys; from etl import publish; print(json.dumps(publish.read_table(sys.argv[1], 'county_report').to_pylist(), default=str))"
    return json.loads(project_copy.run(copy, "-c", script, str(warehouse)).stdout.strip().splitlines()[-1])


def _without_field(landing: Path, tmp_path: Path, year: int) -> Path:
    """A JSON report of ``year`` from ``landing`` with the new field's key taken out, written aside."""
    source = next(
        p
        for p in sorted((landing / "county_reports").glob("*.json"))
        if json.loads(p.read_text(encoding="utf-8"))["report_year"] == year
    )
    document = json.loads(source.read_text(encoding="utf-8"))
    del document["offers"]["wellness_allowance"]
    out = tmp_path / "aside" / source.name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return out
