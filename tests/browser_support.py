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

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
APT_PACKAGE = "chromium"
APT_TIMEOUT = 900  # seconds: the package and its libraries are about 100 MB on a slow mirror
_install_result: dict = {}  # one attempt per session: {"reason": None | str}


def _unavailable(reason: str):
    """Skip with ``reason``, or fail when ETL_REQUIRE_SERVICES=1 forbids skipping."""
    if os.environ.get("ETL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and ETL_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _apt(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    # Wait for a lock held by another apt/dpkg run instead of failing at once.
    argv = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    try:
        return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=APT_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {exc.timeout:.0f} s")


def install_chromium() -> str | None:
    """Install Debian's Chromium if it is missing; None when it is there, else why it is not."""
    if _usable(CHROMIUM):
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install the Debian package {APT_PACKAGE!r}"
    if os.geteuid() != 0:
        return (f"{CHROMIUM} is missing and installing it needs root: "
                f"apt-get install --no-install-recommends {APT_PACKAGE}")
    install = ["install", "-y", "--no-install-recommends", APT_PACKAGE]
    done = _apt(install)
    if done.returncode != 0 or not _usable(CHROMIUM):
        # A fresh machine has no package lists (or old ones naming files the mirror no longer has).
        update = _apt(["update"])
        if update.returncode != 0:
            return (f"apt-get update failed (exit {update.returncode}) before installing {APT_PACKAGE}: "
                    f"{_tail(update.stderr or update.stdout)}")
        done = _apt(install)
    if done.returncode != 0:
        return (f"apt-get install {APT_PACKAGE} failed (exit {done.returncode}): "
                f"{_tail(done.stderr or done.stdout)}")
    if not _usable(CHROMIUM):
        return f"apt-get installed {APT_PACKAGE} but {CHROMIUM} is not an executable file"
    return None


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's Chromium, installed with apt-get on first use if missing."""
    if "reason" not in _install_result:
        _install_result["reason"] = install_chromium()
    reason = _install_result["reason"]
    if reason:
        _unavailable(f"no Chromium for the browser tests: {reason}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_executable):
    """Headless Chromium under Playwright (the Debian binary, never a downloaded build)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"Playwright is not installed ({exc}): run `make setup` (requirements-dev.txt)")
    driver = sync_playwright().start()
    try:
        try:
            launched = driver.chromium.launch(executable_path=str(chromium_executable), headless=True,
                                              args=["--disable-dev-shm-usage"])
        except PlaywrightError as exc:
            pytest.fail(f"Playwright could not start {chromium_executable}: {exc}", pytrace=False)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        driver.stop()
