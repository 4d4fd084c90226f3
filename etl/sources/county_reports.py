"""Reading the regions' annual follow-up reports (docs/input-formats.md §1): the template as a spreadsheet, and web-form JSON.

The template arrives as ``.xlsx``, or saved by the sender's tool as
``.xls`` (Excel 97-2003) or ``.ods`` (LibreOffice); all three are read by
:mod:`etl.sources.spreadsheet` (python-calamine), whose guards apply.

Both shapes become the same :class:`ParsedReport`: one header row for
``county_report`` and the rows for ``county_initiative`` and
``county_ehealth_service``, each with its origin (``row_number``, masked
``raw`` text). Nothing here knows about the warehouse.

Two layers keep hostile or broken input out:

* **Structure** (:func:`parse_report`): size cap, the spreadsheet guards
  (zip bomb, rows, columns, cells, characters per cell — all judged before
  a workbook is opened), sheets and columns present, JSON types, JSON keys
  (only those the web form writes, :data:`county_template.JSON_KEYS`, each
  once per object, at any level: a misspelt ``"Offers"`` would otherwise
  silently null a published value, a key twice silently keep the last). A
  problem here, or in a header field (region, year, amounts, spend over the
  grant…), rejects the report **whole** — ``error`` says why, and the row
  counts say how many rows it held.
* **Rows**: an initiative or e-health service row with an unknown enum,
  empty title or unreadable value is rejected alone, with its reason.

Personal data: the contact person (``Kontaktperson`` / ``contact_person``)
is read only to be dropped — and to mask that person's name wherever it
turns up in free text. E-mail addresses and personnummer are masked in
every free text, raw quarantine text, reason and warning that leaves here
(:func:`etl.privacy.mask_personal_data`, the project's one masking rule,
with the contact person's name as ``names``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import overload

from etl import privacy, regions, swedish
from etl.errors import BadInput
from etl.sources import county_template as tpl
from etl.sources import spreadsheet
from etl.sources.county_template import Field

# Accepted file suffixes (lower-case; names are matched in any case).
SUFFIXES = spreadsheet.SUFFIXES + (".json",)
# A real report is a few tens of kilobytes; these limits are far above that
# and far below what could hurt a worker. Spreadsheets are held to spreadsheet.LIMITS
# (the same file size, and the zip, row, column, cell and cell-size guards).
MAX_FILE_BYTES = spreadsheet.LIMITS.max_file_bytes
MAX_TABLE_COLUMNS = 30  # columns of a table sheet looked at; wider sheets' extra columns are ignored
MAX_JSON_ITEMS = 5000
MAX_RAW_CHARS = 1000
MAX_WARNINGS = 20  # distinct warnings listed per file; the rest are counted
SPEND_TOLERANCE_PCT = 101  # spend may exceed the grant by 1 % (rounding), not more
# Control characters (NUL and the like; tab and line breaks are fine in a description) are not
# text a person typed: a NUL stored in a title breaks the Excel exports and most text tools.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# --------------------------------------------------------------------------- personal data


def _names_in(contact: object) -> tuple[str, ...]:
    """What to mask of a contact person: the whole text, and each word of the name (longest first)."""
    texts: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif value is not None and str(value).strip():
            texts.append(str(value).strip())

    collect(contact)
    names: set[str] = set()
    for text in texts:
        without_mail = privacy.EMAIL.sub(" ", text)
        names.add(text)
        names.add(re.sub(r"\s+", " ", without_mail).strip(" ,;<>()"))
        # Single words of three letters or more: "Andersson" alone in a
        # description is still that person.
        names.update(w for w in re.findall(r"[^\W\d_]{3,}", without_mail))
        # The local part of an e-mail often is the name ("anna.andersson").
        for mail in privacy.EMAIL.findall(text):
            names.update(w for w in re.findall(r"[^\W\d_]{3,}", mail.split("@", 1)[0]))
    return tuple(sorted((n for n in names if n), key=len, reverse=True))


# --------------------------------------------------------------------------- results


@dataclass
class ParsedReport:
    """One submission, parsed. ``error`` set = the whole report is rejected."""

    source_file: str
    file_name: str
    header: dict | None = None  # county_report business columns (without submitted_at)
    header_raw: str = ""
    initiatives: list[dict] = field(default_factory=list)  # columns + row_number + raw
    services: list[dict] = field(default_factory=list)
    rejected_initiatives: list[dict] = field(default_factory=list)  # row_number, raw, reason
    rejected_services: list[dict] = field(default_factory=list)
    initiative_rows: int = 0  # input rows held, accepted or not
    service_rows: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, int] | None:
        if self.header is None:
            return None
        return self.header["region_code"], self.header["report_year"]

    def reject(self, reason: str) -> ParsedReport:
        self.error = reason
        return self


@dataclass
class _RawRow:
    row_number: int
    values: dict[str, object]  # field json_key → value as found
    raw: str


@dataclass
class _Extracted:
    """What the file holds, before interpretation."""

    fields: dict[str, tuple[int, object]] = field(default_factory=dict)  # json_key → (row, value)
    initiatives: list[_RawRow] = field(default_factory=list)
    services: list[_RawRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # structural: reject the report whole
    warnings: list[str] = field(default_factory=list)
    contact: object = None  # only ever used to mask; never stored


# --------------------------------------------------------------------------- entry point


def parse_report(data: bytes, file_name: str, *, source_file: str | None = None) -> ParsedReport:
    """Parse one submission (a spreadsheet or ``.json``, chosen by the file name's suffix). Never raises for bad input."""
    # Size: one branch per field kind of the template (docs/input-formats.md §1), in the contract's order.
    report = ParsedReport(source_file=source_file or file_name, file_name=file_name)
    extracted = _Extracted()
    try:
        if not data:
            raise BadInput("empty file")
        if len(data) > MAX_FILE_BYTES:
            raise BadInput(f"file is {len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit")
        if spreadsheet.suffix_of(file_name):
            _extract_workbook(data, file_name, extracted)
        elif file_name.lower().endswith(".json"):
            _extract_json(data, extracted)
        else:
            raise BadInput(f"not a {', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]} file")
    except BadInput as exc:
        extracted.problems.append(str(exc))
    names = _names_in(extracted.contact)
    extracted.contact = None

    @overload
    def scrub(text: str) -> str: ...
    @overload
    def scrub(text: object) -> str | None: ...
    def scrub(text: object) -> str | None:
        return privacy.mask_personal_data(None if text is None else str(text), names)

    report.initiative_rows = len(extracted.initiatives)
    report.service_rows = len(extracted.services)
    report.header_raw = _cut(scrub(_header_raw(extracted)))
    # Bounded: a workbook with thousands of unknown fields or columns must not turn into
    # megabytes of warnings in the load log.
    warnings = list(dict.fromkeys(extracted.warnings))
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"and {len(warnings) - MAX_WARNINGS} more warning(s) not listed"]
    report.warnings = [f"{file_name}: {scrub(w)}" for w in warnings]
    if extracted.problems:
        return report.reject(_one_line(scrub("; ".join(extracted.problems))))
    try:
        header = _interpret_header(extracted)
    except BadInput as exc:
        return report.reject(_one_line(scrub(str(exc))))
    report.header = header
    context = {"region_code": header["region_code"], "report_year": header["report_year"]}
    for number, raw_row, raw, row in _interpreted(
        extracted.initiatives, tpl.INITIATIVE_FIELDS, scrub, report.rejected_initiatives
    ):
        if not row["title"] or not row["title"].strip():
            report.rejected_initiatives.append(
                {"row_number": raw_row.row_number, "raw": raw, "reason": "Insats (title) is empty"}
            )
            continue
        report.initiatives.append(
            {**context, "initiative_no": number, **row, "row_number": raw_row.row_number, "raw": raw}
        )
    accepted = [
        {**context, **row, "row_number": raw_row.row_number, "raw": raw}
        for _, raw_row, raw, row in _interpreted(
            extracted.services, tpl.SERVICE_FIELDS, scrub, report.rejected_services
        )
    ]
    # The same service twice cannot both be true: neither is chosen silently.
    seen: dict[str, list[int]] = {}
    for row in accepted:
        seen.setdefault(row["service"], []).append(row["row_number"])
    for row in accepted:
        rows = seen[row["service"]]
        if len(rows) > 1:
            report.rejected_services.append(
                {
                    "row_number": row["row_number"],
                    "raw": row["raw"],
                    "reason": f"service {row['service']} listed {len(rows)} times (rows {', '.join(map(str, rows))})",
                }
            )
        else:
            report.services.append(row)
    return report


def _interpreted(raw_rows, fields, scrub, rejected: list[dict]):
    """(position from 1, raw row, its masked text, the interpreted row) for each row of a detail sheet or JSON
    list that reads; a row that does not is appended to ``rejected`` with its one-line reason."""
    for number, raw_row in enumerate(raw_rows, start=1):
        raw = _cut(scrub(raw_row.raw))
        try:
            row = _interpret_row(raw_row, fields, scrub)
        except BadInput as exc:
            rejected.append({"row_number": raw_row.row_number, "raw": raw, "reason": _one_line(scrub(str(exc)))})
            continue
        yield number, raw_row, raw, row


def _one_line(text: str) -> str:
    """Reasons are read in one line: a cell value with line breaks must not break them."""
    return _cut(re.sub(r"\s+", " ", text).strip())


@overload
def _cut(text: str) -> str: ...
@overload
def _cut(text: None) -> None: ...
@overload
def _cut(text: str | None) -> str | None: ...
def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = CONTROL_CHARS.sub("\ufffd", text)  # shown to a person: a NUL would only hide what follows
    if len(text) <= MAX_RAW_CHARS:
        return text
    return text[: MAX_RAW_CHARS - 1] + "…"


def _header_raw(extracted: _Extracted) -> str:
    by_key = {f.json_key: f for f in tpl.REPORT_FIELDS}
    parts = [
        f"{by_key[key].label}={_show(value)}"
        for key, (_, value) in extracted.fields.items()
        if by_key[key].kind != tpl.PERSONAL
    ]
    return " | ".join(parts)


def _show(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value).strip()


# --------------------------------------------------------------------------- interpretation


def _stated_year(value: object) -> int | None:
    """The report year a file states, for judging which fields it must hold (None: unreadable, judged
    strictly; the year's own error is reported where the field is read)."""
    try:
        return _parse_year(value)
    except BadInput:
        return None


def _parse_year(value: object) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInput("is missing")
    if isinstance(value, bool):
        raise BadInput(f"not a year: {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise BadInput(f"not a year: {str(value)[:40]!r}")
    if not tpl.FIRST_YEAR <= value <= tpl.LAST_YEAR:
        raise BadInput(f"{value} is outside {tpl.FIRST_YEAR}..{tpl.LAST_YEAR}")
    return value


def _value(fld: Field, value: object, scrub) -> object:
    """One field's value, typed; :class:`BadInput` with a short reason."""
    if isinstance(value, str) and fld.kind not in (tpl.TEXT,):
        value = value.strip() or None
    kind = fld.kind
    if isinstance(value, bool) and kind not in (tpl.YES_NO, tpl.AMOUNT, tpl.YEAR):
        raise BadInput(f"true/false is not a {kind.replace('_', ' ')}")
    if kind == tpl.REGION:
        return regions.resolve_region(value)
    if kind == tpl.YEAR:
        return _parse_year(value)
    if kind == tpl.AMOUNT:
        return swedish.parse_amount(value)
    if kind == tpl.YES_NO:
        return swedish.parse_yes_no(value)
    if kind == tpl.DATE:
        return swedish.parse_date(value)
    if kind == tpl.TEXT:
        if value is None:
            return None
        if isinstance(value, (dict, list, bool)):
            raise BadInput(f"not text: {type(value).__name__}")
        text = str(value).strip()
        bad = CONTROL_CHARS.search(text)
        if bad:
            raise BadInput(f"control character {bad.group()!r} in the text (at position {bad.start() + 1})")
        return scrub(text) if text else None
    if kind in tpl.ENUMS:
        return tpl.resolve_enum(kind, value)
    raise AssertionError(f"no interpretation for kind {kind}")  # pragma: no cover - definitions are fixed


def _interpret_header(extracted: _Extracted) -> dict:
    header: dict[str, object] = {}
    problems: list[str] = []
    for fld in tpl.REPORT_FIELDS:
        if fld.column is None:
            continue
        _, value = extracted.fields.get(fld.json_key, (0, None))
        try:
            typed = _value(fld, value, lambda t: t)
            if typed is None and fld.required:
                raise BadInput("is missing")
            header[fld.column] = typed
        except BadInput as exc:
            problems.append(f"{fld.label}: {exc}")
    if problems:
        raise BadInput("; ".join(problems))
    grant = _amount(header, "grant_sek")
    spend = [
        _amount(header, c) for c in ("spend_it_support_sek", "spend_competence_use_sek", "spend_competence_supply_sek")
    ]
    total = sum(s for s in spend if s is not None)
    if grant is not None and total * 100 > grant * SPEND_TOLERANCE_PCT:
        if grant == 0:
            raise BadInput(f"spend {total} kr with a grant of 0 kr")
        raise BadInput(
            f"spend {total} kr is {100 * total / grant:.1f} % of the grant {grant} kr (more than the 1 % tolerance over it)"
        )
    return header


def _amount(header: dict[str, object], column: str) -> int | None:
    value = header[column]
    assert value is None or isinstance(value, int)  # an AMOUNT field: swedish.parse_amount's kronor
    return value


def _interpret_row(raw_row: _RawRow, fields: tuple[Field, ...], scrub) -> dict:
    row: dict[str, object] = {}
    problems: list[str] = []
    for fld in fields:
        value = raw_row.values.get(fld.json_key)
        try:
            typed = _value(fld, value, scrub)
            if typed is None and fld.required and fld.kind != tpl.TEXT:
                raise BadInput("is missing")
            assert fld.column is not None  # the detail sheets hold no personal field
            row[fld.column] = typed
        except BadInput as exc:
            problems.append(f"{fld.label}: {exc}")
    if problems:
        raise BadInput("; ".join(problems))
    return row


def spend_share(header: dict) -> float | None:
    """Spend (all areas) as a share of the grant: the derived ``_check_spend_share`` column."""
    grant = header.get("grant_sek")
    spend = [header.get(c) for c in ("spend_it_support_sek", "spend_competence_use_sek", "spend_competence_supply_sek")]
    if grant is None or all(s is None for s in spend):
        return None
    total = sum(s for s in spend if s is not None)
    if grant == 0:
        return 0.0 if total == 0 else float("inf")
    return total / grant


# --------------------------------------------------------------------------- spreadsheets


def _extract_workbook(data: bytes, file_name: str, out: _Extracted) -> None:
    sheets = {tpl.normalise_label(s.name): s for s in spreadsheet.read_workbook(data, file_name)}
    wanted = (tpl.SHEET_REPORT, tpl.SHEET_INITIATIVES, tpl.SHEET_SERVICES)
    missing = [name for name in wanted if tpl.normalise_label(name) not in sheets]
    # Sheets that exist are read even when another is missing, so
    # that the quarantine can say how many rows the report held.
    if tpl.normalise_label(tpl.SHEET_REPORT) in sheets:
        _read_field_sheet(sheets[tpl.normalise_label(tpl.SHEET_REPORT)], out)
    for name, fields, target in (
        (tpl.SHEET_INITIATIVES, tpl.INITIATIVE_FIELDS, out.initiatives),
        (tpl.SHEET_SERVICES, tpl.SERVICE_FIELDS, out.services),
    ):
        if tpl.normalise_label(name) in sheets:
            _read_table_sheet(sheets[tpl.normalise_label(name)], name, fields, target, out)
    if missing:
        found = ", ".join(s.name for s in list(sheets.values())[:10])
        raise BadInput(f"missing sheet(s) {', '.join(missing)} (found: {found})")


def _rows(sheet: spreadsheet.Sheet, max_col: int):
    """Rows of a sheet as (sheet row number, the first ``max_col`` values); the reader has bounded the rows."""
    for number, values in enumerate(sheet.rows, start=1):
        yield number, values[:max_col]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_field_sheet(sheet, out: _Extracted) -> None:
    index = tpl.label_index(tpl.REPORT_FIELDS)
    header = tuple(tpl.normalise_label(h) for h in tpl.REPORT_HEADER)
    seen: dict[str, int] = {}
    for number, values in _rows(sheet, 2):
        label, value = (tuple(values) + (None, None))[:2]
        if _blank(label) and _blank(value):
            continue
        if _blank(label):
            out.warnings.append(f"{tpl.SHEET_REPORT} row {number}: a value without a field label was ignored")
            continue
        key = tpl.normalise_label(label)
        if key == header[0] and (tpl.normalise_label(value or "") == header[1] or _blank(value)):
            continue  # the Fält | Värde header row
        fld = index.get(key)
        if fld is None:
            out.warnings.append(f"{tpl.SHEET_REPORT} row {number}: unknown field {str(label).strip()[:60]!r} ignored")
            continue
        if fld.json_key in seen:
            out.problems.append(f"field {fld.label!r} appears twice (rows {seen[fld.json_key]} and {number})")
            continue
        seen[fld.json_key] = number
        if fld.kind == tpl.PERSONAL:
            out.contact = value
            continue
        out.fields[fld.json_key] = (number, value)
    # A row left out (or its label changed past recognition) would publish its field as null, as if answered
    # blank: refused whole, as the web form's missing keys are. The contact person may be left out.
    # A field added later (asked_from) may be absent from an earlier year's report: not asked then.
    year = _stated_year(out.fields.get("report_year", (0, None))[1])
    absent = [
        f.label for f in tpl.REPORT_FIELDS if f.kind != tpl.PERSONAL and f.json_key not in seen and f.asked_in(year)
    ]
    if absent:
        out.problems.append(
            f"sheet {tpl.SHEET_REPORT}: missing field row(s) "
            + ", ".join(repr(label) for label in absent[:5])
            + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
            + " (keep every row of the template; leave the value blank for a field without an answer)"
        )


def _read_table_sheet(sheet, title: str, fields: tuple[Field, ...], target: list[_RawRow], out: _Extracted) -> None:
    index = tpl.label_index(fields)
    columns: dict[int, Field] | None = None
    for number, values in _rows(sheet, MAX_TABLE_COLUMNS):
        if all(_blank(v) for v in values):
            continue
        if columns is None:
            columns = {}
            for position, name in enumerate(values):
                if _blank(name):
                    continue
                fld = index.get(tpl.normalise_label(name))
                if fld is None:
                    out.warnings.append(f"{title}: unknown column {str(name).strip()[:60]!r} ignored")
                    continue
                if fld in columns.values():
                    out.problems.append(f"sheet {title}: column {fld.label!r} appears twice")
                columns[position] = fld
            # Every column of the template, as every row of Uppgifter: a column left out would publish its
            # values as null in every row, as if each were left blank (the web form's lists are refused so too).
            absent = [f.label for f in fields if f.kind != tpl.PERSONAL and f not in columns.values()]
            if absent:
                out.problems.append(
                    f"sheet {title}: missing column(s) {', '.join(absent)} (keep every column of the template; "
                    "leave a cell blank for no answer)"
                )
            continue
        # Rows are kept even when the header is broken: the report is then
        # rejected whole, and its quarantine entry says how many rows it held.
        row = {fld.json_key: values[pos] if pos < len(values) else None for pos, fld in columns.items()}
        raw = " | ".join(
            f"{fld.label}={_show(values[pos] if pos < len(values) else None)}" for pos, fld in columns.items()
        )
        target.append(_RawRow(number, row, raw))


# --------------------------------------------------------------------------- .json

MAX_NAMED_KEYS = 10  # unknown or duplicated keys named in a refusal; the rest are counted


class _JsonObject(dict):
    """A JSON object as read, remembering the keys that appeared in it more than once (json keeps the last)."""

    duplicates: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, object]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        repeated = []
        for k, _ in pairs:
            if k in seen:
                repeated.append(k)
            seen.add(k)
        obj.duplicates = tuple(dict.fromkeys(repeated))
    return obj


def _json_number(text: str) -> float | Decimal:
    """A JSON number with a fraction or exponent: a float, or, past a float's range (``1e400``), the exact Decimal,
    so that it is refused as a number too large rather than read as infinity."""
    number = float(text)
    return number if math.isfinite(number) else Decimal(text)


def _json_constant(name: str) -> None:
    raise BadInput(f"not valid JSON ({name} is not a JSON value)")


def _load_json(text: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_float=_json_number, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise BadInput(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise BadInput("JSON nested too deeply") from None
    except ValueError:
        # Python refuses to read an integer of more digits than sys.get_int_max_str_digits().
        raise BadInput(f"not valid JSON (a number of more than {sys.get_int_max_str_digits()} digits)") from None


def _duplicated_keys(document: object) -> list[str]:
    """Every key that appears twice in one object, at any depth, by its path (``'initiatives[2].cost_sek'``)."""
    found: list[str] = []
    # Paths are linked (parent, step) pairs, spelt out only for a key found twice: a deep or wide
    # document costs one small tuple per value, never a string per value. Not recursive: JSON as deep
    # as json.loads reads must not overflow the stack here.
    stack: list[tuple[object, tuple | None]] = [(document, None)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            found += [_path_text((path, f".{key}" if path else str(key))) for key in getattr(value, "duplicates", ())]
            stack += [(item, (path, f".{key}" if path else str(key))) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [(item, (path, f"[{n}]")) for n, item in enumerate(value, start=1)]
    return sorted(found)


def _path_text(path: tuple | None) -> str:
    steps: list[str] = []
    while path is not None:
        path, step = path
        steps.append(step[:60])
    return repr("".join(reversed(steps)))[:200]


def _named(keys: list[str], what: str) -> str:
    shown = ", ".join(keys[:MAX_NAMED_KEYS])
    more = f" and {len(keys) - MAX_NAMED_KEYS} more" if len(keys) > MAX_NAMED_KEYS else ""
    return f"{what}: {shown}{more}"


def _unknown_keys(document: dict) -> list[str]:
    """The keys the web form does not produce (:data:`county_template.JSON_KEYS`), each once with where it was;
    the first :data:`MAX_NAMED_KEYS` (those a refusal names) also with the items and the known key it resembles:
    ``'Offers' (did you mean 'offers'?)``, ``'initiatives[].Cost_sek' in items 1, 2 (did you mean 'cost_sek'?)``."""
    found: dict[tuple[str, str], list[int]] = {}

    def look(obj: dict, where: str, item: int | None = None) -> None:
        known = tpl.JSON_KEYS[where]
        for key in obj:
            if key not in known:
                found.setdefault((where, key), []).extend(() if item is None else (item,))

    look(document, "")
    for parent in tpl.JSON_KEYS:
        value = document.get(parent.removesuffix("[]")) if parent else None
        if not parent.endswith("[]") and isinstance(value, dict):
            look(value, parent)
        elif parent.endswith("[]") and isinstance(value, list):
            for number, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    look(item, parent, number)
    shown = []
    for number, ((where, key), items) in enumerate(found.items()):
        text = repr(f"{where}.{key}" if where else key)[:80]
        if number >= MAX_NAMED_KEYS:
            shown.append(text)  # counted, not named (_named): no resemblance looked for (100 000 keys arrive)
            continue
        if items:
            text += f" in item{'s' if len(items) > 1 else ''} {', '.join(map(str, items[:5]))}"
            text += f" and {len(items) - 5} more" if len(items) > 5 else ""
        resembles = tpl.resembling_json_key(key, where)
        if resembles is not None:
            text += f" (did you mean {resembles!r}?)"
        shown.append(text)
    return shown


# Keys the web form may leave out: the two lists (it leaves an empty list out) and the contact person
# (dropped at parsing anyway). Every other key it writes, null when the sender left the field blank.
_OPTIONAL_JSON_KEYS = frozenset({tpl.JSON_INITIATIVES, tpl.JSON_SERVICES, "contact_person"})


def _missing_keys(document: dict) -> list[str]:
    """The keys the web form always writes that ``document`` lacks: ``'grant_sek'``,
    ``'initiatives[].cost_sek' in items 1, 2``. A left-out key would null the published value
    without the sender saying so; ``null`` says it."""
    missing: dict[str, list[int]] = {}
    # A field added later (asked_from) is not written in an earlier year's report.
    year = _stated_year(document.get("report_year"))
    not_asked = {f.json_key for f in tpl.REPORT_FIELDS if not f.asked_in(year)}
    for key in tpl.JSON_KEYS[""]:
        if key not in document and key not in _OPTIONAL_JSON_KEYS and key not in not_asked:
            missing.setdefault(key, [])
    for parent, children in tpl.JSON_KEYS.items():
        if not parent:
            continue
        value = document.get(parent.removesuffix("[]"))
        if not parent.endswith("[]") and isinstance(value, dict):
            for child in children:
                if child not in value and f"{parent}.{child}" not in not_asked:
                    missing.setdefault(f"{parent}.{child}", [])
        elif parent.endswith("[]") and isinstance(value, list):
            for number, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    for child in children:
                        if child not in item:
                            missing.setdefault(f"{parent}.{child}", []).append(number)
    shown = []
    for key, items in missing.items():
        text = repr(key)
        if items:
            text += f" in item{'s' if len(items) > 1 else ''} {', '.join(map(str, items[:5]))}"
            text += f" and {len(items) - 5} more" if len(items) > 5 else ""
        shown.append(text)
    return shown


def _extract_json(data: bytes, out: _Extracted) -> None:
    # Size: one branch per shape the web form's JSON takes (missing, misspelt or mistyped keys), each refused
    # with its own line.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput("JSON is not UTF-8") from None
    if not text.strip():
        raise BadInput("empty file")
    document = _load_json(text)
    if not isinstance(document, dict):
        raise BadInput(f"JSON must be an object at the top level, not {_json_type(document)}")

    # Type problems are collected, not raised, so that the rows the report
    # held are still counted for its quarantine entry.
    problems = out.problems
    # A key twice (json would keep the last silently) or a key the web form does not produce (a misspelt
    # "Offers" would silently null the published value): the report is refused whole, naming the keys.
    duplicated = _duplicated_keys(document)
    if duplicated:
        problems.append(_named(duplicated, "key(s) appearing twice"))
    unknown = _unknown_keys(document)
    if unknown:
        problems.append(_named(unknown, "unknown key(s), not produced by the web form"))
    missing = _missing_keys(document)
    if missing:
        problems.append(_named(missing, "key(s) the web form always writes are missing (write null for a blank field)"))
    groups = [where for where in tpl.JSON_KEYS if where and not where.endswith("[]")]
    for parent in sorted(groups):
        group = document.get(parent)
        if group is not None and not isinstance(group, dict):
            problems.append(f"{parent} must be a JSON object, not {_json_type(group)}")
    for fld in tpl.REPORT_FIELDS:
        if fld.kind == tpl.PERSONAL:
            out.contact = document.get(fld.json_key)
            continue
        container: object = document
        name = fld.json_key
        if "." in fld.json_key:
            parent, name = fld.json_key.split(".", 1)
            container = document.get(parent)
        if not isinstance(container, dict) or name not in container:
            continue
        value = container[name]
        if isinstance(value, (dict, list)):
            problems.append(f"{fld.json_key} must be a single value, not {_json_type(value)}")
            continue
        out.fields[fld.json_key] = (1, value)

    for key, fields, target in (
        (tpl.JSON_INITIATIVES, tpl.INITIATIVE_FIELDS, out.initiatives),
        (tpl.JSON_SERVICES, tpl.SERVICE_FIELDS, out.services),
    ):
        items = document.get(key)
        if items is None:
            continue  # the web form leaves an empty list out
        if not isinstance(items, list):
            problems.append(f"{key} must be a JSON array, not {_json_type(items)}")
            continue
        if len(items) > MAX_JSON_ITEMS:
            raise BadInput(f"{key} has {len(items)} items, over the limit of {MAX_JSON_ITEMS}")
        names = [f.json_key for f in fields]
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                problems.append(f"{key}[{number}] must be a JSON object, not {_json_type(item)}")
                target.append(_RawRow(number, {}, _show(item)[:200]))
                continue
            values = {}
            for name in names:
                value = item.get(name)
                if isinstance(value, (dict, list)):
                    problems.append(f"{key}[{number}].{name} must be a single value, not {_json_type(value)}")
                    value = None
                values[name] = value
            raw = " | ".join(f"{name}={_show(values[name])}" for name in names if values[name] is not None)
            target.append(_RawRow(number, values, raw))


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number" if isinstance(value, (int, float)) else "text"
