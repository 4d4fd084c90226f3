"""`make airflow` (scripts/airflow_standalone.sh) refuses a taken port instead of printing a URL another server answers.

Found by a reviewer: with 8080 held by another Airflow, the banner said http://127.0.0.1:8080 (someone else's
UI) while this project's scheduler ran on; its log servers failed to bind 8793/8794 as well. The full start,
Ctrl-C and the URL are tests/test_unpause_all.py's.
"""

from __future__ import annotations

import os
import socket
import subprocess

from integration_support import ROOT


def test_a_taken_port_stops_make_airflow_before_anything_starts(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {
            **os.environ,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "ETL_LANDING_URI": str(tmp_path / "landing"),
            "ETL_WAREHOUSE_URI": str(tmp_path / "warehouse"),
        }
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "airflow_standalone.sh")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"make airflow: 127.0.0.1:{port} is in use (another Airflow or server runs there); nothing started: "
        f"choose another port, e.g. AIRFLOW__API__PORT={port + 1} make airflow"
    )
    assert "Airflow is starting" not in done.stdout
    assert not (tmp_path / "landing").exists() and not (tmp_path / "home").exists()  # nothing written
