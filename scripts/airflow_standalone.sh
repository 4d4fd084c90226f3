#!/usr/bin/env bash
# `make airflow`: the Airflow UI on a laptop with the project's DAGs and the sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
# standalone starts its components as `airflow …` subprocesses: they must find the venv's airflow.
export PATH="$PWD/.venv/bin:$PATH"
# A laptop's UI: this machine only, unless told otherwise ([api] host/port, e.g. AIRFLOW__API__PORT=8081).
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# The UI's port must be free (else standalone prints this URL while another server answers it); the task
# and trigger log servers (8793, 8794 by default) move to free ports when another Airflow holds those.
ports="$(.venv/bin/python - "${AIRFLOW__API__HOST}" "${AIRFLOW__API__PORT}" <<'PY'
import os, socket, sys

def free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True

host, port = sys.argv[1], int(sys.argv[2])
if not free(host, port):
    sys.exit(f"make airflow: {host}:{port} is in use (another Airflow or server runs there); nothing started: "
             f"choose another port, e.g. AIRFLOW__API__PORT={port + 1} make airflow")
for name, default in (("WORKER_LOG_SERVER_PORT", 8793), ("TRIGGER_LOG_SERVER_PORT", 8794)):
    var = f"AIRFLOW__LOGGING__{name}"
    if var not in os.environ and not free("0.0.0.0", default):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            print(f"{var}={s.getsockname()[1]}")
PY
)" || exit 1
for assignment in ${ports}; do export "${assignment?}"; done
# Task processes reach the API server at the port it really has (Airflow's default names 8080): on another
# port every task would fail to start, or talk to whatever answers 8080.
if [ "${AIRFLOW__API__HOST}" = "0.0.0.0" ]; then api_host=127.0.0.1; else api_host="${AIRFLOW__API__HOST}"; fi
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://${api_host}:${AIRFLOW__API__PORT}/execution/}"
if [ ! -f "${ETL_LANDING_URI}/.sample-args" ]; then
  .venv/bin/python -m etl sample --out "${ETL_LANDING_URI}"
  echo "--years 2016-2025 --units 4000 --unit-months 12" > "${ETL_LANDING_URI}/.sample-args"
fi
.venv/bin/airflow db migrate >/dev/null
.venv/bin/airflow pools set etl_warehouse_writer 1 "one writer per warehouse" >/dev/null
# Every Variable the docs name (README, docs/, the DAG docs; tests/test_unpause_all.py checks), in the
# metadata database so that it shows, with what it does, and can be changed in Admin → Variables; an
# existing value is kept, except landing and warehouse (below). (Environment AIRFLOW_VAR_* would hide UI
# edits.) One import, not a CLI call each.
vars_dir="$(mktemp -d)"
.venv/bin/python - "${vars_dir}/variables.json" <<'PY'
import json, os, sys
from etl.config import DEFAULT_KOLADA_KPIS
variables = {
    "etl_landing_uri": (os.environ["ETL_LANDING_URI"], "Where the pipelines read deliveries (a folder or any fsspec URL)."),
    "etl_warehouse_uri": (os.environ["ETL_WAREHOUSE_URI"], "Where the pipelines publish the tables (a folder or s3://…)."),
    "etl_kolada_kpis": (",".join(DEFAULT_KOLADA_KPIS), "Kolada KPI ids reference_data loads, comma-separated (empty: none)."),
    # The landing here is the sample, with the recorded API answers; a laptop may have no network.
    "etl_reference_offline_snapshot": ("true", "true: scheduled reference_data runs read the recorded answers in "
                                               "<landing>/api_snapshot/ instead of calling SCB and Kolada."),
}
with open(sys.argv[1], "w") as out:
    json.dump({key: {"value": value, "description": text} for key, (value, text) in variables.items()}, out)
PY
.venv/bin/airflow variables import --action-on-existing-key skip "${vars_dir}/variables.json" >/dev/null
# Landing and warehouse follow this start's environment (ETL_LANDING_URI, ETL_WAREHOUSE_URI), which the
# DAGs' Assets are named from: a Variable kept from an earlier start with another warehouse would publish
# there while the Asset events named this one.
.venv/bin/airflow variables set --description "Where the pipelines read deliveries (a folder or any fsspec URL)." \
  etl_landing_uri "${ETL_LANDING_URI}" >/dev/null
.venv/bin/airflow variables set --description "Where the pipelines publish the tables (a folder or s3://…)." \
  etl_warehouse_uri "${ETL_WAREHOUSE_URI}" >/dev/null
rm -rf "${vars_dir}"
cat <<MSG

Airflow is starting at http://${api_host}:${AIRFLOW__API__PORT}
Landing ${ETL_LANDING_URI}, warehouse ${ETL_WAREHOUSE_URI} (Variables etl_landing_uri, etl_warehouse_uri)
Log in as user 'admin'; the password is generated on first start and stored in
  ${AIRFLOW_HOME}/simple_auth_manager_passwords.json.generated
(A laptop's sign-in: one admin, no roles. Production signs in through the agency's directory
with roles: docs/deployment.md, "Sign-in and roles".)
DAGs are paused at creation: unpause them in the UI (each makes one run; ehealth_adoption's
loads every month in landing). Stop with Ctrl-C.

MSG
# `airflow standalone` in a process group of its own: Ctrl-C (or SIGTERM) here stops every component at
# once — SIGTERM to the whole group, SIGKILL to what is left after 8 s — instead of standalone waiting
# on children that do not all exit on SIGINT (it took over 50 s and left defunct processes).
setsid .venv/bin/airflow standalone &
airflow_pid=$!
stop() {
  trap - INT TERM
  echo "make airflow: stopping every Airflow component" >&2
  kill -TERM -- "-${airflow_pid}" 2>/dev/null || true
  for _ in $(seq 1 16); do
    pgrep -g "${airflow_pid}" >/dev/null || exit 130
    sleep 0.5
  done
  kill -KILL -- "-${airflow_pid}" 2>/dev/null || true
  exit 130
}
trap stop INT TERM
wait "${airflow_pid}"
