"""The e-health exports' domain rules: what must hold within a line, across a file and against the month.

Pure functions over what :mod:`etl.sources.ehealth_exports` and
:mod:`etl.sources.unit_daily` read — no warehouse, no validation framework:

* :func:`line_checks` — the rules across the metrics of one line
  (``ehealth_spec.LINE_RULES``), as the ``_check_*`` values the suites test;
* :func:`regions_lacking` — the 21-regions rule;
* :func:`reconciliation` — the regions of a file against its national total
  line, within :data:`RECONCILIATION_TOLERANCE`;
* :func:`unit_sum_warnings` — a month's unit-level daily bookings against the
  regional bookings (a unit file cut at a line boundary shows here).

:mod:`etl.pipelines.ehealth_adoption` applies them to a month's files.
"""

from __future__ import annotations

from collections import defaultdict

from etl import regions
from etl.sources import ehealth_exports as exports
from etl.sources import ehealth_spec as spec

RECONCILIATION_TOLERANCE = 0.005  # the same figure as the national suite's max_value


def line_checks(rows: list[dict]) -> dict[int, dict[str, bool]]:
    """Per input line (row_number): the cross-metric rules, to be tested on every long row of the line."""
    by_line: dict[int, dict[str, int | None]] = defaultdict(dict)
    for row in rows:
        by_line[row["row_number"]][row["metric"]] = row["value"]

    def holds(values: dict, rule: spec.LineRule) -> bool:
        a, b = values.get(rule.lesser), values.get(rule.greater)
        return a is None or b is None or a <= b

    # Every rule on every line: a rule of the other export holds trivially (its metrics are absent).
    return {number: {rule.check: holds(values, rule) for rule in spec.LINE_RULES} for number, values in by_line.items()}


def regions_lacking(present: set[str]) -> list[str]:
    """``"09 Region Gotland"`` for each of the 21 regions not in ``present`` (region codes): the 21-regions rule,
    judged on the rows that would be published (after quarantine)."""
    return [f"{c} {regions.BY_CODE[c].region_name}" for c in regions.REGION_CODES if c not in present]


def national_row_problem(export: exports.ExportRows) -> str | None:
    """Why ``export``'s national row (Riket) cannot be reconciled against, or None when it can.

    The row is missing (no line is the national total), unreadable (its line
    was rejected: a truncated line, an empty Månad, a value that is no
    number), there more than once, or without a value for a metric (an
    unsaved ``=SUM()``, an empty cell: a national total is never
    disclosure-suppressed). Any of these blocks the file: the month cannot
    be reconciled, and a month never publishes without its reconciliation.
    """
    if export.file_error is not None:
        return None
    rejected = sorted(export.rejected_national, key=lambda r: r["row_number"])
    if rejected:
        first = rejected[0]
        more = f", and {len(rejected) - 1} more line(s)" if len(rejected) > 1 else ""
        what = f"line {first['row_number']}: {first['reason']}{more}"
    elif export.national_lines > 1:
        lines = sorted({r["row_number"] for r in export.national})
        what = f"{export.national_lines} national lines: {', '.join(map(str, lines[:5]))}"
    elif export.national_lines == 0:
        # A spreadsheet's total row ("Summa", a blank region) is quarantined as a region line: name the last one.
        last = max(export.rejected_regional, key=lambda r: r["row_number"], default=None)
        what = "no line for it" + (
            f"; line {last['row_number']} was not read: {last['reason']}"
            if last is not None and last["row_number"]
            else ""
        )
    else:
        empty = [export.spec.metric(r["metric"]).header for r in export.national if r["value"] is None]
        if not empty:
            return None
        line = export.national[0]["row_number"]
        what = f"line {line}: no value for {', '.join(empty)}"
    return (
        f"the national row (Riket) is missing or unreadable ({what}): the month cannot be reconciled; "
        "nothing of it is published"
    )


def stated_suppressions(export: exports.ExportRows, data: bytes) -> set[tuple[int, str]]:
    """(line, metric) of every cell of ``export`` that holds a suppression marker (``..``, ``–``, ``-``) as text.

    What the sender wrote, not what was left empty: an empty cell (or a
    formula without a saved result) reads as null too, but says nothing.
    ``data`` is the file's bytes (read again: only asked when a published
    value would become null). A file that no longer reads gives nothing.
    """
    from etl import swedish
    from etl.errors import BadInput

    wanted = exports.wanted_columns(export.spec)
    try:
        if export.name.is_spreadsheet:
            header, records = exports.sheet_records(data, export.name.kind)
        else:
            plain = exports.gunzip(data, "", exports.MAX_EXPORT_BYTES) if exports.is_gzip(export.source_file) else data
            text, _ = exports.decode_text(plain, "")
            header, records, _ = exports.csv_records(text, "", wanted)
        columns = exports.match_header([exports.cell_text(c) for c in header], wanted, "")
    except BadInput:
        return set()
    stated = set()
    for number, cells in records:
        for metric in export.spec.metric_names:
            at = columns[metric]
            if at < len(cells):
                text = exports.cell_text(cells[at]).strip() if isinstance(cells[at], str) else ""
                if text and swedish.is_suppressed(text):
                    stated.add((number, metric))
    return stated


def reconciliation(export: exports.ExportRows, regional_rows) -> tuple[dict[str, float], list[str], list[str]]:
    """Per metric of one export: how far the regions are from the national total.

    Returns (metric → relative deviation, or -1 where it cannot be checked;
    readable details of deviations over the tolerance; warnings). Where
    every region's cell is known the regions must sum to the national value;
    where some are suppressed the known ones may not exceed it. Regions
    whose line was quarantined make the metric uncheckable (a warning).
    """
    deviations: dict[str, float] = {}
    details: list[str] = []
    warnings: list[str] = []
    national_lines = {row["row_number"] for row in export.national}
    if export.file_error is not None:
        return deviations, details, warnings
    if not national_lines:
        if not export.rejected_national:
            warnings.append(
                f"{export.name.kind}_{export.name.period}: no national total row (Riket); "
                "the regions could not be reconciled"
            )
        return deviations, details, warnings
    mine = regional_rows[(regional_rows["source_file"] == export.source_file)]
    for metric in export.spec.metric_names:
        national = [r["value"] for r in export.national if r["metric"] == metric]
        cells = mine[mine["metric"] == metric]
        if len(national_lines) != 1 or national[0] is None:
            deviations[metric] = -1.0  # suppressed national cell, or duplicate national rows (quarantined)
            continue
        total = national[0]
        if cells["region_code"].nunique() < len(regions.REGION_CODES):
            deviations[metric] = -1.0
            warnings.append(
                f"{export.name.kind}_{export.name.period} {metric}: reconciliation skipped, "
                f"{len(regions.REGION_CODES) - cells['region_code'].nunique()} region(s) missing or quarantined"
            )
            continue
        known = cells["value"].dropna()
        summed = sum(int(v) for v in known)  # Python ints: an int64 sum of 21 large cells would wrap
        if len(known) == len(cells):
            deviation = abs(summed - total) / max(total, 1)
        else:
            deviation = max(0, summed - total) / max(total, 1)
        deviations[metric] = float(deviation)
        if deviation > RECONCILIATION_TOLERANCE:
            suppressed = len(cells) - len(known)
            details.append(
                f"{export.name.kind}_{export.name.period} {metric}: regions sum to {summed:,} vs national "
                f"{total:,} ({(summed - total) / max(total, 1):+.1%}"
                + (f", {suppressed} suppressed cell(s)" if suppressed else "")
                + ")"
            )
    return deviations, details, warnings


def unit_sum_warnings(period: str, unit_rows, regional_rows) -> list[str]:
    """The month's daily unit bookings, summed per region, against the regional ``bookings``."""
    if regional_rows is None:
        return [f"{period}: no regional web booking file this month; unit-level bookings not compared"]
    regional = regional_rows[
        (regional_rows["service"] == exports.SERVICE_WEB_BOOKING) & (regional_rows["metric"] == "bookings")
    ]
    if regional.empty:
        return [f"{period}: no usable regional web booking rows; unit-level bookings not compared"]
    import pandas as pd

    unit_sums = unit_rows.groupby("region_code")["bookings"].sum() if len(unit_rows) else pd.Series(dtype="Int64")
    off = []
    for code, value in zip(regional["region_code"], regional["value"], strict=True):
        if pd.isna(value):
            continue  # suppressed regional cell: nothing to compare with
        summed = unit_sums.get(code)
        units = 0 if summed is None or pd.isna(summed) else int(summed)
        if units != int(value):
            off.append(f"{code} (units {units:,} vs region {int(value):,})")
    if not off:
        return []
    return [
        f"{period}: daily unit bookings do not sum to the regional bookings in {len(off)} region(s): "
        + ", ".join(off[:6])
        + (" …" if len(off) > 6 else "")
    ]
