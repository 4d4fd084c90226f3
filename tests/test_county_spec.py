"""A yes/no field of the county template is declared once (issue 16): adding one reaches the analysts.

The subprocess below does what adding a ``Field`` to ``REPORT_FIELDS`` in
etl/sources/county_template.py does — before anything else is imported —
and then runs the sample, the county pipeline and the follow-up mart
(whose report draws the offers' charts from the same fields). Nothing else
is edited: the column, its expectation, the mart columns, their suite's
ranges and the workbook's headers follow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import dataclasses, json, sys
from pathlib import Path
from etl.sources import county_template as tpl

new = tpl.Field("Friskvårdsbidrag", "offers.wellness_allowance", tpl.YES_NO, "offers_wellness_allowance",
                help="Ja/Nej: erbjuder friskvårdsbidrag", offer=True, en="offer a wellness allowance",
                sv="erbjuder friskvårdsbidrag")
at = tpl.REPORT_FIELDS.index(next(f for f in tpl.REPORT_FIELDS if f.kind == tpl.PERSONAL))
tpl.REPORT_FIELDS = (*tpl.REPORT_FIELDS[:at], new, *tpl.REPORT_FIELDS[at:])
tpl.YES_NO_FIELDS = tuple(f for f in tpl.REPORT_FIELDS if f.kind == tpl.YES_NO and f.column)
tpl.OFFER_FIELDS = tuple(f for f in tpl.YES_NO_FIELDS if f.offer)
tpl.JSON_KEYS = tpl._json_shape()

from etl import expectation_suites, publish, schemas
from etl.config import Settings
from etl.pipelines import county_reports, followup, reference
from etl.sample import county_reports as county_sample
from etl.sample import reference as reference_sample

landing, warehouse = Path(sys.argv[1]) / "landing", Path(sys.argv[1]) / "warehouse"
for module in (reference_sample, county_sample):
    module.write(landing, 2017, 2017, units=0, unit_months=0, seed=2016)
settings = Settings.resolve(landing=str(landing), warehouse=str(warehouse), kolada_kpis="",
                            environ={"ETL_LANDING_SETTLE_SECONDS": "0"})
reference.run(settings, offline_snapshot=True)
county_reports.run(settings)
followup.run(settings)
report = publish.read_table(str(warehouse), "county_report")
national = publish.read_table(str(warehouse), "followup_national_year").to_pylist()
from openpyxl import load_workbook
book = load_workbook(warehouse / "exports" / "followup_latest.xlsx")
headers = [c.value for sheet in book.worksheets for c in sheet[1]]
print(json.dumps({
    "column": "offers_wellness_allowance" in report.column_names,
    "answered": sum(r["offers_wellness_allowance"] is not None for r in report.to_pylist()),
    "national": [r["regions_answered_offers_wellness_allowance"] for r in national if r["year"] == 2017],
    "suite": [e["kwargs"]["column"] for e in expectation_suites.load_suite_json("county_report")["expectations"]
              if e["kwargs"].get("column") == "offers_wellness_allowance"],
    "mart_suite": [e["kwargs"]["column"] for e in expectation_suites.load_suite_json("followup_national_year")["expectations"]
                   if "wellness" in e["kwargs"].get("column", "")],
    "workbook": [h for h in headers if h and "Friskvårdsbidrag".lower() in str(h).lower()],
}))
"""


@pytest.mark.slow
def test_a_new_yes_no_field_declared_in_the_template_reaches_the_marts(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["column"] and got["answered"] > 0
    assert got["national"] and got["national"][0] == got["answered"]
    assert got["suite"] == ["offers_wellness_allowance"]
    assert got["mart_suite"] == ["regions_offers_wellness_allowance", "regions_answered_offers_wellness_allowance"]
    assert "Friskvårdsbidrag" in got["workbook"]
    assert any("regioner med ja: friskvårdsbidrag" == h.lower() for h in got["workbook"])


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
