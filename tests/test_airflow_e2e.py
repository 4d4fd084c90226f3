"""A real DAG run (`airflow dags test`, SQLite metadata DB) writes the warehouse; a second run changes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_run_support import sqlite_metadata

from etl import publish

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_metadata(home),  # migrated, with the writer pool
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def dags_test(env, dag_id, conf, landing, warehouse):
    env = dict(env, AIRFLOW_VAR_ETL_LANDING_URI=str(landing), AIRFLOW_VAR_ETL_WAREHOUSE_URI=str(warehouse))
    out = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, "-c", json.dumps(conf)], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "state=success" in out.stdout + out.stderr
    return out


@pytest.mark.slow
def test_reference_dag_run_publishes_and_rerun_changes_nothing(airflow_home, tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    subprocess.run(
        [sys.executable, "-m", "etl", "sample", "--out", str(landing), "--units", "5", "--unit-months", "1"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    dags_test(airflow_home, "reference_data", {"offline_snapshot": True}, landing, warehouse)
    first = publish.read_table(str(warehouse), "dim_region")
    assert sorted(first.column("region_code").to_pylist())[:3] == ["01", "03", "04"]
    assert first.num_rows == 21
    log_rows = publish.read_load_log(str(warehouse)).num_rows

    dags_test(airflow_home, "reference_data", {"offline_snapshot": True}, landing, warehouse)
    second = publish.read_table(str(warehouse), "dim_region")
    assert second.equals(first)  # same rows, same lineage: nothing rewritten
    log = publish.read_load_log(str(warehouse)).to_pylist()
    assert len(log) > log_rows
    assert {r["outcome"] for r in log[log_rows:]} == {"unchanged"}


@pytest.mark.slow
def test_followup_before_the_reference_data_is_skipped_not_failed(airflow_home, tmp_path):
    """Issue 24: unpausing every DAG, `followup` ran first on a county or e-health Asset event and failed
    ("dim_region is not published"), red until its retry. It is skipped instead, saying what it waits for;
    publishing dim_region (one of its Assets) runs it again."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    landing.mkdir()
    out = dags_test(airflow_home, "followup", {}, landing, warehouse)
    text = out.stdout + out.stderr
    assert "dim_region is not published" in text
    assert "state=skipped" in text and "state=failed" not in text and "up_for_retry" not in text, text[-3000:]
    log = publish.read_load_log(str(warehouse)).to_pylist()
    assert [(r["pipeline"], r["outcome"]) for r in log] == [("followup", "nothing_new")]
