"""Care-unit level daily web booking: ``webbtidbok_enheter_YYYY-MM.csv`` / ``.csv.gz`` (docs/input-formats.md §2b).

The large one (~120 000 lines a month, ~15 million over ten years), so it
is read as a stream: :func:`pyarrow.csv.open_csv` hands over blocks of a
few MB, each block is typed with vectorised pyarrow compute, and only the
typed columns of the month are kept. Memory is bounded by one month's
rows, never by how many months a run processes.

Values are parsed with the rules of :mod:`etl.swedish` and
:mod:`etl.regions` — one definition of a Swedish count, date and region —
applied once per *distinct* text of a block (a month has ~31 dates and a
few hundred distinct counts) and spread back to the lines with
:func:`pyarrow.compute.index_in`.

A ``.csv.gz`` file is decompressed on the fly (the stream never holds the
whole file); Excel's ``sep=`` first line names the delimiter and is skipped
like the header; a cell over the spreadsheet cell limit
(:data:`etl.sources.spreadsheet.LIMITS`) rejects the file whole, as it
does in every other reader.

Rules that need the whole month (a unit and day twice, dates outside the
month, malformed HSA ids) are checked by the ``ehealth_unit_daily`` suite,
not here: this module only turns text into typed values and rejects lines
that cannot be typed.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from etl import regions, storage, swedish
from etl.errors import BadInput
from etl.sources import spreadsheet
from etl.sources.ehealth_exports import (
    ENCODING_SAMPLE_BYTES,
    UNIT_KIND,
    detect_delimiter,
    detect_encoding,
    is_gzip,
    match_header,
    parse_file_name,
    sep_hint,
)
from etl.sources.ehealth_spec import UNITS

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow

BLOCK_SIZE = 4 << 20  # bytes per streamed block: a few MB keeps memory flat and overhead low
COUNT_COLUMNS = (("Bokningar", "bookings"), ("Avbokningar", "cancellations"), ("Ombokningar", "rebookings"))
WANTED = {
    "date": ("Datum", "Dag"),
    "region": ("Region", "Län"),
    "unit_hsa_id": ("HSA-id", "HSA id", "HSAid", "HSA-id enhet"),
    "unit_name": ("Enhet", "Enhetsnamn", "Vårdenhet"),
    **{metric: (label,) for label, metric in COUNT_COLUMNS},
}
# Control characters (NUL…): detect_encoding refuses a file with them in its first MB; further in,
# the stream checks each line, so a NUL never reaches unit_name (RE2 and re spell it the same way).
_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]"


@dataclass
class UnitMonth:
    """One unit-level file, read: typed rows (a pyarrow Table) and the lines that could not be typed."""

    source_file: str
    period: str
    rows: pyarrow.Table | None = None  # date, region_code, unit_hsa_id, unit_name, counts, row_number, raw
    rejected: list[dict] = field(default_factory=list)
    data_lines: int = 0
    file_error: str | None = None
    encoding: str | None = None
    delimiter: str | None = None

    @property
    def rows_in(self) -> int:
        loaded = self.rows.num_rows if self.rows is not None else 0
        return loaded + sum(r.get("rows_held", 1) for r in self.rejected)


@dataclass(frozen=True)
class Layout:
    """How a unit-level file's text is laid out, from its first MB."""

    encoding: str
    delimiter: str
    header: list[str]
    header_line: int  # 1-based physical line of the header (2 after a sep= line); data starts below it


def _open_text_bytes(fs, path: str, name: str):
    """The file's bytes as a stream: decompressed on the fly for ``.gz``."""
    import gzip

    handle = storage.open_landed(fs, path)  # locally: a regular file, no link followed
    return gzip.GzipFile(fileobj=handle) if is_gzip(name) else handle


def layout(fs, path: str, name: str) -> Layout:
    """Encoding, delimiter (a ``sep=`` line's, else detected), header cells and header line; BadInput if unusable."""
    import csv
    import zlib

    try:
        with _open_text_bytes(fs, path, name) as handle:
            sample = handle.read(ENCODING_SAMPLE_BYTES + 1)
    except EOFError:
        raise BadInput(f"{name}: the gzip file is cut short (still being written, or truncated)") from None
    except (OSError, zlib.error) as exc:
        if not is_gzip(name):
            raise
        raise BadInput(f"{name}: not a readable gzip file ({exc})") from None
    complete = len(sample) <= ENCODING_SAMPLE_BYTES
    encoding = detect_encoding(sample[:ENCODING_SAMPLE_BYTES], name, complete=complete)
    text = sample[:ENCODING_SAMPLE_BYTES].decode(encoding, errors="ignore")
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if line.strip()), None)
    hint = sep_hint(lines[at]) if at is not None else None
    if hint is not None and at is not None:  # (a hint is only read where at is set)
        at = next((i for i in range(at + 1, len(lines)) if lines[i].strip()), None)
    if at is None:
        raise BadInput(f"{name}: the file is empty")
    delimiter = hint or detect_delimiter(lines[at], WANTED, name, at + 1)
    try:
        cells = next(csv.reader([lines[at]], delimiter=delimiter))
    except csv.Error:
        raise spreadsheet.cell_too_large(name, f"line {at + 1} (the header)", len(lines[at]), at_least=True) from None
    return Layout(encoding, delimiter, cells, at + 1)


def header_and_encoding(fs, path: str, name: str) -> tuple[str, str, list[str]]:
    """(encoding, delimiter, header cells) detected from the start of a unit-level file; BadInput if unusable."""
    found = layout(fs, path, name)
    return found.encoding, found.delimiter, found.header


def _map_distinct(values, parse):
    """Apply ``parse`` (text → (value, error)) once per distinct text in ``values``.

    A month has about 31 distinct dates and a few hundred distinct counts
    among its ~120 000 lines, so parsing each distinct text once with the
    rules of :mod:`etl.swedish` is both the single definition of a Swedish
    value and faster than any per-line vectorised parse. Returns (parsed
    values, error texts — null where none), aligned with ``values``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct = pc.unique(values)
    if len(distinct) == 0:
        return pa.nulls(len(values)), pa.nulls(len(values), pa.string())
    results = [parse(text) for text in distinct.to_pylist()]
    index = pc.index_in(values, value_set=distinct)
    parsed = pa.array([r[0] for r in results])
    errors = pa.array([r[1] for r in results], pa.string())
    return parsed.take(index), errors.take(index)


_INT64_MAX = 2**63 - 1


def _parse_count_text(text: str):
    if swedish.is_suppressed(text):
        return None, None
    try:
        value = swedish.parse_count(text)
    except BadInput as exc:
        return None, str(exc)
    assert value is not None  # parse_count is None only for the suppressed markers, returned above
    if value > _INT64_MAX:
        return None, f"number too large: {text[:40]!r}"
    return value, None


def _parse_date_text(text: str):
    try:
        value = swedish.parse_date(text)
    except BadInput as exc:
        return None, str(exc)
    return (value, None) if value is not None else (None, "date is missing")


def _parse_region_text(text: str):
    try:
        return regions.resolve_region(text), None
    except BadInput as exc:
        return None, str(exc)


def _type_block(batch, first_numbers, source_file: str, delimiter: str):
    """One streamed block of text columns → (typed pyarrow Table, rejected line dicts)."""
    # Size: one vectorised check per rule of §2b over a block of rows; the block is the unit of streaming.
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    null_text = pa.scalar(None, pa.string())
    raw_cols = [batch.column(i) for i in range(batch.num_columns)]
    raw = pc.binary_join_element_wise(*raw_cols, delimiter)
    trimmed = {name: pc.utf8_trim_whitespace(batch.column(name)) for name in WANTED}

    # A blank line arrives as a row of empty fields: it is not data. Only a
    # line with an empty Datum can be blank, so only those are looked at.
    maybe_blank = pc.equal(pc.utf8_length(trimmed["date"]), 0)
    if pc.any(maybe_blank).as_py():
        blank = maybe_blank
        for col in raw_cols:
            blank = pc.and_(blank, pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        if pc.any(blank).as_py():
            keep = pc.invert(blank)
            trimmed = {k: v.filter(keep) for k, v in trimmed.items()}
            raw = raw.filter(keep)
            first_numbers = first_numbers[np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)]

    errors: list[tuple[str, pa.Array]] = []

    control = pc.match_substring_regex(raw, _CONTROL)
    if pc.any(control).as_py():
        flagged = pa.scalar("control character (NUL or similar) in the line", pa.string())
        errors.append(("line", pc.if_else(control, flagged, null_text)))

    parsed, err = _map_distinct(trimmed["date"], _parse_date_text)
    dates = pc.cast(parsed, pa.date32())
    errors.append(("Datum", err))

    codes, err = _map_distinct(trimmed["region"], _parse_region_text)
    codes = pc.cast(codes, pa.string())
    errors.append(("Region", err))

    counts = {}
    for label, metric in COUNT_COLUMNS:
        parsed, err = _map_distinct(trimmed[metric], _parse_count_text)
        counts[metric] = pc.cast(parsed, pa.int64())
        errors.append((label, err))

    bad = None
    for _, err in errors:
        if err.null_count == len(err):
            continue
        flag = pc.is_valid(err)
        bad = flag if bad is None else pc.or_(bad, flag)
    rejected: list[dict] = []
    good = None
    if bad is not None and pc.any(bad).as_py():
        bad_idx = np.flatnonzero(np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool))
        texts = {label: err.take(pa.array(bad_idx)).to_pylist() for label, err in errors}
        raw_bad = raw.take(pa.array(bad_idx)).to_pylist()
        for j, i in enumerate(bad_idx):
            reasons = [f"{label}: {texts[label][j]}" for label, _ in errors if texts[label][j]]
            rejected.append(
                {
                    "source_file": source_file,
                    "row_number": int(first_numbers[i]),
                    "raw": re.sub(_CONTROL, "\ufffd", raw_bad[j][:1000]),
                    "reason": "; ".join(reasons),
                    "rows_held": 1,
                }
            )
        good = pc.invert(bad)

    names = trimmed["unit_name"]
    table = pa.table(
        {
            "date": dates,
            "region_code": codes,
            "unit_hsa_id": trimmed["unit_hsa_id"],
            # Unit names are optional; an empty cell is a missing name, not a name "".
            "unit_name": pc.if_else(pc.equal(pc.utf8_length(names), 0), null_text, names),
            **counts,
            "row_number": pa.array(first_numbers, pa.int64()),
            "raw": raw,
        }
    )
    if good is not None:
        table = table.filter(good)
    return table, rejected


def read_unit_daily(source_file: str, *, block_size: int = BLOCK_SIZE, location: str | None = None) -> UnitMonth:
    """Stream one ``webbtidbok_enheter_YYYY-MM.csv`` (or ``.csv.gz``) into typed rows; never raises for bad content.

    ``location`` is where to open it when the store spells the name otherwise than ``source_file``.
    Storage failures (other than a broken gzip stream) raise; bad content is a rejected file or line.
    """
    # Size: the streaming loop over a 1.4-million-row file: blocks, carry-over lines, limits and accounting
    # together.
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    file_name = posixpath.basename(source_file)
    name = parse_file_name(file_name)
    if name.kind != UNIT_KIND:
        raise BadInput(f"{file_name}: not a unit-level file")
    out = UnitMonth(source_file=source_file, period=name.period)
    fs, path = storage.filesystem(location or source_file)  # location: the store's own spelling of the name
    invalid: list[dict] = []
    try:
        found = layout(fs, path, file_name)
        out.encoding, out.delimiter, header = found.encoding, found.delimiter, found.header
        columns = match_header(header, WANTED, file_name)
    except BadInput as exc:
        return _rejected_file(out, fs, path, str(exc))

    by_index = {i: f for f, i in columns.items()}
    column_names = [by_index.get(i, f"_extra_{i}") for i in range(len(header))]
    invalid_numbers: list[int] = []

    def on_invalid(row) -> str:
        # Lines with too few fields (a truncated file) or too many (a stray delimiter).
        invalid_numbers.append(int(row.number))
        invalid.append(
            {
                "source_file": source_file,
                "row_number": int(row.number),
                "raw": (row.text or "")[:1000],
                "reason": f"{row.actual_columns} fields, expected {row.expected_columns} "
                "(truncated line or stray delimiter)",
                "rows_held": 1,
            }
        )
        return "skip"

    read_options = pacsv.ReadOptions(
        # Everything down to the header (a sep= line, blank lines) is skipped; data lines keep their numbers.
        column_names=column_names,
        skip_rows=found.header_line,
        block_size=block_size,
        # One thread so the reader knows every line's number (for quarantine).
        use_threads=False,
        encoding="utf8" if out.encoding == "utf-8-sig" else out.encoding,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=out.delimiter, invalid_row_handler=on_invalid, ignore_empty_lines=False
    )
    convert_options = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in column_names}, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    pieces: list[pa.Table] = []
    rejected: list[dict] = []
    next_line = found.header_line + 1
    skipped: set[int] = set()
    try:
        # Opened here, not by pyarrow from the path: a link swapped in since layout() is refused, not followed.
        handle = storage.open_landed(fs, path, buffering=0)
    except BadInput as exc:
        return _rejected_file(out, fs, path, str(exc))
    max_chars = spreadsheet.LIMITS.max_cell_chars
    try:
        # pyarrow inflates a gzip stream itself, block by block, local or remote alike.
        source = pa.input_stream(handle, compression="gzip") if is_gzip(file_name) else handle
        reader = pacsv.open_csv(
            source, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
        for batch in reader:
            if batch.num_rows == 0:
                continue
            # Line numbers of this block's rows: the next ones not taken by an invalid line.
            skipped.update(invalid_numbers)
            invalid_numbers.clear()
            candidates = np.arange(next_line, next_line + batch.num_rows + len(skipped) + 1, dtype=np.int64)
            if skipped:
                candidates = candidates[~np.isin(candidates, np.fromiter(skipped, dtype=np.int64))]
            numbers = candidates[: batch.num_rows]
            next_line = int(numbers[-1]) + 1
            skipped = {n for n in skipped if n >= next_line}
            for column in batch.columns:
                lengths = pc.utf8_length(column)
                longest = pc.max(lengths).as_py() or 0
                if longest > max_chars:
                    line = int(numbers[pc.index(lengths, longest).as_py()])
                    raise spreadsheet.cell_too_large(file_name, f"line {line}", longest)
            table, bad = _type_block(batch, numbers, source_file, out.delimiter)
            pieces.append(table)
            rejected.extend(bad)
    except BadInput as exc:
        return _rejected_file(out, fs, path, str(exc))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0][:200]
        if "UTF8" in message or isinstance(exc, UnicodeDecodeError):
            message = f"not valid {out.encoding} text further into the file (mixed encodings?): {message}"
        return _rejected_file(out, fs, path, f"{file_name}: unreadable CSV: {message}")
    except (OSError, EOFError) as exc:
        if not is_gzip(file_name):
            raise  # the store failing is not bad input
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return _rejected_file(out, fs, path, f"{file_name}: the gzip file is broken or cut short ({message})")
    finally:
        handle.close()
    out.rejected = sorted(invalid + rejected, key=lambda r: r["row_number"])
    out.rows = pa.concat_tables(pieces) if pieces else None
    out.data_lines = out.rows_in
    if out.data_lines == 0:
        return _rejected_file(out, fs, path, f"{file_name}: no data lines under the header")
    if invalid:
        # The very last line short of fields: the file ends mid-line, an upload cut short. Loading the rest
        # would publish part of a month as if it were the month, also when it replaces nothing.
        last_good = pc.max(out.rows["row_number"]).as_py() if out.rows is not None and out.rows.num_rows else 0
        last = invalid[-1]
        if (
            last["row_number"] > (last_good or 0)
            and last["reason"].split(" ")[0].isdigit()
            and int(last["reason"].split(" ")[0]) < len(header)
        ):
            return _rejected_file(
                out,
                fs,
                path,
                f"{file_name}: the last line (line {last['row_number']}) is cut "
                "short: the file was not transferred whole; send it again",
            )
    return out


def _rejected_file(out: UnitMonth, fs, path: str, reason: str) -> UnitMonth:
    """The whole file is unusable: one quarantine entry holding all its lines."""
    lines, last = 0, b"\n"
    try:
        with _open_text_bytes(fs, path, posixpath.basename(out.source_file)) as handle:
            while block := handle.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, EOFError, BadInput):
        pass  # a broken gzip: the lines before the break are counted (a link refused: none are read)
    lines += last != b"\n"  # a last line without a newline is a line too
    lines -= 1  # the header is not data
    out.file_error = reason
    out.rows = None
    out.rejected = [
        {"source_file": out.source_file, "row_number": 0, "raw": None, "reason": reason, "rows_held": max(1, lines)}
    ]
    out.data_lines = out.rows_in
    return out


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a YYYY-MM month."""
    first = dt.date(int(period[:4]), int(period[5:]), 1)
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - dt.timedelta(days=1)


class ReadAhead:
    """Reads the next month's unit-level file in a background thread while this month is validated.

    Reading is pyarrow work that runs outside the GIL, validation and
    publishing mostly Python, so on a multi-core worker a backfill overlaps
    the two. At most one month is read ahead: memory stays bounded by two
    months of unit rows, whatever the number of months. Iterating yields,
    per month, a callable returning that month's :class:`UnitMonth` (or
    ``None`` without a unit file); an error reading the file is raised by
    the callable, in the month it belongs to.
    """

    def __init__(self, months: list[dict[str, list]]):
        self._uris = [self._unit_uri(files) for files in months]
        self._pool: ThreadPoolExecutor | None = None  # from __enter__ to __exit__

    @staticmethod
    def _unit_uri(month_files: dict[str, list]) -> str | None:
        files = month_files.get(UNITS.kind) or []
        return files[0] if len(files) == 1 else None  # several files: the pipeline refuses the month

    def __enter__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unit-read-ahead")
        return self

    def __exit__(self, *exc_info):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self):
        pool = self._pool
        if pool is None:
            raise RuntimeError("ReadAhead is iterated inside its `with` block only")

        def start(landed):
            if landed is None:
                return None
            return pool.submit(read_unit_daily, landed.uri, location=landed.path)

        pending = start(self._uris[0]) if self._uris else None
        for following in [*self._uris[1:], None]:
            current, pending = pending, start(following)
            yield (lambda future=current: future.result() if future is not None else None)
