"""The Excel workbook of the follow-up marts, for analysts who work in Excel.

``<warehouse>/exports/followup_<YYYYMMDD>.xlsx`` (one per run day) and a copy
``followup_latest.xlsx``: one sheet per mart with Swedish column headers and
region names, a column dictionary (Kolumner: each header with its Swedish
description, ``description_sv`` of the mart schema) and a notes sheet
(Anteckningar) with the data's vintage and caveats. Everything an analyst
reads is Swedish; dates and times are stored as dates, not text. Every
sheet prints on A4 landscape (:func:`print_setup`): the mart sheets a few
pages across at a readable scale, each page repeating the header row and
the region/year labels.

Every text cell goes through :func:`set_text`, which neutralises formula
injection: a text starting with ``=``, ``+``, ``-``, ``@`` (or a tab / CR)
is stored as a plain inline string with Excel's quote prefix — never as a
formula — so a region name like ``=HYPERLINK(…)`` is shown, not run.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import posixpath
from collections.abc import Sequence

from etl import schemas, storage
from etl.schemas.followup import AREAS, COUNTED_FLAGS, FLAGS, SERVICES
from etl.sources import ehealth_spec
from etl.sources.county_template import YES_NO_FIELDS

EXPORTS = "exports"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

AREA_SV = {
    "it_support": "IT-stöd och processer",
    "competence_use": "Kompetensanvändning",
    "competence_supply": "Kompetensförsörjning",
}
FLAG_SV = {f.column: f.label for f in YES_NO_FIELDS}  # the template's own Swedish labels
SERVICE_SV = {
    "web_booking": "Webbtidbok",
    "patient_journal_online": "Journal via nätet",
    "remote_care": "Vård på distans",
    "self_check_in": "Självincheckning",
}
STATUS_SV = {
    "implemented": "Införd",
    "partly_implemented": "Delvis införd",
    "planned": "Planerad",
    "not_started": "Ej påbörjad",
}
# Series prefix → (service, metric) as analysts read them, from the exports' declaration.
SERIES_SV = {s.prefix: (s.export.short_sv, s.export.metric(s.metric).sv) for s in ehealth_spec.SERIES}


def _adoption_headers() -> dict[str, str]:
    headers = {}
    for prefix, (service, metric) in SERIES_SV.items():
        headers[f"{prefix}_per_1000_mean"] = f"{service}: {metric} per 1 000 inv. (månadsmedel)"
        headers[f"{prefix}_per_1000_dec"] = f"{service}: {metric} per 1 000 inv. (december)"
        headers[f"{prefix}_months"] = f"{service}: månader med värde ({metric})"
        headers[f"{prefix}_per_1000_change"] = f"{service}: förändring {metric} per 1 000 inv. mot föregående år"
    headers["web_booking_units_connected_share_dec"] = "Webbtidbok: andel anslutna vårdenheter (december)"
    return headers


def _common_headers() -> dict[str, str]:
    headers = {
        "year": "År",
        "population": "Folkmängd 31 dec",
        "population_change": "Förändring folkmängd mot föregående år",
        "population_year_used": "Folkmängd från år (för per invånare)",
        "grant_sek": "Erhållna medel (kr)",
        "grant_per_inhabitant": "Erhållna medel per invånare (kr)",
        "spend_total_sek": "Använt totalt (kr)",
        "share_spent": "Andel av medlen använd totalt",
        "initiatives_total": "Insatser totalt",
        "initiatives_new_due_to_grant": "Insatser nya tack vare medlen totalt",
        "initiatives_new_unknown": "Insatser: ny tack vare medlen ej besvarat",
    }
    for area in AREAS:
        headers[f"spend_{area}_sek"] = f"Använt {AREA_SV[area].lower()} (kr)"
        headers[f"share_{area}"] = f"Andel av medlen: {AREA_SV[area].lower()}"
        headers[f"initiatives_{area}"] = f"Insatser: {AREA_SV[area].lower()}"
        headers[f"initiatives_new_{area}"] = f"Insatser nya tack vare medlen: {AREA_SV[area].lower()}"
    headers.update(_adoption_headers())
    return headers


HEADERS_REGION: dict[str, str] = {
    "region_name": "Region",
    "region_code": "Regionkod",
    **_common_headers(),
    "reported": "Har rapporterat",
    "earmarked": FLAG_SV["earmarked"],
    **{flag: FLAG_SV[flag] for flag in FLAGS},
    **{
        col: text
        for s in SERVICES
        for col, text in (
            (f"{s}_status", f"{SERVICE_SV[s]}: status"),
            (f"{s}_implemented_on", f"{SERVICE_SV[s]}: införd datum"),
        )
    },
}
HEADERS_NATIONAL: dict[str, str] = {
    **_common_headers(),
    "regions_total": "Antal regioner",
    "regions_reported": "Regioner som rapporterat",
    **{
        col: text
        for flag in COUNTED_FLAGS
        for col, text in (
            (f"regions_{flag}", f"Regioner med ja: {FLAG_SV[flag].lower()}"),
            (f"regions_answered_{flag}", f"Regioner som svarat: {FLAG_SV[flag].lower()}"),
        )
    },
    **{
        col: text
        for s in SERVICES
        for col, text in (
            (f"regions_{s}_implemented", f"Regioner där {SERVICE_SV[s].lower()} är införd"),
            (f"regions_{s}_reported", f"Regioner som rapporterat status: {SERVICE_SV[s].lower()}"),
        )
    },
}
SHEETS = {
    "followup_region_year": ("Regioner per år", HEADERS_REGION),
    "followup_national_year": ("Riket per år", HEADERS_NATIONAL),
}


def set_text(cell, text: str) -> None:
    """Put ``text`` in ``cell`` as text that a spreadsheet never evaluates (formula-injection guard)."""
    cell.value = text
    if text.startswith(FORMULA_PREFIXES):
        # openpyxl turns any "=…" string into a formula; data_type 's' writes an inline string instead,
        # and the quote prefix keeps Excel from re-reading it as a formula when the cell is edited.
        cell.data_type = "s"
        cell.quotePrefix = True


def _display(column: str, value):
    """A mart value as shown in the workbook: Swedish yes/no and statuses, null as an empty cell."""
    import numpy as np
    import pandas as pd

    if value is None or (not isinstance(value, (str, dt.date)) and pd.isna(value)):
        return None
    if isinstance(value, (bool, np.bool_)):  # nullable boolean columns yield numpy bools
        return "Ja" if value else "Nej"
    if column.endswith("_status"):
        return STATUS_SV.get(value, value)
    return value


def _number_format(column: str) -> str | None:
    if column.startswith("share_") or column.endswith("_share_dec"):
        return "0.0%"
    if column.endswith(("_per_1000_mean", "_per_1000_dec", "_per_1000_change", "_per_inhabitant")):
        return "#,##0.0"
    if column.endswith("_sek") or column in {"population", "population_change"}:
        return "#,##0"
    if column.endswith("_implemented_on"):
        return "yyyy-mm-dd"
    return None


# Printing: A4 landscape, margins in inches. Excel and LibreOffice shrink a sheet to the pages asked for;
# below PRINT_MIN_SCALE the numbers are too small to read, so a wide sheet gets more pages across instead.
PAGE_WIDTH_PT = 842 - 2 * 0.4 * 72
PRINT_MIN_SCALE = 0.6


def _width_pt(width: float) -> float:
    """A column width (characters of the default font) as printed, in points (Excel's 7 px per character + 5)."""
    return (7 * width + 5) * 0.75


def print_setup(sheet, *, header_rows: str | None = "1:1", label_columns: str | None = None) -> None:
    """Landscape A4 with ``header_rows`` (and ``label_columns``) repeated on every page, page numbers in the footer.

    The sheet is fitted to the page width, as many pages down as the rows
    need. A sheet too wide to read on one page width (a mart has 50–55
    columns: one page would print them at under 20 %) is fitted to the
    fewest pages across that keep the scale at PRINT_MIN_SCALE or more,
    and each of those pages repeats ``label_columns`` (region, code, year)
    so it can be read on its own. Without any setup the workbook printed
    on 71 portrait pages, most of them columns without their row labels.
    """
    from openpyxl.utils import column_index_from_string, get_column_letter

    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.page_margins.top = sheet.page_margins.bottom = 0.6
    widths = [
        _width_pt(sheet.column_dimensions[get_column_letter(j)].width or 8.43) for j in range(1, sheet.max_column + 1)
    ]
    labels = 0.0
    if label_columns:
        first, last = (column_index_from_string(c) for c in label_columns.split(":"))
        labels = sum(widths[first - 1 : last])
        sheet.print_title_cols = label_columns
    per_page = PAGE_WIDTH_PT / PRINT_MIN_SCALE - labels  # what one page holds besides the repeated labels
    sheet.page_setup.fitToWidth = max(1, math.ceil((sum(widths) - labels) / per_page))
    sheet.page_setup.fitToHeight = 0  # 0: as many pages down as the rows need
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    if header_rows:
        sheet.print_title_rows = header_rows
    sheet.oddFooter.center.text = "&A – sida &P av &N"


def fit_row_heights(sheet, first_row: int = 1) -> None:
    """Row heights for wrapped text, estimated from its length (openpyxl measures nothing; printed and
    opened elsewhere, rows without a height do not grow and wrapped lines overlap the next row)."""
    from openpyxl.utils import get_column_letter

    for row in sheet.iter_rows(min_row=first_row):
        lines = 1
        for cell in row:
            if isinstance(cell.value, str) and cell.alignment.wrap_text:
                width = sheet.column_dimensions[get_column_letter(cell.column)].width or 8.43
                lines = max(lines, math.ceil(len(cell.value) * 1.1 / max(width - 1, 1)))
        if lines > 1:
            sheet.row_dimensions[row[0].row].height = 15 * lines


COLUMN_WIDTHS = {"region_name": 24, "region_code": 10, "year": 7, "grant_sek": 15, "spend_total_sek": 15}


def _write_table(sheet, frame, headers: dict[str, str]) -> None:
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    columns = [c for c in headers if c in frame.columns]
    for j, column in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=j)
        set_text(cell, headers[column])
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        sheet.column_dimensions[get_column_letter(j)].width = COLUMN_WIDTHS.get(column, 13)
    for i, record in enumerate(frame[columns].itertuples(index=False, name=None), start=2):
        for j, (column, raw) in enumerate(zip(columns, record, strict=True), start=1):
            value = _display(column, raw)
            if value is None:
                continue
            cell = sheet.cell(row=i, column=j)
            if isinstance(value, str):
                set_text(cell, value)
            else:
                cell.value = value.item() if hasattr(value, "item") else value
                fmt = _number_format(column)
                if fmt:
                    cell.number_format = fmt
    sheet.row_dimensions[1].height = 105  # the long Swedish headers wrap on up to seven lines
    sheet.freeze_panes = "C2" if "region_name" in columns else "B2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(1, len(frame) + 1)}"
    labels = [c for c in ("region_name", "region_code", "year") if c in columns]
    print_setup(sheet, label_columns=f"A:{get_column_letter(len(labels))}")


def _fmt_time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "–"


APPROVED_HEADING = "Publicerat trots spärr (godkänt av en person, från laddningsloggen)"


def _utc_naive(value) -> dt.datetime | None:
    """A UTC time as a spreadsheet stores it: no time zone (the headings say UTC)."""
    if value is None:
        return None
    if getattr(value, "tzinfo", None) is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


VINTAGE_HEADINGS = ["Tabell", "Senast ändrad (UTC)", "Senast kontrollerad (UTC)", "Version"]


def notes_rows(
    vintage: list[dict], synthetic: bool, today: dt.date, footnotes: Sequence[str] = (), *, cells: bool = False
) -> list[list]:
    """The Anteckningar sheet (also used by the report): caveats, the vintage of every table, then ``footnotes``.

    ``footnotes`` are the deliveries published on a person's approval
    although the checks blocked them (:func:`etl.approvals.footnotes`).
    Text throughout (the report); with ``cells``, the values the workbook
    stores: the creation date as a date, each table's times as date-times
    in columns of their own and its version as a number.
    """
    # Size: the workbook's notes sheet line by line: text, not logic.
    origin = (
        "Underlaget är SYNTETISKA EXEMPELDATA (.venv/bin/python -m etl sample): påhittade siffror i rätt format, "
        "inte regionernas verkliga uppgifter."
        if synthetic
        else "Underlagets ursprung framgår av laddningsloggen (load_log i followup.duckdb). Om det kommer från "
        ".venv/bin/python -m etl sample är det syntetiska exempeldata."
    )
    rows: list[list] = [
        ["Uppföljning av statsbidraget: regioner och riket per år", ""],
        ["Skapad", today if cells else today.isoformat()],
        ["", ""],
        ["Att tänka på", ""],
        ["Ursprung", origin],
        [
            "Tom cell",
            "Tom cell betyder okänt: regionen har inte rapporterat, lämnat fältet tomt eller värdet är "
            "skyddat. Det betyder inte 'Nej' eller 0.",
        ],
        [
            "Skyddade värden",
            "Månader där avsändaren skyddat värdet ('..') ingår inte i månadsmedel; kolumnerna "
            "'månader med värde' visar hur många månader medlet bygger på.",
        ],
        [
            "Per 1 000 invånare",
            "Folkmängd 31 december samma år; finns den inte ännu används senaste tidigare år "
            "(kolumnen 'Folkmängd från år').",
        ],
        ["Andelar", "Andel av erhållna medel; upp till 101 % godtas (1 % tolerans i rapporteringen)."],
        [
            "Riket",
            "Antal regioner räknar bara regioner som svarat; 'Regioner som svarat' visar hur många. "
            "Rikets nyttjande per 1 000 invånare bygger på avsändarens rikstotal (Riket).",
        ],
        ["", ""],
        ["Datakällornas aktualitet (från laddningsloggen)", ""],
        list(VINTAGE_HEADINGS) if cells else ["Tabell", "Senast ändrad | senast kontrollerad | version"],
    ]
    for entry in vintage:
        if "checked_at" not in entry:
            rows.append([entry["table"], "inte laddad"])
        elif cells:
            version = entry.get("version")
            rows.append(
                [
                    entry["table"],
                    _utc_naive(entry.get("changed_at")),
                    _utc_naive(entry["checked_at"]),
                    int(version) if isinstance(version, str) and version.isdigit() else version,
                ]
            )
        else:
            rows.append(
                [
                    entry["table"],
                    f"{_fmt_time(entry.get('changed_at'))} | {_fmt_time(entry['checked_at'])} | "
                    f"{entry.get('version') or '–'}",
                ]
            )
    if footnotes:
        rows += [["", ""], [APPROVED_HEADING, ""]]
        rows += [[f"Fotnot {i}", line] for i, line in enumerate(footnotes, start=1)]
    return rows


def build_workbook(
    region_year, national_year, vintage: list[dict], synthetic: bool, today: dt.date, footnotes: Sequence[str] = ()
) -> bytes:
    # Size: the sheets one after another in the order analysts read them.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    default = book.active
    assert default is not None  # a new workbook has its one sheet active
    book.remove(default)
    frames = {
        "followup_region_year": region_year.sort_values(["year", "region_code"]),
        "followup_national_year": national_year.sort_values("year"),
    }
    for table, frame in frames.items():
        title, headers = SHEETS[table]
        _write_table(book.create_sheet(title), frame, headers)

    columns = book.create_sheet("Kolumner")
    for j, text in enumerate(["Blad", "Kolumn", "Namn i databasen (followup.duckdb)", "Beskrivning"], 1):
        set_text(columns.cell(row=1, column=j), text)
        columns.cell(row=1, column=j).font = Font(bold=True)
    row = 2
    for table, (title, headers) in SHEETS.items():
        # Swedish, from the schema: the description is declared once, beside the column's English one.
        described = {c.name: c.description_sv for c in schemas.get(table).all_columns}
        for column, header in headers.items():
            if column not in described:  # a header for a column the mart does not have (is not on the sheet)
                continue
            for j, text in enumerate([title, header, f"{table}.{column}", described[column]], 1):
                set_text(columns.cell(row=row, column=j), text)
                columns.cell(row=row, column=j).alignment = Alignment(wrap_text=j in (2, 4), vertical="top")
            row += 1
    for letter, width in zip("ABCD", (15, 40, 58, 90), strict=True):
        columns.column_dimensions[letter].width = width
    columns.freeze_panes = "A2"
    fit_row_heights(columns)
    print_setup(columns)

    notes = book.create_sheet("Anteckningar", 0)
    for i, values in enumerate(notes_rows(vintage, synthetic, today, footnotes, cells=True), start=1):
        key, text = values[0], values[1]
        for j, value in enumerate(values, start=1):
            cell = notes.cell(row=i, column=j)
            if isinstance(value, str):
                set_text(cell, value)
            elif value is not None:
                cell.value = value
                if isinstance(value, dt.datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
            cell.alignment = Alignment(wrap_text=j == 2 and isinstance(value, str), vertical="top", horizontal="left")
        if key and not text or i == 1 or values == VINTAGE_HEADINGS:
            for j in range(1, len(values) + 1):
                notes.cell(row=i, column=j).font = Font(bold=True)
    notes.column_dimensions["A"].width = 34
    notes.column_dimensions["B"].width = 100
    notes.column_dimensions["C"].width = 24
    notes.column_dimensions["D"].width = 10
    fit_row_heights(notes)
    print_setup(notes, header_rows=None)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write a file so a reader sees the old or the new one, never half (rename locally; one PUT on object stores)."""
    import os
    import uuid

    fs, path = storage.filesystem(uri)
    storage.make_folder(fs, posixpath.dirname(path))
    if storage.is_local(fs):
        tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def write_workbooks(
    warehouse_uri: str,
    region_year,
    national_year,
    vintage: list[dict],
    synthetic: bool,
    today: dt.date,
    footnotes: Sequence[str] = (),
) -> dict[str, str]:
    data = build_workbook(region_year, national_year, vintage, synthetic, today, footnotes)
    dated = storage.join(warehouse_uri, EXPORTS, f"followup_{today:%Y%m%d}.xlsx")
    latest = storage.join(warehouse_uri, EXPORTS, "followup_latest.xlsx")
    write_bytes_atomic(dated, data)
    write_bytes_atomic(latest, data)
    return {"workbook": dated, "workbook_latest": latest}
