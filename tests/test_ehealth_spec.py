"""The e-health exports are declared once (etl/sources/ehealth_spec.py): everything else agrees with it.

What is derived from the spec needs no test of its own beyond the pipeline's; what is hand-written
beside it (the suites' value sets and line rules, the input contract) fails here when it drifts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl import expectation_suites, schemas
from etl.sample import ehealth as sample
from etl.sources import ehealth_exports as exports
from etl.sources import ehealth_spec as spec

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("ehealth_adoption", "ehealth_adoption_national")


def _expectations(table: str) -> list[dict]:
    return expectation_suites.load_suite_json(table)["expectations"]


def _value_set(table: str, column: str) -> set:
    [found] = [
        e["kwargs"]["value_set"]
        for e in _expectations(table)
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == column
    ]
    return set(found)


@pytest.mark.parametrize("table", SUITES)
def test_the_suites_value_sets_are_the_specs(table):
    assert _value_set(table, "service") == {s.service for s in spec.EXPORTS.values()}
    assert _value_set(table, "metric") == set(spec.ALL_METRICS)


@pytest.mark.parametrize("table", SUITES)
def test_every_line_rule_is_in_the_suites_with_its_severity_and_no_other(table):
    checks = {
        e["kwargs"]["column"]: e.get("severity")
        for e in _expectations(table)
        if e["kwargs"].get("column", "").startswith("_check_") and e["kwargs"].get("value_set") == [True]
    }
    checks.pop("_check_suppressed_iff_null", None)  # a rule of every value, not of one export's metrics
    assert checks == {rule.check: rule.severity for rule in spec.LINE_RULES}


def test_line_rules_name_metrics_of_their_own_export():
    for export in spec.EXPORTS.values():
        for rule in export.rules:
            assert {rule.lesser, rule.greater} <= set(export.metric_names), rule


def test_names_are_unique_across_exports():
    assert len(spec.ALL_METRICS) == len(set(spec.ALL_METRICS))
    assert len(spec.SERVICES) == len(spec.EXPORTS)
    for export in spec.EXPORTS.values():
        assert export.expected_from >= spec.FIRST_MONTH


def test_file_names_follow_the_kinds():
    for kind in (*spec.EXPORTS, spec.UNITS.kind):
        assert exports.parse_file_name(f"{kind}_2019-03.csv").kind == kind
    listed = ", ".join(f"{kind}_YYYY-MM" for kind in spec.EXPORTS)
    with pytest.raises(Exception, match=listed):
        exports.parse_file_name("no_such_kind_2019-03.csv")


def test_the_sample_writes_the_headers_the_reader_wants_and_keeps_the_line_rules():
    import datetime as dt

    month = dt.date(2019, 3, 1)
    for kind, export in spec.EXPORTS.items():
        values = sample.kind_values(kind, month, 7)
        rows = sample.export_rows(kind, month, values, sample.PLAIN)
        assert tuple(rows[0][2:]) == tuple(m.header for m in export.metrics)
        for rule in export.rules:
            assert all(v[rule.lesser] <= v[rule.greater] for v in values.values()), (kind, rule)


def test_schema_docs_list_the_services_and_metrics():
    columns = {c.name: c.description for c in schemas.get("ehealth_adoption").columns}
    for export in spec.EXPORTS.values():
        assert export.service in columns["service"]
        assert all(m in columns["metric"] for m in export.metric_names)


def test_the_input_contract_names_every_header():
    contract = (ROOT / "docs" / "input-formats.md").read_text(encoding="utf-8")
    for export in spec.EXPORTS.values():
        assert f"{export.kind}_" in contract
        for metric in export.metrics:
            assert metric.header in contract, (export.kind, metric.header)
    for label in spec.UNITS.header:
        assert label in contract, label


# Issue 26 §1: what a developer adds to etl/sources/ehealth_spec.py for a third monthly export — and nothing else.
VISITS = """VISITS = ExportSpec(
    kind="digitala_besok",
    service="digital_visits",
    service_sv="Digitala vårdbesök",
    service_en="digital care visits",
    title_en="Digital care visits",
    short_sv="Digitala besök",
    metrics=(
        Metric("Besök", "visits", "besök", "visits"),
        Metric("Unika patienter", "unique_patients", "unika patienter", "unique patients"),
    ),
    rules=(LineRule("_check_unique_patients_le_visits", "unique_patients", "visits", "critical"),),
    expected_from="2019-03",
)
UNITS = UnitExportSpec("""

AFTER_RUN = r"""
import json, sys
from pathlib import Path
from etl import expectation_suites, publish
from etl.sources import ehealth_spec as spec

warehouse = Path(sys.argv[1])
adoption = publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()
mart = publish.read_table(str(warehouse), "followup_region_year").to_pylist()
print(json.dumps({
    "rows": sum(r["service"] == "digital_visits" for r in adoption),
    "months": sorted({str(r["month"])[:7] for r in adoption if r["service"] == "digital_visits"}),
    "mean": [r["digital_visits_visits_per_1000_mean"] for r in mart if r["region_code"] == "01" and r["year"] == 2019],
    "suite": [e["kwargs"]["column"] for e in expectation_suites.load_suite_json("ehealth_adoption")["expectations"]
              if e["kwargs"].get("column") in ("service", "metric", "_check_unique_patients_le_visits")],
    "expected": [spec.kinds_expected("2019-02"), spec.kinds_expected("2019-03")],
    "report": (warehouse / "exports" / "followup_report.html").read_text(encoding="utf-8").count(
        "t-digital_visits_visits_per_1000_mean"),
}))
"""


@pytest.mark.slow
def test_a_new_export_kind_is_one_declaration_and_reaches_the_marts(tmp_path):
    """Issue 26 §1: a third monthly export (digital visits) is its ExportSpec and Series in one file, plus
    ``etl docs``; the sample, the reader, the suites, the marts and the docs follow. No monkeypatching: a copy
    of the checkout is edited as a developer would and run."""
    import json

    from tests import project_copy

    copy = project_copy.copy_project(tmp_path / "project")
    spec_file = "etl/sources/ehealth_spec.py"
    project_copy.edit(copy, spec_file, "UNITS = UnitExportSpec(", VISITS)
    project_copy.edit(copy, spec_file, "for s in (JOURNAL, WEB_BOOKING)}", "for s in (JOURNAL, WEB_BOOKING, VISITS)}")
    project_copy.edit(
        copy,
        spec_file,
        '    Series("web_booking_bookings", "webbtidbok", "bookings", change=True),\n',
        '    Series("web_booking_bookings", "webbtidbok", "bookings", change=True),\n'
        '    Series("digital_visits_visits", "digitala_besok", "visits", change=True),\n',
    )
    project_copy.run(copy, "-m", "etl", "docs")
    assert project_copy.changed(copy) == {spec_file, "docs/tables.md", "docs/input-formats.md"}
    contract = (copy / "docs" / "input-formats.md").read_text(encoding="utf-8")
    assert "`digitala_besok_YYYY-MM.csv` — digital care visits; expected from 2019-03 on:" in contract
    assert "`Månad;Region;Besök;Unika patienter`" in contract

    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    project_copy.run(
        copy, "-m", "etl", "sample", "--out", str(landing), "--years", "2019-2019", "--units", "1", "--unit-months", "0"
    )
    assert sorted(p.name for p in (landing / "ehealth").glob("digitala_besok_*"))[0] == "digitala_besok_2019-03.csv"
    project_copy.run(
        copy, "-m", "etl", "run", "all", "--landing", str(landing), "--warehouse", str(warehouse), "--offline-snapshot"
    )
    got = json.loads(project_copy.run(copy, "-c", AFTER_RUN, str(warehouse)).stdout.strip().splitlines()[-1])
    assert got["months"] == [f"2019-{m:02d}" for m in range(3, 13)]
    assert got["rows"] == 21 * 2 * 10  # regions × metrics × months from March
    assert got["mean"] and got["mean"][0] > 0
    assert got["expected"] == [["journalen", "webbtidbok"], ["journalen", "webbtidbok", "digitala_besok"]]
    assert got["suite"] == ["service", "metric", "_check_unique_patients_le_visits"]
    assert got["report"] >= 1  # the HTML report has the new series' region × year table (a reviewer found none)
    # The project's own tests of the declaration hold in the edited copy: none hard-codes the two kinds.
    project_copy.run(
        copy,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        "tests/test_ehealth_spec.py",
        "tests/test_report_contents.py",
        "tests/test_delivery_monitoring.py",
        "tests/test_sample_consistency.py::test_the_small_sample_many_tests_use_stays_small",
        "tests/test_quality_plugin.py::test_ehealth_months_expected_received_loaded_blocked_overdue",
        "tests/test_cli.py::test_committed_docs_are_up_to_date",
        "tests/test_cli.py::test_the_generated_sections_of_the_docs_follow_the_declarations",
    )
