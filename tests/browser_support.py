"""A real browser for tests: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python.

Fixtures:

* ``chromium_executable`` (session) — the path of Debian's Chromium. When
  it is missing it is installed with ``apt-get install -y
  --no-install-recommends chromium`` (after ``apt-get update`` if the
  package lists are missing or stale), so a fresh CI machine needs nothing
  but ``make test``. Playwright's own browser download is never used: it
  fetches from a CDN this project cannot reach, and the Debian package is
  the browser the issue asks for.
* ``browser`` (module) — a headless Chromium launched by Playwright from that
  executable; closed, with Playwright's driver, at the end of the module.

When Chromium cannot be installed (not root, no apt-get, no package) or
Playwright is not installed, the tests that use these fixtures are skipped
with the reason — and fail instead when ``ETL_REQUIRE_SERVICES=1`` (set by
.ci/run), as a missing PostgreSQL does: CI must run them, not skip them.

Registered for every test module by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import debian_support
from tests.debian_support import unavailable

CHROMIUM = Path("/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 30_000
APT_PACKAGE = "chromium"


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's Chromium, installed with apt-get on first use if missing."""
    reason = debian_support.install((APT_PACKAGE,), (str(CHROMIUM),))
    if reason:
        unavailable(f"no Chromium for the browser tests: {reason}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_executable):
    """Headless Chromium under Playwright (the Debian binary, never a downloaded build)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        unavailable(f"Playwright is not installed ({exc}): run `make setup` (requirements-dev.txt)")
    # expect()'s own default wait is 5 s: on a loaded CI machine the Airflow UI's translations can take longer to
    # load, and a label then still reads as its key ("states.failed"). Assertions wait as long as page actions.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    driver = sync_playwright().start()
    try:
        try:
            launched = driver.chromium.launch(
                executable_path=str(chromium_executable), headless=True, args=["--disable-dev-shm-usage"]
            )
        except PlaywrightError as exc:
            pytest.fail(f"Playwright could not start {chromium_executable}: {exc}", pytrace=False)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        driver.stop()
