"""Shared bits for the benchmark scripts: medians, tables, environment description."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def median(values):
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def env_with_project(**extra) -> dict:
    # Sample files are written a moment before the run: no settle interval (see Settings.landing_settle_seconds).
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), GX_ANALYTICS_ENABLED="false", TQDM_DISABLE="1", ETL_LANDING_SETTLE_SECONDS="0"
    )
    env.update(extra)
    return env


def run_python(code: str, *args: str, env: dict | None = None, timeout: int = 3600) -> str:
    out = subprocess.run(
        [PYTHON, "-c", code, *args], capture_output=True, text=True, env=env or env_with_project(), timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout


def sample_warehouse(units: int = 4000, unit_months: int = 12) -> tuple[Path, Path]:
    """Landing + warehouse with the 2016–2025 sample loaded by the CLI (cached per size for the session)."""
    import tempfile

    # The warehouse format is part of the name: a cache written by an earlier format is not reused.
    base = Path(tempfile.gettempdir()) / f"etl-bench-sample-delta-{units}-{unit_months}"
    landing, warehouse = base / "landing", base / "warehouse"
    done = base / ".done"
    if not done.exists():
        import shutil

        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        env = env_with_project()
        subprocess.run(
            [
                PYTHON,
                "-m",
                "etl",
                "sample",
                "--out",
                str(landing),
                "--units",
                str(units),
                "--unit-months",
                str(unit_months),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                PYTHON,
                "-m",
                "etl",
                "run",
                "all",
                "--landing",
                str(landing),
                "--warehouse",
                str(warehouse),
                "--offline-snapshot",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        done.write_text("ok")
    return landing, warehouse
