"""Hand-made source tables for the follow-up marts' tests, published as the source pipelines would.

Shared by test_followup_mart (the values, worked out by hand from these inputs) and test_followup_access
(the DuckDB views, workbook and report over the same warehouse).

The inputs (``build_sources``): all 21 regions, years 2019-2021.

* Population: Stockholm (01) 2 000 000 → 2 100 000, Uppsala (03) 400 000 →
  380 000, Gotland (09) 60 000 both years, every other region 100 000 both
  years; nothing for 2021 (not yet published by SCB).
* County reports: 01 and 03 report 2019 and 2020, 09 only 2019 (so 09/2020
  is "did not report"); nobody reports 2021.
* Journal / web booking exports for Nov-Dec 2019, Nov-Dec 2020 and Jan 2021
  with one suppressed logins cell (01, Dec 2019) and one suppressed
  unique-users cell (03, Dec 2019), plus the national totals (Riket).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from etl import publish, regions
from etl.publish import TableBatch

D = dt.date
YEARS = (2019, 2020)
OTHERS = [r.code for r in regions.REGIONS if r.code not in {"01", "03", "09"}]
INJECTED_NAME = '=HYPERLINK("http://example.invalid","Norrbotten")'

# --------------------------------------------------------------------------- hand-made source tables


def publish_rows(uri: str, table: str, rows: list[dict], merge_keys=None) -> None:
    frame = pd.DataFrame(rows)
    frame["source_file"] = f"handmade/{table}"
    empty_q = pd.DataFrame(columns=["source_file", "row_number", "raw", "reason"])
    publish.publish(uri, "test", TableBatch(table, frame, empty_q, len(frame), merge_keys), publish.new_batch_id())


def dim_region_rows(drop: str | None = None, rename: dict | None = None) -> list[dict]:
    rename = rename or {}
    return [
        {
            "region_code": r.code,
            "region_name": rename.get(r.code, r.region_name),
            "county_name": r.county_name,
            "kolada_id": r.kolada_id,
        }
        for r in regions.REGIONS
        if r.code != drop
    ]


def _report(code, year, grant, earmarked, spend, offers):
    it, use, supply = spend
    clinical, salary, care, task = offers
    return {
        "region_code": code,
        "report_year": year,
        "grant_sek": grant,
        "earmarked": earmarked,
        "spend_it_support_sek": it,
        "spend_competence_use_sek": use,
        "spend_competence_supply_sek": supply,
        "offers_clinical_intro_year": clinical,
        "offers_specialist_nurse_study_salary": salary,
        "has_care_near_service": care,
        "has_task_shifting": task,
        "submitted_at": dt.datetime(year + 1, 3, 1, tzinfo=dt.UTC),
    }


COUNTY_REPORTS = [
    _report("01", 2019, 10_000_000, True, (2_000_000, 3_000_000, 4_000_000), (True, False, None, True)),
    _report("01", 2020, 12_000_000, True, (6_000_000, 3_000_000, 3_060_000), (True, True, None, True)),
    _report("03", 2019, 2_000_000, False, (500_000, 500_000, None), (False, None, True, False)),
    _report("03", 2020, 1_900_000, None, (950_000, 475_000, 475_000), (True, True, True, False)),
    _report("09", 2019, 300_000, True, (100_000, 100_000, 100_000), (False, False, False, False)),
]


def _initiative(code, year, no, area, new, title=None):
    return {
        "region_code": code,
        "report_year": year,
        "initiative_no": no,
        "title": title or f"Insats {code}-{no}",
        "area": area,
        "status": "ongoing",
        "new_due_to_grant": new,
        "cost_sek": None,
        "description": None,
        "submitted_at": dt.datetime(year + 1, 3, 1, tzinfo=dt.UTC),
    }


INITIATIVES = [
    _initiative("01", 2019, 1, "it_support", True, "Digital triage i primärvården"),
    _initiative("01", 2019, 2, "competence_use", False),
    _initiative("01", 2019, 3, "competence_supply", None),
    _initiative("01", 2020, 1, "it_support", True, "Webbtidbok i alla vårdcentraler"),
    _initiative("01", 2020, 2, "it_support", True, "Journalen för vårdnadshavare"),
    _initiative("03", 2020, 1, "competence_supply", True, "Kliniskt basår för nya sjuksköterskor"),
    _initiative("09", 2019, 1, "competence_use", True, "Vårdnära service på avdelning 3"),
]


def _service(code, year, service, status, on=None):
    return {
        "region_code": code,
        "report_year": year,
        "service": service,
        "status": status,
        "implemented_on": on,
        "submitted_at": dt.datetime(year + 1, 3, 1, tzinfo=dt.UTC),
    }


SERVICES = [
    _service("01", 2019, "web_booking", "implemented", D(2017, 5, 1)),
    _service("01", 2019, "patient_journal_online", "implemented", D(2018, 3, 15)),
    _service("01", 2019, "remote_care", "planned"),
    _service("01", 2020, "web_booking", "implemented", D(2017, 5, 1)),
    _service("01", 2020, "patient_journal_online", "implemented", D(2018, 3, 15)),
    _service("01", 2020, "remote_care", "partly_implemented", D(2020, 9, 1)),
    _service("01", 2020, "self_check_in", "not_started"),
    _service("03", 2019, "web_booking", "partly_implemented", D(2019, 2, 1)),
    _service("03", 2019, "patient_journal_online", "implemented", D(2019, 10, 1)),
    _service("03", 2020, "web_booking", "implemented", D(2019, 2, 1)),
    _service("03", 2020, "patient_journal_online", "implemented", D(2019, 10, 1)),
    _service("09", 2019, "web_booking", "not_started"),
    _service("09", 2019, "patient_journal_online", "planned"),
]


def _cell(code, month: D, service, metric, value):
    row = {
        "year": month.year,
        "month": month,
        "service": service,
        "metric": metric,
        "value": value,
        "suppressed": value is None,
    }
    if code is not None:
        row["region_code"] = code
    return row


J, W = "patient_journal_online", "web_booking"
ADOPTION = [
    # Stockholm: unique users 200 000 / 220 000 of 2 000 000 → 100 and 110 per 1 000 (mean 105, Dec 110).
    _cell("01", D(2019, 11, 1), J, "unique_users", 200_000),
    _cell("01", D(2019, 12, 1), J, "unique_users", 220_000),
    # logins 500 000 → 250 per 1 000; December suppressed → mean over 1 month, no December figure.
    _cell("01", D(2019, 11, 1), J, "logins", 500_000),
    _cell("01", D(2019, 12, 1), J, "logins", None),
    # bookings 40 000 / 60 000 → 20 / 30 per 1 000 (mean 25, Dec 30); 150 of 200 units connected in December.
    _cell("01", D(2019, 11, 1), W, "bookings", 40_000),
    _cell("01", D(2019, 12, 1), W, "bookings", 60_000),
    _cell("01", D(2019, 12, 1), W, "units_connected", 150),
    _cell("01", D(2019, 12, 1), W, "units_total", 200),
    # 2020: 315 000 of 2 100 000 → 150 per 1 000.
    _cell("01", D(2020, 12, 1), J, "unique_users", 315_000),
    # January 2021: no 2021 population yet → divided by the 2020 count: 336 000 / 2 100 000 → 160.
    _cell("01", D(2021, 1, 1), J, "unique_users", 336_000),
    # Uppsala: December 2019 suppressed → no 2019 mean (0 months), never 0.
    _cell("03", D(2019, 12, 1), J, "unique_users", None),
    # 2020: 38 000 / 57 000 of 380 000 → 100 / 150 per 1 000 (mean 125).
    _cell("03", D(2020, 11, 1), J, "unique_users", 38_000),
    _cell("03", D(2020, 12, 1), J, "unique_users", 57_000),
    # units total suppressed → no share.
    _cell("03", D(2020, 12, 1), W, "units_connected", 10),
    _cell("03", D(2020, 12, 1), W, "units_total", None),
]
NATIONAL = [
    # The country: 2019 population 4 260 000, 2020 4 340 000 (see POPULATION).
    _cell(None, D(2019, 11, 1), J, "unique_users", 852_000),  # → 200 per 1 000
    _cell(None, D(2019, 12, 1), J, "unique_users", 1_065_000),  # → 250
    _cell(None, D(2020, 12, 1), J, "unique_users", 1_302_000),  # → 300
    _cell(None, D(2021, 1, 1), J, "unique_users", 1_345_400),  # → 310 (2020 population)
    _cell(None, D(2019, 11, 1), J, "logins", 2_130_000),  # → 500
]


def population_rows() -> list[dict]:
    special = {
        ("01", 2019): 2_000_000,
        ("01", 2020): 2_100_000,
        ("03", 2019): 400_000,
        ("03", 2020): 380_000,
        ("09", 2019): 60_000,
        ("09", 2020): 60_000,
    }
    return [
        {"region_code": code, "year": year, "population": special.get((code, year), 100_000)}
        for code in regions.REGION_CODES
        for year in YEARS
    ]


def build_sources(uri: str, *, dim_region=None, county_reports=None) -> None:
    publish_rows(
        uri, "dim_region", dim_region if dim_region is not None else dim_region_rows(rename={"25": INJECTED_NAME})
    )
    publish_rows(uri, "population", population_rows())
    publish_rows(uri, "county_report", county_reports if county_reports is not None else COUNTY_REPORTS)
    publish_rows(uri, "county_initiative", INITIATIVES)
    publish_rows(uri, "county_ehealth_service", SERVICES)
    publish_rows(uri, "ehealth_adoption", ADOPTION)
    publish_rows(uri, "ehealth_adoption_national", NATIONAL)
