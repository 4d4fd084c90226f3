"""Nothing torn: SIGKILL a publishing process at every stage and at random moments.

The child publishes version after version of a 10-partition table in which
every row of version *i* carries the value *i*. Whatever moment it dies,
readers must find a readable table holding exactly one version (never a mix
of partitions from two versions, never a half-written file), and the next
publish must recover without manual cleanup.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from etl import publish

ROOT = Path(__file__).resolve().parent.parent
SEED = 20161
YEARS = list(range(2016, 2026))
CODES = ["01", "03", "04", "05", "06", "07", "08", "09", "10", "12", "13", "14", "17", "18", "19", "20", "21",
         "22", "23", "24", "25"]

CHILD = r"""
import sys, pandas as pd
from etl import publish
from etl.publish import TableBatch
warehouse, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
years, codes = list(range(2016, 2026)), sys.argv[4].split(",")
for i in range(first, first + count):
    rows = pd.DataFrame([{"region_code": c, "report_year": y, "grant_sek": i, "source_file": f"v{i}.json",
                          "submitted_at": pd.Timestamp("2020-01-01", tz="UTC")} for y in years for c in codes])
    quarantine = pd.DataFrame([{"source_file": f"v{i}.json", "row_number": 0, "raw": "x", "reason": f"test {i}"}])
    batch = TableBatch("county_report", rows, quarantine, len(rows) + 1, ("region_code", "report_year"))
    publish.publish(warehouse, "crash-test", batch, f"batch-{i}")
    print(i, flush=True)
"""


def _child(warehouse, first, count, stage=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("ETL_FAULT_STAGE", None)
    if stage:
        env["ETL_FAULT_STAGE"] = stage
    return subprocess.Popen([sys.executable, "-c", CHILD, str(warehouse), str(first), str(count), ",".join(CODES)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_one_whole_version(warehouse, allowed):
    """The table as readers see it (DuckDB over the current version's files, and deltalake): whole, one version."""
    files = [f.removeprefix("file://") for f in publish.table_files(str(warehouse), "county_report")]
    listed = ", ".join(f"'{f}'" for f in files)
    values = duckdb.sql(
        f"select grant_sek, count(*) from read_parquet([{listed}], hive_partitioning=true) group by 1"
    ).fetchall()
    assert len(values) == 1, f"a mix of versions is visible: {values}"
    value, rows = values[0]
    assert rows == len(YEARS) * len(CODES)
    assert value in allowed
    assert publish.read_table(str(warehouse), "county_report").num_rows == rows
    return value


def _recover_and_check(warehouse, next_value):
    proc = _child(warehouse, next_value, 1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert _assert_one_whole_version(warehouse, {next_value}) == next_value
    log = publish.read_load_log(str(warehouse))
    assert f"batch-{next_value}" in log.column("batch_id").to_pylist()


def _baseline(warehouse):
    proc = _child(warehouse, 1, 1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("stage", publish.FAULT_STAGES)
def test_kill_at_each_stage_leaves_old_or_new_version(stage, tmp_path):
    warehouse = tmp_path / "wh"
    _baseline(warehouse)
    proc = _child(warehouse, 2, 1, stage=stage)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"fault stage {stage} was never reached"
    _assert_one_whole_version(warehouse, {1, 2})
    _recover_and_check(warehouse, 3)


@pytest.mark.slow
def test_kill_at_random_moments(tmp_path):
    """≥ 20 seeded trials across the whole publish loop (file writes, commits, quarantine, load log)."""
    rng = random.Random(SEED)
    trials = 0
    for trial in range(17):
        warehouse = tmp_path / f"wh{trial}"
        _baseline(warehouse)
        proc = _child(warehouse, 2, 50)
        # Let it get past interpreter start-up and into publishing, then kill at a random moment.
        first = proc.stdout.readline()
        assert first.strip() == "2", proc.stderr.read()[-2000:]
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        seen = _assert_one_whole_version(warehouse, set(range(1, 52)))
        _recover_and_check(warehouse, 100 + trial)
        trials += 1
        assert seen >= 2
    assert trials + len(publish.FAULT_STAGES) >= 20
