"""3. Whole backfill of the e-health sample (2016–2025) through Airflow vs the CLI.

Same landing files, fresh warehouse each time:

* **CLI** — ``python -m etl run ehealth-adoption`` (every pending month in one process): the baseline;
* **Airflow, one run** — ``airflow dags test ehealth_adoption -c '{"period": "all"}'``
  (one DAG run that catches up every month);
* **Airflow, run per month** — ``airflow dags test ehealth_adoption <month>`` for
  the first BENCH_BACKFILL_MONTHS months, extrapolated to 120 months (what a
  scheduler backfill costs: one run per data interval, each paying task
  start-up — interpreter, imports, GX context).

Reports seconds and the Airflow overhead factor against the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, env_with_project, machine, sample_warehouse, table  # noqa: E402

PER_MONTH = int(os.environ.get("BENCH_BACKFILL_MONTHS", "3"))
AIRFLOW = str(Path(PYTHON).parent / "airflow")


def timed(cmd, env) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-1500:] + out.stderr[-1500:])
    return time.perf_counter() - start


def main() -> None:
    landing, _ = sample_warehouse()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    env = env_with_project(
        AIRFLOW_HOME=str(work / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{work}/airflow/airflow.db",
        AIRFLOW_VAR_ETL_LANDING_URI=str(landing),
    )
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([AIRFLOW, "pools", "set", "etl_warehouse_writer", "1", "bench"], env=env, check=True,
                   capture_output=True)
    months = len(list((landing / "ehealth").glob("journalen_*")))

    cli_wh = work / "wh-cli"
    cli = timed([PYTHON, "-m", "etl", "run", "ehealth-adoption", "--landing", str(landing), "--warehouse",
                 str(cli_wh)], env)
    one_wh = work / "wh-one"
    one = timed([AIRFLOW, "dags", "test", "ehealth_adoption", "-c", json.dumps({"period": "all"})],
                dict(env, AIRFLOW_VAR_ETL_WAREHOUSE_URI=str(one_wh)))
    per_wh = work / "wh-per-month"
    per = 0.0
    for i in range(PER_MONTH):
        date = f"2016-{i + 2:02d}-01"  # the run for month i+1 starts at the end of its interval
        per += timed([AIRFLOW, "dags", "test", "ehealth_adoption", date, "-c", "{}"],
                     dict(env, AIRFLOW_VAR_ETL_WAREHOUSE_URI=str(per_wh)))
    per_each = per / PER_MONTH
    rows = [
        ["CLI, all months in one process", months, cli, 1.0],
        ["Airflow dags test, one run catching up", months, one, one / cli],
        [f"Airflow dags test, one run per month (extrapolated from {PER_MONTH})", months, per_each * months,
         per_each * months / cli],
    ]
    print(f"Backfill of {months} months of e-health exports + 12 unit-level months ({machine()})")
    print(table(["path", "months", "seconds", "x CLI"], rows))
    print(f"per-month run: {per_each:.1f} s each")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
