"""Issue 14: in DAGs, object-store credentials come from the Airflow Connection ``etl_object_store``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, os
from etl.orchestration import use_object_store_connection
found = use_object_store_connection()
print(json.dumps({"found": found, **{k: os.environ.get(k) for k in
      ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION")}}))
"""


def _probe(tmp_path, **extra_env) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/airflow.db",
        **extra_env,
    )
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_connection_sets_the_standard_variables_for_s3fs_botocore_and_delta_rs(tmp_path):
    connection = {
        "conn_type": "aws",
        "login": "etl-key",
        "password": "etl-secret",
        "extra": {"endpoint_url": "http://127.0.0.1:8333", "region_name": "eu-north-1"},
    }
    got = _probe(tmp_path, AIRFLOW_CONN_ETL_OBJECT_STORE=json.dumps(connection))
    assert got == {
        "found": True,
        "AWS_ACCESS_KEY_ID": "etl-key",
        "AWS_SECRET_ACCESS_KEY": "etl-secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_REGION": "eu-north-1",
    }


def test_without_the_connection_the_environment_is_left_alone(tmp_path):
    got = _probe(tmp_path, AWS_ACCESS_KEY_ID="from-role")
    assert got["found"] is False and got["AWS_ACCESS_KEY_ID"] == "from-role"
