"""The project's change tests' copy of the checkout: edit one file as a developer would, then see what follows.

``copy_project`` copies every tracked file (``git ls-files``) to a folder;
``edit`` changes one file there by a literal replacement (failing when the
text to replace is not found, so a test cannot silently edit nothing);
``run`` runs ``python -m …`` with the copy's ``etl`` first on the path (the
venv's packages, the copy's code and suites); ``changed`` lists the files that differ
from the checkout. Nothing is monkeypatched: the copy's modules import as
they would after the edit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True)
    return [name for name in out.stdout.decode("utf-8").split("\0") if name and (ROOT / name).is_file()]


def copy_project(dest: Path) -> Path:
    for name in tracked():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    # The suites are package data `etl.expectations`, which the editable install maps to the checkout's
    # expectations/ folder: without this link the copy's code would read the checkout's suites, not its own.
    (dest / "etl" / "expectations").symlink_to(Path("..") / "expectations", target_is_directory=True)
    return dest


def edit(copy: Path, name: str, old: str, new: str) -> None:
    path = copy / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{name}: the text to replace is not there exactly once: {old[:60]!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def run(copy: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = run_status(copy, *args, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def run_status(copy: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """:func:`run` without requiring exit 0: for a command whose refusal is the point."""
    env = {**os.environ, "PYTHONPATH": str(copy), "ETL_LANDING_SETTLE_SECONDS": "0", "ETL_KOLADA_KPIS": ""}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=copy, env=env, timeout=timeout)


def changed(copy: Path) -> set[str]:
    """Tracked files whose content in ``copy`` differs from the checkout's."""
    return {name for name in tracked() if (copy / name).read_bytes() != (ROOT / name).read_bytes()}
