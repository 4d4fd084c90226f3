"""5. Analyst queries: each sql/ follow-up query via DuckDB on the ten-year sample.

Opens ``followup.duckdb`` (views over the Parquet) as an analyst would and
times each query, median of 7 after one warm-up. Baseline in the same run:
``select count(*)`` over the unit-level table (the largest scan an analyst
can start). Target: < 100 ms per query.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, median, sample_warehouse, table  # noqa: E402

REPEATS = 7


def timed(con, sql: str) -> tuple[float, int]:
    con.execute(sql).fetchall()  # warm-up: file metadata, OS cache
    times, rows = [], 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        times.append(time.perf_counter() - start)
    return median(times), rows


def main() -> None:
    import duckdb

    _, warehouse = sample_warehouse()
    con = duckdb.connect(str(warehouse / "followup.duckdb"), read_only=True)
    base, _ = timed(con, "select count(*) from ehealth_unit_daily")
    rows = [["(baseline: count(*) ehealth_unit_daily)", base * 1000, 1.0, 1, "-"]]
    for path in sorted((ROOT / "sql").glob("*.sql")):
        seconds, n = timed(con, path.read_text(encoding="utf-8"))
        rows.append([path.name, seconds * 1000, seconds / base, n, "yes" if seconds < 0.1 else "NO"])
    print(f"Analyst queries on the 2016–2025 sample, median of {REPEATS} ({machine()})")
    print(table(["query", "ms", "x baseline", "rows", "< 100 ms"], rows))


if __name__ == "__main__":
    main()
