"""Nothing doubled: every pipeline run twice on the same input leaves every table exactly as it was.

The sample input (``python -m etl sample --years 2016-2016 --units 20
--unit-months 2``: API snapshot, county reports with one correction, twelve
months of e-health exports, two months of unit-level files) is loaded once
by all four pipelines. Each test then runs pipelines again on the same
input — as a plain rerun, as a month-by-month backfill, as a re-delivered
report — and compares a content hash of every table (business columns, rows
sorted) and of every quarantine with the first load, and checks that no
table holds a key twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from etl import publish, schemas
from etl.config import Settings
from etl.pipelines import county_reports, ehealth_adoption, followup, reference
from etl.pipelines.common import RunReport
from tests.settings_support import local_settings

pytestmark = pytest.mark.slow  # a full load of a sample year, then reruns: ~30 s

ROOT = Path(__file__).resolve().parent.parent
YEAR = 2016
SYSTEM_TABLES = {"_load_log", "_quarantine"}


def run_all(settings: Settings) -> dict[str, RunReport]:
    """The four pipelines in dependency order, as ``python -m etl run all`` runs them."""
    return {
        "reference": reference.run(settings, year=YEAR, offline_snapshot=True),
        "county_reports": county_reports.run(settings),
        "ehealth_adoption": ehealth_adoption.run(settings),
        "followup": followup.run(settings),
    }


def content_hash(rows: list[dict]) -> str:
    """Order-independent hash of rows (each row as canonical JSON, the lines sorted)."""
    lines = sorted(json.dumps(row, sort_keys=True, default=str, ensure_ascii=False) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def snapshot(warehouse_uri: str) -> dict[str, tuple[int, str]]:
    """(rows, content hash) of every table and of its quarantine, asserting no duplicate keys on the way."""
    state = {}
    q_schema = schemas.get("_quarantine")
    for schema in schemas.all_tables():
        if schema.name in SYSTEM_TABLES:
            continue
        table = publish.read_table(warehouse_uri, schema.name)
        rows = table.select(schema.business_columns).to_pylist()
        keys = Counter(tuple(row[k] for k in schema.key) for row in rows)
        doubled = [key for key, n in keys.items() if n > 1]
        assert not doubled, f"{schema.name}: key {schema.key} twice, e.g. {doubled[:3]}"
        state[schema.name] = (len(rows), content_hash(rows))
        quarantine = publish.read_quarantine(warehouse_uri, schema.name)
        # source_file is lineage, but in the quarantine it is also the key: which file a rejected row came from.
        q_rows = quarantine.select([*q_schema.business_columns, "source_file"]).to_pylist()
        assert len({tuple(r[k] for k in q_schema.key) for r in q_rows}) == len(q_rows), schema.name
        state[f"_quarantine/{schema.name}"] = (len(q_rows), content_hash(q_rows))
    return state


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerun")
    landing, warehouse = root / "landing", root / "warehouse"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "sample",
            "--out",
            str(landing),
            "--years",
            f"{YEAR}-{YEAR}",
            "--units",
            "20",
            "--unit-months",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # Default Kolada KPIs: the ones the snapshot recorded.
    settings = local_settings(landing, warehouse, kolada_kpis=None)  # the default KPIs
    first = run_all(settings)
    assert all(r.outcome == "published" for r in first.values()), {k: r.outcome for k, r in first.items()}
    baseline = snapshot(settings.warehouse_uri)
    # The sample really fills every table, so "unchanged" below means something.
    empty = [name for name, (rows, _) in baseline.items() if not rows and not name.startswith("_quarantine/")]
    assert empty == [], empty
    return settings, baseline


def committed_since(warehouse_uri: str, before: int) -> list[dict]:
    return publish.read_load_log(warehouse_uri).to_pylist()[before:]


def test_every_pipeline_run_twice_gives_identical_tables(loaded):
    settings, baseline = loaded
    log_rows = len(publish.read_load_log(settings.warehouse_uri))
    again = run_all(settings)

    assert {name: r.outcome for name, r in again.items()} == {
        "reference": "unchanged",  # fetched and validated again, nothing differs: no new version
        "county_reports": "nothing_new",  # every file's SHA-256 is committed: not even read
        "ehealth_adoption": "nothing_new",
        "followup": "nothing_new",  # same source versions: not even recomputed
    }
    assert snapshot(settings.warehouse_uri) == baseline
    outcomes = {(r["pipeline"], r["outcome"]) for r in committed_since(settings.warehouse_uri, log_rows)}
    assert {outcome for _, outcome in outcomes} <= {"unchanged", "nothing_new"}, outcomes


def test_backfill_rerun_month_by_month_is_identical(loaded):
    settings, baseline = loaded
    for month in [*(f"{YEAR}-{m:02d}" for m in range(1, 7)), f"{YEAR}-12"]:  # December has a unit-level file
        report = ehealth_adoption.run(settings, period=month)
        tables = {r.table: r.outcome for r in report.results}
        expected = {"ehealth_adoption", "ehealth_adoption_national"} | (
            {"ehealth_unit_daily"} if month.endswith("-12") else set()
        )
        assert tables == {t: "unchanged" for t in expected}, (month, tables)
        for result in report.results:
            assert result.rows_in == result.rows_loaded + result.rows_quarantined
    assert snapshot(settings.warehouse_uri) == baseline
    assert followup.run(settings).outcome == "nothing_new"


def test_redelivered_county_report_with_other_bytes_changes_nothing(loaded):
    settings, baseline = loaded
    folder = Path(settings.landing_uri) / "county_reports"
    names = {p.stem for p in folder.iterdir()}
    target = next(
        p
        for p in sorted(folder.glob("*.json"))
        if not p.stem.endswith("_rattelse") and p.stem + "_rattelse" not in names
    )
    stat = target.stat()
    # Same content, other bytes (re-indented, as a re-export from the web form would be), later file time.
    target.write_text(
        json.dumps(json.loads(target.read_text(encoding="utf-8")), indent=4, ensure_ascii=True), encoding="utf-8"
    )
    os.utime(target, (stat.st_atime, stat.st_mtime + 3600))

    report = county_reports.run(settings)
    assert {r.table: (r.outcome, r.rows_in) for r in report.results} == {
        "county_report": ("unchanged", 1),
        "county_initiative": ("unchanged", report.results[1].rows_in),
        "county_ehealth_service": ("unchanged", report.results[2].rows_in),
    }
    assert report.results[1].rows_in > 0  # the report was re-read, not skipped
    assert snapshot(settings.warehouse_uri) == baseline
