"""7. The warehouse on Delta Lake against the version-folder format it replaced, in one run.

The same workloads run in fresh processes against two trees: this one
(``etl/publish.py`` on delta-rs) and the last commit before the change
(``BENCH_BEFORE_REV``, default 93d448c: version folders, symlink swap,
hard links), extracted with ``git archive``. Unit-level rows (4 000 units ×
every day, ``ehealth_unit_daily``, partitioned by month) are built in memory,
so only publishing and reading are timed:

* **publish N months** — one ``publish`` per month, as a backfill does
  (``BENCH_DELTA_MONTHS``, default "12,120": a year and ten years);
* **no-op** — the last month published again, identical (``unchanged``);
* **correction** — one month republished with changed values;
* **read the table** — ``read_table`` of everything;
* **keys of one month** — ``read_published_keys``, what the no-shrink check reads.

Ratios are after ÷ before, measured in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, machine, table  # noqa: E402

BEFORE_REV = os.environ.get("BENCH_BEFORE_REV", "93d448c")
UNITS = int(os.environ.get("BENCH_UNITS", "4000"))

WORKLOAD = r"""
import datetime as dt, json, sys, tempfile, time
import numpy as np, pandas as pd
from etl import publish
from etl.publish import TableBatch

months, units = int(sys.argv[1]), int(sys.argv[2])
warehouse = tempfile.mkdtemp(prefix="bench-delta-")
ids = np.array([f"SE2321000016-{i:05d}" for i in range(units)])
regions = np.array(["01", "03", "04", "05", "06", "07", "08", "09", "10", "12", "13", "14", "17", "18", "19", "20",
                    "21", "22", "23", "24", "25"])[np.arange(units) % 21]

def month_rows(year, month, bump=0):
    first = dt.date(year, month, 1)
    days = (dt.date(year + month // 12, month % 12 + 1, 1) - first).days
    dates = np.repeat(np.array([first + dt.timedelta(d) for d in range(days)], dtype="datetime64[D]"), units)
    n = len(dates)
    rng = np.random.default_rng(year * 100 + month)
    return pd.DataFrame({
        "month": f"{year}-{month:02d}", "date": dates, "region_code": np.tile(regions, days),
        "unit_hsa_id": np.tile(ids, days), "unit_name": "Vårdcentral", "bookings": rng.integers(0, 50, n) + bump,
        "cancellations": rng.integers(0, 5, n), "rebookings": rng.integers(0, 5, n),
        "source_file": f"webbtidbok_enheter_{year}-{month:02d}.csv",
    })

def publish_month(frame, batch):
    b = TableBatch("ehealth_unit_daily", frame, pd.DataFrame(), len(frame), ("month",),
                   replace_keys=[(frame["month"].iloc[0],)])
    return publish.publish(warehouse, "bench", b, batch)

periods = [(2016 + i // 12, i % 12 + 1) for i in range(months)]
frames = [month_rows(y, m) for y, m in periods]
start = time.perf_counter()
for i, frame in enumerate(frames):
    publish_month(frame, f"b{i}")
backfill = time.perf_counter() - start
start = time.perf_counter()
assert publish_month(frames[-1], "noop").outcome == "unchanged"
noop = time.perf_counter() - start
corrected = month_rows(*periods[len(periods) // 2], bump=1)
start = time.perf_counter()
assert publish_month(corrected, "fix").outcome == "published"
correction = time.perf_counter() - start
start = time.perf_counter()
rows = publish.read_table(warehouse, "ehealth_unit_daily").num_rows
read_all = time.perf_counter() - start
start = time.perf_counter()
keys = publish.read_published_keys(warehouse, "ehealth_unit_daily", ("month",), {(corrected["month"].iloc[0],)})
read_keys = time.perf_counter() - start
print(json.dumps({"rows": rows, "backfill": backfill, "noop": noop, "correction": correction,
                  "read_all": read_all, "read_keys": read_keys, "key_rows": keys.num_rows}))
"""


def _before_tree() -> Path:
    target = Path(tempfile.mkdtemp(prefix="bench-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BEFORE_REV, "etl", "expectations"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _run(tree: Path, months: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), GX_ANALYTICS_ENABLED="false")
    out = subprocess.run(
        [PYTHON, "-c", WORKLOAD, str(months), str(UNITS)], capture_output=True, text=True, env=env, timeout=7200
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print(f"machine: {machine()}; before = {BEFORE_REV} (version folders), after = this tree (Delta Lake)\n")
    before_tree = _before_tree()
    rows = []
    for months in (int(m) for m in os.environ.get("BENCH_DELTA_MONTHS", "12,120").split(",")):
        before, after = _run(before_tree, months), _run(ROOT, months)
        assert before["rows"] == after["rows"] and before["key_rows"] == after["key_rows"]
        for what, key in (
            ("publish, one per month", "backfill"),
            ("no-op (identical month)", "noop"),
            ("correction of one month", "correction"),
            ("read the whole table", "read_all"),
            ("keys of one month", "read_keys"),
        ):
            rows.append(
                [
                    f"{months} months: {what}",
                    f"{before['rows']:,}",
                    before[key],
                    after[key],
                    after[key] / before[key] if before[key] else float("nan"),
                ]
            )
    print(table(["workload (ehealth_unit_daily)", "rows", "before s", "after s", "after ÷ before"], rows))


if __name__ == "__main__":
    main()
