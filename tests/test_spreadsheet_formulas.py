"""Issue 23 §2: a formula without a saved result never becomes "nothing"; an encrypted workbook says password.

Workbooks are made the way the tools make them: openpyxl here (a formula,
no saved result), XlsxWriter and msoffcrypto-tool in the committed fixtures
of ``tests/fixtures/real_tools/make_formula_fixtures.py``. Each is sent as a
first delivery and as a correction over published data: the run fails with
the one line, ``etl check`` gives the same verdict, and nothing published
changes. A formula with a saved result is read as that result.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from etl import check, publish
from etl.errors import BadInput, ValidationFailed
from etl.pipelines import county_reports as county
from etl.pipelines import ehealth_adoption as ehealth
from etl.sources import spreadsheet

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(__file__).parent / "fixtures" / "real_tools"
COUNTY = REAL / "county" / "uppsala_2019.xlsx"
JOURNAL = REAL / "ehealth" / "original" / "journalen_2019-03.xlsx"
WEB = REAL / "ehealth" / "original" / "webbtidbok_2019-03.xlsx"
EHEALTH_TABLES = ("ehealth_adoption", "ehealth_adoption_national")
GRANT_LINE = (
    "uppsala_2019.xlsx: sheet 'Uppgifter' cell B4: a formula without a saved result (=40000000+1000000) "
    "— open and save the file in Excel or LibreOffice"
)
COUNT_LINE = (
    "journalen_2019-03.xlsx: sheet 'Export' cell C3: a formula without a saved result (=79000+743) "
    "— open and save the file in Excel or LibreOffice"
)
XLSXWRITER_GRANT_LINE = (
    "uppsala_2019.xlsx: sheet 'Uppgifter' cell B4: a formula whose saved result 0 was never "
    "calculated (a script's placeholder) (=40000000+1000000) — open and save the file in Excel "
    "or LibreOffice"
)
XLSXWRITER_COUNT_LINE = (
    "journalen_2019-03.xlsx: sheet 'Export' cell C3: a formula whose saved result 0 was never "
    "calculated (a script's placeholder) (=79000+743) — open and save the file in Excel or "
    "LibreOffice"
)


def with_openpyxl_formula(source: Path, sheet: str, cell: str, formula: str) -> bytes:
    """``source`` opened and saved by openpyxl with one cell set to a formula: openpyxl saves no result."""
    book = openpyxl.load_workbook(source)
    book[sheet][cell] = formula
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def put(folder: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tables(settings, names) -> dict:
    return {name: sorted(map(repr, publish.read_table(settings.warehouse_uri, name).to_pylist())) for name in names}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ETL_LANDING_SETTLE_SECONDS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "etl", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


def refused_line(path: Path, settings) -> str:
    [verdict] = check.check([str(path)], settings)
    assert verdict.verdict == check.REFUSED, verdict
    line = verdict.lines[0]  # under "<file>: refused" the cause may leave the name out; said here as "<file>: <cause>"
    return line if line.startswith(f"{path.name}: ") else f"{path.name}: {line}"


# --------------------------------------------------------------------------- the reader


def test_openpyxl_formula_without_a_saved_result_is_refused_naming_sheet_and_cell():
    data = with_openpyxl_formula(COUNTY, "Uppgifter", "B4", "=40000000+1000000")
    with pytest.raises(BadInput) as caught:
        spreadsheet.read_workbook(data, "uppsala_2019.xlsx")
    assert str(caught.value) == GRANT_LINE


def test_several_unsaved_formulas_are_counted_after_the_first():
    book = openpyxl.Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "Blad1"
    sheet["A1"], sheet["A2"], sheet["B2"], sheet["C2"] = "Region", "=1+1", '="a"&"b"', 5
    buffer = io.BytesIO()
    book.save(buffer)
    with pytest.raises(
        BadInput,
        match=r"^x\.xlsx: sheet 'Blad1' cell A2: a formula without a saved result \(=1\+1\) "
        r"\(and 1 more formula cell\(s\) like it\) — open and save",
    ):
        spreadsheet.read_workbook(buffer.getvalue(), "x.xlsx")


def _xlsx(cells: str, calc: str = "") -> bytes:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="xml" ContentType="application/xml"/><Override '
            'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType='
            '"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet name="Blad1" '
            f'sheetId="1" r:id="rId1"/></sheets>{calc}</workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<worksheet xmlns="{main}"><sheetData><row r="1">{cells}</row></sheetData></worksheet>',
        )
    return buffer.getvalue()


def test_saved_results_are_read_as_today():
    # As Excel and LibreOffice save them: a number, a text, an empty text (t="str", <v></v>), a shared formula.
    cells = (
        '<c r="A1"><f>1+1</f><v>2</v></c><c r="B1" t="str"><f>"a"&amp;"b"</f><v>ab</v></c>'
        '<c r="C1" t="str"><f>""</f><v></v></c><c r="D1"><f t="shared" si="0"/><v>0</v></c>'
    )
    (sheet,) = spreadsheet.read_workbook(_xlsx(cells), "saved.xlsx")
    assert sheet.rows == [[2, "ab", None, 0]]
    # A saved 0 is a result unless the workbook asks to be recalculated (what XlsxWriter and openpyxl write).
    recalculate = '<calcPr calcId="124519" fullCalcOnLoad="1"/>'
    (sheet,) = spreadsheet.read_workbook(_xlsx('<c r="A1"><f>2-2</f><v>3</v></c>', recalculate), "x.xlsx")
    assert sheet.rows == [[3]]
    with pytest.raises(BadInput, match=r"^x\.xlsx: sheet 'Blad1' cell A1: a formula whose saved result 0 was never"):
        spreadsheet.read_workbook(_xlsx('<c r="A1"><f>2-2</f><v>0</v></c>', recalculate), "x.xlsx")


@pytest.mark.parametrize("cell", ['<c r="B1"><f t="shared" si="0"/></c>', '<x:c r="B1"><x:f>A1*2</x:f><x:v/></x:c>'])
def test_shared_and_prefixed_formulas_without_a_result(cell):
    with pytest.raises(BadInput, match=r"^x\.xlsx: sheet 'Blad1' cell B1: a formula without a saved result"):
        spreadsheet.read_workbook(_xlsx('<c r="A1"><v>1</v></c>' + cell), "x.xlsx")


def _ods(cells: str) -> bytes:
    content = (
        '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:'
        'office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:'
        'names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>'
        f'<table:table table:name="Blad1"><table:table-row>{cells}</table:table-row></table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
            'opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:'
            'media-type="application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>',
        )
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def test_ods_formula_with_and_without_a_value():
    saved = '<table:table-cell table:formula="of:=1+1" office:value-type="float" office:value="2"/>'
    (sheet,) = spreadsheet.read_workbook(_ods(saved), "x.ods")
    assert sheet.rows == [[2]]
    unsaved = (
        '<table:table-cell office:value-type="float" office:value="1"/><table:table-cell table:formula="of:=1+1"/>'
    )
    with pytest.raises(BadInput) as caught:
        spreadsheet.read_workbook(_ods(unsaved), "x.ods")
    assert str(caught.value) == (
        "x.ods: sheet 'Blad1' cell B1: a formula without a saved result (=1+1) — open and "
        "save the file in Excel or LibreOffice"
    )


def test_xlsxwriter_fixtures():
    sheets = spreadsheet.read_workbook(
        (REAL / "county/xlsxwriter_formula/uppsala_2019.xlsx").read_bytes(), "uppsala_2019.xlsx"
    )
    assert sheets[0].rows[3][:2] == ["Erhållna medel (kr)", 41_000_000]
    sheets = spreadsheet.read_workbook(
        (REAL / "ehealth/xlsxwriter_formula/journalen_2019-03.xlsx").read_bytes(), "journalen_2019-03.xlsx"
    )
    assert sheets[0].rows[2] == spreadsheet.read_workbook(JOURNAL.read_bytes(), JOURNAL.name)[0].rows[2]
    for path, line in (
        (REAL / "county/xlsxwriter_unsaved/uppsala_2019.xlsx", XLSXWRITER_GRANT_LINE),
        (REAL / "ehealth/xlsxwriter_unsaved/journalen_2019-03.xlsx", XLSXWRITER_COUNT_LINE),
    ):
        with pytest.raises(BadInput) as caught:
            spreadsheet.read_workbook(path.read_bytes(), path.name)
        assert str(caught.value) == line


@pytest.mark.parametrize(
    "path", [REAL / "county/encrypted/uppsala_2019.xlsx", REAL / "ehealth/encrypted/journalen_2019-03.xlsx"]
)
def test_encrypted_workbook_is_refused_as_password_protected(path):
    with pytest.raises(BadInput) as caught:
        spreadsheet.read_workbook(path.read_bytes(), path.name)
    assert str(caught.value) == (
        f"{path.name}: the workbook is password-protected (encrypted) and cannot be read — save it without a password"
    )


def test_encrypted_ods_manifest_is_refused_as_password_protected():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument'
            ':xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="content.xml"><manifest:'
            'encryption-data manifest:checksum-type="SHA1/1K"/></manifest:file-entry></manifest:manifest>',
        )
        archive.writestr("content.xml", b"\x8a\x11 encrypted bytes")
    with pytest.raises(BadInput, match=r"^x\.ods: the workbook is password-protected"):
        spreadsheet.read_workbook(buffer.getvalue(), "x.ods")


# --------------------------------------------------------------------------- county reports, end to end


COUNTY_CASES = {
    "openpyxl": (lambda: with_openpyxl_formula(COUNTY, "Uppgifter", "B4", "=40000000+1000000"), GRANT_LINE),
    "xlsxwriter": (lambda: (REAL / "county/xlsxwriter_unsaved/uppsala_2019.xlsx").read_bytes(), XLSXWRITER_GRANT_LINE),
    "encrypted": (
        lambda: (REAL / "county/encrypted/uppsala_2019.xlsx").read_bytes(),
        "uppsala_2019.xlsx: the workbook is password-protected (encrypted) and cannot be read — save it "
        "without a password",
    ),
}


def as_blocked(line: str) -> str:
    """``etl check``'s refusal ``"<file>: <cause>"`` as a run's block line says it: the file named once, cause first."""
    name, cause = line.split(": ", 1)
    return f"{name}: blocked, refused whole: {cause}"


@pytest.mark.parametrize("tool", COUNTY_CASES)
def test_county_report_first_delivery_and_correction(tool, settings, landing):
    make, line = COUNTY_CASES[tool]
    folder = landing / "county_reports"
    # First delivery: refused whole, nothing published.
    bad = put(folder, "uppsala_2019.xlsx", make(), 1_600_000_000)
    assert refused_line(bad, settings) == line
    with pytest.raises(ValidationFailed) as caught:
        county.run(settings)
    assert as_blocked(line) in str(caught.value)
    assert all(rows == [] for rows in tables(settings, county.TABLES).values())

    # Correction over the published report: refused, the published grant stays.
    shutil.copyfile(COUNTY, bad)
    os.utime(bad, (1_600_000_000, 1_600_000_000))
    county.run(settings)
    before = tables(settings, county.TABLES)
    assert [r["grant_sek"] for r in publish.read_table(settings.warehouse_uri, "county_report").to_pylist()] == [
        41_000_000
    ]
    correction = put(folder, "uppsala_2019_rattelse.xlsx", make(), 1_600_000_100)
    assert refused_line(correction, settings) == line.replace("uppsala_2019.xlsx", "uppsala_2019_rattelse.xlsx")
    with pytest.raises(ValidationFailed):
        county.run(settings)
    assert tables(settings, county.TABLES) == before


def test_county_report_formula_with_a_saved_result_loads_its_value(settings, landing):
    path = put(
        landing / "county_reports",
        "uppsala_2019.xlsx",
        (REAL / "county/xlsxwriter_formula/uppsala_2019.xlsx").read_bytes(),
    )
    [verdict] = check.check([str(path)], settings)
    assert verdict.verdict == check.LOADS
    county.run(settings)
    [report] = publish.read_table(settings.warehouse_uri, "county_report").to_pylist()
    assert report["grant_sek"] == 41_000_000


# --------------------------------------------------------------------------- monthly exports, end to end


def test_monthly_export_first_delivery_and_correction_run_and_check_agree(settings, landing, warehouse):
    folder = landing / "ehealth"
    unsaved = with_openpyxl_formula(JOURNAL, "Export", "C3", "=79000+743")
    put(folder, WEB.name, WEB.read_bytes())
    first = put(folder, JOURNAL.name, unsaved)
    assert refused_line(first, settings) == COUNT_LINE
    done = cli("run", "ehealth-adoption", "--landing", str(landing), "--warehouse", str(warehouse))
    assert done.returncode != 0
    assert as_blocked(COUNT_LINE) in done.stderr.strip().splitlines()[-1]
    published = tables(settings, EHEALTH_TABLES)
    assert not any(repr("03") in row and "79743" in row for row in published["ehealth_adoption"])

    # The original published, then each tool's formula file as a correction: refused, nothing changes.
    shutil.copyfile(JOURNAL, first)
    ehealth.run(settings)
    before = tables(settings, EHEALTH_TABLES)
    assert any("79743" in row for row in before["ehealth_adoption"])
    for data, line in (
        (unsaved, COUNT_LINE),
        ((REAL / "ehealth/xlsxwriter_unsaved/journalen_2019-03.xlsx").read_bytes(), XLSXWRITER_COUNT_LINE),
        (
            (REAL / "ehealth/encrypted/journalen_2019-03.xlsx").read_bytes(),
            "journalen_2019-03.xlsx: the workbook is password-protected (encrypted) and cannot be read "
            "— save it without a password",
        ),
    ):
        outbox = put(tmp_dir := warehouse.parent / "outbox", JOURNAL.name, data)
        assert refused_line(outbox, settings) == line
        done = cli("check", str(outbox), "--warehouse", str(warehouse))
        assert done.returncode != 0 and line.split(": ", 1)[1] in done.stdout
        first.write_bytes(data)
        with pytest.raises(ValidationFailed) as caught:
            ehealth.run(settings)
        assert as_blocked(line) in str(caught.value)
        assert tables(settings, EHEALTH_TABLES) == before
        shutil.rmtree(tmp_dir)


def test_monthly_export_formula_with_a_saved_result_loads_its_value(settings, landing):
    folder = landing / "ehealth"
    put(folder, WEB.name, WEB.read_bytes())
    put(folder, JOURNAL.name, JOURNAL.read_bytes())
    ehealth.run(settings)
    before = tables(settings, EHEALTH_TABLES)
    put(folder, JOURNAL.name, (REAL / "ehealth/xlsxwriter_formula/journalen_2019-03.xlsx").read_bytes())
    [verdict] = check.check([str(folder / JOURNAL.name)], settings)
    assert verdict.verdict in (check.UNCHANGED, check.LOADS), verdict
    ehealth.run(settings)
    after = tables(settings, EHEALTH_TABLES)
    assert any("79743" in row for row in after["ehealth_adoption"])
    assert len(after["ehealth_adoption"]) == len(before["ehealth_adoption"])
