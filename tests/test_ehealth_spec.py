"""The e-health exports are declared once (etl/sources/ehealth_spec.py): everything else agrees with it.

What is derived from the spec needs no test of its own beyond the pipeline's; what is hand-written
beside it (the suites' value sets and line rules, the input contract) fails here when it drifts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl import schemas, validation
from etl.sample import ehealth as sample
from etl.sources import ehealth_exports as exports
from etl.sources import ehealth_spec as spec

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("ehealth_adoption", "ehealth_adoption_national")


def _expectations(table: str) -> list[dict]:
    return validation.load_suite_json(table)["expectations"]


def _value_set(table: str, column: str) -> set:
    [found] = [e["kwargs"]["value_set"] for e in _expectations(table)
               if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == column]
    return set(found)


@pytest.mark.parametrize("table", SUITES)
def test_the_suites_value_sets_are_the_specs(table):
    assert _value_set(table, "service") == {s.service for s in spec.EXPORTS.values()}
    assert _value_set(table, "metric") == set(spec.ALL_METRICS)


@pytest.mark.parametrize("table", SUITES)
def test_every_line_rule_is_in_the_suites_with_its_severity_and_no_other(table):
    checks = {e["kwargs"]["column"]: e.get("severity") for e in _expectations(table)
              if e["kwargs"].get("column", "").startswith("_check_") and e["kwargs"].get("value_set") == [True]}
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
    with pytest.raises(Exception, match="journalen_YYYY-MM, webbtidbok_YYYY-MM"):
        exports.parse_file_name("digitala_besok_2019-03.csv")


def test_the_sample_writes_the_headers_the_reader_wants():
    for kind, export in spec.EXPORTS.items():
        rows = sample.export_rows(kind, __import__("datetime").date(2019, 3, 1),
                                  *_values(kind), sample.PLAIN)
        assert tuple(rows[0][2:]) == tuple(m.header for m in export.metrics)


def _values(kind):
    import datetime as dt

    journal, web, _ = sample.month_values(dt.date(2019, 3, 1), 7)
    return ({"journalen": journal, "webbtidbok": web}[kind],)


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
