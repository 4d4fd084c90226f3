"""The national e-service operator's monthly e-health exports (docs/input-formats.md §2).

Owns how ``journalen_YYYY-MM`` (patient journal online) and
``webbtidbok_YYYY-MM`` (web booking) files look — text (``.csv``,
``.csv.gz``, Excel's "Unicode text" ``.txt``) in UTF-8 (± BOM), UTF-16 with
a BOM or Windows-1252, with ``;``, ``,`` or tab (detected, or given by
Excel's ``sep=`` first line), or a spreadsheet (``.xlsx``, ``.xls``,
``.ods``, read by :mod:`etl.sources.spreadsheet`) with one sheet of the
same columns — and how their lines become long-format rows
(``region_code, year, month, service, metric, value, suppressed``).
Also the helpers the unit-level reader (:mod:`etl.sources.unit_daily`)
shares: file names, gzip, encoding, ``sep=`` hint and delimiter detection,
header matching.

A cell longer than :attr:`spreadsheet.Limits.max_cell_chars` rejects the
file whole, in text files as in spreadsheets (one guard, one message).

Nothing here knows about the warehouse: the reader returns rows and
rejected lines; :mod:`etl.pipelines.ehealth_adoption` validates and
publishes them.

Row accounting: one input line carries one value per metric of its service
(3 for the journal, 5 for web booking) and becomes that many long rows.
``rows_in`` is therefore counted in long rows (data lines × metrics); a
rejected line is one quarantine entry with ``rows_held`` = its metric count,
and a rejected file one entry (row 0) holding all its lines' rows.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import io
import posixpath
import re
import zlib
from dataclasses import dataclass, field

from etl import regions, swedish
from etl.errors import BadInput
from etl.sources import spreadsheet
from etl.sources.ehealth_spec import EXPORTS, JOURNAL, UNITS, WEB_BOOKING, ExportSpec

# What the exports are (kinds, headers, metrics, rules) is declared once, in ehealth_spec; re-exported here.
SERVICE_JOURNAL = JOURNAL.service
SERVICE_WEB_BOOKING = WEB_BOOKING.service
UNIT_KIND = UNITS.kind

# Monthly exports are small (22 lines); anything this big is not one.
MAX_EXPORT_BYTES = 20 * 1024 * 1024
# How much of a file is sampled to decide its encoding.
ENCODING_SAMPLE_BYTES = 1 << 20
DELIMITERS = (";", "\t", ",")
MAX_NAMED_COLUMNS = 10  # unknown columns named in a note; the rest are counted


# Accepted file suffixes (lower-case; names are matched in any case). Monthly exports come as
# text or as a spreadsheet; the unit-level file only as (gzipped) CSV, see UNIT_SUFFIXES.
TEXT_SUFFIXES = (".csv", ".csv.gz", ".txt")
SUFFIXES = TEXT_SUFFIXES + spreadsheet.SUFFIXES
UNIT_SUFFIXES = (".csv", ".csv.gz")

# Longest prefix first so webbtidbok_enheter is not read as webbtidbok; csv.gz before csv.
_KINDS = sorted((*EXPORTS, UNIT_KIND), key=len, reverse=True)
_EXTS = sorted({x.lstrip(".") for x in (*SUFFIXES, *UNIT_SUFFIXES)}, key=len, reverse=True)
_NAME_RE = re.compile(
    rf"^(?P<kind>{'|'.join(map(re.escape, _KINDS))})_(?P<year>\d{{4}})-(?P<month>\d{{2}})"
    rf"\.(?P<ext>{'|'.join(map(re.escape, _EXTS))})$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ExportName:
    """What a landed file's name says: which export, which month, which format."""

    kind: str  # journalen | webbtidbok | webbtidbok_enheter
    period: str  # YYYY-MM
    ext: str  # csv | csv.gz | txt | xlsx | xls | ods (lower-case, without the leading dot)

    @property
    def is_spreadsheet(self) -> bool:
        return f".{self.ext}" in spreadsheet.SUFFIXES

    @property
    def month(self) -> dt.date:
        return dt.date(int(self.period[:4]), int(self.period[5:]), 1)


def parse_file_name(name: str) -> ExportName:
    """``journalen_2017-03.csv`` → ExportName; :class:`BadInput` for anything else."""
    match = _NAME_RE.match(name.strip())
    if not match:
        raise BadInput(
            f"{name}: not an e-health export name ({', '.join(f'{k}_YYYY-MM' for k in EXPORTS)} "
            f"{'/'.join(SUFFIXES)}, {UNIT_KIND}_YYYY-MM {'/'.join(UNIT_SUFFIXES)})"
        )
    kind, ext = match.group("kind").lower(), match.group("ext").lower()
    month = int(match.group("month"))
    if not 1 <= month <= 12:
        raise BadInput(f"{name}: month {month:02d} in the file name does not exist")
    if kind == UNIT_KIND and f".{ext}" not in UNIT_SUFFIXES:
        raise BadInput(f"{name}: unit-level files are CSV only ({', '.join(UNIT_SUFFIXES)})")
    return ExportName(kind, f"{match.group('year')}-{month:02d}", ext)


# --------------------------------------------------------------------------- shared text helpers


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def detect_encoding(sample: bytes, name: str, *, complete: bool = True) -> str:
    """``utf-16``, ``utf-8-sig`` or ``cp1252`` for a file's bytes; :class:`BadInput` if it is neither text.

    UTF-16 is recognised by its byte-order mark only (Excel's "Unicode text"
    always writes one). ``complete=False`` means ``sample`` is the start of a
    longer file: a character cut at the end of the sample is not held against it.
    """
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = codecs.getincrementaldecoder("utf-16")().decode(sample, final=complete)
        except UnicodeDecodeError:
            raise BadInput(f"{name}: starts with a UTF-16 byte-order mark but is not UTF-16 text") from None
        if _CONTROL.search(text):
            raise BadInput(f"{name}: not a text file (control characters or NUL bytes in its UTF-16 text)")
        return "utf-16"
    try:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        text = decoder.decode(sample, final=complete)
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        try:
            text = sample.decode("cp1252")
            encoding = "cp1252"
        except UnicodeDecodeError:
            raise BadInput(f"{name}: neither UTF-8 nor Windows-1252 text (undecodable bytes)") from None
    # UTF-16 or binary content decodes as cp1252 but is full of control characters.
    if _CONTROL.search(text):
        raise BadInput(f"{name}: not a text file in UTF-8 or Windows-1252 (control characters or NUL bytes)")
    return encoding


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """The whole file as text, and the encoding it was in."""
    encoding = detect_encoding(data, name)
    return data.decode(encoding), encoding


def is_gzip(name: str) -> bool:
    return name.lower().endswith(".gz")


def gunzip(data: bytes, name: str, max_bytes: int) -> bytes:
    """The content of a ``.gz`` file, at most ``max_bytes`` of it; :class:`BadInput` if broken, cut short or larger."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = stream.read(max_bytes + 1)  # streamed: a gzip bomb stops at the limit
    except EOFError:
        raise BadInput(f"{name}: the gzip file is cut short (still being written, or truncated)") from None
    except (OSError, zlib.error) as exc:
        raise BadInput(f"{name}: not a readable gzip file ({exc})") from None
    if len(content) > max_bytes:
        raise BadInput(f"{name}: decompresses to more than the {max_bytes}-byte limit")
    return content


_SEP_HINT = re.compile(r'^\ufeff?"?sep=(\\t|[^\r\n])"?\s*$', re.IGNORECASE)


def sep_hint(line: str) -> str | None:
    """The delimiter named by Excel's first-line hint ``sep=;`` (``sep=,``, ``sep=<tab>``, ``sep=\\t``), else None.

    The hint line is neither header nor data: callers skip it.
    """
    match = _SEP_HINT.match(line)
    if not match:
        return None
    return "\t" if match.group(1) == "\\t" else match.group(1)


def normalise_label(label: object) -> str:
    """Header cell → comparable key: case, spacing, trailing ':', ``_`` as a space, and diacritics ignored
    (the operator's headers are machine-written; an export without å/ä/ö has been seen)."""
    return swedish.normalise_label(label, separators="_", fold_accents=True)


def match_header(cells: list[str], wanted: dict[str, tuple[str, ...]], name: str) -> dict[str, int]:
    """Column index of each wanted field (field → accepted labels); :class:`BadInput` naming what is missing."""
    keys = [normalise_label(c) for c in cells]
    found: dict[str, int] = {}
    for fieldname, labels in wanted.items():
        accepted = {normalise_label(label) for label in labels}
        hits = [i for i, key in enumerate(keys) if key in accepted]
        if len(hits) > 1:
            raise BadInput(f"{name}: column {labels[0]!r} appears {len(hits)} times in the header")
        if hits:
            found[fieldname] = hits[0]
    missing = [labels[0] for f, labels in wanted.items() if f not in found]
    if missing:
        raise BadInput(f"{name}: header lacks column(s) {', '.join(missing)} (header: {';'.join(cells)[:200]!r})")
    return found


def detect_delimiter(header_line: str, wanted: dict[str, tuple[str, ...]], name: str, line_number: int = 1) -> str:
    """The delimiter (``;``, tab or ``,``) under which the header has the most known columns.

    :class:`BadInput` if none gives two known columns, or if under the chosen
    one a header cell is over the cell limit (one such cell must not abort a run).
    """
    accepted = {normalise_label(label) for labels in wanted.values() for label in labels}
    best, best_hits, best_cells = None, 0, []
    for delimiter in DELIMITERS:
        try:
            cells = next(csv.reader([header_line], delimiter=delimiter))
        except csv.Error:  # a field over Python's csv limit: judged by its pieces, then refused below
            cells = header_line.split(delimiter)
        hits = sum(normalise_label(c) in accepted for c in cells)
        if hits > best_hits:
            best, best_hits, best_cells = delimiter, hits, cells
    if best is None or best_hits < 2:
        raise BadInput(f"{name}: header not recognised (first line {header_line[:120]!r})")
    longest = max(map(len, best_cells), default=0)
    if longest > spreadsheet.LIMITS.max_cell_chars:
        raise spreadsheet.cell_too_large(name, f"line {line_number} (the header)", longest)
    return best


# --------------------------------------------------------------------------- monthly exports


_MONTH_LABELS = ("Månad", "Period")
_REGION_LABELS = ("Region", "Län", "Landsting")


def wanted_columns(spec: ExportSpec) -> dict[str, tuple[str, ...]]:
    wanted: dict[str, tuple[str, ...]] = {"month": _MONTH_LABELS, "region": _REGION_LABELS}
    for metric in spec.metrics:
        wanted[metric.name] = (metric.header,)
    return wanted


@dataclass
class ExportRows:
    """One monthly export file, read: long rows per table and the lines that could not be used."""

    source_file: str
    name: ExportName
    spec: ExportSpec
    regional: list[dict] = field(default_factory=list)  # long rows for ehealth_adoption
    national: list[dict] = field(default_factory=list)  # long rows for ehealth_adoption_national
    rejected_regional: list[dict] = field(default_factory=list)  # quarantine entries (rows_held = metrics)
    rejected_national: list[dict] = field(default_factory=list)
    regions_seen: set[str] = field(default_factory=set)  # regions the file has a line for, usable or not
    national_lines: int = 0
    data_lines: int = 0
    file_error: str | None = None  # set when the whole file was rejected
    encoding: str | None = None
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows_in_regional(self) -> int:
        return len(self.regional) + sum(r["rows_held"] for r in self.rejected_regional)

    @property
    def rows_in_national(self) -> int:
        return len(self.national) + sum(r["rows_held"] for r in self.rejected_national)


_CSV_FIELD_LIMIT = csv.field_size_limit()  # Python's csv refuses longer fields (131 072 characters)


def csv_records(text: str, name: str, wanted: dict[str, tuple[str, ...]]):
    """(header cells, [(line number, cells)], delimiter) of a CSV text.

    The delimiter is the ``sep=`` hint's when the first line is one (that line
    is then skipped, line numbers still count it), else detected on the header.
    """
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    hint = sep_hint(lines[first]) if first is not None else None
    header_at = (
        first
        if hint is None or first is None
        else next((i for i in range(first + 1, len(lines)) if lines[i].strip()), None)
    )
    if header_at is None:
        raise BadInput(f"{name}: the file is empty" if hint is None else f"{name}: nothing under the sep= line")
    delimiter = hint or detect_delimiter(lines[header_at], wanted, name, header_at + 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = []
    header = None
    skip_hint = hint is not None
    limit = spreadsheet.LIMITS.max_cell_chars
    try:
        for cells in reader:
            longest = max(map(len, cells), default=0)
            if longest > limit:
                raise spreadsheet.cell_too_large(name, f"line {reader.line_num}", longest)
            if header is None:
                if any(c.strip() for c in cells):
                    if skip_hint:
                        skip_hint = False
                        continue
                    header = cells
                continue
            records.append((reader.line_num, cells))
    except csv.Error as exc:
        if "field larger than field limit" not in str(exc):
            raise BadInput(f"{name}: unreadable CSV near line {reader.line_num}: {exc}") from None
        # Over Python's csv limit: the same rejection as any oversized cell. The size shown is the
        # longest run of the line between delimiters (a quoted cell spanning lines shows as "more than").
        line = lines[reader.line_num - 1] if 0 < reader.line_num <= len(lines) else ""
        longest = max(map(len, line.split(delimiter)), default=0)
        raise spreadsheet.cell_too_large(
            name, f"line {reader.line_num}", max(longest, _CSV_FIELD_LIMIT), at_least=longest <= _CSV_FIELD_LIMIT
        ) from None
    return header, records, delimiter


def sheet_records(data: bytes, name: str):
    """(header cells, [(sheet row, cells)]) of the one sheet of a spreadsheet (.xlsx, .xls, .ods)."""
    sheets = spreadsheet.read_workbook(data, name)
    if len(sheets) != 1:
        shown = ", ".join(s.name for s in sheets[:10])
        raise BadInput(f"{name}: expected one sheet, found {len(sheets)} ({shown})")
    header = None
    records = []
    for number, row in enumerate(sheets[0].rows, start=1):
        cells = ["" if v is None else v for v in row]
        while cells and (cells[-1] == "" or (isinstance(cells[-1], str) and not cells[-1].strip())):
            cells.pop()
        if header is None:
            if cells:
                header = [cell_text(c) for c in cells]
            continue
        records.append((number, cells))
    if header is None:
        raise BadInput(f"{name}: the sheet is empty")
    return header, records


def _count_lines(data: bytes) -> int:
    """Data lines of a file that could not be parsed (for rows_held): non-blank lines minus the header."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        # UTF-16 (rejected, but still counted right): split as bytes, every line would keep the
        # newline's NUL half and the file would seem to hold one line more than it does.
        data = data.decode("utf-16", errors="replace").encode("utf-8")
    return max(0, sum(1 for line in data.splitlines() if line.strip()) - 1)


def cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.strftime("%Y-%m-%d")
    return str(value)


def read_export(source_file: str, data: bytes) -> ExportRows:
    """Read one monthly export (text or spreadsheet, by its name's suffix) into long rows; never raises for bad content.

    Line-level problems (wrong field count, unknown region, text or negative
    numbers, numbers too large for the ``int64`` value column, a Månad other
    than the file name's) reject that line; file-level ones (undecodable,
    broken gzip, unreadable workbook, a spreadsheet guard, an oversized cell,
    header without the columns, every line for another month) reject the
    whole file with one reason.
    """
    # Size: the contract's tolerances for one export (§2) in the order it lists them; each a few lines.
    file_name = posixpath.basename(source_file)
    name = parse_file_name(file_name)
    spec = EXPORTS.get(name.kind)
    if spec is None:
        raise BadInput(f"{file_name}: {name.kind} is not a monthly export")
    out = ExportRows(source_file=source_file, name=name, spec=spec)
    wanted = wanted_columns(spec)
    n_metrics = len(spec.metrics)
    plain = data  # the text bytes, once decompressed: what a rejection counts lines in
    try:
        if len(data) > MAX_EXPORT_BYTES:
            raise BadInput(f"{file_name}: {len(data)} bytes is far too large for a monthly export")
        if name.is_spreadsheet:
            header, records = sheet_records(data, file_name)
        else:
            if is_gzip(file_name):
                plain = gunzip(data, file_name, MAX_EXPORT_BYTES)
            text, out.encoding = decode_text(plain, file_name)
            header, records, out.delimiter = csv_records(text, file_name, wanted)
        columns = match_header([cell_text(c) for c in header], wanted, file_name)
    except BadInput as exc:
        out.file_error = str(exc)
        lines = 0 if name.is_spreadsheet or plain is data and is_gzip(file_name) else _count_lines(plain)
        out.rejected_regional.append(_file_rejection(source_file, str(exc), max(1, lines) * n_metrics))
        return out

    width = len(header)
    while width and not str(header[width - 1]).strip():  # a trailing delimiter on the header line
        width -= 1
    known = set(columns.values())
    extra = [str(header[i]) for i in range(width) if i not in known and str(header[i]).strip()]
    if extra:
        # Named up to a few, then counted: a sheet 10 000 columns wide must not make a 100 kB warning.
        shown = ", ".join(extra[:MAX_NAMED_COLUMNS]) + (
            f" and {len(extra) - MAX_NAMED_COLUMNS} more" if len(extra) > MAX_NAMED_COLUMNS else ""
        )
        out.notes.append(f"{file_name}: ignored column(s) {shown}")
    delimiter = out.delimiter or ";"
    matched = mismatched = 0
    other_months: set[str] = set()
    for number, cells in records:
        if not any(cell_text(c).strip() for c in cells):
            continue  # blank line: not data
        out.data_lines += 1
        while len(cells) > width and not cell_text(cells[-1]).strip():
            cells = cells[:-1]  # trailing delimiter(s)
        raw = delimiter.join(cell_text(c) for c in cells)[:1000]
        region_cell = cells[columns["region"]] if len(cells) > columns["region"] else None
        national = region_cell is not None and regions.is_national(region_cell)
        if len(cells) != width:
            reason = f"{len(cells)} fields, expected {width} (truncated line or stray delimiter)"
            (out.rejected_national if national else out.rejected_regional).append(
                _line_rejection(source_file, number, raw, reason, n_metrics)
            )
            continue
        errors: list[str] = []
        code = None
        if national:
            out.national_lines += 1
        else:
            try:
                code = regions.resolve_region(region_cell)
                out.regions_seen.add(code)
            except BadInput as exc:
                errors.append(str(exc))
        try:
            month = swedish.parse_month(cells[columns["month"]])
            if month == name.month:
                matched += 1
            else:
                mismatched += 1
                other_months.add(f"{month:%Y-%m}")
                errors.append(f"Månad {month:%Y-%m} does not match the file's month {name.period}")
        except BadInput as exc:
            errors.append(f"Månad: {exc}")
        values: dict[str, int | None] = {}
        for metric in spec.metrics:
            try:
                values[metric.name] = swedish.parse_count(cells[columns[metric.name]])
            except BadInput as exc:
                errors.append(f"{metric.header}: {exc}")
        if errors:
            (out.rejected_national if national else out.rejected_regional).append(
                _line_rejection(source_file, number, raw, "; ".join(errors), n_metrics)
            )
            continue
        target = out.national if national else out.regional
        for metric_name, value in values.items():
            target.append(
                {
                    "region_code": code,
                    "year": name.month.year,
                    "month": name.month,
                    "service": spec.service,
                    "metric": metric_name,
                    "value": value,
                    "suppressed": value is None,
                    "source_file": source_file,
                    "row_number": number,
                    "raw": raw,
                }
            )
    if out.data_lines == 0:
        _reject_file(out, f"{file_name}: no data lines under the header", 1)
    elif matched == 0 and mismatched:
        _reject_file(
            out,
            f"{file_name}: every line's Månad ({', '.join(sorted(other_months))}) differs from the file's month "
            f"{name.period}",
            out.data_lines,
        )
    return out


def read_export_file(source_file: str, *, location: str | None = None) -> ExportRows:
    """Read a landed monthly export by URI; a file too large to be one is rejected, not loaded into memory.

    ``location`` is where to open it when the store spells the name otherwise (NFD) than ``source_file``.
    """
    from etl import storage

    try:
        data = storage.read_bytes(location or source_file, max_bytes=MAX_EXPORT_BYTES)
    except BadInput as exc:
        name = parse_file_name(posixpath.basename(source_file))
        out = ExportRows(source_file=source_file, name=name, spec=EXPORTS[name.kind])
        _reject_file(out, str(exc), 1)
        return out
    return read_export(source_file, data)


def _line_rejection(source_file: str, number: int, raw: str, reason: str, rows_held: int) -> dict:
    return {"source_file": source_file, "row_number": number, "raw": raw, "reason": reason, "rows_held": rows_held}


def _file_rejection(source_file: str, reason: str, rows_held: int) -> dict:
    return {"source_file": source_file, "row_number": 0, "raw": None, "reason": reason, "rows_held": rows_held}


def _reject_file(out: ExportRows, reason: str, lines: int) -> None:
    """Turn everything read from the file into one whole-file rejection."""
    out.file_error = reason
    out.regional.clear()
    out.national.clear()
    out.rejected_regional[:] = [_file_rejection(out.source_file, reason, max(1, lines) * len(out.spec.metrics))]
    out.rejected_national.clear()
    out.regions_seen.clear()
    out.national_lines = 0
