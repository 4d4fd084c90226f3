# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export ETL_LANDING_URI ?= $(CURDIR)/landing
export ETL_WAREHOUSE_URI ?= $(CURDIR)/warehouse
export GX_ANALYTICS_ENABLED := false
# Noise from Airflow itself, ignored narrowly (that message, category and module only): Airflow 3.3.2's
# execution API imports svcs.fastapi -> fastapi.testclient, which under Starlette 1.10 warns in every
# Airflow process (StarletteDeprecationWarning, a UserWarning) that httpx should be httpx2. Same in
# docker-compose.yml; tests/test_demo_logs.py checks task logs stay free of deprecation warnings.
export PYTHONWARNINGS := ignore:Using `httpx` with `starlette.testclient` is deprecated:UserWarning:fastapi.testclient

.PHONY: setup demo test test-fast lint airflow bench docs lock env clean

# The pins first, then the project itself, editable (pyproject.toml; its dependencies are requirements.txt):
# `etl` and `python -m etl` work from any folder without PYTHONPATH. (PYTHONWARNINGS: setuptools warns that
# a folder named like the package may shadow it, which for a checkout installed editable is the point.)
$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python scripts/pip_progress.py $(VENV)/pip-install.log -- install -r requirements.txt -r requirements-dev.txt -c constraints.txt
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet --no-deps -e . -c constraints.txt
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/python scripts/demo.py

# Two workers (pytest-xdist), one per core, each taking whole test files (module fixtures stay shared), in
# xdist's order (files with the most tests first). Measured on fresh clones, 2026-12-07: this order 944 s; the
# Airflow-server files as one lane and the other files costliest first 980 s, the heavy files started together
# then slowing each other down (summed test time 1 759 s → 1 921 s). Then, with less work per test (forked
# crash-test publishers, one migrated Airflow metadata database per worker): 867 s, 926 s, 934 s and 961 s.
# On the machine of 2026-12-07 (about a third faster): 642 s in a checkout, 718 s on a fresh clone; on the
# machine of 2026-12-08, 694 s on a fresh clone (3 146 tests).
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow and not integration"

# ruff (lint: the library, DAGs, plugin, tests, scripts, benchmarks), mypy (the library, DAGs, plugin and tests:
# [tool.mypy] files), then ruff's format check (the same folders as ruff check); configured in pyproject.toml.
# `make test` runs the same (tests/test_code_quality.py). `$(BIN)/ruff check --fix etl dags plugins` and
# `$(BIN)/ruff format etl dags plugins tests scripts benchmarks` apply what ruff can fix itself.
lint: setup
	$(BIN)/ruff check etl dags plugins tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/ruff format --check etl dags plugins tests scripts benchmarks

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

# scripts/make_env.py is standard library only: a fresh clone needs no .venv, just $(PYTHON) or any python3.
env:
	@py="$$(command -v $(PYTHON) || command -v python3)" || { echo "make env: needs $(PYTHON) or python3 on PATH" >&2; exit 1; }; \
	echo "$$py scripts/make_env.py"; "$$py" scripts/make_env.py

clean:
	rm -rf .airflow warehouse landing .pytest_cache
