"""The one spreadsheet reader: ``.xlsx``, ``.xls`` (Excel 97-2003) and ``.ods`` (LibreOffice), and its guards.

Every spreadsheet a sender delivers (county reports, monthly e-health
exports) is read here, with python-calamine, into plain rows of cell
values — and only after one set of guards has sized it. openpyxl is used
only for *writing* (the county template, the analysts' exports).

Why the guards come before calamine, and why they look inside the file:
calamine turns each sheet into a dense rows × columns grid as it opens it
(``.xls`` and ``.ods``: every sheet, when the workbook is opened). A 1.5 KB
``.xlsx`` with one cell in ``A1`` and one in ``XFD1048576`` asks for a
512 GB grid and aborts the process; an 800-byte ``.ods`` whose one cell is
repeated 100 000 × 1 000 times costs 6 GB and 28 s; a 7.7 KB ``.xls`` with
far corners on five sheets, 2.5 GB. So the used area of every sheet is
measured first from the file's own structure — the cell references in an
``.xlsx`` sheet's XML, the row/column repeat counts in an ``.ods``
``content.xml``, the cell records of an ``.xls`` workbook stream — and a
file over the limits is refused before calamine allocates anything.
(calamine, unlike openpyxl's read-only mode, does not trust a stale
``<dimension ref="A1"/>``: it reads every cell there is.)

The guards, each refusing with :class:`etl.errors.BadInput` and one line
naming the file and the rule (values in :data:`LIMITS`):

* file size;
* ``.xlsx`` / ``.ods`` (zip): number of parts, total uncompressed size,
  inflation ratio of a large part (a zip bomb), parts that inflate past
  the size they declare;
* per sheet: rows and columns of the used area, and cells (rows × columns
  of the used area, all sheets together: the grid calamine will build);
* characters in one cell.

Two more refusals, of what a sender must fix (never approvable):

* a **password-protected** workbook: an encrypted ``.xlsx`` is an OLE2
  container holding ``EncryptionInfo`` and ``EncryptedPackage`` streams (not
  a zip), an encrypted ``.xls`` has a ``FILEPASS`` record, an encrypted
  ``.ods`` declares ``encryption-data`` in its manifest;
* a **formula without a saved result**. Formulas are never evaluated: a
  formula cell is read as the result its program saved with it. Scripts
  (openpyxl, pandas, most libraries) write the formula and no result, which
  calamine would read as an empty cell — so a grant or a count would
  silently become "nothing". Such a cell refuses the file, naming the sheet
  and the cell. XlsxWriter (and pandas through it) saves ``0`` as the
  result of every formula written without ``value=``, and marks the
  workbook to be recalculated on opening (``<calcPr fullCalcOnLoad="1"/>``,
  which Excel and LibreOffice never leave in a file they saved): in such a
  workbook a formula whose saved result is ``0`` is taken as not calculated
  and refused too (a script that means 0 writes 0, not a formula). A
  formula with any other saved result is read as that result. In ``.ods``
  a formula cell without a value type is the same refusal. (``.xls``:
  every formula record carries a result; xlwt saves an empty text as the
  result, which cannot be told from a formula whose result is empty text,
  and so reads as an empty cell.)

Cell values as returned: ``None`` (empty cell), ``str``, ``int`` (a whole
number: spreadsheets store every number as a float), ``float``, ``bool``,
``datetime.date`` / ``datetime.datetime`` (date-formatted cells),
``datetime.time``, ``datetime.timedelta``.
"""

from __future__ import annotations

import html
import io
import re
import struct
import zipfile
from dataclasses import dataclass

from etl.errors import BadInput, one_line

SUFFIXES = (".xlsx", ".xls", ".ods")  # lower-case; what this module reads
ZIP_SUFFIXES = (".xlsx", ".ods")


@dataclass(frozen=True)
class Limits:
    """What a spreadsheet may hold. Far above any real delivery (a few tens of rows), far below what hurts a worker."""

    max_file_bytes: int = 10 * 1024 * 1024
    max_members: int = 1000  # parts of a zip-based workbook
    max_uncompressed_bytes: int = 64 * 1024 * 1024  # all parts together
    max_member_ratio: int = 100  # uncompressed / compressed, for parts over ratio_floor
    ratio_floor: int = 1024 * 1024  # small parts (styles, shared strings) legitimately compress better
    max_rows: int = 5000  # rows of a sheet's used area, counted from row 1 (blank rows included)
    # Excel's own width (A..XFD): a sheet as wide as Excel allows is read (its extra columns are
    # ignored by the callers, with a warning); max_cells keeps such a sheet short.
    max_columns: int = 16384
    max_cells: int = 1_000_000  # rows × columns of the used areas of all sheets together
    max_cell_chars: int = 32767  # Excel's own limit per cell


LIMITS = Limits()


@dataclass(frozen=True)
class Sheet:
    """One worksheet: ``rows[i]`` is sheet row ``i + 1``; every row is as wide as the sheet's used area."""

    name: str
    rows: list[list[object]]


def suffix_of(name: str) -> str | None:
    """The spreadsheet suffix (``.xlsx``, ``.xls``, ``.ods``) of a file name, any case; None for other files."""
    lower = name.lower()
    return next((s for s in SUFFIXES if lower.endswith(s)), None)


def cell_too_large(
    file_name: str, where: str, size: int, limits: Limits | None = None, *, at_least: bool = False
) -> BadInput:
    """The one refusal of an oversized cell, for spreadsheets and CSV alike: file, place, observed size, rule.

    ``at_least``: ``size`` is a lower bound (the reader stopped counting there).
    """
    limit = (limits or LIMITS).max_cell_chars
    return BadInput(
        f"{file_name}: {where} holds a cell of {'more than ' if at_least else ''}{size} characters, "
        f"over the limit of {limit} characters per cell"
    )


def read_workbook(data: bytes, file_name: str, *, limits: Limits | None = None) -> list[Sheet]:
    """Every worksheet of a ``.xlsx``/``.xls``/``.ods`` file (by the name's suffix), in workbook order.

    Chart and macro sheets are not returned. Raises :class:`BadInput` (one
    line: the file name and the rule or the reason) for a file over a guard
    of ``limits`` (default :data:`LIMITS`), a file that is not a readable
    workbook of its suffix's format, or a name without a spreadsheet suffix.
    """
    limits = limits or LIMITS
    suffix = suffix_of(file_name)
    if suffix is None:
        raise BadInput(f"{file_name}: not a spreadsheet ({', '.join(SUFFIXES)})")
    fmt = suffix[1:]
    if len(data) > limits.max_file_bytes:
        raise BadInput(f"{file_name}: file is {len(data)} bytes, over the {limits.max_file_bytes}-byte limit")
    if suffix in ZIP_SUFFIXES:
        _refuse_encrypted_ooxml(data, file_name)
        with _open_zip(data, file_name, fmt, limits) as archive:
            # calamine picks the format from the content, not the name: a part of the other
            # zip-based format is sized too, so that no sheet reaches calamine unmeasured.
            names = set(archive.namelist())
            if "xl/workbook.bin" in names:
                raise BadInput(f"{file_name}: a binary .xlsb workbook, not .{fmt}: save it as .xlsx")
            if fmt == "ods" and _ods_encrypted(archive, file_name):
                raise BadInput(password_protected(file_name))
            areas = _xlsx_areas(archive, file_name)
            if "content.xml" in names:
                areas += _ods_areas(archive, file_name)
    else:
        areas = _xls_areas(data, file_name)
    _check_areas(areas, file_name, limits)
    return _read(data, file_name, fmt, limits)


# --------------------------------------------------------------------------- password protection


def password_protected(file_name: str) -> str:
    """The one line refusing an encrypted workbook."""
    return (
        f"{file_name}: the workbook is password-protected (encrypted) and cannot be read — save it without a password"
    )


def _refuse_encrypted_ooxml(data: bytes, file_name: str) -> None:
    """An encrypted .xlsx is not a zip but an OLE2 container with ``EncryptionInfo``/``EncryptedPackage``."""
    import olefile

    if not data.startswith(olefile.MAGIC):
        return
    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            encrypted = ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage")
    except Exception:  # noqa: BLE001 - a broken container is judged by the zip check that follows
        return
    if encrypted:
        raise BadInput(password_protected(file_name))


def _ods_encrypted(archive: zipfile.ZipFile, file_name: str) -> bool:
    """An encrypted .ods keeps a plain manifest declaring ``manifest:encryption-data`` for its parts."""
    try:
        info = archive.getinfo("META-INF/manifest.xml")
    except KeyError:
        return False
    return b"encryption-data" in _member(archive, info, file_name)


# --------------------------------------------------------------------------- zip guards


def _open_zip(data: bytes, file_name: str, fmt: str, limits: Limits) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BadInput(f"{file_name}: not a valid .{fmt} file (not a zip archive)") from None
    try:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise BadInput(f"{file_name}: workbook has {len(members)} parts, over the limit of {limits.max_members}")
        total = 0
        for info in members:
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > limits.ratio_floor and ratio > limits.max_member_ratio:
                raise BadInput(
                    f"{file_name}: workbook part {info.filename[:60]!r} inflates {ratio:.0f}x "
                    f"(limit {limits.max_member_ratio}x): refused as a possible zip bomb"
                )
        if total > limits.max_uncompressed_bytes:
            raise BadInput(
                f"{file_name}: workbook inflates to {total} bytes, over the {limits.max_uncompressed_bytes}-byte "
                "limit: refused as a possible zip bomb"
            )
        required = "[Content_Types].xml" if fmt == "xlsx" else "content.xml"
        if required not in archive.namelist():
            raise BadInput(f"{file_name}: not a valid .{fmt} file ({required} missing)")
    except BaseException:
        archive.close()
        raise
    return archive


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_name: str) -> bytes:
    """A part's bytes, never more than it declares (the declared sizes are what the zip guards judged)."""
    try:
        with archive.open(info) as handle:
            data = handle.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise BadInput(f"{file_name}: workbook part {info.filename[:60]!r} is damaged ({type(exc).__name__})") from None
    if len(data) > info.file_size:
        raise BadInput(
            f"{file_name}: workbook part {info.filename[:60]!r} inflates past the size it declares: "
            "refused as a possible zip bomb"
        )
    return data


# --------------------------------------------------------------------------- used areas, before calamine


# (sheet, rows, columns) of each sheet's used area, counted from A1.
_Area = tuple[str, int, int]

# <row …> and <c …> elements of SpreadsheetML, with or without a namespace prefix. A self-closing
# <c …/> has no value (calamine skips it); any other cell is counted, even one whose value is empty.
_XLSX_TAG = re.compile(rb"<(?:[\w.-]+:)?(row|c)(\s[^>]*?)?(/)?>")
_XLSX_REF = re.compile(rb"""\sr\s*=\s*["']([A-Za-z]{0,3})(\d*)["']""")


def _column_number(letters: bytes) -> int:
    number = 0
    for ch in letters.upper():
        number = number * 26 + ch - 64
    return number


def _xlsx_areas(archive: zipfile.ZipFile, file_name: str) -> list[_Area]:
    """Used area of every part that holds rows of cells, by replaying how cells are placed.

    Every XML part is looked at, not only ``xl/worksheets/``: calamine
    follows the workbook's relationships, which may point anywhere.
    """
    names = _xlsx_sheet_names(archive)
    recalculate = _xlsx_recalculate_on_load(archive, file_name)
    unsaved = _Unsaved()
    areas = []
    for info in archive.infolist():
        if not info.filename.lower().endswith(".xml") or info.filename.endswith(".rels"):
            continue
        data = _member(archive, info, file_name)
        if _XLSX_FORMULA.search(data):
            _xlsx_unsaved_formulas(data, names.get(info.filename, info.filename), recalculate, unsaved)
        row = col = max_row = max_col = 0
        for match in _XLSX_TAG.finditer(data):
            tag, attrs, empty = match.groups()
            ref = _XLSX_REF.search(attrs or b"")
            if tag == b"row":
                row = int(ref.group(2)) if ref and ref.group(2) else row + 1
                col = 0
                continue
            if ref and ref.group(1):
                col = _column_number(ref.group(1))
            else:
                col += 1
            cell_row = int(ref.group(2)) if ref and ref.group(2) else max(row, 1)
            if not empty:
                max_row, max_col = max(max_row, cell_row), max(max_col, col)
        if max_row:
            areas.append((names.get(info.filename, info.filename), max_row, max_col))
    unsaved.refuse(file_name)
    return areas


# A formula element (<f>, <f …>, <f/>, with or without a prefix) and a whole non-empty cell.
_XLSX_FORMULA = re.compile(rb"<(?:[\w.-]+:)?f[\s/>]")
_XLSX_CELL = re.compile(rb"<((?:[\w.-]+:)?)c(\s[^>]*?)?(?<!/)>(.*?)</\1c>", re.S)
_XLSX_F = re.compile(rb"<(?:[\w.-]+:)?f(?:\s[^>]*?)?(?:/>|>(.*?)</(?:[\w.-]+:)?f>)", re.S)
_XLSX_V = re.compile(rb"<(?:[\w.-]+:)?v(?:\s[^>]*?)?(?:/>|>(.*?)</(?:[\w.-]+:)?v>)", re.S)
_XLSX_TYPE = re.compile(rb"""\st\s*=\s*["']([^"']*)["']""")
_XLSX_CALC = re.compile(rb"<(?:[\w.-]+:)?calcPr\s[^>]*?fullCalcOnLoad\s*=\s*[\"'](?:1|true)[\"']")


@dataclass
class _Unsaved:
    """The first formula cell without a saved result (sheet, cell, formula, why) and how many there are."""

    first: tuple[str, str, str, str] | None = None
    count: int = 0

    def add(self, sheet: str, cell: str, formula: str, why: str, cells: int = 1) -> None:
        self.count += cells
        if self.first is None:
            self.first = (sheet, cell, formula, why)

    def refuse(self, file_name: str) -> None:
        if self.first is None:
            return
        sheet, cell, formula, why = self.first
        shown = one_line(formula)
        shown = f" (={shown[:80]}{'…' if len(shown) > 80 else ''})" if shown else ""
        more = f" (and {self.count - 1} more formula cell(s) like it)" if self.count > 1 else ""
        raise BadInput(
            f"{file_name}: sheet {one_line(sheet)[:60]!r} cell {cell}: {why}{shown}{more} — "
            "open and save the file in Excel or LibreOffice"
        )


def _xlsx_recalculate_on_load(archive: zipfile.ZipFile, file_name: str) -> bool:
    """True if the workbook asks to be recalculated on opening: what script writers set, never Excel's own save."""
    try:
        info = archive.getinfo("xl/workbook.xml")
    except KeyError:
        return False
    return bool(_XLSX_CALC.search(_member(archive, info, file_name)))


def _xlsx_unsaved_formulas(data: bytes, sheet: str, recalculate: bool, unsaved: _Unsaved) -> None:
    """Record the formula cells of one sheet part whose saved result is missing (or a script's placeholder 0)."""
    for match in _XLSX_CELL.finditer(data):
        attrs, body = match.group(2) or b"", match.group(3)
        formula = _XLSX_F.search(body)
        if formula is None:
            continue
        value = _XLSX_V.search(body)
        kind = _XLSX_TYPE.search(attrs)
        typ = kind.group(1) if kind else b"n"
        saved = None if value is None else (value.group(1) or b"")
        if saved is None or (not saved.strip() and typ != b"str"):
            # No <v>, or <v/>: openpyxl, pandas. (An empty <v></v> of a t="str" cell is a saved empty text.)
            why = "a formula without a saved result"
        elif recalculate and typ == b"n" and saved.strip() in (b"0", b"0.0"):
            why = "a formula whose saved result 0 was never calculated (a script's placeholder)"
        else:
            continue
        ref = _XLSX_REF.search(attrs)
        cell = (ref.group(1) + ref.group(2)).decode("ascii").upper() if ref else "?"
        text = html.unescape((formula.group(1) or b"").decode("utf-8", errors="replace"))
        unsaved.add(sheet, cell, text, why)


def _xlsx_sheet_names(archive: zipfile.ZipFile) -> dict[str, str]:
    """Zip part → sheet name, for messages; best effort (an unnamed part is shown by its path)."""
    from defusedxml import ElementTree

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rel = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    try:
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except Exception:  # noqa: BLE001 - names only decorate messages; calamine judges the structure
        return {}
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    names = {}
    for sheet in book.iter(f"{main}sheet"):
        target = targets.get(sheet.get(f"{rel}id"), "")
        path = target.lstrip("/") if target.startswith("/") else "xl/" + target
        names[path] = sheet.get("name", path)
    return names


_ODS_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0|"
_ODS_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0|"


@dataclass
class _OdsState:
    """Where the .ods parse is: the open table and its used area so far, the row and the cell being read."""

    table: str | None = None
    row: int = 0
    rows: int = 0
    cols: int = 0
    repeat_rows: int = 1
    col: int = 0
    row_cols: int = 0
    cell: int = 0  # the depth of the open cell element; 0 outside a cell
    repeat_cols: int = 1
    valued: bool = False
    depth: int = 0


def _ods_areas(archive: zipfile.ZipFile, file_name: str) -> list[_Area]:
    """Used area of every table in ``content.xml``, counting repeated rows and cells the way calamine expands them."""
    # Size: ODS's repeated rows and columns decoded inline: this loop is the reader's hot path.
    from xml.parsers import expat

    data = _member(archive, archive.getinfo("content.xml"), file_name)
    areas: list[_Area] = []
    state = _OdsState()
    unsaved = _Unsaved()

    def count(attrs: dict, key: str) -> int:
        try:
            return max(1, int(attrs.get(_ODS_TABLE + key, 1)))
        except ValueError:
            raise BadInput(f"{file_name}: not a valid .ods file (bad {key} value)") from None

    def start(name: str, attrs: dict) -> None:
        state.depth += 1
        if state.cell:
            state.valued = True  # a cell with content (text:p…) holds a value
        elif name == _ODS_TABLE + "table":
            state.table = attrs.get(_ODS_TABLE + "name", f"table {len(areas) + 1}")
            state.row = state.rows = state.cols = 0
        elif name == _ODS_TABLE + "table-row":
            state.repeat_rows = count(attrs, "number-rows-repeated")
            state.col = state.row_cols = 0
        elif name in (_ODS_TABLE + "table-cell", _ODS_TABLE + "covered-table-cell"):
            state.cell = state.depth
            state.repeat_cols = count(attrs, "number-columns-repeated")
            state.valued = _ODS_OFFICE + "value-type" in attrs
            formula = attrs.get(_ODS_TABLE + "formula")
            if formula is not None and not state.valued and state.table is not None:
                # A formula and no value type: no saved result (LibreOffice always saves one).
                where = _cell_name(state.row + 1, state.col)
                text = formula.split(":", 1)[1] if formula.startswith("of:") else formula
                why = "a formula without a saved result"
                unsaved.add(state.table, where, text.removeprefix("="), why, state.repeat_cols * state.repeat_rows)

    def end(name: str) -> None:
        if state.cell == state.depth:
            state.cell = 0
            state.col += state.repeat_cols
            if state.valued:
                state.row_cols = state.col
        elif name == _ODS_TABLE + "table-row":
            state.row += state.repeat_rows
            if state.row_cols:
                state.rows, state.cols = state.row, max(state.cols, state.row_cols)
        elif name == _ODS_TABLE + "table" and state.table is not None:
            if state.rows:
                areas.append((state.table, state.rows, state.cols))
            state.table = None
        state.depth -= 1

    def refuse(*_: object) -> None:
        # What defusedxml refuses: a DTD can declare entities that expand into gigabytes.
        raise BadInput(f"{file_name}: the workbook declares a DTD or entities, which a spreadsheet never needs")

    parser = expat.ParserCreate(namespace_separator="|")
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise BadInput(f"{file_name}: not a valid .ods file (content.xml: {expat.ErrorString(exc.code)})") from None
    unsaved.refuse(file_name)
    return areas


# BIFF records of cells that hold a value (calamine skips BLANK/MULBLANK): NUMBER, RK, LABELSST,
# LABEL, RSTRING, BOOLERR, FORMULA; MULRK holds a run of RK cells ending at the column in its last two bytes.
_XLS_VALUE_RECORDS = frozenset({0x0203, 0x027E, 0x00FD, 0x0204, 0x00D6, 0x0205, 0x0006})
_XLS_MULRK, _XLS_BOF, _XLS_BOUNDSHEET = 0x00BD, 0x0809, 0x0085
_XLS_FILEPASS = 0x002F  # the workbook globals of an encrypted workbook (RC4 / XOR obfuscation)


def _xls_areas(data: bytes, file_name: str) -> list[_Area]:
    """Used area of every sheet of an Excel 97-2003 workbook, from the cell records of its workbook stream."""
    import olefile

    try:
        # Checked here and opened as a stream: olefile takes bytes shorter than 1536 for a file name.
        if not data.startswith(olefile.MAGIC):
            raise BadInput(f"{file_name}: not a valid .xls file (not an Excel 97-2003 workbook)")
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            stream = next((s for s in ("Workbook", "Book") if ole.exists(s)), None)
            if stream is None:
                raise BadInput(f"{file_name}: not a valid .xls file (no workbook stream)")
            with ole.openstream(stream) as handle:
                book = handle.read(len(data) + 1)  # a stream cannot be longer than the file
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - olefile raises many types for a broken container
        raise BadInput(f"{file_name}: not a valid .xls file ({type(exc).__name__})") from None
    names: dict[int, str] = {}
    areas: dict[int, list] = {}
    current = None
    pos = 0
    while pos + 4 <= len(book):
        kind, size = struct.unpack_from("<HH", book, pos)
        body = book[pos + 4 : pos + 4 + size]
        if kind == _XLS_FILEPASS and current is None:
            raise BadInput(password_protected(file_name))
        if kind == _XLS_BOUNDSHEET and len(body) >= 8:
            offset, cch, flags = struct.unpack_from("<I", body)[0], body[6], body[7]
            raw = body[8 : 8 + (2 * cch if flags & 1 else cch)]
            names[offset] = raw.decode("utf-16-le" if flags & 1 else "latin-1", errors="replace")
        elif kind == _XLS_BOF and pos in names:
            current = areas.setdefault(pos, [names[pos], 0, 0])
        elif current is not None and len(body) >= 4 and (kind in _XLS_VALUE_RECORDS or kind == _XLS_MULRK):
            row, col = struct.unpack_from("<HH", body)
            if kind == _XLS_MULRK and len(body) >= 6:
                col = struct.unpack_from("<H", body, len(body) - 2)[0]
            current[1], current[2] = max(current[1], row + 1), max(current[2], col + 1)
        pos += 4 + size
    return [(name, rows, cols) for name, rows, cols in areas.values() if rows]


def _check_areas(areas: list[_Area], file_name: str, limits: Limits) -> None:
    total = 0
    for sheet, rows, cols in areas:
        if rows > limits.max_rows:
            raise BadInput(
                f"{file_name}: sheet {sheet[:60]!r} has cells down to row {rows}, over the limit of "
                f"{limits.max_rows} rows"
            )
        if cols > limits.max_columns:
            raise BadInput(
                f"{file_name}: sheet {sheet[:60]!r} has cells out to column {cols}, over the limit of "
                f"{limits.max_columns} columns"
            )
        total += rows * cols
    if total > limits.max_cells:
        raise BadInput(
            f"{file_name}: the sheets' used areas hold {total} cells, over the limit of {limits.max_cells} cells"
        )


# --------------------------------------------------------------------------- reading


def _read(data: bytes, file_name: str, fmt: str, limits: Limits) -> list[Sheet]:
    import python_calamine as calamine

    try:
        workbook = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - calamine raises its own and plain errors for a broken file
        raise BadInput(f"{file_name}: not a readable .{fmt} workbook ({_cause(exc)})") from None
    sheets = []
    with workbook:
        for meta in workbook.sheets_metadata:
            if meta.typ != calamine.SheetTypeEnum.WorkSheet:
                continue
            try:
                grid = workbook.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)
            except Exception as exc:  # noqa: BLE001 - as above
                raise BadInput(f"{file_name}: unreadable worksheet {meta.name[:60]!r} ({_cause(exc)})") from None
            sheets.append(
                Sheet(
                    meta.name,
                    [_row(file_name, meta.name, number, row, limits) for number, row in enumerate(grid, start=1)],
                )
            )
    return sheets


def _row(file_name: str, sheet: str, number: int, row: list, limits: Limits) -> list[object]:
    values: list[object] = []
    for position, value in enumerate(row):
        if isinstance(value, str):
            if len(value) > limits.max_cell_chars:
                raise cell_too_large(
                    file_name, f"sheet {sheet[:60]!r} cell {_cell_name(number, position)}", len(value), limits
                )
            value = value if value else None
        elif isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)  # every spreadsheet number is a float; 2017.0 is the year 2017
        values.append(value)
    return values


def _cell_name(row: int, position: int) -> str:
    letters, n = "", position + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row}"


def _cause(exc: BaseException) -> str:
    """A reader's exception on one line, short."""
    text = re.sub(r"\s+", " ", str(exc)).strip()[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
