"""Debian packages a test needs, installed by the tests themselves: a fresh CI machine needs nothing but ``make test``.

:func:`install` puts the packages in place with ``apt-get install -y
--no-install-recommends`` (after ``apt-get update`` when the package lists
are missing or stale) unless their executables are already there;
:func:`unavailable` skips a test with the reason — or fails it when
``ETL_REQUIRE_SERVICES=1`` (set by .ci/run): CI must run such tests, not
skip them. Used for Chromium (tests/browser_support.py) and LibreOffice
with poppler-utils (printing the analysts' workbook).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

APT_TIMEOUT = 900  # seconds: a package and its libraries can be a few hundred MB on a slow mirror
_results: dict[tuple[str, ...], str | None] = {}  # one attempt per package set and session


def unavailable(reason: str):
    """Skip with ``reason``, or fail when ETL_REQUIRE_SERVICES=1 forbids skipping."""
    if os.environ.get("ETL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and ETL_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


def _usable(executable: str) -> bool:
    return shutil.which(executable) is not None


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _apt(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    # Wait for a lock held by another apt/dpkg run instead of failing at once.
    argv = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    try:
        return subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=APT_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {exc.timeout:.0f} s")


def install(packages: tuple[str, ...], executables: tuple[str, ...]) -> str | None:
    """Install ``packages`` unless every one of ``executables`` is on PATH; None when they are, else why not."""
    key = (*packages, "|", *executables)
    if key not in _results:
        _results[key] = _install(packages, executables)
    return _results[key]


def _install(packages: tuple[str, ...], executables: tuple[str, ...]) -> str | None:
    missing = [e for e in executables if not _usable(e)]
    if not missing:
        return None
    names = " ".join(packages)
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and there is no apt-get to install the Debian package(s) {names}"
    if os.geteuid() != 0:
        return (
            f"{', '.join(missing)} missing and installing needs root: apt-get install --no-install-recommends {names}"
        )
    command = ["install", "-y", "--no-install-recommends", *packages]
    done = _apt(command)
    if done.returncode != 0 or not all(_usable(e) for e in executables):
        # A fresh machine has no package lists (or old ones naming files the mirror no longer has).
        update = _apt(["update"])
        if update.returncode != 0:
            return f"apt-get update failed (exit {update.returncode}) before installing {names}: " + _tail(
                update.stderr or update.stdout
            )
        done = _apt(command)
    if done.returncode != 0:
        return f"apt-get install {names} failed (exit {done.returncode}): {_tail(done.stderr or done.stdout)}"
    still = [e for e in executables if not _usable(e)]
    if still:
        return f"apt-get installed {names} but {', '.join(still)} is not on PATH"
    return None
