"""Unit-level daily web booking (docs/input-formats.md §2b) through the pipeline, the sample generator, and streaming."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl import publish, regions
from etl.pipelines import ehealth_adoption as pipeline
from etl.sample import ehealth as sample
from etl.sources import ehealth_exports as exports
from tests.export_support import declared_exports, declared_rows, year_months

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "ehealth"
FEB = dt.date(2024, 2, 1)


def _table(warehouse, name):
    return publish.read_table(str(warehouse), name).to_pandas()


def _quarantine(warehouse, name):
    return publish.read_quarantine(str(warehouse), name).to_pandas()


def _write_month(landing: Path, month: dt.date, units: sample.Units, seed: int = 5) -> list[Path]:
    return sample.write_month(landing / "ehealth", month, seed=seed, units=units)


def test_unit_rules_quarantine_rows_and_never_sum_duplicates(settings, landing, warehouse):
    (landing / "ehealth").mkdir()
    shutil.copy(FIXTURES / "webbtidbok_enheter_2024-02.csv", landing / "ehealth")
    report = pipeline.run(settings)
    [result] = report.results
    assert (result.table, result.rows_in, result.rows_loaded, result.rows_quarantined) == (
        "ehealth_unit_daily",
        13,
        4,
        9,
    )
    table = _table(warehouse, "ehealth_unit_daily").sort_values("date")
    assert list(zip(table.date.astype(str), table.unit_hsa_id, table.bookings, strict=False)) == [
        ("2024-02-01", "SE2321000016-15CX", 12),
        ("2024-02-01", "SE2321000024-A1", 1234),
        ("2024-02-02", "SE2321000016-15CX", 7),
        ("2024-02-07", "SE2321000024-A1", 2000),
    ]
    assert set(table.month) == {FEB}
    q = _quarantine(warehouse, "ehealth_unit_daily")
    reasons = dict(zip(q.row_number, q.reason, strict=False))
    assert reasons == {
        5: "malformed HSA id (expected SE + 10 digits + '-' + 1-8 letters/digits)",
        6: "Datum is outside the file's month",
        # The same unit and day twice: both rows out, nothing summed into the table.
        7: "the same unit and day appears more than once in the file; all such rows quarantined, never summed",
        8: "the same unit and day appears more than once in the file; all such rows quarantined, never summed",
        9: "Bokningar: negative value: '-3'",
        11: "Bokningar: not a number: 'tolv'",
        12: "Datum: not a valid date: '2024-02-30'",
        13: "Region: unknown region 'Atlantis'",
        14: "4 fields, expected 7 (truncated line or stray delimiter)",
    }
    assert "SE2321000131-B7" not in set(table.unit_hsa_id)
    assert result.warnings == ["2024-02: no regional web booking file this month; unit-level bookings not compared"]


def test_unit_sums_match_regional_bookings_or_warn(settings, landing, warehouse):
    units = sample.make_units(60, 5)
    paths = _write_month(landing, FEB, units)
    report = pipeline.run(settings)
    unit_result = next(r for r in report.results if r.table == "ehealth_unit_daily")
    assert unit_result.warnings == [] and unit_result.rows_loaded == 60 * 29
    daily = _table(warehouse, "ehealth_unit_daily")
    adoption = _table(warehouse, "ehealth_adoption").query("metric == 'bookings'")
    assert daily.groupby("region_code").bookings.sum().to_dict() == dict(
        zip(adoption.region_code, adoption.value, strict=False)
    )

    # One unit-day off by one in a republished unit file: loaded, but the load log warns.
    unit_file = next(p for p in paths if p.name.startswith("webbtidbok_enheter"))
    enc = exports.detect_encoding(unit_file.read_bytes(), unit_file.name)
    text = unit_file.read_bytes().decode(enc)
    delimiter = sample.style_for(FEB).delimiter
    lines = text.split(sample.style_for(FEB).newline)
    cells = lines[1].split(delimiter)
    cells[4] = str(int(cells[4]) + 1)
    lines[1] = delimiter.join(cells)
    unit_file.write_bytes(sample.style_for(FEB).newline.join(lines).encode(enc.replace("-sig", "")))
    report = pipeline.run(settings)
    # February is reprocessed whole (its monthly exports come out unchanged); the unit table warns.
    assert {r.table: r.outcome for r in report.results}["ehealth_adoption"] == "unchanged"
    unit_result = next(r for r in report.results if r.table == "ehealth_unit_daily")
    region = regions.resolve_region(cells[1])
    assert len(unit_result.warnings) == 1
    assert unit_result.warnings[0].startswith(
        "2024-02: daily unit bookings do not sum to the regional bookings in 1 region(s): " + region
    )
    log = publish.read_load_log(str(warehouse)).to_pandas()
    assert log[log.table_name == "ehealth_unit_daily"].validation.iloc[-1] == "warning"


def test_republished_unit_file_replaces_its_month_only(settings, landing, warehouse):
    units = sample.make_units(40, 5)
    jan = dt.date(2024, 1, 1)
    _write_month(landing, jan, units)
    _write_month(landing, FEB, units)
    pipeline.run(settings)
    daily = _table(warehouse, "ehealth_unit_daily")
    assert daily.groupby("month").size().to_dict() == {jan: 40 * 31, FEB: 40 * 29}
    january = (
        daily[daily.month == jan]
        .drop(columns=["batch_id", "loaded_at"])
        .sort_values(["date", "unit_hsa_id"])
        .reset_index(drop=True)
    )

    smaller = sample.make_units(25, 6)  # a corrected February with fewer units
    _write_month(landing, FEB, smaller, seed=9)
    report = pipeline.run(settings)
    assert {r.table for r in report.results} == {"ehealth_adoption", "ehealth_adoption_national", "ehealth_unit_daily"}
    daily = _table(warehouse, "ehealth_unit_daily")
    assert daily.groupby("month").size().to_dict() == {jan: 40 * 31, FEB: 25 * 29}
    assert set(daily[daily.month == FEB].unit_hsa_id) == set(smaller.hsa_id)
    assert (
        daily[daily.month == jan]
        .drop(columns=["batch_id", "loaded_at"])
        .sort_values(["date", "unit_hsa_id"])
        .reset_index(drop=True)
        .equals(january)
    )

    again = pipeline.run(settings, period="2024-02")
    assert {r.outcome for r in again.results} == {"unchanged"}
    log = publish.read_load_log(str(warehouse)).to_pandas()
    done = log[log.outcome.isin(["published", "unchanged"])]
    assert (done.rows_in == done.rows_loaded + done.rows_quarantined).all()


# --------------------------------------------------------------------------- the sample generator


def test_sample_is_deterministic_and_reconciles(tmp_path):
    a = sample.write(tmp_path / "a", 2016, 2016, units=50, unit_months=2, seed=3)
    b = sample.write(tmp_path / "b", 2016, 2016, units=50, unit_months=2, seed=3)
    # The monthly exports the spec declares for 2016 and 2 unit-level months (the README beside is no delivery).
    assert a == b == len(declared_exports(year_months(2016))) + 2
    files_a = sorted((tmp_path / "a" / "ehealth").iterdir())
    assert [p.name for p in files_a] == sorted(p.name for p in (tmp_path / "b" / "ehealth").iterdir())
    for path in files_a:
        if path.suffix == ".csv":
            assert path.read_bytes() == (tmp_path / "b" / "ehealth" / path.name).read_bytes(), path.name
    names = [p.name for p in files_a]
    assert "README.txt" not in names and "webbtidbok_enheter_2016-11.csv" in names
    assert "synthetic" in (tmp_path / "a" / "README-ehealth.txt").read_text().lower()
    assert any(n.endswith(".xlsx") for n in names)
    # Every tolerated encoding occurs.
    encodings = {exports.detect_encoding(p.read_bytes(), p.name) for p in files_a if p.suffix == ".csv"}
    assert encodings == {"utf-8-sig", "cp1252"}
    assert any(p.read_bytes().startswith(b"\xef\xbb\xbf") for p in files_a if p.suffix == ".csv")
    # Uppsala has had the journal since 2012; Gotland goes live in 2017.
    journal, _, _ = sample.month_values(dt.date(2016, 1, 1), 3)
    assert journal["03"]["logins"] > 0 and journal["09"]["logins"] == 0
    late, _, _ = sample.month_values(dt.date(2018, 12, 1), 3)
    assert all(v["logins"] > 0 for v in late.values())


def test_full_sample_loads_clean(settings, landing, warehouse):
    """A year of sample files, every variation included, loads with no quarantine and no warning."""
    sample.write(landing, 2017, 2017, units=80, unit_months=2, seed=11)
    report = pipeline.run(settings)
    assert {r.outcome for r in report.results} == {"published"}
    assert all(r.rows_quarantined == 0 and not r.warnings for r in report.results), [
        (r.table, r.warnings) for r in report.results if r.warnings or r.rows_quarantined
    ]
    adoption = _table(warehouse, "ehealth_adoption")
    per_month = adoption.groupby("month").size()
    assert {f"{m:%Y-%m}": n for m, n in per_month.items()} == {m: declared_rows(m) for m in year_months(2017)}


@pytest.mark.slow
def test_sample_of_twelve_unit_months_writes_fast(tmp_path):
    started = time.perf_counter()
    count = sample.write(tmp_path, 2025, 2025, units=4000, unit_months=12, seed=2016)
    seconds = time.perf_counter() - started
    # The exports only (the README beside the folder is no delivery): the declared kinds' and the unit files.
    assert count == len(declared_exports(year_months(2025))) + 12
    sizes = [p.stat().st_size for p in (tmp_path / "ehealth").glob("webbtidbok_enheter_*.csv")]
    assert len(sizes) == 12 and min(sizes) > 5_000_000  # ~120 000 lines each
    print(f"\nsample: 12 unit months x 4000 units written in {seconds:.1f} s")
    assert seconds < 60


# --------------------------------------------------------------------------- streaming: flat memory


_MEASURE = r"""
import json, resource, sys, time
from etl.config import Settings
from etl.pipelines import ehealth_adoption as pipeline
landing, warehouse, *periods = sys.argv[1:]
settings = Settings.resolve(landing=landing, warehouse=warehouse, kolada_kpis="", environ={"ETL_LANDING_SETTLE_SECONDS": "0"})
seconds = []
for period in periods:
    started = time.perf_counter()
    report = pipeline.run(settings, period=period)
    seconds.append(time.perf_counter() - started)
    assert {r.outcome for r in report.results} == {"published"}, report.lines()
print(json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}))
"""


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_number_of_months(tmp_path):
    """Processing four months of ~120 000 unit rows peaks no higher than processing one."""
    units = sample.make_units(4000, 1)
    months = [dt.date(2024, m, 1) for m in (1, 2, 3, 4)]
    for month in months:
        sample.write_month(tmp_path / "landing" / "ehealth", month, seed=1, units=units)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def measure(periods, name):
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(tmp_path / "landing"), str(tmp_path / name), *periods],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    one = measure(["2024-01"], "w1")
    four = measure([f"{m:%Y-%m}" for m in months], "w4")
    per_month = sorted(four["seconds"][1:])[1]
    print(
        f"\npeak RSS: 1 month {one['maxrss_mb']:.0f} MB, 4 months {four['maxrss_mb']:.0f} MB; "
        f"seconds per month (~120 000 unit rows + both exports, validated and published): {four['seconds']}; "
        f"median after warm-up {per_month:.2f} s"
    )
    assert four["maxrss_mb"] < one["maxrss_mb"] * 1.15 + 40
    assert per_month < 20


def test_read_ahead_gives_each_month_its_own_file_and_reads_at_most_one_month_ahead(tmp_path, monkeypatch):
    from etl import storage
    from etl.sources import unit_daily

    units = sample.make_units(20, 1)
    months = [dt.date(2024, m, 1) for m in (1, 2, 3, 4)]
    for month in months:
        _write_month(tmp_path, month, units)
    (tmp_path / "ehealth" / "webbtidbok_enheter_2024-03.csv").unlink()  # a month without a unit file
    by_month, _ = pipeline._group_by_month(storage.list_landed(str(tmp_path), "ehealth", (".csv", ".xlsx")))
    started: list[str] = []
    real = unit_daily.read_unit_daily

    def recording(uri, **kw):
        started.append(uri)
        return real(uri, **kw)

    monkeypatch.setattr(unit_daily, "read_unit_daily", recording)

    periods = sorted(by_month)
    got = {}
    with unit_daily.ReadAhead([by_month[p] for p in periods]) as reads:
        for i, (period, read) in enumerate(zip(periods, reads, strict=False)):
            month = read()
            got[period] = month.period if month else None
            # Consuming month i, reads may have started for month i + 1 at most.
            assert all(uri.rsplit("_", 1)[1][:7] <= periods[min(i + 1, 3)] for uri in started)
    assert got == {"2024-01": "2024-01", "2024-02": "2024-02", "2024-03": None, "2024-04": "2024-04"}
    assert len(started) == 3


def test_a_warehouse_with_text_months_is_migrated_to_dates(settings, landing, warehouse):
    """Issue 16: one type for a month across tables; a unit table written as 'YYYY-MM' text is rewritten once."""
    import datetime as dt

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from etl import migrations, publish, schemas

    schema = schemas.get("ehealth_unit_daily").arrow_schema
    old_fields = [pa.field("month", pa.string(), False) if f.name == "month" else f for f in schema]
    rows: dict[str, list] = {f.name: [] for f in schema}
    for day in (1, 2):
        for month in ("2024-01", "2024-02"):
            values = {
                "month": month,
                "date": dt.date(int(month[:4]), int(month[5:]), day),
                "region_code": "01",
                "unit_hsa_id": f"SE2321000016-{day}X",
                "unit_name": "Vårdcentralen",
                "bookings": day,
                "cancellations": 0,
                "rebookings": 0,
                "source_file": f"/l/ehealth/webbtidbok_enheter_{month}.csv",
                "batch_id": "old",
                "loaded_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
            }
            for name in rows:
                rows[name].append(values.get(name))
    old = pa.Table.from_pydict(rows, schema=pa.schema(old_fields))
    uri = str(warehouse / "ehealth_unit_daily")
    write_deltalake(uri, old, partition_by=["month"])
    assert [m.table for m in migrations.pending(str(warehouse))] == ["ehealth_unit_daily"]

    lines = migrations.ensure_current(str(warehouse))
    assert lines and lines[0].startswith("ehealth_unit_daily: migrated (month as date32), 4 row(s) rewritten")
    assert migrations.pending(str(warehouse)) == [] and migrations.ensure_current(str(warehouse)) == []
    table = publish.read_table(str(warehouse), "ehealth_unit_daily")
    assert table.schema.field("month").type == pa.date32()
    assert sorted(set(table.column("month").to_pylist())) == [dt.date(2024, 1, 1), dt.date(2024, 2, 1)]
    assert table.num_rows == 4
    assert DeltaTable(uri).metadata().partition_columns == ["month"]
    # The old rows stay readable as they were (time travel), until vacuum.
    assert DeltaTable(uri, version=0).to_pyarrow_table().column("month").to_pylist()[0] in ("2024-01", "2024-02")
    # Issue 26: a migration rewrites a table, so the load log says so (one row, the version it made).
    [logged] = [r for r in publish.read_load_log(str(warehouse)).to_pylist() if r["pipeline"] == "migration"]
    assert (logged["table_name"], logged["outcome"], logged["rows_in"], logged["rows_loaded"]) == (
        "ehealth_unit_daily",
        "published",
        4,
        4,
    )
    assert logged["table_version"] == str(DeltaTable(uri).version()) == "1"
    assert logged["message"] == lines[0]
