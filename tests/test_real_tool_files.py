"""Files made the way senders' tools make them (issue 13 §2) read to the same values as the sample they came from.

The fixtures in ``tests/fixtures/real_tools/`` are written by
``make_fixtures.py`` there (LibreOffice headless conversions of the county
template and of monthly exports, Excel's "Unicode text", a ``sep=`` hint,
``.csv.gz``, date serials, a stale ``<dimension>``); the expected values
are rebuilt here from the same samples, so every test compares values, not
just the absence of an error.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
from pathlib import Path

import pytest

from etl import regions
from etl.sources import county_reports as cr
from etl.sources import ehealth_exports as exports
from etl.sources import ehealth_spec, spreadsheet, unit_daily

HERE = Path(__file__).parent / "fixtures" / "real_tools"
_spec = importlib.util.spec_from_file_location("make_fixtures", HERE / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)

PERIOD = f"{make.MONTH:%Y-%m}"
METRICS = {kind: [(m.header, m.name) for m in export.metrics] for kind, export in ehealth_spec.EXPORTS.items()}


def _expected(kind: str) -> tuple[dict, dict]:
    """(region, metric) → value and metric → national value, from the sample rows the fixtures were made of."""
    rows = make.ehealth_rows(kind)
    header = rows[0]
    regional, national = {}, {}
    for row in rows[1:]:
        for label, metric in METRICS[kind]:
            value = int(str(row[header.index(label)]))
            if regions.is_national(row[1]):
                national[metric] = value
            else:
                regional[(regions.resolve_region(row[1]), metric)] = value
    return regional, national


def _read(path: Path) -> exports.ExportRows:
    return exports.read_export(str(path), path.read_bytes())


VARIANTS = [
    ("original", "xlsx"),  # openpyxl, the sample as the project writes it
    ("xls", "xls"),  # LibreOffice --convert-to xls (Excel 97-2003)
    ("ods", "ods"),  # LibreOffice --convert-to ods
    ("unicode_text", "txt"),  # Excel "Unicode text": UTF-16LE + BOM, tabs
    ("gzip", "csv.gz"),  # LibreOffice CSV, gzipped
    ("sep_hint", "csv"),  # sep=; first line, Windows-1252, CRLF
    ("stale_dimension", "xlsx"),  # <dimension ref="A1"/> left stale
]


@pytest.mark.parametrize("kind", ["journalen", "webbtidbok"])
@pytest.mark.parametrize("variant,ext", VARIANTS)
def test_monthly_export_reads_to_the_sample_values(variant, ext, kind):
    path = HERE / "ehealth" / variant / f"{kind}_{PERIOD}.{ext}"
    read = _read(path)
    assert read.file_error is None and not read.rejected_regional and not read.rejected_national
    regional, national = _expected(kind)
    assert {(r["region_code"], r["metric"]): r["value"] for r in read.regional} == regional
    assert {r["metric"]: r["value"] for r in read.national} == national
    assert {r["month"] for r in read.regional + read.national} == {make.MONTH}
    n = len(METRICS[kind])
    assert read.rows_in_regional + read.rows_in_national == read.data_lines * n == 22 * n
    # Line numbers are the file's own: the header is line 1, or line 2 below a sep= line.
    first = 3 if variant == "sep_hint" else 2
    assert min(r["row_number"] for r in read.regional) == first
    assert exports.parse_file_name(path.name).ext == ext


def test_what_each_text_variant_was_detected_as():
    got = {
        variant: (
            _read(HERE / "ehealth" / variant / f"journalen_{PERIOD}.{ext}").encoding,
            _read(HERE / "ehealth" / variant / f"journalen_{PERIOD}.{ext}").delimiter,
        )
        for variant, ext in VARIANTS
        if ext in ("txt", "csv", "csv.gz")
    }
    assert got == {"unicode_text": ("utf-16", "\t"), "gzip": ("utf-8-sig", ";"), "sep_hint": ("cp1252", ";")}
    assert (HERE / "ehealth" / "unicode_text" / f"journalen_{PERIOD}.txt").read_bytes()[:2] == b"\xff\xfe"


def test_sep_hint_is_honoured_over_detection():
    """sep=, names the delimiter even where ';' would be detected: the hint line is neither header nor data."""
    rows = make.ehealth_rows("journalen")
    text = "sep=,\n" + "".join(",".join(f'"{c}"' if ";" in str(c) else str(c) for c in r) + "\n" for r in rows)
    read = exports.read_export(f"/l/ehealth/journalen_{PERIOD}.csv", text.encode())
    assert (read.file_error, read.delimiter, len(read.regional)) == (None, ",", 63)
    tab = exports.read_export(
        f"/l/ehealth/journalen_{PERIOD}.csv",
        ("sep=\t\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)).encode(),
    )
    assert (tab.file_error, tab.delimiter, len(tab.regional)) == (None, "\t", 63)
    only = exports.read_export(f"/l/ehealth/journalen_{PERIOD}.csv", b"sep=;\r\n")
    assert only.file_error == f"journalen_{PERIOD}.csv: nothing under the sep= line"


def test_date_serial_in_the_month_column():
    path = HERE / "ehealth" / "date_serial" / f"journalen_{PERIOD}.csv"
    assert path.read_text(encoding="utf-8-sig").splitlines()[1].startswith("43525;")  # as LibreOffice wrote it
    read = _read(path)
    regional, national = _expected("journalen")
    assert read.file_error is None
    assert {(r["region_code"], r["metric"]): r["value"] for r in read.regional} == regional
    assert {r["month"] for r in read.regional} == {make.MONTH}


def test_the_stale_dimension_is_really_stale():
    """openpyxl's read-only mode trusts <dimension ref="A1"/> and sees one cell; calamine reads every row."""
    from openpyxl import load_workbook

    path = HERE / "ehealth" / "stale_dimension" / f"journalen_{PERIOD}.xlsx"
    book = load_workbook(path, read_only=True)
    sheet = book.active
    assert sheet is not None
    assert [list(r) for r in sheet.iter_rows(values_only=True)] == [["Månad"]]
    book.close()
    sheets = spreadsheet.read_workbook(path.read_bytes(), path.name)
    assert len(sheets) == 1 and len(sheets[0].rows) == 23 and len(sheets[0].rows[0]) == 5


def test_spreadsheet_cell_types_from_each_tool():
    """Numbers come back as ints in all three formats, as the sample wrote them."""
    for variant, ext in (("original", "xlsx"), ("xls", "xls"), ("ods", "ods")):
        path = HERE / "ehealth" / variant / f"journalen_{PERIOD}.{ext}"
        (sheet,) = spreadsheet.read_workbook(path.read_bytes(), path.name)
        assert sheet.rows[0] == ["Månad", "Region", "Inloggningar", "Unika användare", "Förstagångsinloggningar"]
        assert sheet.rows[1][:2] == [PERIOD, "01"] and isinstance(sheet.rows[1][2], int), variant


# --------------------------------------------------------------------------- county reports


def _business(report: cr.ParsedReport) -> tuple:
    """What a report says, without where it came from (row numbers, raw text, file)."""
    origin = ("row_number", "raw", "source_file")
    return (
        report.header,
        [{k: v for k, v in r.items() if k not in origin} for r in report.initiatives],
        [{k: v for k, v in r.items() if k not in origin} for r in report.services],
    )


def test_county_template_saved_by_libreoffice_reads_the_same():
    original = HERE / "county" / f"{make.COUNTY_STEM}.xlsx"
    expected = cr.parse_report(original.read_bytes(), original.name)
    report = make.county_report()
    assert expected.error is None and not expected.warnings
    assert expected.header is not None
    assert expected.header["region_code"] == make.COUNTY_REGION and expected.header["grant_sek"] == make.COUNTY_GRANT
    assert [r["title"] for r in expected.initiatives] == [i["title"] for i in report["initiatives"]]
    assert [r["implemented_on"] for r in expected.services] == [s["implemented_on"] for s in report["services"]]
    assert [r["row_number"] for r in expected.initiatives] == list(range(2, 2 + len(report["initiatives"])))
    for ext in ("xls", "ods"):
        path = HERE / "county" / f"{make.COUNTY_STEM}.{ext}"
        parsed = cr.parse_report(path.read_bytes(), path.name)
        assert parsed.error is None and not parsed.rejected_initiatives and not parsed.rejected_services, ext
        assert _business(parsed) == _business(expected), ext
        assert [r["row_number"] for r in parsed.initiatives] == [r["row_number"] for r in expected.initiatives]


def test_suffixes():
    assert cr.SUFFIXES == (".xlsx", ".xls", ".ods", ".json")
    assert exports.SUFFIXES == (".csv", ".csv.gz", ".txt", ".xlsx", ".xls", ".ods")
    assert all(s == s.lower() for s in cr.SUFFIXES + exports.SUFFIXES)
    for ext in ("csv", "csv.gz", "txt", "xlsx", "xls", "ods", "XLS", "CSV.GZ"):
        assert exports.parse_file_name(f"journalen_2019-03.{ext}").ext == ext.lower()
    assert exports.parse_file_name("webbtidbok_enheter_2024-02.csv.gz").ext == "csv.gz"
    for bad in (
        "webbtidbok_enheter_2024-02.txt",
        "webbtidbok_enheter_2024-02.xls",
        "journalen_2019-03.gz",
        "journalen_2019-03.csv.zip",
    ):
        with pytest.raises(Exception, match="unit-level files are CSV only|not an e-health export name"):
            exports.parse_file_name(bad)


# --------------------------------------------------------------------------- unit-level file


def test_unit_level_csv_gz_reads_like_the_csv():
    plain = unit_daily.read_unit_daily(
        str(Path(__file__).parent / "fixtures" / "ehealth" / "webbtidbok_enheter_2024-02.csv")
    )
    packed = unit_daily.read_unit_daily(str(HERE / "ehealth" / "gzip" / "webbtidbok_enheter_2024-02.csv.gz"))
    assert packed.file_error is None and packed.encoding == plain.encoding
    assert packed.rows is not None and plain.rows is not None, plain.file_error
    assert packed.rows.drop_columns(["raw"]).equals(plain.rows.drop_columns(["raw"]))
    assert [(r["row_number"], r["reason"]) for r in packed.rejected] == [
        (r["row_number"], r["reason"]) for r in plain.rejected
    ]


def test_unit_level_sep_hint_gzip_and_date_serials(tmp_path):
    source = Path(__file__).parent / "fixtures" / "ehealth" / "webbtidbok_enheter_2024-02.csv"
    plain = unit_daily.read_unit_daily(str(source))
    text = source.read_text(encoding="utf-8-sig")
    serials = text.replace("2024-02-01;", "45323;")  # 2024-02-01 as an Excel serial
    path = tmp_path / "webbtidbok_enheter_2024-02.csv.gz"
    path.write_bytes(gzip.compress(("sep=;\r\n" + serials).encode("utf-8")))
    read = unit_daily.read_unit_daily(str(path))
    assert read.file_error is None and read.delimiter == ";"
    assert read.rows is not None and plain.rows is not None, plain.file_error
    assert read.rows.column("date").to_pylist() == plain.rows.column("date").to_pylist()
    assert read.rows.column("row_number").to_pylist() == [n + 1 for n in plain.rows.column("row_number").to_pylist()]
    assert [r["row_number"] for r in read.rejected] == [r["row_number"] + 1 for r in plain.rejected]


def test_unit_level_broken_gzip_is_a_rejected_file(tmp_path):
    source = Path(__file__).parent / "fixtures" / "ehealth" / "webbtidbok_enheter_2024-02.csv"
    whole = gzip.compress(source.read_bytes() * 50)
    path = tmp_path / "webbtidbok_enheter_2024-02.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])  # still being written
    read = unit_daily.read_unit_daily(str(path))
    assert read.rows is None and len(read.rejected) == 1 and read.rejected[0]["row_number"] == 0
    assert read.file_error is not None
    assert read.file_error.startswith("webbtidbok_enheter_2024-02.csv.gz: the gzip file is")
    path.write_bytes(b"not gzip at all")
    not_gzip = unit_daily.read_unit_daily(str(path))
    assert not_gzip.file_error is not None
    assert "not a readable gzip file" in not_gzip.file_error


def test_monthly_csv_gz_guards(tmp_path):
    rows = make.ehealth_rows("journalen")
    data = gzip.compress("".join(";".join(map(str, r)) + "\n" for r in rows).encode())
    name = f"/l/ehealth/journalen_{PERIOD}.csv.gz"
    assert exports.read_export(name, data[:-30]).file_error == (
        f"journalen_{PERIOD}.csv.gz: the gzip file is cut short (still being written, or truncated)"
    )
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb") as stream:
        for _ in range(21):
            stream.write(b"\n" * (1 << 20))
    assert exports.read_export(name, bomb.getvalue()).file_error == (
        f"journalen_{PERIOD}.csv.gz: decompresses to more than the {exports.MAX_EXPORT_BYTES}-byte limit"
    )
