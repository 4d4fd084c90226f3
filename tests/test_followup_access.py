"""Analyst access: followup.duckdb, the sql/ questions, the Excel workbook and the HTML report.

Built once from the hand-made warehouse of test_followup_mart (same inputs,
same hand-worked numbers) and checked by opening the outputs the way an
analyst would: DuckDB on the file, openpyxl and the raw XML on the
workbook, an HTML parser on the report.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import struct
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from tests.followup_support import COUNTY_REPORTS, INJECTED_NAME, build_sources
from tests.settings_support import settings_in

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "sql"
TODAY = dt.date(2024, 5, 17)
D = dt.date


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from etl.pipelines import followup

    tmp = tmp_path_factory.mktemp("followup_access")
    settings = settings_in(tmp)
    (tmp / "landing" / ".sample-args").write_text("--years 2019-2021")  # what scripts/demo.py leaves
    build_sources(settings.warehouse_uri)
    followup.build_marts(settings)
    paths = followup.build_access(settings, today=TODAY)
    return {"settings": settings, "warehouse": Path(settings.warehouse_uri), "paths": paths}


def _query(built, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["warehouse"] / "followup.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


# --------------------------------------------------------------------------- followup.duckdb


def test_duckdb_file_opens_and_has_a_view_per_published_table(built):
    assert built["paths"]["duckdb"] == str(built["warehouse"] / "followup.duckdb")
    assert _query(built, "select count(*) from followup_region_year") == [(63,)]
    assert _query(built, "select count(*) from followup_national_year") == [(3,)]
    views = {name for (name,) in _query(built, "select view_name from duckdb_views() where not internal")}
    published = {
        "dim_region",
        "population",
        "county_report",
        "county_initiative",
        "county_ehealth_service",
        "ehealth_adoption",
        "ehealth_adoption_national",
        "followup_region_year",
        "followup_national_year",
    }
    assert published | {"load_log", "quarantine"} | {f"quarantine_{t}" for t in published} == views
    # Never published: no view, rather than one that fails at query time.
    assert "kolada_kpi" not in views and "ehealth_unit_daily" not in views


def test_views_read_partitions_with_the_declared_types_and_absolute_paths(built):
    rows = _query(built, "select report_year, count(*) from county_report group by 1 order by 1")
    assert rows == [(2019, 3), (2020, 2)]
    types = dict(
        _query(built, "select column_name, data_type from duckdb_columns() where table_name = 'county_report'")
    )
    assert types["report_year"] == "SMALLINT" and types["submitted_at"] == "TIMESTAMP WITH TIME ZONE"
    (sql,) = _query(built, "select sql from duckdb_views() where view_name = 'followup_region_year'")[0]
    # The current Delta version's files by absolute path (no glob: a glob would also find removed files).
    assert f"'{built['warehouse']}/followup_region_year/part-" in sql and "**" not in sql
    # An empty quarantine is a typed empty view, so queries on it work.
    assert _query(built, "select count(*), count(reason) from quarantine_county_report") == [(0, 0)]
    assert _query(built, "select count(*) from load_log where pipeline = 'followup' and outcome = 'published'") == [
        (2,)
    ]
    # Works from any working directory: the file names absolute paths.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb,sys; c=duckdb.connect(sys.argv[1], read_only=True);"
            "print(c.execute('select sum(grant_sek) from followup_region_year').fetchall()[0][0])",
            str(built["warehouse"] / "followup.duckdb"),
        ],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(10_000_000 + 12_000_000 + 2_000_000 + 1_900_000 + 300_000)


@pytest.mark.parametrize("folder", ["w h", "wå_ü", "wh_100%"])
def test_views_work_in_a_warehouse_whose_path_has_a_space_non_ascii_letters_or_a_percent(tmp_path, folder):
    """Found by a reviewer: delta-rs names local files percent-encoded (`w%20h`, `w%C3%A5`), DuckDB found no
    file, and the run ended 0 with the analysts' views stale (one WARNING)."""
    from etl import publish
    from etl.pipelines import followup
    from tests.settings_support import local_settings

    root = tmp_path / folder
    (root / "landing").mkdir(parents=True)
    settings = local_settings(root / "landing", root / "warehouse")
    build_sources(settings.warehouse_uri)
    followup.build_marts(settings)
    paths = followup.build_access(settings, today=TODAY)
    assert paths["duckdb"] == str(root / "warehouse" / "followup.duckdb")
    # What delta-rs gives (the case this is about): the path percent-encoded.
    files = publish.table_files(settings.warehouse_uri, "dim_region")
    assert files is not None, "dim_region is published"
    assert all("%" in f for f in files)
    with duckdb.connect(paths["duckdb"], read_only=True) as con:
        assert con.execute("select count(*) from dim_region").fetchall() == [(21,)]
        assert con.execute("select count(*) from followup_region_year").fetchall() == [(63,)]
        assert con.execute("select report_year, count(*) from county_report group by 1 order by 1").fetchall() == [
            (2019, 3),
            (2020, 2),
        ]
        assert con.execute("select count(*) from load_log").fetchall()[0][0] > 0
        (sql,) = con.execute("select sql from duckdb_views() where view_name = 'dim_region'").fetchall()[0]
    assert f"'{root}/warehouse/dim_region/part-" in sql  # the real path, not delta-rs's percent-encoded one


def test_local_path_decodes_delta_rs_names_once_and_only_those():
    from etl.marts.access import local_path

    assert local_path("/tmp/w%20h/w%C3%A5_%C3%BC/t/part-0.parquet") == "/tmp/w h/wå_ü/t/part-0.parquet"
    assert local_path("file:///tmp/wh_100%25/t/a=x%2520y/p.parquet") == "/tmp/wh_100%/t/a=x%20y/p.parquet"
    assert local_path("/tmp/plain/t/report_year=2019/p.parquet") == "/tmp/plain/t/report_year=2019/p.parquet"


def test_duckdb_file_is_replaced_atomically_and_open_readers_keep_working(built):
    from etl.marts import access

    path = built["warehouse"] / "followup.duckdb"
    before = path.stat().st_ino
    with duckdb.connect(str(path), read_only=True) as reader:
        access.build_duckdb(str(built["warehouse"]))
        assert reader.execute("select count(*) from dim_region").fetchall() == [(21,)]
    assert path.stat().st_ino != before
    assert not [p.name for p in built["warehouse"].iterdir() if p.name.endswith((".tmp", ".wal"))]
    assert _query(built, "select count(*) from dim_region") == [(21,)]


# --------------------------------------------------------------------------- sql/ questions, answered

EXPECTED: dict[str, list[tuple[object, ...]]] = {
    "01_programme_offers_by_year.sql": [
        # year, reported, clinical yes, answered, change, study salary yes, answered, change, either
        (2019, 3, 1, 3, None, 0, 2, None, 1),
        (2020, 2, 2, 2, 1, 2, 2, 2, 2),
        (2021, 0, None, 0, None, None, 0, None, None),
    ],
    "02_earmarked_vs_region_size.sql": [
        (2019, "yes", 2, "Region Stockholm, Region Gotland", 1_030_000, 1_030_000, 5.0),
        (2019, "no", 1, "Region Uppsala", 400_000, 400_000, 5.0),
        (2020, "yes", 1, "Region Stockholm", 2_100_000, 2_100_000, 5.71),
        (2020, "not stated", 1, "Region Uppsala", 380_000, 380_000, 5.0),
    ],
    "03_spend_split_by_area.sql": [
        ("Region Stockholm", 2019, 10_000_000, 2_000_000, 3_000_000, 4_000_000, 20.0, 30.0, 40.0, 90.0),
        ("Region Uppsala", 2019, 2_000_000, 500_000, 500_000, None, 25.0, 25.0, None, None),
        ("Region Gotland", 2019, 300_000, 100_000, 100_000, 100_000, 33.3, 33.3, 33.3, 100.0),
        ("Region Stockholm", 2020, 12_000_000, 6_000_000, 3_000_000, 3_060_000, 50.0, 25.0, 25.5, 100.5),
        ("Region Uppsala", 2020, 1_900_000, 950_000, 475_000, 475_000, 50.0, 25.0, 25.0, 100.0),
    ],
    "04_ehealth_implementation_and_adoption.sql": [
        ("Region Stockholm", D(2017, 5, 1), D(2018, 3, 15), 2019, 105.0, 2, None, 25.0, 75.0),
        ("Region Stockholm", D(2017, 5, 1), D(2018, 3, 15), 2020, 150.0, 1, 45.0, None, None),
        ("Region Stockholm", D(2017, 5, 1), D(2018, 3, 15), 2021, 160.0, 1, 10.0, None, None),
        ("Region Uppsala", D(2019, 2, 1), D(2019, 10, 1), 2019, None, 0, None, None, None),
        ("Region Uppsala", D(2019, 2, 1), D(2019, 10, 1), 2020, 125.0, 2, None, None, None),
        ("Region Uppsala", D(2019, 2, 1), D(2019, 10, 1), 2021, None, None, None, None, None),
    ],
    "05_initiatives_new_thanks_to_grant.sql": [
        ("Region Stockholm", 2019, "IT-stöd och processer", "Digital triage i primärvården", "ongoing", None),
        ("Region Gotland", 2019, "Kompetensanvändning", "Vårdnära service på avdelning 3", "ongoing", None),
        ("Region Stockholm", 2020, "IT-stöd och processer", "Webbtidbok i alla vårdcentraler", "ongoing", None),
        ("Region Stockholm", 2020, "IT-stöd och processer", "Journalen för vårdnadshavare", "ongoing", None),
        ("Region Uppsala", 2020, "Kompetensförsörjning", "Kliniskt basår för nya sjuksköterskor", "ongoing", None),
    ],
    "06_summary_counts.sql": [
        # year, question, yes, answered, not answered, regions — only years with a report (not 2021).
        (2019, "reported", 3, 21, 0, 21),  # 01, 03, 09
        (2019, "earmarked", 2, 3, 18, 21),  # yes 01, 09; no 03
        (2019, "offers_clinical_intro_year", 1, 3, 18, 21),  # yes 01; no 03, 09
        (2019, "offers_specialist_nurse_study_salary", 0, 2, 19, 21),  # no 01, 09; 03 left it empty
        (2019, "has_care_near_service", 1, 2, 19, 21),  # yes 03; no 09; 01 empty
        (2019, "has_task_shifting", 1, 3, 18, 21),
        (2019, "web_booking_implemented", 1, 3, 18, 21),  # 01 implemented; 03 partly; 09 not started
        (2019, "patient_journal_online_implemented", 2, 3, 18, 21),  # 01, 03; 09 planned
        (2020, "reported", 2, 21, 0, 21),  # 01, 03 (09 did not report)
        (2020, "earmarked", 1, 1, 20, 21),  # 03 left it empty
        (2020, "offers_clinical_intro_year", 2, 2, 19, 21),
        (2020, "offers_specialist_nurse_study_salary", 2, 2, 19, 21),
        (2020, "has_care_near_service", 1, 1, 20, 21),
        (2020, "has_task_shifting", 1, 2, 19, 21),
        (2020, "web_booking_implemented", 2, 2, 19, 21),
        (2020, "patient_journal_online_implemented", 2, 2, 19, 21),
    ],
    "07_grant_and_spend_per_inhabitant.sql": [
        # kronor / population of population_year_used (2019: 2 000 000, 400 000, 60 000; 2020: 2 100 000, 380 000)
        ("Region Stockholm", 2019, 10_000_000, 5.0, 2_000_000, 1.0, 3_000_000, 1.5, 4_000_000, 2.0),
        ("Region Uppsala", 2019, 2_000_000, 5.0, 500_000, 1.25, 500_000, 1.25, None, None),
        ("Region Gotland", 2019, 300_000, 5.0, 100_000, 1.67, 100_000, 1.67, 100_000, 1.67),
        # Riket: sums over the regions that stated the figure, / their population (area 3: 01 and 09, 2 060 000)
        ("Riket", 2019, 12_300_000, 5.0, 2_600_000, 1.06, 3_600_000, 1.46, 4_100_000, 1.99),
        ("Region Stockholm", 2020, 12_000_000, 5.71, 6_000_000, 2.86, 3_000_000, 1.43, 3_060_000, 1.46),
        ("Region Uppsala", 2020, 1_900_000, 5.0, 950_000, 2.5, 475_000, 1.25, 475_000, 1.25),
        ("Riket", 2020, 13_900_000, 5.6, 6_950_000, 2.8, 3_475_000, 1.4, 3_535_000, 1.43),  # / 2 480 000
    ],
}


def test_every_sql_question_has_an_expected_answer():
    assert sorted(p.name for p in SQL.glob("*.sql")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sql_question_returns_the_hand_worked_answer(built, name):
    text = (SQL / name).read_text(encoding="utf-8")
    assert text.startswith("-- Question"), "each query starts with the question it answers"
    rows = _query(built, text)
    if name == "06_summary_counts.sql":
        # Every question the summary declares is asked each year (a yes/no field added to the template adds
        # one: tests/test_county_spec.py); the hand-worked answers cover today's questions.
        from etl.marts import summary

        declared = [q.key for q in summary.QUESTIONS]
        assert [(year, key) for year in sorted({r[0] for r in rows}) for key in declared] == [r[:2] for r in rows]
        worked = {row[1] for row in EXPECTED[name]}
        rows = [r for r in rows if r[1] in worked]
    assert [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row) for row in EXPECTED[name]] == rows


def test_demo_answers_prints_the_paths_and_one_answer(built):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo_answers.py"), str(built["warehouse"])],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert str(built["warehouse"] / "followup.duckdb") in out.stdout
    assert "followup_report.html" in out.stdout and "followup_latest.xlsx" in out.stdout
    lines = [line.split() for line in out.stdout.splitlines() if line.strip().startswith("20")]
    assert lines == [
        ["2019", "3", "1", "3", "0", "2", "1"],
        ["2020", "2", "2", "2", "2", "2", "2"],
        ["2021", "0", "–", "0", "–", "0", "–"],
    ]


# --------------------------------------------------------------------------- the Excel workbook


def _text(value: object) -> str:
    """A cell value the test reads as text (openpyxl types a value as any of the cell types)."""
    assert isinstance(value, str), value
    return value


def test_workbook_files_sheets_and_swedish_headers(built):
    from openpyxl import load_workbook

    exports = built["warehouse"] / "exports"
    assert built["paths"]["workbook"] == str(exports / "followup_20240517.xlsx")
    assert (exports / "followup_latest.xlsx").read_bytes() == (exports / "followup_20240517.xlsx").read_bytes()
    book = load_workbook(exports / "followup_latest.xlsx")
    assert book.sheetnames == ["Anteckningar", "Regioner per år", "Riket per år", "Kolumner"]
    region = book["Regioner per år"]
    headers = [c.value for c in region[1]]
    assert headers[:6] == [
        "Region",
        "Regionkod",
        "År",
        "Folkmängd 31 dec",
        "Förändring folkmängd mot föregående år",
        "Folkmängd från år (för per invånare)",
    ]
    for expected in (
        "Erhållna medel (kr)",
        "Öronmärkta medel",
        "Kliniskt introduktionsår",
        "Studielön specialistsjuksköterska",
        "Webbtidbok: införd datum",
        "Journalen: unika användare per 1 000 inv. (månadsmedel)",
        "Insatser nya tack vare medlen totalt",
        "Andel av medlen: it-stöd och processer",
    ):
        assert expected in headers
    national_headers = [c.value for c in book["Riket per år"][1]]
    assert "Regioner som svarat: kliniskt introduktionsår" in national_headers
    # No database column name leaks through as a header.
    assert not [h for h in headers + national_headers if "_" in _text(h)]
    # One header per column of the marts (derived from their declarations: a new field adds one).
    from etl import schemas

    assert len(headers) == len(schemas.get("followup_region_year").business_columns)
    assert len(national_headers) == len(schemas.get("followup_national_year").business_columns)


def test_workbook_values_region_names_and_nulls(built):
    from openpyxl import load_workbook

    book = load_workbook(built["warehouse"] / "exports" / "followup_latest.xlsx")
    sheet = book["Regioner per år"]
    headers = [c.value for c in sheet[1]]
    rows = {(r[1], r[2]): dict(zip(headers, r, strict=False)) for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert len(rows) == 63
    s = rows["01", 2019]
    assert (s["Region"], s["Erhållna medel (kr)"], s["Öronmärkta medel"]) == ("Region Stockholm", 10_000_000, "Ja")
    assert s["Andel av medlen: it-stöd och processer"] == pytest.approx(0.2)
    introduced = s["Webbtidbok: införd datum"]
    assert isinstance(introduced, dt.datetime), introduced
    assert (s["Webbtidbok: status"], introduced.date()) == ("Införd", D(2017, 5, 1))
    assert s["Studielön specialistsjuksköterska"] == "Nej"
    assert s["Vårdnära service"] is None  # not stated: empty, not "Nej"
    g = rows["09", 2020]
    assert (g["Region"], g["Har rapporterat"], g["Erhållna medel (kr)"], g["Kliniskt introduktionsår"]) == (
        "Region Gotland",
        "Nej",
        None,
        None,
    )
    national = book["Riket per år"]
    nh = [c.value for c in national[1]]
    n2019 = dict(zip(nh, next(national.iter_rows(min_row=2, max_row=2, values_only=True)), strict=False))
    assert (
        n2019["År"],
        n2019["Regioner med ja: kliniskt introduktionsår"],
        n2019["Regioner som svarat: kliniskt introduktionsår"],
    ) == (2019, 1, 3)


def test_workbook_formula_injection_is_stored_as_text(built):
    from openpyxl import load_workbook

    path = built["warehouse"] / "exports" / "followup_latest.xlsx"
    sheet = load_workbook(path)["Regioner per år"]
    cells = [row[0] for row in sheet.iter_rows(min_row=2) if row[1].value == "25"]
    assert cells and all(c.value == INJECTED_NAME and c.data_type == "s" and c.quotePrefix for c in cells)
    # In the file itself: an inline string, and no formula anywhere in any sheet.
    with zipfile.ZipFile(path) as archive:
        sheets = [archive.read(n).decode() for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
    assert sheets and not any("<f>" in xml or "<f " in xml for xml in sheets)
    assert any('t="inlineStr"' in xml and "HYPERLINK" in xml for xml in sheets)


def test_set_text_neutralises_every_formula_prefix(tmp_path):
    from openpyxl import Workbook, load_workbook
    from openpyxl.worksheet.worksheet import Worksheet

    from etl.marts.exports import set_text

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    texts = ["=1+1", "+SUM(A1:A2)", "-2+3", "@SUM(A1)", "\t=1", "Region Skåne", "12"]
    for i, text in enumerate(texts, start=1):
        set_text(sheet.cell(row=i, column=1), text)
    book.save(tmp_path / "t.xlsx")
    back = load_workbook(tmp_path / "t.xlsx").active
    assert isinstance(back, Worksheet)
    assert [back.cell(row=i, column=1).value for i in range(1, len(texts) + 1)] == texts
    assert all(back.cell(row=i, column=1).data_type == "s" for i in range(1, len(texts) + 1))
    assert [bool(back.cell(row=i, column=1).quotePrefix) for i in range(1, len(texts) + 1)] == [True] * 5 + [False] * 2
    with zipfile.ZipFile(tmp_path / "t.xlsx") as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()


def test_notes_sheet_has_vintage_and_caveats(built):
    from openpyxl import load_workbook

    notes = load_workbook(built["warehouse"] / "exports" / "followup_latest.xlsx")["Anteckningar"]
    rows = {r[0]: r[1] for r in notes.iter_rows(values_only=True) if r[0]}
    assert "SYNTETISKA EXEMPELDATA" in _text(rows["Ursprung"])
    assert "inte 'Nej' eller 0" in _text(rows["Tom cell"])
    assert "månadsmedel" in _text(rows["Skyddade värden"])
    assert "inte laddad" == rows["kolada_kpi"]
    # Dates are dates, not text: the creation date and every table's times, its version a number.
    cells = {row[0].value: row for row in notes.iter_rows() if row[0].value}
    created = cells["Skapad"][1]
    assert created.value == dt.datetime(2024, 5, 17) and created.is_date and created.number_format == "yyyy-mm-dd"
    assert [c.value for c in cells["Tabell"]] == [
        "Tabell",
        "Senast ändrad (UTC)",
        "Senast kontrollerad (UTC)",
        "Version",
    ]
    for table in ("dim_region", "population", "county_report", "ehealth_adoption", "followup_region_year"):
        _, changed, checked, version = cells[table][:4]
        assert isinstance(changed.value, dt.datetime) and isinstance(checked.value, dt.datetime), table
        assert changed.is_date and checked.is_date, table
        assert dt.datetime(2020, 1, 1) < changed.value <= checked.value < dt.datetime.now() + dt.timedelta(days=1)
        assert isinstance(version.value, int), table


def test_workbook_column_descriptions_are_swedish_from_the_schema(built):
    """Kolumner describes every header in Swedish: the mart schema's description_sv, not an English text."""
    from openpyxl import load_workbook

    from etl import schemas
    from etl.marts.exports import SHEETS

    sheet = load_workbook(built["warehouse"] / "exports" / "followup_latest.xlsx")["Kolumner"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Blad", "Kolumn", "Namn i databasen (followup.duckdb)", "Beskrivning")
    book = load_workbook(built["warehouse"] / "exports" / "followup_latest.xlsx")
    on_sheets = {(title, c.value) for title, _ in SHEETS.values() for c in book[title][1]}
    assert {(title, header) for title, header, _, _ in rows[1:]} == on_sheets  # every header, nothing else
    for title, header, name, description in rows[1:]:
        table, column = _text(name).split(".")
        assert SHEETS[table][0] == title and SHEETS[table][1][column] == header
        assert description == next(c.description_sv for c in schemas.get(table).columns if c.name == column)
    described = {r[2]: r[3] for r in rows[1:]}
    assert described["followup_region_year.grant_sek"] == (
        "Erhållna medel det året, kronor; tom när regionen inte rapporterat det året."
    )
    assert _text(described["followup_national_year.regions_answered_offers_clinical_intro_year"]).startswith(
        "Regioner som svarat (ja eller nej) på om de erbjuder ett kliniskt introduktionsår"
    )
    english = re.compile(r"\b(the|of|when|and|per month|null|that|which|region's)\b")
    assert not [d for d in described.values() if english.search(_text(d))], "English left in the descriptions"


def test_every_mart_column_has_a_swedish_description():
    """A new mart column without description_sv fails here (and would leave Kolumner's description empty)."""
    from etl import schemas

    for name in ("followup_region_year", "followup_national_year"):
        table = schemas.get(name)
        missing = [c.name for c in table.all_columns if not c.description_sv.strip()]
        assert not missing, f"{name}: no Swedish description (description_sv) for {missing}"
        same = [c.name for c in table.all_columns if c.description_sv == c.description]
        assert not same, f"{name}: description_sv is the English text for {same}"


def test_workbook_prints_landscape_readable_with_headers_and_labels_on_every_page(built):
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    from etl.marts.exports import PAGE_WIDTH_PT, PRINT_MIN_SCALE, _width_pt

    book = load_workbook(built["warehouse"] / "exports" / "followup_latest.xlsx")
    for sheet in book.worksheets:
        setup = sheet.page_setup
        assert (setup.orientation, setup.paperSize) == ("landscape", 9), sheet.title  # A4
        fit = sheet.sheet_properties.pageSetUpPr
        assert fit is not None and fit.fitToPage and setup.fitToHeight == 0, sheet.title
        assert sheet.oddFooter is not None and sheet.oddFooter.center.text is not None, sheet.title
        assert "&P" in sheet.oddFooter.center.text
        widths = sum(
            _width_pt(sheet.column_dimensions[get_column_letter(j)].width) for j in range(1, sheet.max_column + 1)
        )
        pages = setup.fitToWidth
        assert pages is not None, sheet.title
        if sheet.title in ("Anteckningar", "Kolumner"):
            assert pages == 1, sheet.title
            assert widths * PRINT_MIN_SCALE <= PAGE_WIDTH_PT, sheet.title
        else:
            # As few pages across as a readable scale allows, each with the header row and the row labels.
            assert sheet.print_title_rows is not None and sheet.print_title_cols is not None, sheet.title
            assert sheet.print_title_rows.replace("$", "") == "1:1"
            labels = "A:C" if sheet.title == "Regioner per år" else "A:A"
            assert sheet.print_title_cols.replace("$", "") == labels
            first, last = labels.split(":")
            label_width = sum(_width_pt(sheet.column_dimensions[c].width) for c in "ABC"[: "ABC".index(last) + 1])
            per_page = PAGE_WIDTH_PT / PRINT_MIN_SCALE - label_width
            assert (pages - 1) * per_page < widths - label_width <= pages * per_page, sheet.title
            assert 2 <= pages <= 5, sheet.title


@pytest.fixture(scope="session")
def printer():
    """LibreOffice Calc to print and poppler-utils to read the PDF, installed with apt-get when missing."""
    from tests import debian_support

    reason = debian_support.install(("libreoffice-calc", "poppler-utils"), ("soffice", "pdftotext"))
    if reason:
        debian_support.unavailable(f"cannot print the workbook with LibreOffice: {reason}")


@pytest.mark.slow
def test_workbook_printed_by_libreoffice_has_labelled_pages(built, tmp_path, printer):
    """Printed for real: few pages, and every page of a mart sheet carries its header row and row labels."""
    from openpyxl import load_workbook

    source = built["warehouse"] / "exports" / "followup_latest.xlsx"
    counts: dict[str, int] = {}
    for name in ("Regioner per år", "Riket per år", "Kolumner", "Anteckningar"):
        book = load_workbook(source)
        for other in [n for n in book.sheetnames if n != name]:
            book.remove(book[other])
        path = tmp_path / f"{len(counts)}.xlsx"
        book.save(path)
        subprocess.run(
            [
                "soffice",
                "--headless",
                f"-env:UserInstallation=file://{tmp_path}/lo",
                "--convert-to",
                "pdf",
                "--outdir",
                str(tmp_path),
                str(path),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        text = subprocess.run(
            ["pdftotext", "-layout", str(path.with_suffix(".pdf")), "-"], capture_output=True, text=True, check=True
        ).stdout
        pages = [p for p in text.split("\f") if p.strip()]
        counts[name] = len(pages)
        if name == "Regioner per år":
            assert all("Region" in p and "Regionkod" in p and "År" in p for p in pages)
        if name == "Riket per år":
            assert all("År" in p and "2019" in p for p in pages)
    # 63 region rows here (210 in the sample: 71 pages unset, 23 with this setup, measured with LibreOffice).
    assert counts["Anteckningar"] == 1 and counts["Kolumner"] <= 5
    assert counts["Riket per år"] <= 5 and counts["Regioner per år"] <= 10, counts


# --------------------------------------------------------------------------- the HTML report


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.external, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables += 1
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):  # "#…": a link to a section of the page itself
                self.external.append(value)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_is_self_contained_with_readable_charts(built):
    path = built["warehouse"] / "exports" / "followup_report.html"
    assert built["paths"]["report"] == str(path)
    html = path.read_text(encoding="utf-8")
    parser = _Images()
    parser.feed(html)
    assert parser.external == []  # nothing to fetch: it can be mailed
    assert len(parser.images) >= 4
    for image in parser.images:
        assert image["src"].startswith("data:image/png;base64,") and image.get("alt")
        data = base64.b64decode(image["src"].split(",", 1)[1])
        width, height = _png_size(data)
        assert 600 <= width <= 2000 and 150 <= height <= 2500, (width, height)
        assert 5_000 < len(data) < 1_500_000
    assert os.path.getsize(path) < 3_000_000


def test_report_national_table_and_caveats(built):
    html = (built["warehouse"] / "exports" / "followup_report.html").read_text(encoding="utf-8")
    assert "<td>4\u202f260\u202f000</td>" in html  # 2019 population, Swedish thousands separator
    assert "<td>1 av 3</td>" in html  # 2019: one of three answering regions offers the clinical year
    assert "<td>225,0</td>" in html  # national journal unique users per 1 000, monthly mean 2019
    assert "SYNTETISKA EXEMPELDATA" in html
    assert html.count("<h2>") >= 4
    assert "Senaste rapportår med regionrapporter: <b>2020</b>" in html


def test_report_says_inga_rapporter_for_years_no_region_reported(built):
    """2021 has population and e-health figures but no county report: said in words, not '0' and '– av 0'."""
    html = (built["warehouse"] / "exports" / "followup_report.html").read_text(encoding="utf-8")
    table = html[html.index("<h2>Riket per år</h2>") : html.index("<h2>Satsningar per region</h2>")]
    rows = re.findall(r"<tr><td>(\d{4})</td>(.*?)</tr>", table)
    cells = {year: re.findall(r"<td>(.*?)</td>", rest) for year, rest in rows}
    assert cells["2021"][0] == "inga rapporter" and cells["2019"][0] == "3"
    assert "av 0" not in table
    assert "För 2021 har ingen region skickat in någon regionrapport (ännu)" in table


def test_year_ranges_read_as_swedish_text():
    from etl.marts.report import year_ranges

    assert year_ranges([2021]) == "2021"
    assert year_ranges([2020, 2021, 2022, 2023, 2024, 2025]) == "2020–2025"
    assert year_ranges([2024, 2016, 2017, 2019]) == "2016–2017, 2019 och 2024"


def test_report_renders_placeholders_when_nothing_is_reported(tmp_path):
    import pandas as pd

    from etl.marts import report

    empty_region = pd.DataFrame(
        {"region_code": ["01"], "region_name": ["Region Stockholm"], "year": [2024], "reported": [False]}
    )
    empty_national = pd.DataFrame({"year": [2024], "regions_reported": [0], "regions_total": [21]})
    monthly = pd.DataFrame(columns=["region_code", "month", "series", "per_1000"])
    for png in (
        report.chart_adoption(monthly, {"01": "Region Stockholm"}),
        report.chart_spend(empty_region, None),
        report.chart_offers(empty_region, None),
        report.chart_offers_trend(empty_national),
    ):
        width, height = _png_size(base64.b64decode(png))
        assert width >= 300 and height >= 100


# --------------------------------------------------------------------------- the CLI, on bad input


def test_cli_without_reference_data_fails_with_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "run",
            "followup",
            "--warehouse",
            str(tmp_path / "w"),
            "--landing",
            str(tmp_path / "l"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: dim_region is not published: run the reference pipeline first (.venv/bin/python -m etl run reference)"
    )
    assert "Traceback" not in out.stderr


def test_a_run_with_unchanged_sources_is_a_quick_no_op(tmp_path):
    """Upstream DAGs emit Asset events even when nothing changed; the mart must not rebuild then."""
    from etl import publish
    from etl.pipelines import followup as pipeline

    settings = settings_in(tmp_path)
    build_sources(settings.warehouse_uri)
    first = pipeline.run(settings)
    assert first.outcome == "published"
    report_file = tmp_path / "warehouse" / "exports" / "followup_report.html"
    built = report_file.stat().st_mtime_ns
    before = publish.read_table(settings.warehouse_uri, "followup_region_year")

    second = pipeline.run(settings)
    assert second.outcome == "nothing_new" and "already built" in second.messages[0]
    assert report_file.stat().st_mtime_ns == built  # analyst access not rebuilt either
    assert publish.read_table(settings.warehouse_uri, "followup_region_year").equals(before)

    # Re-publishing the sources with the same content keeps their versions: still nothing new.
    build_sources(settings.warehouse_uri)
    assert pipeline.run(settings).outcome == "nothing_new"
    # A source that really changes makes the marts rebuild.
    build_sources(settings.warehouse_uri, county_reports=COUNTY_REPORTS[:-1])
    assert pipeline.run(settings).outcome == "published"


def test_the_duckdb_cli_from_pypi_opens_the_database(built):
    """README: `duckdb warehouse/followup.duckdb` after `make setup` (duckdb-cli lags the Python package)."""
    import subprocess
    import sys

    cli = Path(sys.executable).parent / "duckdb"
    assert cli.exists(), "duckdb-cli is in requirements.txt: run make setup"
    done = subprocess.run(
        [
            str(cli),
            "-readonly",
            "-csv",
            str(built["warehouse"] / "followup.duckdb"),
            "-c",
            "select count(*) from county_report; select count(*) from followup_region_year",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    counts = [line for line in done.stdout.splitlines() if line.strip().isdigit()]
    assert counts == ["5", str(len(_query(built, "select * from followup_region_year")))]
