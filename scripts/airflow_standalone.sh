#!/usr/bin/env bash
# `make airflow`: the Airflow UI on a laptop with the project's DAGs and the sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
# standalone starts its components as `airflow …` subprocesses: they must find the venv's airflow.
export PATH="$PWD/.venv/bin:$PATH"
if [ ! -f "${ETL_LANDING_URI}/.sample-args" ]; then
  .venv/bin/python -m etl sample --out "${ETL_LANDING_URI}"
  echo "--years 2016-2025 --units 4000 --unit-months 12" > "${ETL_LANDING_URI}/.sample-args"
fi
.venv/bin/airflow db migrate >/dev/null
.venv/bin/airflow pools set etl_warehouse_writer 1 "one writer per warehouse" >/dev/null
# The Variables the DAG docs name, in the metadata database so that they show (and can be changed) in
# Admin → Variables; an existing value is kept. (Environment AIRFLOW_VAR_* would hide UI edits.)
for pair in "etl_landing_uri=${ETL_LANDING_URI}" "etl_warehouse_uri=${ETL_WAREHOUSE_URI}"; do
  name="${pair%%=*}"
  .venv/bin/airflow variables get "$name" >/dev/null 2>&1 \
    || .venv/bin/airflow variables set "$name" "${pair#*=}" >/dev/null
done
cat <<MSG

Airflow is starting at http://localhost:8080
Log in as user 'admin'; the password is generated on first start and stored in
  ${AIRFLOW_HOME}/simple_auth_manager_passwords.json.generated
DAGs are paused at creation: unpause them in the UI. Stop with Ctrl-C.

MSG
exec .venv/bin/airflow standalone
