"""Held by tools, not memory (issue 16): ruff (lint and format) and mypy pass on the library, the DAGs and the plugin,
and on the tests, scripts and benchmarks too (mypy: the tests, every function body included).

The same checks as ``make lint``, configured in pyproject.toml ([tool.ruff], [tool.mypy]) and run with this
interpreter's own ruff and mypy (the pinned ones in the venv), so that ``make test`` — what CI runs — fails on a
finding and says what it is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = ("etl", "dags", "plugins")  # mypy's list is [tool.mypy] files (these folders and the tests)
# ruff's lint rules and its formatter hold for the tests, scripts and benchmarks too.
LINTED_ALSO = ("tests", "scripts", "benchmarks")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    shown = " ".join(result.args[2:])
    assert result.returncode == 0, f"`{shown}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_ruff_check_finds_nothing():
    _assert_clean(_run("ruff", "check", *LINTED, *LINTED_ALSO))


def test_ruff_format_would_change_nothing():
    _assert_clean(_run("ruff", "format", "--check", *LINTED, *LINTED_ALSO))


@pytest.mark.slow  # about 45 s without mypy's cache (a fresh clone, CI), about 2 s with it
def test_mypy_finds_nothing():
    _assert_clean(_run("mypy"))


def test_mypy_checks_the_bodies_of_unannotated_functions_everywhere():
    """check_untyped_defs is on, and no override turns it (or error reporting) off for some modules: a test
    function's body is checked like the library's (mypy's default skips bodies without annotations)."""
    import tomllib

    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy.get("check_untyped_defs") is True
    for override in mypy.get("overrides", []):
        assert not {"check_untyped_defs", "ignore_errors"} & set(override), override


def test_the_pre_commit_hooks_run_what_make_lint_runs():
    """.pre-commit-config.yaml's entries are make lint's commands, one for one, in the same order."""
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = makefile.index("lint: setup") + 1
    recipe = []
    for line in makefile[start:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(BIN)/", ".venv/bin/"))
    assert recipe and sorted(entries) == sorted(recipe), (entries, recipe)
