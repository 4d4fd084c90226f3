"""The one set of spreadsheet guards (etl/sources/spreadsheet.py) and the same cell guard for CSV.

Each guard refuses with one line that names the file and the rule, before
calamine allocates anything: a hostile file costs milliseconds, never the
worker. The county and e-health readers get the same refusal.
"""

from __future__ import annotations

import dataclasses
import io
import time
import zipfile
from pathlib import Path

import pytest

from etl.errors import BadInput
from etl.sources import county_reports as cr
from etl.sources import ehealth_exports as exports
from etl.sources import spreadsheet, unit_daily

HOSTILE = Path(__file__).parent / "fixtures" / "real_tools" / "hostile"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def xlsx(sheet_data: bytes | str, *, dimension: str = "A1", compresslevel: int = 6) -> bytes:
    """A minimal .xlsx (as streaming writers make them) with one sheet of the given <sheetData> content."""
    if isinstance(sheet_data, str):
        sheet_data = sheet_data.encode()
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships'
        '+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override '
        'PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'relationships"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
        '<sheet name="Blad1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        f'package/2006/relationships"><Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0"?><worksheet xmlns="{MAIN}"><dimension ref="{dimension}"/><sheetData>'.encode()
            + sheet_data
            + b"</sheetData></worksheet>",
        )
    return buffer.getvalue()


def ods(table: str) -> bytes:
    """A minimal .ods with one table of the given rows."""
    content = (
        '<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:'
        'office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:'
        'tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>'
        f'<table:table table:name="Blad1">{table}</table:table></office:spreadsheet></office:body>'
        "</office:document-content>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        archive.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:'
            'names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry '
            'manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            "</manifest:manifest>",
        )
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def number(ref: str, value: int = 1) -> str:
    return f'<c r="{ref}" t="n"><v>{value}</v></c>'


ODS_CELL = '<table:table-cell office:value-type="float" office:value="1"><text:p>1</text:p></table:table-cell>'


def refused(data: bytes, name: str, *, limits: spreadsheet.Limits | None = None) -> str:
    started = time.perf_counter()
    with pytest.raises(BadInput) as caught:
        spreadsheet.read_workbook(data, name, limits=limits)
    assert time.perf_counter() - started < 2, "a refusal must be fast"
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and "\n" not in message, message
    return message


# --------------------------------------------------------------------------- what is read


def test_stale_dimension_does_not_hide_rows():
    rows = "".join(f'<row r="{i}">{number(f"A{i}", i)}{number(f"B{i}", 2 * i)}</row>' for i in range(1, 41))
    (sheet,) = spreadsheet.read_workbook(xlsx(rows, dimension="A1"), "stale.xlsx")
    assert sheet.name == "Blad1" and len(sheet.rows) == 40 and sheet.rows[-1] == [40, 80]


def test_rows_are_sheet_rows_and_empty_cells_are_none():
    data = xlsx(
        f'<row r="3">{number("B3", 7)}<c r="C3" t="inlineStr"><is><t>x</t></is></c></row>'
        f'<row r="5">{number("A5", 2)}</row>'
    )
    (sheet,) = spreadsheet.read_workbook(data, "gaps.xlsx")
    assert sheet.rows == [[None, None, None], [None, None, None], [None, 7, "x"], [None, None, None], [2, None, None]]


# --------------------------------------------------------------------------- each guard


def test_file_size():
    data = xlsx(f'<row r="1">{number("A1")}</row>')
    limits = dataclasses.replace(spreadsheet.LIMITS, max_file_bytes=len(data) - 1)
    assert (
        refused(data, "big.xlsx", limits=limits)
        == f"big.xlsx: file is {len(data)} bytes, over the {len(data) - 1}-byte limit"
    )


@pytest.mark.parametrize("name", ["x.xlsx", "x.ods"])
def test_not_a_zip(name):
    assert (
        refused(b"PK\x03\x04 not really", name)
        == f"{name}: not a valid .{name.rsplit('.', 1)[1]} file (not a zip archive)"
    )


def test_not_an_xls():
    assert refused(b"just text", "x.xls") == "x.xls: not a valid .xls file (not an Excel 97-2003 workbook)"


def test_zip_member_count():
    limits = dataclasses.replace(spreadsheet.LIMITS, max_members=3)
    assert refused(xlsx(""), "many.xlsx", limits=limits) == "many.xlsx: workbook has 5 parts, over the limit of 3"


def test_zip_ratio_the_hostile_101_kb_workbook():
    """Issue 13: a ~101 KB workbook cost the e-health reader 45 s and 889 MB; refused here in milliseconds."""
    row = "<row>" + '<c t="n"><v>1</v></c>' * 20 + "</row>"
    data = xlsx(row * 60_000, compresslevel=9)
    assert 90_000 < len(data) < 110_000
    message = refused(data, "journalen_2017-03.xlsx")
    assert message.startswith("journalen_2017-03.xlsx: workbook part 'xl/worksheets/sheet1.xml' inflates ")
    assert message.endswith("(limit 100x): refused as a possible zip bomb")
    # The e-health reader: a whole-file rejection, not an aborted run.
    started = time.perf_counter()
    read = exports.read_export("/l/ehealth/journalen_2017-03.xlsx", data)
    assert time.perf_counter() - started < 2 and read.file_error == message


def test_zip_uncompressed_total():
    limits = dataclasses.replace(spreadsheet.LIMITS, max_uncompressed_bytes=1000)
    message = refused(xlsx(f'<row r="1">{number("A1")}</row>'), "total.xlsx", limits=limits)
    assert message.endswith("over the 1000-byte limit: refused as a possible zip bomb")


def test_required_part_missing():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert refused(buffer.getvalue(), "x.ods") == "x.ods: not a valid .ods file (content.xml missing)"
    assert refused(buffer.getvalue(), "x.xlsx") == "x.xlsx: not a valid .xlsx file ([Content_Types].xml missing)"


def test_rows_far_corner_xlsx():
    """1.5 KB: calamine alone would ask for a 1 048 576 × 16 384 grid and abort the process."""
    data = xlsx(f'<row r="1">{number("A1")}</row><row r="1048576">{number("XFD1048576")}</row>')
    assert (
        refused(data, "far.xlsx")
        == "far.xlsx: sheet 'Blad1' has cells down to row 1048576, over the limit of 5000 rows"
    )


def test_rows_and_cells_without_references_are_counted():
    rows = "<row>" + '<c t="n"><v>1</v></c>' + "</row>"
    assert refused(xlsx(rows * 5001), "implicit.xlsx").endswith(
        "has cells down to row 5001, over the limit of 5000 rows"
    )


def test_rows_repeated_in_ods():
    """800 bytes: one cell repeated 100 000 × 1 000 times cost calamine 6 GB and 28 s."""
    data = ods(
        '<table:table-row table:number-rows-repeated="100000"><table:table-cell '
        'table:number-columns-repeated="1000" office:value-type="float" office:value="1"><text:p>1</text:p>'
        "</table:table-cell></table:table-row>"
    )
    assert (
        refused(data, "rep.ods") == "rep.ods: sheet 'Blad1' has cells down to row 100000, over the limit of 5000 rows"
    )


def test_empty_repeats_in_ods_are_not_used_area():
    """LibreOffice ends every sheet with a million repeated empty rows: they are not data."""
    data = ods(
        f"<table:table-row>{ODS_CELL}{ODS_CELL}</table:table-row>"
        '<table:table-row table:number-rows-repeated="1048575">'
        '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
    )
    (sheet,) = spreadsheet.read_workbook(data, "lo.ods")
    assert sheet.rows == [[1, 1]]


def test_rows_far_corners_xls():
    """LibreOffice's .xls, 7.7 KB: calamine would build five 65 536 × 256 grids (2.5 GB) on opening it."""
    data = (HOSTILE / "far_corners.xls").read_bytes()
    assert refused(data, "far_corners.xls") == (
        "far_corners.xls: sheet 'Sheet' has cells down to row 65536, over the limit of 5000 rows"
    )


def test_columns():
    limits = dataclasses.replace(spreadsheet.LIMITS, max_columns=30)
    data = xlsx(f'<row r="1">{number("A1")}{number("AE1")}</row>')
    assert refused(data, "wide.xlsx", limits=limits) == (
        "wide.xlsx: sheet 'Blad1' has cells out to column 31, over the limit of 30 columns"
    )
    ods_data = ods(
        f'<table:table-row><table:table-cell table:number-columns-repeated="40"/>{ODS_CELL}</table:table-row>'
    )
    assert refused(ods_data, "wide.ods", limits=limits) == (
        "wide.ods: sheet 'Blad1' has cells out to column 41, over the limit of 30 columns"
    )


def test_cells():
    data = xlsx(f'<row r="1">{number("A1")}</row><row r="4000">{number("XFD4000")}</row>')
    assert refused(data, "area.xlsx") == (
        "area.xlsx: the sheets' used areas hold 65536000 cells, over the limit of 1000000 cells"
    )


@pytest.mark.parametrize("name", ["long.xlsx", "long.ods"])
def test_cell_size(name):
    text = "x" * 40_000
    data = (
        xlsx(f'<row r="1">{number("A1")}<c r="B1" t="inlineStr"><is><t>{text}</t></is></c></row>')
        if name.endswith("xlsx")
        else ods(
            f'<table:table-row>{ODS_CELL}<table:table-cell office:value-type="string"><text:p>{text}</text:p>'
            "</table:table-cell></table:table-row>"
        )
    )
    assert refused(data, name) == (
        f"{name}: sheet 'Blad1' cell B1 holds a cell of 40000 characters, over the limit of 32767 characters per cell"
    )


def test_dtd_in_ods_is_refused():
    data = ods("")
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            part = source.read(info.filename)
            if info.filename == "content.xml":
                part = part.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>', 1)
            target.writestr(info, part)
    assert refused(buffer.getvalue(), "dtd.ods") == (
        "dtd.ods: the workbook declares a DTD or entities, which a spreadsheet never needs"
    )


def test_xlsb_renamed_to_xlsx():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.bin", b"\x00")
    assert refused(buffer.getvalue(), "b.xlsx") == "b.xlsx: a binary .xlsb workbook, not .xlsx: save it as .xlsx"


def test_not_a_spreadsheet_name():
    assert refused(b"x", "x.csv") == "x.csv: not a spreadsheet (.xlsx, .xls, .ods)"


# --------------------------------------------------------------------------- every caller gets the same refusal


def test_county_reports_use_the_guards():
    data = (HOSTILE / "far_corners.xls").read_bytes()
    report = cr.parse_report(data, "uppsala_2019.xls")
    assert report.error == "uppsala_2019.xls: sheet 'Sheet' has cells down to row 65536, over the limit of 5000 rows"


def test_ehealth_spreadsheets_use_the_guards():
    data = xlsx(f'<row r="1">{number("A1")}</row><row r="1048576">{number("XFD1048576")}</row>')
    read = exports.read_export("/l/ehealth/webbtidbok_2017-03.xlsx", data)
    assert read.file_error == (
        "webbtidbok_2017-03.xlsx: sheet 'Blad1' has cells down to row 1048576, over the limit of 5000 rows"
    )
    assert [(r["row_number"], r["rows_held"]) for r in read.rejected_regional] == [(0, 5)]


JOURNAL = [
    "Månad;Region;Inloggningar;Unika användare;Förstagångsinloggningar",
    *[f"2017-03;{code};10;5;1" for code in ("01", "03", "04")],
]


def test_csv_header_cell_past_pythons_field_limit_is_a_rejected_file_not_an_aborted_run():
    """Issue 13: a 140 000-character header cell aborted the e-health run with `field larger than field limit`."""
    lines = [JOURNAL[0] + ";" + "H" * 140_000, *JOURNAL[1:]]
    read = exports.read_export("/l/ehealth/journalen_2017-03.csv", ("\n".join(lines) + "\n").encode())
    assert read.file_error == (
        "journalen_2017-03.csv: line 1 (the header) holds a cell of 140000 characters, "
        "over the limit of 32767 characters per cell"
    )
    assert [(r["row_number"], r["rows_held"]) for r in read.rejected_regional] == [(0, 3 * 3)]


@pytest.mark.parametrize("size", [40_000, 1_000_000])
def test_csv_data_cell_over_the_limit(size):
    lines = [*JOURNAL[:2], "2017-03;" + "Region Uppsala " * (size // 15) + ";1;1;1", *JOURNAL[2:]]
    read = exports.read_export("/l/ehealth/journalen_2017-03.csv", ("\n".join(lines) + "\n").encode())
    observed = len("Region Uppsala " * (size // 15))
    assert read.file_error == (
        f"journalen_2017-03.csv: line 3 holds a cell of {observed} characters, "
        "over the limit of 32767 characters per cell"
    )


def test_unit_level_cell_over_the_limit(tmp_path):
    source = Path(__file__).parent / "fixtures" / "ehealth" / "webbtidbok_enheter_2024-02.csv"
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    cells = lines[3].split(";")
    cells[3] = "Vårdcentral " * 4000
    lines[3] = ";".join(cells)
    path = tmp_path / source.name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = unit_daily.read_unit_daily(str(path))
    assert read.file_error == (
        f"{source.name}: line 4 holds a cell of {len(cells[3])} characters, over the limit of 32767 characters per cell"
    )
    assert read.rows is None and read.rejected[0]["rows_held"] == len(lines) - 1


def test_a_wide_csv_header_is_not_one_giant_cell():
    """Only the chosen delimiter's cells are measured: 10 000 short columns are not a 100 000-character cell."""
    header = JOURNAL[0] + ";" + ";".join(f"Extra{i}" for i in range(10_000))
    read = exports.read_export("/l/ehealth/journalen_2017-03.csv", ("\n".join([header, *JOURNAL[1:]]) + "\n").encode())
    assert read.file_error is None and read.delimiter == ";"
    assert read.notes == [
        "journalen_2017-03.csv: ignored column(s) Extra0, Extra1, Extra2, Extra3, Extra4, Extra5, "
        "Extra6, Extra7, Extra8, Extra9 and 9990 more"
    ]
