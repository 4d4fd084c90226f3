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


NEW_KIND = r"""
import json, sys
from pathlib import Path
from etl.sources import ehealth_spec as spec

# What adding a kind to etl/sources/ehealth_spec.py does, before anything else is imported.
visits = spec.ExportSpec(
    kind="digitala_besok", service="digital_visits", service_sv="Digitala vårdbesök",
    service_en="digital care visits", title_en="Digital care visits", short_sv="Digitala besök",
    metrics=(spec.Metric("Besök", "visits", "besök", "visits"),
             spec.Metric("Unika patienter", "unique_patients", "unika patienter", "unique patients")),
    rules=(spec.LineRule("_check_unique_patients_le_visits", "unique_patients", "visits", "critical"),),
    expected_from="2019-03")
spec.EXPORTS = {**spec.EXPORTS, visits.kind: visits}
spec.MONTHLY_KINDS = tuple(spec.EXPORTS)
spec.SERVICES = {s.service: s for s in spec.EXPORTS.values()}
spec.ALL_METRICS = tuple(m for s in spec.EXPORTS.values() for m in s.metric_names)
spec.LINE_RULES = tuple(r for s in spec.EXPORTS.values() for r in s.rules)
spec.TABLES_BY_KIND = {**{k: s.tables for k, s in spec.EXPORTS.items()}, spec.UNITS.kind: spec.UNITS.tables}
spec.SERIES = (*spec.SERIES, spec.Series("digital_visits_visits", "digitala_besok", "visits", change=True))

from etl import expectation_suites, publish, regions
from etl.config import Settings
from etl.pipelines import ehealth_adoption, followup, reference
from etl.sample import ehealth as ehealth_sample
from etl.sample import reference as reference_sample

base = Path(sys.argv[1])
landing, warehouse = base / "landing", base / "warehouse"
for module in (reference_sample, ehealth_sample):
    module.write(landing, 2019, 2019, units=0, unit_months=0, seed=2016)
lines = ["Månad;Region;Besök;Unika patienter"]
for region in regions.REGIONS:
    lines.append(f"2019-03;{region.region_name};{1000 + int(region.code)};{500 + int(region.code)}")
lines.append(f"2019-03;Riket;{sum(1000 + int(r.code) for r in regions.REGIONS)};"
             f"{sum(500 + int(r.code) for r in regions.REGIONS)}")
(landing / "ehealth" / "digitala_besok_2019-03.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
settings = Settings.resolve(landing=str(landing), warehouse=str(warehouse), kolada_kpis="",
                            environ={"ETL_LANDING_SETTLE_SECONDS": "0"})
reference.run(settings, offline_snapshot=True)
ehealth_adoption.run(settings)
followup.run(settings)
adoption = publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()
mart = publish.read_table(str(warehouse), "followup_region_year").to_pylist()
print(json.dumps({
    "rows": sum(r["service"] == "digital_visits" for r in adoption),
    "mean": [r["digital_visits_visits_per_1000_mean"] for r in mart if r["region_code"] == "01" and r["year"] == 2019],
    "suite": [e["kwargs"]["column"] for e in expectation_suites.load_suite_json("ehealth_adoption")["expectations"]
              if e["kwargs"].get("column") in ("service", "metric", "_check_unique_patients_le_visits")],
    "expected": [spec.kinds_expected("2019-02"), spec.kinds_expected("2019-03")],
}))
"""


@pytest.mark.slow
def test_a_new_export_kind_declared_in_the_spec_loads_and_reaches_the_marts(tmp_path):
    """Issue 16: a third monthly export (digital visits) is its ExportSpec and Series; nothing else is edited."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", NEW_KIND, str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rows"] == 21 * 2
    assert got["mean"] and got["mean"][0] > 0
    assert got["expected"] == [["journalen", "webbtidbok"], ["journalen", "webbtidbok", "digitala_besok"]]
    assert got["suite"] == ["service", "metric", "_check_unique_patients_le_visits"]
