"""`make demo`: sample data → every pipeline through Airflow itself → a summary.

Runs each DAG with `airflow dags test` (a real DAG run on the project-local
SQLite metadata DB under .airflow/), through scripts/dags_test.py so that
each task's log is written where the Airflow UI reads it (`make airflow`
afterwards shows the demo's runs with their logs), then prints what landed
in the warehouse and answers one question with DuckDB.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LANDING = Path(os.environ.get("ETL_LANDING_URI", ROOT / "landing"))
WAREHOUSE = Path(os.environ.get("ETL_WAREHOUSE_URI", ROOT / "warehouse"))
SAMPLE_ARGS = ["--years", "2016-2025", "--units", os.environ.get("DEMO_UNITS", "4000"), "--unit-months", "12"]

# (dag id, run configuration) in dependency order.
DAG_RUNS = [
    ("reference_data", {"offline_snapshot": True}),
    ("county_reports", {}),
    ("ehealth_adoption", {"period": "all"}),
    ("followup", {}),
]


PROGRESS = re.compile(r"\b[a-z_]+: \d+/\d+ \w+ \(\d+ %\)[^\[]*")  # up to Airflow's "[logger] dag_id=…" trailer


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(cmd: list[str], log_name: str | None = None) -> float:
    started = time.monotonic()
    if log_name:
        log_path = Path(os.environ["AIRFLOW_HOME"]) / "logs-demo" / f"{log_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            # The whole output goes to the log; the pipelines' progress lines (months done of how many,
            # rows per second: etl.pipelines.common.Progress) are shown too, so a long DAG is not silent.
            process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if PROGRESS.search(line):
                    print("   " + PROGRESS.search(line).group(0).rstrip(), flush=True)
            result = subprocess.CompletedProcess(cmd, process.wait())
        if result.returncode != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            print("\n".join(tail))
            raise SystemExit(f"demo: {' '.join(cmd[:4])} failed (full log: {log_path})")
    else:
        subprocess.run(cmd, cwd=ROOT, check=True)
    return time.monotonic() - started


def airflow_env() -> None:
    os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW_VAR_ETL_LANDING_URI"] = str(LANDING)
    os.environ["AIRFLOW_VAR_ETL_WAREHOUSE_URI"] = str(WAREHOUSE)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    # The sample files were written a moment ago; they are complete, not still arriving.
    os.environ.setdefault("ETL_LANDING_SETTLE_SECONDS", "0")


def load_log_outcomes(since: dt.datetime) -> str:
    """What the load log says a DAG run did: ", nothing new" or ", 3 published, 9 unchanged" ("" if unreadable).

    A rerun over unchanged landing must say so instead of a bare "success" (issue 25 §2).
    """
    from etl import publish

    try:
        rows = publish.read_load_log(str(WAREHOUSE)).to_pylist()
        counts = Counter(r["outcome"] for r in rows if r["started_at"] is not None and r["started_at"] >= since)
    except Exception:  # noqa: BLE001 - a summary line only; the run itself succeeded
        return ""
    if not counts:
        return ""
    if set(counts) == {"nothing_new"}:
        return ", nothing new"
    return ", " + ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in sorted(counts.items()))


def main() -> int:
    total = time.monotonic()
    airflow_env()
    marker = LANDING / ".sample-args"
    if marker.exists() and marker.read_text() == " ".join(SAMPLE_ARGS):
        step(f"sample data already in {LANDING} (delete it to regenerate)")
    elif marker.exists():
        # `etl sample` writes beside no other delivery: a sample of other settings is not overwritten.
        print(
            f"error: {LANDING} holds a sample made with other settings ({marker.read_text().strip()}); "
            "`make clean` removes it with its warehouse, then `make demo` writes the new one",
            file=sys.stderr,
        )
        return 1
    else:
        step(f"writing synthetic sample data to {LANDING}")
        run([str(BIN / "python"), "-m", "etl", "sample", "--out", str(LANDING), *SAMPLE_ARGS])
        marker.write_text(" ".join(SAMPLE_ARGS))

    step("preparing Airflow (SQLite metadata DB in .airflow/)")
    run([str(BIN / "airflow"), "db", "migrate"], "db-migrate")
    run([str(BIN / "airflow"), "pools", "set", "etl_warehouse_writer", "1", "one writer per warehouse"], "pools")

    dags_present = {p.stem for p in (ROOT / "dags").glob("*.py")}
    for dag_id, conf in DAG_RUNS:
        if dag_id not in dags_present:
            print(f"   {dag_id}: not built yet, skipped")
            continue
        # `airflow dags test`, with the task logs the UI shows (scripts/dags_test.py).
        since = dt.datetime.now(dt.UTC)
        seconds = run(
            [str(BIN / "python"), str(ROOT / "scripts" / "dags_test.py"), dag_id, "-c", json.dumps(conf)], dag_id
        )
        log = Path(os.environ["AIRFLOW_HOME"]) / "logs-demo" / f"{dag_id}.log"
        print(f"   {dag_id}: success in {seconds:.1f} s{load_log_outcomes(since)} (log {log})", flush=True)

    summary(WAREHOUSE)
    print(f"\ndemo finished in {time.monotonic() - total:.0f} s; data docs: {WAREHOUSE}/_data_docs/index.html")
    return 0


def shown(path: Path) -> str:
    """A path as typed in the project folder (where `make demo` runs): relative when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def summary(warehouse: Path) -> None:
    """The end of the demo: each table's rows, an example DuckDB query, one follow-up question answered.

    The commands it prints run as typed from the project folder in a new shell
    (`.venv/bin/…`; tests/test_commands_as_typed.py runs them).
    """
    step(f"warehouse {warehouse}")
    sys.path.insert(0, str(ROOT))
    from etl import status

    rows = status.summary(str(warehouse))
    print(f"   {'table':<28}{'rows':>12}{'quarantined':>14}")
    for row in rows:
        print(f"   {row['table']:<28}{row['rows']:>12}{row['quarantined']:>14}")
    planted_defects(warehouse, rows)

    step("an example DuckDB query")
    import duckdb

    query = (
        "select region_code, population\n"
        "from population\n"
        "where year = (select max(year) from population)\n"
        "order by population desc limit 5"
    )
    database = warehouse / "followup.duckdb"
    if database.exists():
        print(f"   -- .venv/bin/duckdb {shown(database)}")
        print("   " + query.replace("\n", "\n   ") + ";")
        with duckdb.connect(str(database), read_only=True) as con:
            print(con.sql(query))
    extra = ROOT / "scripts" / "demo_answers.py"
    if extra.exists():
        sys.stdout.flush()
        subprocess.run([str(BIN / "python"), str(extra), str(warehouse)], cwd=ROOT, check=True)


def planted_defects(warehouse: Path, rows: list[dict], landing: Path = LANDING) -> None:
    """Name the quarantined rows the sample planted on purpose (``sample-defects.json``), and any it did not.

    So an analyst does not take a planted defect for bad data, nor bad data for a planted defect.
    """
    manifest = landing / "sample-defects.json"  # etl/sample/county_reports.py DEFECTS_FILE
    if not manifest.exists():
        return
    from etl import publish

    planted = json.loads(manifest.read_text(encoding="utf-8"))["defects"]
    found: dict[str, dict[str, int]] = {d["file"]: {} for d in planted}
    other = 0
    for row in rows:
        if not row["quarantined"]:
            continue
        for held in publish.read_quarantine(str(warehouse), row["table"]).to_pylist():
            source = str(held["source_file"] or "").replace("\\", "/")
            file = next((f for f in found if source.endswith("/" + f)), None)
            if file is None:
                other += held["rows_held"] or 1
            else:
                found[file][row["table"]] = found[file].get(row["table"], 0) + (held["rows_held"] or 1)
    for defect in planted:
        where = ", ".join(f"{n} in {t}" for t, n in found[defect["file"]].items()) or "nothing quarantined"
        print(f"   planted on purpose, not bad data: {defect['file']} ({defect['defect']}; {where})")
        print(f"     {defect['why']}")
    if other:
        print(f"   {other} quarantined row(s) NOT planted by the sample: bad data to look at")
    elif planted:
        print("   every quarantined row above is one the sample planted")


if __name__ == "__main__":
    raise SystemExit(main())
