"""Issue 15 §7: the demo's runs show their task logs in the Airflow UI, with no deprecation noise.

Why they did not: ``make demo`` ran each DAG with ``airflow dags test``, which
in Airflow 3 runs tasks inside the CLI process without Airflow's task
supervisor, so no task log file is written; the API server reads task logs
from ``[logging] base_log_folder`` / ``log_filename_template`` (written by the
supervisor) and the UI said "Log file not found". ``make demo`` now runs
``scripts/dags_test.py``: ``airflow dags test`` whose tasks run under the
supervisor, which writes the log file as for a scheduled run.

Here, as ``make demo`` does it (a temporary AIRFLOW_HOME, SQLite, the
Makefile's PYTHONWARNINGS): ``reference_data`` on a small sample's recorded
API answers, then ``airflow api-server`` on that AIRFLOW_HOME — what ``make
airflow`` starts afterwards — and the task's log through the public REST
endpoint the UI calls. It must hold the task's own output, and neither the
log nor the command's console output may carry a deprecation warning.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from airflow_run_support import sqlite_metadata
from integration_support import ROOT, ProcessGroups, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DEPRECATION_NOISE = re.compile(r"DeprecationWarning|RemovedInAirflow|FutureWarning|deprecated", re.IGNORECASE)
NOT_FOUND = re.compile(r"Log file (is )?not found|Could not read served logs|does not exist", re.IGNORECASE)


def makefile_pythonwarnings() -> str:
    match = re.search(r"^export PYTHONWARNINGS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile sets no PYTHONWARNINGS"
    return match.group(1).strip()


def test_demo_task_logs_open_through_the_api_server_without_deprecation_noise(tmp_path):
    home, landing, warehouse = tmp_path / "airflow-home", tmp_path / "landing", tmp_path / "warehouse"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "ETL_", "PYTHONPATH", "PYTHONWARNINGS"))
    }
    env.update(
        {
            # What the Makefile exports for `make demo`, and what scripts/demo.py sets.
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_metadata(home),  # migrated, with the writer pool
            "AIRFLOW_VAR_ETL_LANDING_URI": str(landing),
            "AIRFLOW_VAR_ETL_WAREHOUSE_URI": str(warehouse),
            "ETL_LANDING_SETTLE_SECONDS": "0",
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONWARNINGS": makefile_pythonwarnings(),
        }
    )
    subprocess.run(
        [sys.executable, "-m", "etl", "sample", "--out", str(landing), "--units", "5", "--unit-months", "1"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )

    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "dags_test.py"),
            "reference_data",
            "-c",
            json.dumps({"offline_snapshot": True}),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    console = out.stdout + out.stderr
    assert out.returncode == 0, console[-4000:]
    assert "state=success" in console
    print(f"\nscripts/dags_test.py reference_data: {time.monotonic() - started:.1f} s")
    # The task's own output still reaches the console, as with `airflow dags test`.
    assert "dim_region: published, 21 in = 21 loaded" in console
    noisy_console = [line for line in console.splitlines() if DEPRECATION_NOISE.search(line)]
    assert not noisy_console, noisy_console[:5]
    files = sorted((home / "logs").glob("dag_id=reference_data/run_id=*/task_id=fetch_validate_publish/attempt=1.log"))
    assert len(files) == 1, list((home / "logs").rglob("*"))

    # `make airflow` afterwards: the API server on the same AIRFLOW_HOME, and the log as the UI asks for it.
    port = free_port()
    api_env = dict(
        env,
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
    )
    groups = ProcessGroups(tmp_path / "process-logs", ("AIRFLOW_HOME", str(home)))
    try:
        groups.start("api-server", [AIRFLOW, "api-server"], api_env, cwd=tmp_path)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 240
            while True:
                groups.assert_running()
                try:
                    if client.get("/api/v2/monitor/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, groups.all_logs()
                time.sleep(2)
            runs = client.get("/api/v2/dags/reference_data/dagRuns").json()["dag_runs"]
            assert [r["state"] for r in runs] == ["success"], runs
            run_id = quote(runs[0]["dag_run_id"], safe="")
            response = client.get(
                f"/api/v2/dags/reference_data/dagRuns/{run_id}/taskInstances/fetch_validate_publish/logs/1",
                headers={"Accept": "application/json"},
            )
            assert response.status_code == 200, response.text[:1000]
            events = response.json()["content"]
    finally:
        groups.stop()
    assert not groups.stray_processes()

    text = "\n".join(json.dumps(event) for event in events)
    assert not NOT_FOUND.search(text), text[:3000]
    printed = [e["event"] for e in events if e.get("logger") == "task.stdout"]
    assert "dim_region: published, 21 in = 21 loaded + 0 quarantined; table has 21 rows" in printed, text[:3000]
    assert any(e.get("event") == "::group::Pre Execute" for e in events)  # the supervisor's file, not a stub
    noisy = [e for e in events if DEPRECATION_NOISE.search(json.dumps(e))]
    assert not noisy, noisy[:5]
