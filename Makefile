# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(CURDIR)/.airflow/airflow.db
export ETL_LANDING_URI ?= $(CURDIR)/landing
export ETL_WAREHOUSE_URI ?= $(CURDIR)/warehouse
export GX_ANALYTICS_ENABLED := false
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo test test-fast airflow bench docs lock env clean

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not integration"

airflow: setup
	scripts/airflow_standalone.sh

bench: setup
	$(BIN)/python benchmarks/run_all.py

docs: setup
	$(BIN)/python -m etl docs

# Resolve requirements*.txt afresh (without the old lock), then freeze the result as the new lock.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Full lock of the working environment (pip freeze), used as pip constraints.\n# Regenerate with `make lock` after changing requirements*.txt.' > constraints.txt

env:
	$(BIN)/python scripts/make_env.py

clean:
	rm -rf .airflow warehouse landing .pytest_cache
