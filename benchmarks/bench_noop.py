"""4. Incremental no-op: a run with nothing new, per pipeline.

On a warehouse already holding the whole sample, each pipeline's ``run``
is timed in-process (the work a scheduled task does, median of 5) and as a
whole CLI process (interpreter + imports + work). Baseline in the same run:
``python -c "import etl.cli"``. Target: under 2 s of work per DAG.

Two things grow with the years and would slow every no-op run: the
e-health landing area (a ~9 MB unit-level file a month) and the load log
(a row, one Delta commit, per run). Both are measured at ten years: the
landing against hashing every file on each run, the load log with and
without the weekly maintenance (compaction and a checkpoint).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, env_with_project, machine, median, run_python, sample_warehouse, table  # noqa: E402

IN_PROCESS = r"""
import json, sys, time
from etl import pipelines, storage
from etl.config import Settings
settings = Settings.resolve(landing=sys.argv[1], warehouse=sys.argv[2], environ={})
module = pipelines.get(sys.argv[3])
forget_hashes = len(sys.argv) > 4 and sys.argv[4] == "forget-hashes"
fs, cache = storage.filesystem(storage.hash_cache_uri(settings.warehouse_uri, "ehealth"))
times, outcome = [], None
for _ in range(5):
    if forget_hashes and fs.exists(cache):
        fs.rm(cache)  # every landed file is read and hashed again, as before the cache
    start = time.perf_counter()
    options = {"offline_snapshot": True} if "offline_snapshot" in pipelines.options_of(sys.argv[3]) else {}
    report = module.run(settings, **options)
    times.append(time.perf_counter() - start)
    outcome = report.outcome
times.sort()
print(json.dumps({"median": times[2], "first": times[0], "outcome": outcome}))
"""


LOAD_LOG_GROWTH = r"""
import json, shutil, sys, tempfile, time
from deltalake import DeltaTable
from etl import publish, maintenance
rows, mode = int(sys.argv[1]), sys.argv[2]
warehouse = tempfile.mkdtemp()
for i in range(rows):  # a daily DAG's "nothing new" rows: one Delta commit each
    publish.append_load_log(warehouse, publish.LoadLogEntry("county_reports", f"run-{i}", "nothing_new", "skipped",
                                                           publish.utcnow(), message="nothing new"))
if mode == "maintained":
    maintenance.maintain_table(warehouse, publish.LOAD_LOG, retention=3650)  # compaction + checkpoint
files = len(DeltaTable(f"{warehouse}/{publish.LOAD_LOG}").file_uris())
times = []
for _ in range(5):
    publish.forget_opened()  # a fresh process reads the log from scratch, as every run does
    start = time.perf_counter()
    publish.committed_sha256(warehouse, "county_reports")
    times.append(time.perf_counter() - start)
shutil.rmtree(warehouse)
print(json.dumps({"median": sorted(times)[2], "files": files}))
"""


def main() -> None:
    landing, warehouse = sample_warehouse()
    env = env_with_project()
    base = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-c", "import etl.cli"], env=env, check=True)
        base.append(time.perf_counter() - start)
    baseline = median(base)
    rows = [["(baseline: python -c 'import etl.cli')", "-", "-", baseline, 1.0, "-"]]
    for name in ("reference", "county-reports", "ehealth-adoption", "followup"):
        probe = json.loads(run_python(IN_PROCESS, str(landing), str(warehouse), name).strip().splitlines()[-1])
        start = time.perf_counter()
        subprocess.run(
            [
                PYTHON,
                "-m",
                "etl",
                "run",
                name,
                "--landing",
                str(landing),
                "--warehouse",
                str(warehouse),
                "--offline-snapshot",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        cli = time.perf_counter() - start
        rows.append(
            [name, probe["outcome"], probe["median"], cli, cli / baseline, "yes" if probe["median"] < 2 else "NO"]
        )
    print(f"No-op runs on a loaded warehouse ({machine()})")
    print(table(["pipeline", "outcome", "work s (median of 5)", "CLI process s", "x baseline", "< 2 s"], rows))
    print("followup: upstream Asset events fire even for no-op runs; with unchanged source versions it does nothing.")

    # The e-health landing grows by a unit-level file (~9 MB) a month: ten years of them.
    months = int(os.environ.get("BENCH_NOOP_UNIT_MONTHS", "120"))
    landing, warehouse = sample_warehouse(unit_months=months)
    size = sum(p.stat().st_size for p in (landing / "ehealth").iterdir()) / 2**20
    rows = []
    for label, mode in (
        ("landing hashes remembered (as shipped)", "cached"),
        ("every file hashed on each run (baseline)", "forget-hashes"),
    ):
        probe = json.loads(
            run_python(IN_PROCESS, str(landing), str(warehouse), "ehealth-adoption", mode).strip().splitlines()[-1]
        )
        rows.append([label, probe["outcome"], probe["median"], "yes" if probe["median"] < 2 else "NO"])
    rows.append(["ratio", "-", rows[0][2] / rows[1][2], "-"])
    print(f"\nehealth-adoption no-op with {months} unit-level months in landing ({size:,.0f} MB)")
    print(table(["listing", "outcome", "work s (median of 5)", "< 2 s"], rows))

    # Every run reads the load log; a daily DAG adds a row (a Delta commit) a day even when nothing is new.
    log_rows = int(os.environ.get("BENCH_NOOP_LOG_ROWS", "3650"))
    rows = []
    for label, mode in (
        ("after weekly maintenance (compacted, checkpointed)", "maintained"),
        ("never maintained (delta-rs checkpoints only; baseline)", "raw"),
    ):
        probe = json.loads(run_python(LOAD_LOG_GROWTH, str(log_rows), mode).strip().splitlines()[-1])
        rows.append([label, probe["files"], probe["median"]])
    rows.append(["ratio", "-", rows[0][2] / rows[1][2]])
    print(f"\nReading the load log after {log_rows} runs (ten years of a daily DAG), median of 5")
    print(table(["load log", "data files", "read s"], rows))


if __name__ == "__main__":
    main()
