"""The synthetic sample looks like the real thing and says what it is (issue 25, item 5).

Read back through the project's own readers, a sample written with the
default ``--years``: the unit-level files count the units the monthly exports
count (no drop in the share of connected units where they begin), a service
once introduced stays so with one date, county reports cover the years the
e-health data covers, and the defect planted on purpose is named as such.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pytest

from etl import cli, regions
from etl.sample import county_reports as county_sample
from etl.sample import ehealth as ehealth_sample
from etl.sources import county_reports as county_source
from etl.sources import ehealth_exports, unit_daily
from tests.export_support import declared_exports, year_months

ROOT = Path(__file__).resolve().parent.parent
STATUS_RANK = {"not_started": 0, "planned": 1, "partly_implemented": 2, "implemented": 3}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    assert cli.main(["sample", "--out", str(out), "--units", "1000", "--unit-months", "2"]) == 0  # default --years
    return out


@pytest.fixture(scope="module")
def web_booking(landing) -> dict[dt.date, dict[str, dict[str, int]]]:
    """Month → region → metric → value, from every web booking export as the pipeline reads it."""
    out: dict[dt.date, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for path in (landing / "ehealth").glob("webbtidbok_2*"):
        read = ehealth_exports.read_export(str(path), path.read_bytes())
        assert read.file_error is None and not read.rejected_regional, path.name
        for row in read.regional:
            out[row["month"]][row["region_code"]][row["metric"]] = row["value"]
    return out


@pytest.fixture(scope="module")
def reports(landing) -> list[county_source.ParsedReport]:
    parsed = [
        county_source.parse_report(p.read_bytes(), p.name) for p in sorted((landing / "county_reports").iterdir())
    ]
    assert all(r.error is None for r in parsed)
    return parsed


def _share(values: dict[str, dict[str, int]], codes=None) -> float:
    codes = codes or list(values)
    return sum(values[c]["units_connected"] for c in codes) / sum(values[c]["units_total"] for c in codes)


def test_unit_files_hold_the_units_the_exports_count(landing, web_booking):
    unit_files = sorted((landing / "ehealth").glob("webbtidbok_enheter_*.csv"))
    assert [p.name for p in unit_files] == ["webbtidbok_enheter_2025-11.csv", "webbtidbok_enheter_2025-12.csv"]
    for path in unit_files:
        read = unit_daily.read_unit_daily(str(path))
        assert read.file_error is None and not read.rejected, path.name
        assert read.rows is not None, path.name
        rows = read.rows.to_pandas()
        month = dt.date.fromisoformat(read.period + "-01")
        units = rows.groupby("region_code").unit_hsa_id.nunique().to_dict()
        bookings = rows.groupby("region_code").bookings.sum().to_dict()
        for code in regions.REGION_CODES:
            export = web_booking[month][code]
            assert units.get(code, 0) == export["units_connected"], (path.name, code)
            assert bookings.get(code, 0) == export["bookings"], (path.name, code)
    # The last month's file holds every unit of the unit set: --units is what it says.
    assert sum(web_booking[dt.date(2025, 12, 1)][c]["units_connected"] for c in regions.REGION_CODES) == 1000


def test_share_of_connected_units_has_no_break_where_unit_files_begin(web_booking):
    months = sorted(web_booking)
    assert months[0] == dt.date(2016, 1, 1) and months[-1] == dt.date(2025, 12, 1) and len(months) == 120
    totals = [sum(web_booking[m][c]["units_total"] for c in regions.REGION_CODES) for m in months]
    assert totals == sorted(totals)  # care units only grow, also where the unit-level files begin
    shares = [_share(web_booking[m]) for m in months]
    assert all(b > a - 0.02 for a, b in zip(shares, shares[1:], strict=False)), shares
    # The mart's figure (December units connected / units total), per region: no region loses share in 2025.
    december_2024, december_2025 = web_booking[dt.date(2024, 12, 1)], web_booking[dt.date(2025, 12, 1)]
    for code in regions.REGION_CODES:
        assert _share(december_2025, [code]) > _share(december_2024, [code]) - 0.1, code
    assert _share(december_2025) > 0.9


def test_a_service_once_introduced_stays_so_with_one_date(reports):
    history: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for report in reports:
        for row in report.services:
            history[row["region_code"], row["service"]][row["report_year"]] = row
    assert len(history) == 21 * 4
    stockholm = history["01", "web_booking"]
    assert {row["status"] for row in stockholm.values()} <= {"partly_implemented", "implemented"}
    for (code, service), by_year in history.items():
        rows = [by_year[year] for year in sorted(by_year)]
        ranks = [STATUS_RANK[row["status"]] for row in rows]
        assert ranks == sorted(ranks), (code, service, [row["status"] for row in rows])
        dates = {row["implemented_on"] for row in rows if row["implemented_on"] is not None}
        assert len(dates) <= 1, (code, service, dates)
        for row in rows:
            introduced = row["status"] in ("partly_implemented", "implemented")
            assert (row["implemented_on"] is not None) == introduced, (code, service, row)
            if introduced:
                assert row["implemented_on"] <= dt.date(row["report_year"], 12, 31)
        if service == "patient_journal_online" and dates:
            # The same go-live month as the e-health sample's journal logins.
            live = ehealth_sample.JOURNAL_LIVE.get(code, ehealth_sample.DEFAULT_LIVE)
            assert next(iter(dates)).replace(day=1) == live, code


def test_county_reports_cover_the_years_of_the_ehealth_data(reports, web_booking):
    ehealth_years = sorted({m.year for m in web_booking})
    by_year: dict[int, set[str]] = defaultdict(set)
    for report in reports:
        by_year[report.header["report_year"]].add(report.header["region_code"])
    assert sorted(by_year) == ehealth_years == list(range(2016, 2026))
    assert all(codes == set(regions.REGION_CODES) for codes in by_year.values())
    assert sum(county_sample.grants(2025).values()) == county_sample.LATER_GRANT_SEK


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_planted_defect_is_named_and_the_demo_says_so(landing, monkeypatch, capsys):
    manifest = json.loads((landing / county_sample.DEFECTS_FILE).read_text(encoding="utf-8"))
    assert manifest["synthetic"] is True
    corrections = sorted((landing / "county_reports").glob("*_rattelse.*"))
    assert len(corrections) == 1 == len(manifest["defects"])
    planted = manifest["defects"][0]
    original = landing / planted["file"]
    assert original.exists() and original.stem + "_rattelse" == corrections[0].stem
    assert "superseded" in planted["defect"] and corrections[0].name in planted["why"]
    assert county_sample.DEFECTS_FILE in (landing / "README-county_reports.txt").read_text(encoding="utf-8")

    # The demo's summary, on a quarantine holding the superseded original's rows and one row of bad data.
    from etl import publish

    demo = _demo_module()
    quarantine: dict[str, list[dict]] = {  # as read_quarantine(...).to_pylist() gives them
        "county_report": [{"source_file": str(original), "rows_held": 1}],
        "county_initiative": [{"source_file": str(original), "rows_held": 1}] * 3,
        "ehealth_adoption": [{"source_file": str(landing / "ehealth" / "webbtidbok_2020-01.csv"), "rows_held": 5}],
    }

    class Rows:
        def __init__(self, rows):
            self.rows = rows

        def to_pylist(self):
            return self.rows

    monkeypatch.setattr(publish, "read_quarantine", lambda warehouse, table: Rows(quarantine[table]))
    rows = [{"table": t, "rows": 10, "quarantined": sum(r["rows_held"] for r in q)} for t, q in quarantine.items()]
    demo.planted_defects(landing / "warehouse", rows, landing)
    out = capsys.readouterr().out
    assert f"planted on purpose, not bad data: {planted['file']}" in out
    assert "1 in county_report, 3 in county_initiative" in out
    assert "5 quarantined row(s) NOT planted by the sample" in out

    quarantine.pop("ehealth_adoption")
    demo.planted_defects(landing / "warehouse", rows[:2], landing)
    assert "every quarantined row above is one the sample planted" in capsys.readouterr().out


def test_the_small_sample_many_tests_use_stays_small(tmp_path):
    assert (
        cli.main(["sample", "--out", str(tmp_path), "--years", "2019-2019", "--units", "5", "--unit-months", "1"]) == 0
    )
    assert len(list((tmp_path / "county_reports").iterdir())) == 21 + 1  # one report sent twice
    assert len(list((tmp_path / "ehealth").iterdir())) == len(declared_exports(year_months(2019))) + 1  # + units
    read = unit_daily.read_unit_daily(str(tmp_path / "ehealth" / "webbtidbok_enheter_2019-12.csv"))
    assert read.rows is not None, read.file_error
    assert read.rows.num_rows == 5 * 31


def test_the_sample_never_replaces_a_delivery_and_the_same_sample_again_changes_nothing(tmp_path, capsys):
    """`etl sample` into a landing holding other deliveries under the sample's names is refused with nothing
    changed; the same sample again leaves every file as it was, dates included. Its recorded API answers
    (api_snapshot/) are its own and are replaced."""
    small = ["sample", "--out", str(tmp_path), "--years", "2019-2019", "--units", "5", "--unit-months", "1"]
    assert cli.main(small) == 0
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime) for p in files}
    assert cli.main(small) == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime) for p in files} == before

    region_file = tmp_path / "ehealth" / "journalen_2019-03.csv"
    region_file.write_bytes(region_file.read_bytes().replace(b"\n", b"\r\n"))  # the region's own file, say
    sent = region_file.read_bytes()
    capsys.readouterr()
    assert cli.main(small) == 2  # a usage error: the wrong --out
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"error: {region_file}: is no file of this sample (1 such file(s) under {tmp_path}); "
        "`etl sample` writes synthetic deliveries beside no other delivery: give it an empty folder "
        "or one that holds this same sample"
    )
    assert region_file.read_bytes() == sent
    assert cli.main([*small[:4], "2019-2020", *small[5:]]) == 2  # 2019 drawn again differs from the first draw
    assert region_file.read_bytes() == sent
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files  # nothing of 2020 written either

    # A delivery under another name (a region's own .csv.gz of a month the sample also writes) refuses it too:
    # the synthetic file would stand beside it as a second export of that month (helper-27).
    region_file.write_bytes(sent.replace(b"\r\n", b"\n"))
    own = tmp_path / "ehealth" / "journalen_2019-04.csv.gz"
    own.write_bytes(b"\x1f\x8b")
    capsys.readouterr()
    assert cli.main(small) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {own}: is no file of this sample (1 ")
