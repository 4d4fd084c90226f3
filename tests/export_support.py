"""Monthly e-health exports for tests: the sample generator's lines, one cell changed, landed with a set mtime.

Shared by the test files that land hand-edited exports (one implementation instead of a copy per file).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from etl.sample import ehealth as sample
from etl.sources import ehealth_spec as spec

SEED = 11
# The month and seed the e-health pipeline tests land their exports for (tests/test_ehealth_pipeline.py and
# the files that build on its cases).
PIPELINE_SEED = 7
MARCH = dt.date(2017, 3, 1)


def export_lines(kind: str, month: dt.date, seed: int = SEED, suppressed=frozenset()) -> list[str]:
    """The lines of ``kind``'s export for ``month`` (``journalen``/``webbtidbok``), PLAIN style (``;``, a header)."""
    journal, web, _ = sample.month_values(month, seed)
    # The two modelled kinds, else a declared kind's values as the sample generator draws them.
    values = {spec.JOURNAL.kind: journal, spec.WEB_BOOKING.kind: web}.get(kind) or sample.declared_values(
        kind, month, seed
    )
    rows = sample.export_rows(kind, month, values, sample.PLAIN, suppressed)
    return [";".join(map(str, r)) for r in rows]


def set_cell(lines: list[str], region: str, column: int, value) -> list[str]:
    """``lines`` with column ``column`` of the line whose second cell is ``region`` (a code, or ``Riket``) set."""
    out = []
    for line in lines:
        cells = line.split(";")
        if cells[1] == region:
            cells[column] = str(value)
        out.append(";".join(cells))
    return out


def land(landing: Path, name: str, lines: list[str] | bytes, step: int = 0) -> Path:
    """Write ``lines`` (or bytes) as ``<landing>/ehealth/<name>``, modified ``step`` seconds after a fixed time."""
    folder = landing / "ehealth"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode())
    os.utime(path, (1_700_000_000 + step, 1_700_000_000 + step))
    return path


def pipeline_lines(kind: str, month: dt.date = MARCH, suppressed=frozenset()) -> list[str]:
    """:func:`export_lines` with the pipeline tests' seed: ``kind``'s export for ``month`` (March 2017 by default)."""
    return export_lines(kind, month, PIPELINE_SEED, suppressed)


def write_export(
    landing: Path,
    kind: str,
    month: dt.date = MARCH,
    lines: list[str] | None = None,
    data: bytes | None = None,
    ext: str = "csv",
) -> Path:
    """Write ``<landing>/ehealth/<kind>_<YYYY-MM>.<ext>``: ``data`` as given, else ``lines`` (default: the
    pipeline tests' export of ``month``) joined with newlines. Returns the path."""
    folder = landing / "ehealth"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}_{month:%Y-%m}.{ext}"
    path.write_bytes(data if data is not None else ("\n".join(lines or pipeline_lines(kind, month)) + "\n").encode())
    return path


def journal_logins(warehouse) -> dict[str, int]:
    """region → logins of March's published journal rows."""
    from etl import publish

    table = publish.read_table(str(warehouse), "ehealth_adoption").to_pandas()
    rows = table[(table.service == "patient_journal_online") & (table.metric == "logins")]
    return dict(zip(rows.region_code, rows.value.astype(int), strict=False))


def declared_exports(months: list[str], landed: frozenset[str] = frozenset()) -> list[str]:
    """``<kind>_<YYYY-MM>`` of every monthly export the spec declares for ``months``, month by month in the
    spec's order, except ``landed``: what the tests expect instead of a list of today's two kinds."""
    return [
        f"{kind}_{month}" for month in months for kind in spec.kinds_expected(month) if f"{kind}_{month}" not in landed
    ]


def declared_rows(month: str) -> int:
    """Rows of ``ehealth_adoption`` a month of every declared kind loads: regions × each kind's metrics."""
    from etl import regions

    return len(regions.REGION_CODES) * sum(len(spec.EXPORTS[kind].metrics) for kind in spec.kinds_expected(month))


def year_months(year: int) -> list[str]:
    return [f"{year}-{m:02d}" for m in range(1, 13)]
