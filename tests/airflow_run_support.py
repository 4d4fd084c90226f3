"""Running a DAG the way `make demo` does (scripts/dags_test.py: Airflow's task supervisor, SQLite) and reading
what the UI would show of it: the task log file, the metadata database. Shared by the tests that run DAGs on
SQLite (test_task_log, test_arriving_files, test_airflow_e2e, test_demo_logs, test_quality_plugin)."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_env(tmp_path: Path, landing: Path, warehouse: Path, **extra: str) -> dict[str, str]:
    """A private AIRFLOW_HOME (SQLite) with the writer pool, as `make demo` prepares it; nothing of the caller's."""
    home = tmp_path / "airflow-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ETL_", "PYTHONPATH"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_metadata(home),
            "AIRFLOW_VAR_ETL_LANDING_URI": str(landing),
            "AIRFLOW_VAR_ETL_WAREHOUSE_URI": str(warehouse),
            "GX_ANALYTICS_ENABLED": "false",
            "ETL_LANDING_SETTLE_SECONDS": "0",
            **extra,
        }
    )
    return env


def sqlite_metadata(home: Path) -> str:
    """``home``/airflow.db as ``airflow db migrate`` and ``airflow pools set etl_warehouse_writer 1`` leave a new
    one (what `make demo` prepares); its SQLAlchemy URL.

    The database is a copy of one this process migrated once (``_migrated``): what those commands write
    depends on neither AIRFLOW_HOME nor the DAGs, and running them again for each test cost about 10 s.
    """
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated() / "airflow.db", home / "airflow.db")
    return f"sqlite:///{home}/airflow.db"


@functools.cache
def _migrated() -> Path:
    home = Path(tempfile.mkdtemp(prefix="airflow-metadata-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ETL_", "PYTHONPATH"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "no-dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    for args in (["db", "migrate"], ["pools", "set", "etl_warehouse_writer", "1", "one writer"]):
        done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stderr[-3000:]}"
    return home


def task_log(env: dict[str, str], dag_id: str, task_id: str) -> list[dict]:
    """The task's log file (JSON lines, what the API server hands the UI), every attempt, oldest first."""
    files = sorted(
        (Path(env["AIRFLOW_HOME"]) / "logs").glob(f"dag_id={dag_id}/run_id=*/task_id={task_id}/attempt=*.log")
    )
    assert files, list((Path(env["AIRFLOW_HOME"]) / "logs").rglob("*"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def visible(events: list[dict]) -> list[dict]:
    """The lines the log viewer shows open: group markers out, and what is inside a (collapsed) group."""
    shown, depth = [], 0
    for event in events:
        text = event.get("event", "")
        if "::group::" in text:
            depth += 1
        elif "::endgroup::" in text:
            depth = max(0, depth - 1)
        elif depth == 0:
            shown.append(event)
    return shown


def task_states(env: dict[str, str], dag_id: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        return db.execute(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ? ORDER BY task_id", (dag_id,)
        ).fetchall()
