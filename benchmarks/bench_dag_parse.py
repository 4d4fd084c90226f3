"""1. DAG parsing: import time of each DAG file once airflow.sdk is loaded, and what it pulls in.

Baseline in the same run: a minimal one-task TaskFlow DAG file. Target:
< 50 ms per file and none of pandas, pyarrow, great_expectations, duckdb.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, env_with_project, machine, median, table  # noqa: E402

HEAVY = {"pandas", "pyarrow", "great_expectations", "duckdb"}
PROBE = Path(__file__).resolve().parent / "dag_import_probe.py"
BASELINE = """
import pendulum
from airflow.sdk import dag, task

@dag(schedule=None, start_date=pendulum.datetime(2016, 1, 1, tz="UTC"), catchup=False)
def baseline():
    @task
    def noop():
        return 1
    noop()

baseline()
"""


def probe(path: Path, env: dict) -> tuple[float, list[str]]:
    out = subprocess.run([sys.executable, str(PROBE), str(path)], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["modules"]


def main(repeats: int = 9) -> None:
    tmp = Path(tempfile.mkdtemp())
    env = env_with_project(AIRFLOW_HOME=str(tmp / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    baseline_file = tmp / "baseline_dag.py"
    baseline_file.write_text(BASELINE)
    files = [baseline_file, *sorted((ROOT / "dags").glob("*.py"))]
    times: dict[Path, list[float]] = {f: [] for f in files}
    modules: dict[Path, list[str]] = {}
    # Round-robin, so a busy spell on the machine hits the baseline and every file alike.
    for _ in range(repeats):
        for path in files:
            seconds, modules[path] = probe(path, env)
            times[path].append(seconds)
    base = median(times[baseline_file])
    rows = [["(baseline: minimal DAG)", base * 1000, 1.0, "-", "-"]]
    for path in files[1:]:
        seconds = median(times[path])
        heavy = sorted(HEAVY & set(modules[path]))
        rows.append(
            [
                path.name,
                seconds * 1000,
                seconds / base if base else float("nan"),
                "yes" if seconds < 0.05 else "NO",
                ", ".join(heavy) or "none",
            ]
        )
    print(f"DAG parse time, median of {repeats} fresh interpreters, taken in turns ({machine()})")
    print(table(["file", "ms", "x baseline", "< 50 ms", "heavy imports"], rows))


if __name__ == "__main__":
    main()
