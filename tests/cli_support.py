"""``python -m etl …`` in a process of its own, as a person runs it: one way for every test file.

The tests that judge what a user sees — the exit code, the one error line,
what stdout and stderr hold — run the CLI in a new interpreter instead of
calling :func:`etl.cli.main`, so that logging set-up, imports and exit codes
are the real ones. :func:`run_etl` is that run; :data:`SETTLED` is the
environment change most of them make (files in landing are taken at once,
not after the settle time a real upload gets).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTLED: Mapping[str, str] = {"ETL_LANDING_SETTLE_SECONDS": "0"}


def run_etl(
    *args: str, env: Mapping[str, str | None] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m etl <args>`` from ``cwd`` (default: the checkout), this checkout's ``etl`` first on the
    path; ``env`` changes this process's environment for it (a ``None`` value removes the variable).
    Returns the finished process, stdout and stderr as text; raises ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [sys.executable, "-m", "etl", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=environment,
        timeout=timeout,
    )
