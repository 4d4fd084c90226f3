"""The e-health export readers (docs/input-formats.md §2, §2b) on real files: every tolerance, every kind of bad line."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from etl import regions, swedish
from etl.errors import BadInput
from etl.sample import ehealth as sample
from etl.sources import ehealth_exports as exports
from etl.sources import unit_daily

FIXTURES = Path(__file__).parent / "fixtures" / "ehealth"
MARCH = dt.date(2017, 3, 1)


def _plain_lines(kind: str, month: dt.date = MARCH) -> list[str]:
    journal, web, _ = sample.month_values(month, 7)
    rows = sample.export_rows(kind, month, journal if kind == "journalen" else web, sample.PLAIN)
    return [";".join(map(str, r)) for r in rows]


def _read(name: str, lines: list[str] | bytes, encoding: str = "utf-8"):
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode(encoding)
    return exports.read_export(f"/landing/ehealth/{name}", data)


def _by(rows, region, metric):
    return next(r for r in rows if r["region_code"] == region and r["metric"] == metric)


def _accounting_holds(read: exports.ExportRows) -> None:
    """Every data line is loaded or quarantined, counted in long rows (lines × metrics)."""
    n = len(read.spec.metrics)
    loaded_lines = len({r["row_number"] for r in read.regional}) + len({r["row_number"] for r in read.national})
    quarantined = sum(r["rows_held"] for r in read.rejected_regional + read.rejected_national)
    assert read.rows_in_regional + read.rows_in_national == loaded_lines * n + quarantined
    if read.file_error is None:
        assert read.rows_in_regional + read.rows_in_national == read.data_lines * n


# --------------------------------------------------------------------------- names


def test_file_names():
    assert exports.parse_file_name("journalen_2017-03.csv") == exports.ExportName("journalen", "2017-03", "csv")
    assert exports.parse_file_name("WEBBTIDBOK_2020-12.XLSX").kind == "webbtidbok"
    assert exports.parse_file_name("webbtidbok_enheter_2024-02.csv").kind == "webbtidbok_enheter"
    for bad in ("journalen_2017-13.csv", "journalen_2017-3.csv", "webbtidbok_enheter_2024-02.xlsx", "notes.csv"):
        with pytest.raises(BadInput):
            exports.parse_file_name(bad)


# --------------------------------------------------------------------------- tolerances


def test_cp1252_tab_crlf_swedish_month_nbsp_old_names_fixture():
    path = FIXTURES / "journalen_2017-03.csv"
    read = exports.read_export(str(path), path.read_bytes())
    assert (read.encoding, read.delimiter, read.file_error) == ("cp1252", "\t", None)
    assert read.regions_seen == set(regions.REGION_CODES) and len(read.regional) == 63
    assert _by(read.regional, "01", "logins")["value"] == 1_234_567  # "1 234 567" with no-break spaces
    assert _by(read.regional, "01", "unique_users")["value"] == 600_000  # "600 000" with a space
    assert _by(read.regional, "25", "logins")["value"] == 210_345  # region given as 0025
    gotland = _by(read.regional, "09", "first_time_users")
    assert gotland["value"] is None and gotland["suppressed"] is True  # "–"
    jamtland = _by(read.regional, "23", "unique_users")
    assert jamtland["value"] is None and jamtland["suppressed"] is True  # empty cell
    assert {r["metric"]: r["value"] for r in read.national} == {
        "logins": 3_541_467,
        "unique_users": 1_753_440,
        "first_time_users": 175_340,
    }
    assert all(r["month"] == MARCH and r["year"] == 2017 for r in read.regional)
    _accounting_holds(read)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_every_encoding_delimiter_and_line_ending(encoding, delimiter, newline):
    style = sample.Style(
        encoding,
        delimiter,
        newline,
        month_form=2,
        separator="\u00a0",
        region_form=0,
        national_label="Totalt",
        journal_xlsx=False,
        web_booking_xlsx=False,
    )
    journal, web, _ = sample.month_values(MARCH, 7)
    data = sample.render_csv(sample.export_rows("webbtidbok", MARCH, web, style), style)
    read = exports.read_export("/l/ehealth/webbtidbok_2017-03.csv", data)
    assert read.file_error is None and read.delimiter == delimiter
    assert read.encoding == ("cp1252" if encoding == "cp1252" else "utf-8-sig")
    assert {(r["region_code"], r["metric"]): r["value"] for r in read.regional} == {
        (code, m): web[code][m] for code in regions.REGION_CODES for m in sample.WEB_BOOKING_METRICS
    }
    assert {r["metric"]: r["value"] for r in read.national} == {
        m: sum(web[c][m] for c in web) for m in sample.WEB_BOOKING_METRICS
    }


@pytest.mark.parametrize("form,text", [(0, "2017-03"), (1, "2017-3"), (2, "mars 2017"), (3, "2017M03")])
def test_every_month_form(form, text):
    assert sample.month_text(MARCH, form) == text
    lines = _plain_lines("journalen")
    lines = [lines[0]] + [text + line[len("2017-03") :] for line in lines[1:]]
    read = _read("journalen_2017-03.csv", lines)
    assert read.file_error is None and not read.rejected_regional and len(read.regional) == 63


def test_xlsx_with_numbers_and_text_cells():
    journal, _, _ = sample.month_values(MARCH, 7)
    rows = sample.export_rows(
        "journalen", MARCH, journal, sample.style_for(MARCH), suppressed={("09", "first_time_users")}
    )
    read = exports.read_export("/l/ehealth/journalen_2017-03.xlsx", sample.render_xlsx(rows))
    assert read.file_error is None and read.regions_seen == set(regions.REGION_CODES)
    assert _by(read.regional, "14", "logins")["value"] == journal["14"]["logins"]
    assert _by(read.regional, "09", "first_time_users")["suppressed"] is True
    assert [r["row_number"] for r in read.national][:1] == [23]  # sheet row: header is row 1
    _accounting_holds(read)


@pytest.mark.parametrize("marker", ["..", "–", "—", "-", "", "  "])
def test_suppressed_markers_are_null_never_zero(marker):
    lines = _plain_lines("webbtidbok")
    cells = lines[5].split(";")
    cells[4] = marker  # Ombokningar
    lines[5] = ";".join(cells)
    read = _read("webbtidbok_2017-03.csv", lines)
    row = next(r for r in read.regional if r["row_number"] == 6 and r["metric"] == "rebookings")
    assert row["value"] is None and row["suppressed"] is True


def test_every_sample_month_reads_clean():
    """Two years of sample files: all their variations (xlsx months included) read without a rejected line."""
    for month in [dt.date(y, m, 1) for y in (2016, 2017) for m in range(1, 13)]:
        style = sample.style_for(month)
        journal, web, _ = sample.month_values(month, 3)
        for kind, values, xlsx in (
            ("journalen", journal, style.journal_xlsx),
            ("webbtidbok", web, style.web_booking_xlsx),
        ):
            rows = sample.export_rows(kind, month, values, style, sample.suppressed_cells(month, 3))
            data = sample.render_xlsx(rows) if xlsx else sample.render_csv(rows, style)
            read = exports.read_export(f"/l/ehealth/{kind}_{month:%Y-%m}.{'xlsx' if xlsx else 'csv'}", data)
            assert read.file_error is None and not read.rejected_regional and not read.rejected_national, month
            assert len(read.regions_seen) == 21 and len(read.national) == len(read.spec.metrics)


# --------------------------------------------------------------------------- bad input


def test_wrong_month_on_a_line_quarantines_that_line():
    lines = _plain_lines("journalen")
    lines[3] = "2017-04" + lines[3][len("2017-03") :]
    read = _read("journalen_2017-03.csv", lines)
    assert [(r["row_number"], r["reason"], r["rows_held"]) for r in read.rejected_regional] == [
        (4, "Månad 2017-04 does not match the file's month 2017-03", 3)
    ]
    assert "04" in read.regions_seen  # the region was sent, only its line is unusable
    _accounting_holds(read)


def test_wrong_month_on_every_line_rejects_the_file():
    lines = _plain_lines("journalen", dt.date(2017, 4, 1))
    read = _read("journalen_2017-03.csv", lines)
    assert read.file_error and "differs from the file's month 2017-03" in read.file_error
    assert not read.regional and not read.national
    assert [(r["row_number"], r["rows_held"]) for r in read.rejected_regional] == [(0, 22 * 3)]


@pytest.mark.parametrize(
    "cell,reason",
    [
        ("-5", "Avbokningar: negative value: '-5'"),
        ("tolv", "Avbokningar: not a number: 'tolv'"),
        ("1,5", "Avbokningar: not a whole number: '1,5'"),
    ],
)
def test_bad_numbers_quarantine_the_line(cell, reason):
    lines = _plain_lines("webbtidbok")
    cells = lines[2].split(";")
    cells[3] = cell
    lines[2] = ";".join(cells)
    read = _read("webbtidbok_2017-03.csv", lines)
    assert [(r["row_number"], r["reason"], r["rows_held"]) for r in read.rejected_regional] == [(3, reason, 5)]
    assert not any(r["row_number"] == 3 for r in read.regional)
    _accounting_holds(read)


def test_unknown_region_and_region_typo_are_not_guessed():
    lines = _plain_lines("journalen")
    lines.insert(2, "2017-03;Region Atlantis;1;1;1")
    lines[4] = lines[4].replace(";04;", ";Sörmlandd;")
    read = _read("journalen_2017-03.csv", lines)
    assert {r["row_number"]: r["reason"] for r in read.rejected_regional} == {
        3: "unknown region 'Region Atlantis'",
        5: "unknown region 'Sörmlandd'",
    }
    assert "04" not in read.regions_seen and len(read.regions_seen) == 20
    _accounting_holds(read)


def test_truncated_file_quarantines_the_cut_line():
    text = ("\n".join(_plain_lines("journalen")) + "\n").encode()
    cut = text[: text.index(b"\n2017-03;10;") + 12]  # stops in the middle of Blekinge's line
    read = _read("journalen_2017-03.csv", cut)
    assert read.rejected_regional[-1]["reason"] == "3 fields, expected 5 (truncated line or stray delimiter)"
    assert "10" not in read.regions_seen and len(read.regions_seen) == 8 and not read.national
    _accounting_holds(read)


def test_undecodable_bytes_reject_the_file():
    data = ("\n".join(_plain_lines("journalen")) + "\n").encode("utf-8").replace(b"2017-03;01", b"2017-03;\x81\x8d")
    read = _read("journalen_2017-03.csv", data)
    assert read.file_error == "journalen_2017-03.csv: neither UTF-8 nor Windows-1252 text (undecodable bytes)"
    assert [(r["row_number"], r["rows_held"]) for r in read.rejected_regional] == [(0, 22 * 3)]
    # UTF-16 is recognised by its byte-order mark (Excel's "Unicode text" writes one, see
    # test_real_tool_files.py); without one it is not guessed at.
    utf16 = ("\n".join(_plain_lines("journalen")) + "\n").encode("utf-16-le")
    read = _read("journalen_2017-03.csv", utf16)
    assert "not a text file" in read.file_error
    with_bom = _read("journalen_2017-03.csv", ("\n".join(_plain_lines("journalen")) + "\n").encode("utf-16"))
    assert (with_bom.file_error, with_bom.encoding, len(with_bom.regional)) == (None, "utf-16", 63)


@pytest.mark.parametrize(
    "header,message",
    [
        ("Månad;Region;Inloggningar;Unika användare", "lacks column(s) Förstagångsinloggningar"),
        ("Month|Region|Logins", "header not recognised"),
        ("Månad;Region;Inloggningar;Inloggningar;Unika användare;Förstagångsinloggningar", "appears 2 times"),
    ],
)
def test_bad_header_rejects_the_file(header, message):
    lines = _plain_lines("journalen")
    lines[0] = header
    read = _read("journalen_2017-03.csv", lines)
    assert message in read.file_error and read.rejected_regional[0]["row_number"] == 0


def test_header_tolerates_case_space_colon_and_extra_columns():
    lines = _plain_lines("journalen")
    lines[0] = " MÅNAD: ;region;INLOGGNINGAR;Unika  användare;Förstagångsinloggningar:;Kommentar"
    lines[1:] = [line + ";" for line in lines[1:]]
    read = _read("journalen_2017-03.csv", lines)
    assert read.file_error is None and len(read.regional) == 63
    assert read.notes == ["journalen_2017-03.csv: ignored column(s) Kommentar"]


def test_extra_field_from_a_comma_inside_a_number():
    lines = [line.replace(";", ",") for line in _plain_lines("journalen")]
    lines[4] = lines[4].rsplit(",", 1)[0] + ",12,345"
    read = _read("journalen_2017-03.csv", lines)
    assert read.rejected_regional[0]["reason"] == "6 fields, expected 5 (truncated line or stray delimiter)"


def test_damaged_and_multi_sheet_workbooks_are_rejected():
    from openpyxl import Workbook

    journal, _, _ = sample.month_values(MARCH, 7)
    good = sample.render_xlsx(sample.export_rows("journalen", MARCH, journal, sample.PLAIN))
    damaged = exports.read_export("/l/ehealth/journalen_2017-03.xlsx", good[: len(good) // 2])
    assert (
        damaged.file_error == "journalen_2017-03.xlsx: not a valid .xlsx file (not a zip archive)"
    )  # the one reader's message
    book = Workbook()
    book.create_sheet("Extra")
    buffer = io.BytesIO()
    book.save(buffer)
    two = exports.read_export("/l/ehealth/journalen_2017-03.xlsx", buffer.getvalue())
    assert two.file_error is not None
    assert "expected one sheet, found 2" in two.file_error


def test_national_row_spellings_are_kept_apart():
    for label in ("Riket", "Hela landet", "TOTALT", "00"):
        lines = _plain_lines("journalen")
        lines[-1] = lines[-1].replace(";Riket;", f";{label};")
        read = _read("journalen_2017-03.csv", lines)
        assert len(read.national) == 3 and all(r["region_code"] is None for r in read.national)
        assert len(read.regional) == 63


# --------------------------------------------------------------------------- unit-level files


@pytest.mark.parametrize("block_size", [80, unit_daily.BLOCK_SIZE])  # 80 bytes: a block per line or two
def test_unit_fixture_types_what_it_can_and_rejects_lines_it_cannot(block_size):
    read = unit_daily.read_unit_daily(str(FIXTURES / "webbtidbok_enheter_2024-02.csv"), block_size=block_size)
    assert (read.encoding, read.delimiter, read.file_error) == ("utf-8-sig", ";", None)
    assert read.rows is not None
    rows = read.rows.to_pylist()
    assert [r["row_number"] for r in rows] == [2, 3, 4, 5, 6, 7, 8, 15]  # line 10 is blank, not data
    first = rows[0]
    assert (first["date"], first["region_code"], first["unit_hsa_id"], first["unit_name"], first["bookings"]) == (
        dt.date(2024, 2, 1),
        "01",
        "SE2321000016-15CX",
        "Vårdcentralen Åby",
        12,
    )
    assert (rows[1]["region_code"], rows[1]["bookings"], rows[1]["cancellations"]) == ("03", 1234, None)
    assert (rows[2]["cancellations"], rows[2]["rebookings"]) == (None, None)  # "–" and empty: suppressed
    assert {r["row_number"]: r["reason"] for r in read.rejected} == {
        9: "Bokningar: negative value: '-3'",
        11: "Bokningar: not a number: 'tolv'",
        12: "Datum: not a valid date: '2024-02-30'",  # not rolled over to 2024-03-01
        13: "Region: unknown region 'Atlantis'",
        14: "4 fields, expected 7 (truncated line or stray delimiter)",  # a short line inside the file
    }
    assert read.rows_in == 13 == len(rows) + len(read.rejected)


def test_a_unit_file_whose_last_line_is_cut_short_is_refused_whole(tmp_path):
    """An upload cut short mid-line: loading the rest would publish part of a month as the month."""
    data = (FIXTURES / "webbtidbok_enheter_2024-02.csv").read_bytes()
    path = tmp_path / "webbtidbok_enheter_2024-02.csv"
    path.write_bytes(data[: data.rstrip(b"\r\n").rfind(b"\r\n") + 20])  # the last line cut inside its HSA id
    read = unit_daily.read_unit_daily(str(path))
    assert read.file_error == (
        "webbtidbok_enheter_2024-02.csv: the last line (line 15) is cut short: the file "
        "was not transferred whole; send it again"
    )
    assert read.rows is None and read.rejected[0]["rows_held"] == 14


def test_unit_counts_are_what_the_one_parser_gives(tmp_path):
    """Counts parsed once per distinct text must be exactly what etl.swedish.parse_count gives."""
    texts = [
        "0",
        "7",
        "12345",
        "12 345",
        "12\u00a0345",
        "1\u2009234\u202f567",
        "007",
        " 42 ",
        "1 2",
        "..",
        "-",
        "–",
        "",
        "1.234",
        "1,0",
        "999999999999",
    ]
    lines = ["Datum;Region;HSA-id;Enhet;Bokningar;Avbokningar;Ombokningar"]
    for i, text in enumerate(texts):
        lines.append(f"2024-02-{i + 1:02d};01;SE2321000016-A{i};Enhet;{text};0;0")
    path = tmp_path / "webbtidbok_enheter_2024-02.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = unit_daily.read_unit_daily(str(path))
    assert read.rows is not None, read.file_error
    got = {r["unit_hsa_id"]: r["bookings"] for r in read.rows.to_pylist()}
    for i, text in enumerate(texts):
        expected = None if swedish.is_suppressed(text) else swedish.parse_count(text)
        assert got[f"SE2321000016-A{i}"] == expected, text


def test_unit_count_beyond_int64_is_quarantined_not_a_crash(tmp_path):
    lines = [
        "Datum;Region;HSA-id;Enhet;Bokningar;Avbokningar;Ombokningar",
        "2024-02-01;01;SE2321000016-A1;Enhet;7;0;0",
        "2024-02-02;01;SE2321000016-A1;Enhet;99999999999999999999;0;0",
    ]
    path = tmp_path / "webbtidbok_enheter_2024-02.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = unit_daily.read_unit_daily(str(path))
    assert read.rows is not None, read.file_error
    assert read.rows["bookings"].to_pylist() == [7]
    assert [(r["row_number"], r["reason"]) for r in read.rejected] == [
        (3, "Bokningar: number too large: '99999999999999999999'")
    ]


@pytest.mark.parametrize(
    "encoding,newline,delimiter", [("cp1252", "\r\n", "\t"), ("utf-8", "\n", ","), ("utf-8-sig", "\r\n", ";")]
)
def test_unit_files_in_every_encoding(tmp_path, encoding, newline, delimiter):
    units = sample.make_units(30, 1)
    month = dt.date(2024, 2, 1)
    _, web, daily = sample.month_values(month, 1, units)
    style = sample.Style(encoding, delimiter, newline, 0, "", 0, "Riket", False, False)
    path = tmp_path / "webbtidbok_enheter_2024-02.csv"
    path.write_bytes(sample.render_unit_csv(month, units, daily, style, 1))
    read = unit_daily.read_unit_daily(str(path), block_size=4096)  # many small blocks: line numbers must hold
    assert read.encoding == ("cp1252" if encoding == "cp1252" else "utf-8-sig") and read.delimiter == delimiter
    assert read.rows is not None, read.file_error
    assert read.rows.num_rows == 30 * 29 and not read.rejected
    assert read.rows["row_number"].to_pylist() == list(range(2, 2 + 30 * 29))
    table = read.rows.group_by("region_code").aggregate([("bookings", "sum")]).to_pylist()
    assert {r["region_code"]: r["bookings_sum"] for r in table} == {
        code: web[code]["bookings"] for code in regions.REGION_CODES
    }
    assert "Vårdcentralen" in " ".join(read.rows["unit_name"].to_pylist()) or "Hälso" in " ".join(
        read.rows["unit_name"].to_pylist()
    )


def test_unit_file_with_bad_bytes_further_in_is_rejected(tmp_path):
    head = b"Datum;Region;HSA-id;Enhet;Bokningar;Avbokningar;Ombokningar\n"
    good = "2024-02-01;01;SE2321000016-AB;Vårdcentralen;1;0;0\n".encode()
    path = tmp_path / "webbtidbok_enheter_2024-02.csv"
    # Past the 1 MB encoding sample: valid UTF-8 first, a Windows-1252 byte later.
    path.write_bytes(head + good * 25_000 + "2024-02-02;01;SE2321000016-AB;V\xe5rd;1;0;0\n".encode("cp1252"))
    read = unit_daily.read_unit_daily(str(path), block_size=1 << 20)
    assert read.file_error and "not valid utf-8-sig text further into the file" in read.file_error
    assert read.rows is None and read.rejected == [
        {"source_file": str(path), "row_number": 0, "raw": None, "reason": read.file_error, "rows_held": 25_001}
    ]


def test_unit_file_without_the_columns_is_rejected(tmp_path):
    path = tmp_path / "webbtidbok_enheter_2024-02.csv"
    path.write_text("Datum;Region;Enhet;Bokningar\n2024-02-01;01;X;1\n", encoding="utf-8")
    read = unit_daily.read_unit_daily(str(path))
    assert read.file_error is not None
    assert "lacks column(s) HSA-id, Avbokningar, Ombokningar" in read.file_error
    assert read.rows_in == 1
