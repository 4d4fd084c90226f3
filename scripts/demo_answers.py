"""The end of `make demo`: where the analyst outputs are, and one follow-up question answered.

Called by scripts/demo.py as ``python scripts/demo_answers.py <warehouse>``
after the followup DAG ran. Runs ``sql/01_programme_offers_by_year.sql``
against ``<warehouse>/followup.duckdb`` exactly as an analyst would.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "sql" / "01_programme_offers_by_year.sql"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: demo_answers.py <warehouse folder>", file=sys.stderr)
        return 2
    warehouse = Path(argv[1]).resolve()
    database = warehouse / "followup.duckdb"
    # Commands as typed in the project folder (where `make demo` runs), in a new shell: `.venv/bin/…`.
    typed = str(database.relative_to(ROOT)) if database.is_relative_to(ROOT) else str(database)
    exports = warehouse / "exports"
    if not database.exists():
        print(f"\n== follow-up: {database} not built yet (run: .venv/bin/python -m etl run followup)")
        return 0
    print("\n== follow-up for analysts")
    print(f"   DuckDB views:  .venv/bin/duckdb {typed}   (then: select * from followup_region_year)")
    for label, path in (("Excel:", exports / "followup_latest.xlsx"), ("Report:", exports / "followup_report.html")):
        print(f"   {label:<14} {path}" + ("" if path.exists() else "  (missing)"))
    print(f"   SQL questions: {ROOT / 'sql'}/*.sql")

    import duckdb

    sql = QUESTION.read_text(encoding="utf-8")
    question = " ".join(line[3:].strip() for line in sql.splitlines()[:3] if line.startswith("--"))
    print(f"\n== {question}")
    print(f"   ({QUESTION.relative_to(ROOT)})")
    with duckdb.connect(str(database), read_only=True) as con:
        result = con.execute(sql)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    shown = [
        "year",
        "regions_reported",
        "clinical_intro_year",
        "clinical_intro_year_answered",
        "study_salary",
        "study_salary_answered",
        "either_programme",
    ]
    index = [columns.index(c) for c in shown]
    print(
        "   "
        + "  ".join(
            f"{c:>14}" if i else f"{c:>6}"
            for i, c in enumerate(
                ["year", "reported", "clinical year", "(answered)", "study salary", "(answered)", "either"]
            )
        )
    )
    for row in rows:
        cells = ["–" if row[i] is None else str(row[i]) for i in index]
        print("   " + "  ".join(f"{c:>14}" if j else f"{c:>6}" for j, c in enumerate(cells)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
