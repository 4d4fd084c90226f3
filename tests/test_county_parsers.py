"""County report parsers (docs/input-formats.md §1): every tolerance, and bad input rejected with its reason.

Real files throughout: JSON bytes as the web form sends them and .xlsx
workbooks filled into the blank template written by write_blank_template.
No warehouse and no Great Expectations here; see test_county_pipeline.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import zipfile

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from etl import cli, privacy
from etl.sources import county_reports as cr
from etl.sources import county_template as tpl
from etl.sources import spreadsheet
from tests.county_support import builders  # noqa: E402

SHAPES = ("json", "xlsx")


def parse(shape: str, document: dict, tweak=None) -> cr.ParsedReport:
    if shape == "json":
        return cr.parse_report(builders.json_bytes(document), "report.json")
    return cr.parse_report(builders.xlsx_bytes(document, tweak), "report.xlsx")


def accepted(shape: str, document: dict, tweak=None) -> cr.ParsedReport:
    report = parse(shape, document, tweak)
    assert report.error is None, report.error
    return report


def header_of(report: cr.ParsedReport) -> dict:
    """An accepted report's header (a rejected one has none)."""
    assert report.header is not None, report.error
    return report.header


def error_of(report: cr.ParsedReport) -> str:
    """A rejected report's reason."""
    assert report.error is not None, "expected the report to be rejected"
    return report.error


# --------------------------------------------------------------------------- the good path


@pytest.mark.parametrize("shape", SHAPES)
def test_valid_report_parses_to_the_three_tables(shape):
    report = accepted(shape, builders.doc())
    # Every declared field is in the header; those the document leaves out (a field added later) are None.
    assert report.header == {field.column: None for field in tpl.REPORT_FIELDS if field.column} | {
        "region_code": "03",
        "report_year": 2017,
        "grant_sek": 20_000_000,
        "earmarked": True,
        "spend_it_support_sek": 8_000_000,
        "spend_competence_use_sek": 5_000_000,
        "spend_competence_supply_sek": 6_900_000,
        "offers_clinical_intro_year": True,
        "offers_specialist_nurse_study_salary": False,
        "has_care_near_service": True,
        "has_task_shifting": None,
    }
    assert [
        (i["initiative_no"], i["title"], i["area"], i["status"], i["new_due_to_grant"], i["cost_sek"])
        for i in report.initiatives
    ] == [
        (1, "Digitala vårdbesök", "it_support", "ongoing", True, 3_000_000),
        (2, "Vårdnära service", "competence_use", "completed", False, None),
        (3, "Kliniskt introduktionsår", "competence_supply", "planned", None, 850_000),
    ]
    assert [(s["service"], s["status"], s["implemented_on"]) for s in report.services] == [
        ("web_booking", "implemented", dt.date(2016, 3, 1)),
        ("patient_journal_online", "partly_implemented", None),
        ("remote_care", "planned", None),
        ("self_check_in", "not_started", None),
    ]
    assert report.initiative_rows == 3 and report.service_rows == 4
    assert not report.rejected_initiatives and not report.rejected_services
    # Sheet rows (header is row 1) for xlsx, item positions for JSON.
    assert [i["row_number"] for i in report.initiatives] == ([2, 3, 4] if shape == "xlsx" else [1, 2, 3])


@pytest.mark.parametrize("shape", SHAPES)
def test_contact_person_is_dropped_and_free_text_masked(shape):
    report = accepted(shape, builders.doc())
    everything = json.dumps(
        [report.header, report.header_raw, report.initiatives, report.services, report.warnings], default=str
    )
    for secret in (builders.CONTACT_NAME, builders.CONTACT_MAIL, "Fiktivsdotter", "Gunnel", "19800101-1234"):
        assert secret.casefold() not in everything.casefold()
    assert "Kontaktperson" not in report.header_raw
    assert report.initiatives[0]["description"] == (
        "Frågor till [namn borttaget], [e-post borttagen] eller [personnummer borttaget]."
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "text, kronor",
    [
        ("1 234 567", 1_234_567),
        ("1 234 567 kr", 1_234_567),
        ("1\u00a0234\u00a0567 kr", 1_234_567),  # no-break spaces
        ("1\u2009234\u2009567", 1_234_567),  # thin spaces
        ("1.234.567", 1_234_567),
        ("159 mnkr", 159_000_000),
        ("159 mkr", 159_000_000),
        ("850 tkr", 850_000),
        ("1,5 mnkr", 1_500_000),
        (1234567, 1_234_567),
    ],
)
def test_amount_tolerances(shape, text, kronor):
    report = accepted(shape, builders.doc(grant_sek=text, spend_sek={"it_support": text}))
    assert header_of(report)["grant_sek"] == kronor
    assert header_of(report)["spend_it_support_sek"] == kronor


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "text, value",
    [
        ("Ja", True),
        ("ja", True),
        ("JA", True),
        ("J", True),
        ("Yes", True),
        ("x", True),
        ("X", True),
        ("1", True),
        (1, True),
        ("Nej", False),
        ("nej", False),
        ("N", False),
        ("No", False),
        ("0", False),
        (0, False),
        ("", None),
        (None, None),
    ],
)
def test_yes_no_tolerances_and_empty_is_unknown(shape, text, value):
    initiatives = [dict(builders.VALID["initiatives"][0], new_due_to_grant=text)]
    report = accepted(shape, builders.doc(earmarked=text, initiatives=initiatives))
    assert header_of(report)["earmarked"] is value
    assert report.initiatives[0]["new_due_to_grant"] is value


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "spelling, code",
    [
        ("Landstinget i Uppsala län", "03"),
        ("SLL", "01"),
        ("VGR", "14"),
        ("Västra Götalandsregionen", "14"),
        ("region skåne", "12"),
        ("0014", "14"),
        ("SE-14", "14"),
        ("14", "14"),
        ("Jämtlands läns landsting", "23"),
    ],
)
def test_region_spellings(shape, spelling, code):
    assert header_of(accepted(shape, builders.doc(region=spelling)))["region_code"] == code


def test_region_as_json_number():
    assert header_of(accepted("json", builders.doc(region=14)))["region_code"] == "14"


def test_labels_headers_and_sheet_names_in_any_case_spacing_and_trailing_colon():
    def tweak(workbook):
        report = workbook[tpl.SHEET_REPORT]
        for row in range(2, report.max_row + 1):
            label = report.cell(row=row, column=1).value
            report.cell(row=row, column=1).value = (
                f"  {label.upper()} :" if row % 3 == 0 else f"{label.lower()}:" if row % 3 == 1 else f"\t{label}  "
            )
        # openpyxl refuses a case-only rename (it dedupes names case-insensitively): rename via a temporary name.
        for sheet, title in (
            (report, "UPPGIFTER"),
            (workbook[tpl.SHEET_INITIATIVES], "insatser"),
            (workbook[tpl.SHEET_SERVICES], "E-TJÄNSTER"),
        ):
            sheet.title = "tmp"
            sheet.title = title
        for sheet in ("insatser", "E-TJÄNSTER"):
            for cell in workbook[sheet][1]:
                if cell.value:
                    cell.value = f" {cell.value.upper()}: "
        # The "(kr)" unit may be left out of a label.
        for row in range(2, report.max_row + 1):
            if "ERHÅLLNA" in str(report.cell(row=row, column=1).value):
                report.cell(row=row, column=1).value = "Erhållna medel:"

    report = accepted("xlsx", builders.doc(), tweak)
    assert header_of(report)["grant_sek"] == 20_000_000
    assert header_of(report)["report_year"] == 2017
    assert len(report.initiatives) == 3 and len(report.services) == 4


@pytest.mark.parametrize(
    "kind, spellings, value",
    [
        (tpl.AREA, ("IT-stöd och processer", "IT-stöd", "e-hälsa", "IT", "it_support", "IT support"), "it_support"),
        (
            tpl.AREA,
            ("Kompetensanvändning", "smartare användning av medarbetarnas kompetens", "competence_use"),
            "competence_use",
        ),
        (
            tpl.AREA,
            ("Kompetensförsörjning", "planering av långsiktig kompetensförsörjning", "competence_supply"),
            "competence_supply",
        ),
        (tpl.INITIATIVE_STATUS, ("Planerad", "planned"), "planned"),
        (tpl.INITIATIVE_STATUS, ("Pågående", "ongoing"), "ongoing"),
        (tpl.INITIATIVE_STATUS, ("Genomförd", "completed"), "completed"),
        (tpl.INITIATIVE_STATUS, ("Avbruten", "cancelled"), "cancelled"),
        (tpl.SERVICE, ("Webbtidbok", "web_booking", "web booking"), "web_booking"),
        (
            tpl.SERVICE,
            ("Journal via nätet", "Journalen", "Journal på nätet", "patient_journal_online"),
            "patient_journal_online",
        ),
        (tpl.SERVICE, ("Vård på distans", "remote_care", "remote care"), "remote_care"),
        (tpl.SERVICE, ("Självincheckning", "self_check_in", "self check-in"), "self_check_in"),
        (tpl.SERVICE_STATUS, ("Införd", "implemented"), "implemented"),
        (tpl.SERVICE_STATUS, ("Delvis införd", "partly_implemented"), "partly_implemented"),
        (tpl.SERVICE_STATUS, ("Planerad", "planned"), "planned"),
        (tpl.SERVICE_STATUS, ("Ej påbörjad", "not_started"), "not_started"),
    ],
)
def test_enum_spellings_swedish_and_english(kind, spellings, value):
    for spelling in spellings:
        for variant in (spelling, spelling.upper(), f"  {spelling.lower()} "):
            assert tpl.resolve_enum(kind, variant) == value


@pytest.mark.parametrize("shape", SHAPES)
def test_english_enum_values_in_a_report(shape):
    initiatives = [{"title": "A", "area": "competence_supply", "status": "cancelled"}]
    services = [{"service": "self_check_in", "status": "partly_implemented", "implemented_on": "2017-09-30"}]
    report = accepted(shape, builders.doc(initiatives=initiatives, ehealth_services=services))
    assert (report.initiatives[0]["area"], report.initiatives[0]["status"]) == ("competence_supply", "cancelled")
    assert report.services[0]["implemented_on"] == dt.date(2017, 9, 30)


def test_xlsx_date_cells_and_numeric_year_cells():
    def tweak(workbook):
        workbook[tpl.SHEET_SERVICES]["C2"] = dt.datetime(2016, 3, 1)
        for row in workbook[tpl.SHEET_REPORT].iter_rows(min_row=2):
            if row[0].value == "Redovisningsår":
                row[1].value = 2017.0

    report = accepted("xlsx", builders.doc(), tweak)
    assert report.services[0]["implemented_on"] == dt.date(2016, 3, 1)
    assert header_of(report)["report_year"] == 2017


def test_blank_rows_are_skipped_and_row_numbers_stay_sheet_rows():
    def tweak(workbook):
        sheet = workbook[tpl.SHEET_INITIATIVES]
        sheet.insert_rows(3, amount=2)  # two blank rows between the first and second initiative

    report = accepted("xlsx", builders.doc(), tweak)
    assert [(i["initiative_no"], i["row_number"]) for i in report.initiatives] == [(1, 2), (2, 5), (3, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_blank_optional_fields_are_null_and_absent_lists_are_empty(shape):
    document: dict[str, object] = {
        "region": "Region Halland",
        "report_year": "2018",
        "contact_person": "x",
        "grant_sek": None,
        "earmarked": None,
        "spend_sek": {},
        "offers": {},
    }  # JSON: the web form writes null when blank
    document = builders.doc(**document)
    for key in ("initiatives", "ehealth_services"):
        document.pop(key)
    if shape == "xlsx":
        document.update(initiatives=[], ehealth_services=[])
    report = accepted(shape, document)
    header = header_of(report)
    assert header["region_code"] == "13" and header["report_year"] == 2018
    assert header["grant_sek"] is None and header["earmarked"] is None
    assert report.initiatives == [] and report.services == []


def test_a_json_report_leaving_out_a_field_the_web_form_writes_is_refused():
    """Left out is not blank: a correction without ``grant_sek`` would null the published grant unseen."""
    document = builders.doc()
    del document["grant_sek"]
    del document["offers"]["task_shifting"]
    for item in document["initiatives"][:2]:
        del item["cost_sek"]
    report = rejected("json", document)
    assert report.error == (
        "key(s) the web form always writes are missing (write null for a blank field): "
        "'grant_sek', 'offers.task_shifting', 'initiatives[].cost_sek' in items 1, 2"
    )


def test_unknown_fields_and_columns_are_ignored_with_a_warning():
    def tweak(workbook):
        workbook[tpl.SHEET_REPORT].append(["Kommentar", "skickas av anna@example.se"])
        workbook[tpl.SHEET_INITIATIVES]["G1"] = "Ansvarig"

    report = accepted("xlsx", builders.doc(), tweak)
    assert any("unknown field 'Kommentar' ignored" in w for w in report.warnings)
    assert any("unknown column 'Ansvarig' ignored" in w for w in report.warnings)
    assert "anna@example.se" not in json.dumps([report.header_raw, report.warnings])
    json_report = rejected("json", builders.doc(comment="hej"))
    assert json_report.error == "unknown key(s), not produced by the web form: 'comment'"


@pytest.mark.parametrize("shape", SHAPES)
def test_spend_up_to_one_percent_over_the_grant_is_accepted(shape):
    report = accepted(shape, builders.doc(grant_sek="10 mnkr", spend_sek={"it_support": "10 100 000"}))
    assert cr.spend_share(header_of(report)) == pytest.approx(1.01)


# --------------------------------------------------------------------------- masking


def test_masking_uses_the_core_rule_plus_the_contact_persons_name():
    text = (
        "Mejla anna.berg@region.se, pnr 19800101-1234; belopp 1 234 567 kr den 2017-03-14. Ring Anna Berg eller BERG."
    )
    assert privacy.mask_personal_data(text, ("Anna Berg", "Anna", "Berg")) == (
        "Mejla [e-post borttagen], pnr [personnummer borttaget]; belopp 1 234 567 kr den 2017-03-14. "
        "Ring [namn borttaget] eller [namn borttaget]."
    )
    assert privacy.mask_personal_data(None) is None


# --------------------------------------------------------------------------- bad input: the whole report


def rejected(shape: str, document: dict, tweak=None) -> cr.ParsedReport:
    report = parse(shape, document, tweak)
    assert report.error, "expected the report to be rejected"
    return report


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"region": "Landstinget Atlantis"}, "Region: unknown region 'Landstinget Atlantis'"),
        ({"region": "Riket"}, "is the national total, not a region"),
        ({"region": None}, "Region: region is missing"),
        ({"report_year": 2015}, "Redovisningsår: 2015 is outside 2016..2100"),
        ({"report_year": 2101}, "Redovisningsår: 2101 is outside 2016..2100"),
        ({"report_year": "förra året"}, "Redovisningsår: not a year: 'förra året'"),
        (
            {"spend_sek": {"competence_use": "-5 000 kr"}},
            "Använt kompetensanvändning (kr): negative amount: '-5 000 kr'",
        ),
        ({"grant_sek": "många miljoner"}, "Erhållna medel (kr): not an amount: 'många miljoner'"),
        ({"grant_sek": "12 miljarder euro"}, "Erhållna medel (kr): unknown amount unit"),
        ({"earmarked": "kanske"}, "Öronmärkta medel: not yes/no: 'kanske'"),
        (
            {"grant_sek": "10 mnkr", "spend_sek": {"it_support": "10 200 000 kr"}},
            "spend 10200000 kr is 102.0 % of the grant 10000000 kr (more than the 1 % tolerance over it)",
        ),
    ],
)
def test_bad_header_rejects_the_whole_report(shape, overrides, reason):
    report = rejected(shape, builders.doc(**overrides))
    assert reason in error_of(report)
    assert report.initiative_rows == 3 and report.service_rows == 4  # what the quarantine entry will count
    assert builders.CONTACT_MAIL not in report.header_raw and builders.CONTACT_NAME not in report.header_raw


@pytest.mark.parametrize("shape", SHAPES)
def test_several_header_problems_are_all_named(shape):
    report = rejected(shape, builders.doc(region="Atlantis", report_year=1999))
    assert report.error == "Region: unknown region 'Atlantis'; Redovisningsår: 1999 is outside 2016..2100"


def test_missing_sheet():
    report = rejected("xlsx", builders.doc(), lambda wb: wb.remove(wb[tpl.SHEET_SERVICES]))
    assert error_of(report).startswith("missing sheet(s) E-tjänster (found: Uppgifter, Insatser, Anvisningar)")
    assert report.initiative_rows == 3 and report.service_rows == 0


def test_duplicate_field():
    rows = {}

    def append_again(workbook):
        sheet = workbook[tpl.SHEET_REPORT]
        rows["first"] = next(c.row for c in sheet["A"] if c.value == "Erhållna medel (kr)")
        rows["again"] = sheet.max_row + 1
        sheet.append(["Erhållna medel (kr):", "5 mnkr"])

    report = rejected("xlsx", builders.doc(), append_again)
    assert report.error == f"field 'Erhållna medel (kr)' appears twice (rows {rows['first']} and {rows['again']})"


def test_duplicate_and_missing_columns():
    def duplicate(workbook):
        workbook[tpl.SHEET_INITIATIVES]["G1"] = "status"

    assert rejected("xlsx", builders.doc(), duplicate).error == "sheet Insatser: column 'Status' appears twice"

    def missing(workbook):
        workbook[tpl.SHEET_INITIATIVES]["B1"] = None

    report = rejected("xlsx", builders.doc(), missing)
    assert report.error == (
        "sheet Insatser: missing column(s) Område (keep every column of the template; leave a cell blank for no answer)"
    )

    def no_cost(workbook):  # an optional column left out: its values would be published as null (helper-27)
        sheet = workbook[tpl.SHEET_INITIATIVES]
        sheet.delete_cols(next(c.column for c in sheet[1] if c.value == "Kostnad (kr)"))

    assert error_of(rejected("xlsx", builders.doc(), no_cost)).startswith(
        "sheet Insatser: missing column(s) Kostnad (kr) ("
    )
    assert report.initiative_rows == 3  # rows still counted for the quarantine entry


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.xlsx", b"", "empty file"),
        ("empty.json", b"", "empty file"),
        ("blank.json", b"  \n", "empty file"),
        (
            "corrupt.xlsx",
            b"PK\x03\x04 this is not really a zip",
            "corrupt.xlsx: not a valid .xlsx file (not a zip archive)",
        ),
        ("text.xlsx", "Region;År\nVGR;2017\n".encode(), "text.xlsx: not a valid .xlsx file (not a zip archive)"),
        ("text.ods", b"Region;2017", "text.ods: not a valid .ods file (not a zip archive)"),
        ("text.xls", b"Region;2017", "text.xls: not a valid .xls file (not an Excel 97-2003 workbook)"),
        (
            "broken.json",
            b'{"region": "VGR", ',
            "not valid JSON (Expecting property name enclosed in double quotes at line 1)",
        ),
        ("latin1.json", '{"region": "Västra Götaland"}'.encode("cp1252"), "JSON is not UTF-8"),
        ("list.json", b"[1, 2]", "JSON must be an object at the top level, not an array"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
        ("report.csv", b"a;b", "not a .xlsx, .xls, .ods or .json file"),
    ],
)
def test_unreadable_files(name, data, reason):
    report = cr.parse_report(data, name)
    assert report.error == reason
    assert report.header is None and report.initiative_rows == 0


def test_zip_that_is_not_a_workbook():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    assert (
        cr.parse_report(buffer.getvalue(), "x.xlsx").error
        == "x.xlsx: not a valid .xlsx file ([Content_Types].xml missing)"
    )


def test_workbook_with_a_broken_part():
    good = builders.xlsx_bytes(builders.doc())
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            target.writestr(
                info.filename, b"<worksheet><sheetData><row>" if info.filename.endswith("sheet1.xml") else data
            )
    error = error_of(cr.parse_report(buffer.getvalue(), "broken.xlsx"))
    assert error.startswith(
        ("broken.xlsx: unreadable worksheet 'Uppgifter' (", "broken.xlsx: not a readable .xlsx workbook (")
    )


def test_xml_entity_bomb_is_refused():
    """Entities are never expanded: calamine's XML parser (quick-xml) knows only the five predefined ones."""
    good = builders.xlsx_bytes(builders.doc())
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol2;</t></is></c></row></sheetData></worksheet>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, bomb if info.filename.endswith("sheet1.xml") else source.read(info.filename))
    report = cr.parse_report(buffer.getvalue(), "bomb.xlsx")
    assert (
        report.error == "bomb.xlsx: unreadable worksheet 'Uppgifter' (XmlError: at 0..0: unrecognized entity `&lol2;`)"
    )


def test_zip_bomb_ratio_is_refused_before_opening():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<a>" + b" " * (20 * 1024 * 1024) + b"</a>")
    data = buffer.getvalue()
    assert len(data) < 100_000
    report = cr.parse_report(data, "bomb.xlsx")
    assert error_of(report).startswith("bomb.xlsx: workbook part 'xl/worksheets/sheet1.xml' inflates")
    assert "refused as a possible zip bomb" in error_of(report)


def test_total_uncompressed_size_is_capped(monkeypatch):
    # Many parts each under the ratio floor, adding up to more than the cap.
    monkeypatch.setattr(
        spreadsheet, "LIMITS", dataclasses.replace(spreadsheet.LIMITS, max_uncompressed_bytes=2 * 1024 * 1024)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for i in range(3):
            archive.writestr(f"xl/part{i}.xml", b"x" * (1024 * 1024))
    assert "over the 2097152-byte limit: refused as a possible zip bomb" in error_of(
        cr.parse_report(buffer.getvalue(), "b.xlsx")
    )


def test_file_size_is_capped():
    data = b"{" + b" " * (cr.MAX_FILE_BYTES + 1) + b"}"
    assert (
        cr.parse_report(data, "huge.json").error
        == f"file is {len(data)} bytes, over the {cr.MAX_FILE_BYTES}-byte limit"
    )


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"spend_sek": [1, 2, 3]}, "spend_sek must be a JSON object, not an array"),
        ({"initiatives": "inga"}, "initiatives must be a JSON array, not text"),
        ({"ehealth_services": {"service": "Webbtidbok"}}, "ehealth_services must be a JSON array, not an object"),
        (
            {"initiatives": ["Digitala vårdbesök", {"title": "B", "area": "IT", "status": "Planerad"}]},
            "initiatives[1] must be a JSON object, not text",
        ),
        ({"report_year": [2017]}, "report_year must be a single value, not an array"),
        ({"report_year": True}, "Redovisningsår: not a year: True"),
        ({"grant_sek": True}, "Erhållna medel (kr): not an amount: True"),
        ({"region": {"code": "14"}}, "region must be a single value, not an object"),
        (
            {"initiatives": [{"title": "A", "area": ["IT"], "status": "Planerad"}]},
            "initiatives[1].area must be a single value, not an array",
        ),
    ],
)
def test_json_with_wrong_types(overrides, reason):
    report = rejected("json", builders.doc(**overrides))
    assert reason in error_of(report)


def test_json_with_wrong_types_still_counts_the_rows_it_held():
    report = rejected("json", builders.doc(spend_sek="19 mnkr"))
    assert report.error == "spend_sek must be a JSON object, not text"
    assert (report.initiative_rows, report.service_rows) == (3, 4)


# --------------------------------------------------------------------------- bad input: single rows


@pytest.mark.parametrize("shape", SHAPES)
def test_bad_initiative_rows_are_rejected_alone(shape):
    initiatives = [
        {"title": "A", "area": "Forskning", "status": "Pågående"},
        {"title": "B", "area": "IT", "status": "Pausad"},
        {"title": "  ", "area": "IT", "status": "Planerad"},
        {"title": "D", "area": "IT", "status": "Planerad", "cost_sek": "-3 tkr"},
        {"title": "E", "area": "IT", "status": "Planerad", "new_due_to_grant": "kanske"},
        {"title": "F", "area": "e-hälsa", "status": "Planerad", "description": "Ring 19800101-1234"},
    ]
    report = accepted(shape, builders.doc(initiatives=initiatives))
    reasons = [r["reason"] for r in report.rejected_initiatives]
    assert reasons == [
        "Område: unknown area 'Forskning' (accepted: IT-stöd och processer, Kompetensanvändning, Kompetensförsörjning)",
        "Status: unknown status 'Pausad' (accepted: Planerad, Pågående, Genomförd, Avbruten)",
        "Insats (title) is empty",
        "Kostnad (kr): negative amount: '-3 tkr'",
        "Ny tack vare medlen: not yes/no: 'kanske'",
    ]
    first_row = 2 if shape == "xlsx" else 1
    assert [r["row_number"] for r in report.rejected_initiatives] == [first_row + i for i in range(5)]
    assert [(i["initiative_no"], i["title"], i["description"]) for i in report.initiatives] == [
        (6, "F", "Ring [personnummer borttaget]")
    ]
    assert report.initiative_rows == 6
    assert (
        "area=Forskning" in report.rejected_initiatives[0]["raw"]
        or "Område=Forskning" in report.rejected_initiatives[0]["raw"]
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_bad_service_rows_and_a_service_listed_twice(shape):
    services = [
        {"service": "Webbtidbok", "status": "Införd", "implemented_on": "2016-03-01"},
        {"service": "Journalen", "status": "Införd", "implemented_on": "14 mars"},
        {"service": "Faxtjänst", "status": "Införd"},
        {"service": "web booking", "status": "Planerad"},
        {"service": "Vård på distans", "status": "Klar"},
        {"service": "Självincheckning", "status": "Ej påbörjad"},
    ]
    report = accepted(shape, builders.doc(ehealth_services=services))
    first = 2 if shape == "xlsx" else 1
    assert sorted((r["row_number"] - first, r["reason"]) for r in report.rejected_services) == [
        (0, f"service web_booking listed 2 times (rows {first}, {first + 3})"),
        (1, "Införd datum: not a date (YYYY-MM-DD): '14 mars'"),
        (
            2,
            "Tjänst: unknown service 'Faxtjänst' (accepted: Webbtidbok, Journal via nätet, Vård på distans, Självincheckning)",
        ),
        (3, f"service web_booking listed 2 times (rows {first}, {first + 3})"),
        (4, "Status: unknown service status 'Klar' (accepted: Införd, Delvis införd, Planerad, Ej påbörjad)"),
    ]
    assert [s["service"] for s in report.services] == ["self_check_in"]


# --------------------------------------------------------------------------- the template


def test_blank_template_round_trip(tmp_path):
    """The blank template written by `python -m etl template`, filled in programmatically, parses."""
    path = tmp_path / "mall.xlsx"
    assert cli.main(["template", "--out", str(path)]) == 0
    workbook = load_workbook(path)
    assert workbook.sheetnames == [tpl.SHEET_REPORT, tpl.SHEET_INITIATIVES, tpl.SHEET_SERVICES, "Anvisningar"]
    report_sheet = workbook[tpl.SHEET_REPORT]
    labels = [report_sheet.cell(row=r, column=1).value for r in range(1, report_sheet.max_row + 1)]
    assert labels == ["Fält", *(f.label for f in tpl.REPORT_FIELDS)]
    assert [c.value for c in workbook[tpl.SHEET_INITIATIVES][1]] == [f.label for f in tpl.INITIATIVE_FIELDS]
    assert [c.value for c in workbook[tpl.SHEET_SERVICES][1]] == [f.label for f in tpl.SERVICE_FIELDS]
    # The blank template itself is a structurally valid report with nothing filled in.
    assert (
        cr.parse_report(path.read_bytes(), "mall.xlsx").error == "Region: region is missing; Redovisningsår: is missing"
    )

    values: dict[str, str | int] = {
        "Region": "Region Kronoberg",
        "Redovisningsår": 2018,
        "Erhållna medel (kr)": "18,3 mnkr",
        "Öronmärkta medel": "Nej",
        "Använt IT-stöd och processer (kr)": 6_000_000,
        "Kontaktperson": "Sven Påhittsson, sven@example.se",
    }
    for row in range(2, report_sheet.max_row + 1):
        label = report_sheet.cell(row=row, column=1).value
        if isinstance(label, str) and label in values:
            report_sheet.cell(row=row, column=2).value = values[label]
    workbook[tpl.SHEET_INITIATIVES].append(["Webbtidbok", "IT-stöd och processer", "Genomförd", "Ja", "1 mnkr", None])
    workbook[tpl.SHEET_SERVICES].append(["Webbtidbok", "Införd", dt.datetime(2017, 5, 2)])
    workbook.save(path)

    report = cr.parse_report(path.read_bytes(), "mall.xlsx")
    assert report.error is None
    header = header_of(report)
    assert header["region_code"] == "07" and header["grant_sek"] == 18_300_000
    assert header["earmarked"] is False and header["spend_it_support_sek"] == 6_000_000
    assert [(i["title"], i["area"], i["status"], i["cost_sek"]) for i in report.initiatives] == [
        ("Webbtidbok", "it_support", "completed", 1_000_000)
    ]
    assert [(s["service"], s["implemented_on"]) for s in report.services] == [("web_booking", dt.date(2017, 5, 2))]
    assert "Påhittsson" not in json.dumps([report.header_raw, report.initiatives, report.services], default=str)


def test_template_definitions_are_consistent():
    # Every output column of the schema is produced by exactly one field definition.
    from etl import schemas

    for table, fields, extra in (
        ("county_report", tpl.REPORT_FIELDS, {"submitted_at"}),
        ("county_initiative", tpl.INITIATIVE_FIELDS, {"region_code", "report_year", "initiative_no", "submitted_at"}),
        ("county_ehealth_service", tpl.SERVICE_FIELDS, {"region_code", "report_year", "submitted_at"}),
    ):
        produced = [f.column for f in fields if f.column]
        assert len(produced) == len(set(produced))
        assert set(produced) | extra == set(schemas.get(table).business_columns)
    assert [f for f in tpl.REPORT_FIELDS if f.column is None] == [tpl.REPORT_FIELDS[-1]]
    assert tpl.REPORT_FIELDS[-1].label == "Kontaktperson"


def test_hand_made_workbook_without_the_template():
    """A sender who builds the workbook from scratch (no header row, other order) is read the same way."""
    workbook = Workbook()
    sheet = workbook.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "Uppgifter"
    sheet.append(["Redovisningsår", 2019])
    sheet.append(["Region", "Region Gotland"])
    sheet.append(["Erhållna medel (kr)", 5_600_000])
    for fld in reversed(tpl.REPORT_FIELDS):  # every other row, blank, in its own order
        if fld.json_key not in ("report_year", "region", "grant_sek", "contact_person"):
            sheet.append([fld.label, None])
    # Every column of the template, in its own order; cells blank where there is no answer.
    workbook.create_sheet("Insatser").append(
        ["Status", "Insats", "Område", "Beskrivning", "Kostnad (kr)", "Ny tack vare medlen"]
    )
    workbook["Insatser"].append(["Pågående", "Digital mottagning", "e-hälsa", None, None, None])
    workbook.create_sheet("E-tjänster")
    buffer = io.BytesIO()
    workbook.save(buffer)
    report = cr.parse_report(buffer.getvalue(), "gotland.xlsx")
    assert report.error is None
    assert report.key == ("09", 2019) and header_of(report)["grant_sek"] == 5_600_000
    assert [(i["title"], i["area"], i["status"]) for i in report.initiatives] == [
        ("Digital mottagning", "it_support", "ongoing")
    ]
    assert report.services == []
    # Rows left out are no blank answers: a workbook without them is refused whole, naming them.
    del workbook["Uppgifter"]
    short = workbook.create_sheet("Uppgifter")
    for row in (["Redovisningsår", 2019], ["Region", "Region Gotland"], ["Erhållna medel (kr)", 5_600_000]):
        short.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    refused = cr.parse_report(buffer.getvalue(), "gotland.xlsx")
    assert refused.error is not None and refused.error.startswith(
        "sheet Uppgifter: missing field row(s) 'Öronmärkta medel', "
    )
