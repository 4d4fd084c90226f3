"""8. What validation costs a run, before and after issue 23 §5, measured in the same run.

"Before" is the code at BENCH_BEFORE_REF (default ``3cc769f``: every month's
files validated table by table and judged by the delivery suite month by
month), checked out in a git worktree and run with the same interpreter and
packages (PYTHONPATH); "after" is this checkout. Each workload is a whole
``python -m etl …`` process (interpreter, imports, GX start-up included), the
two versions in turns, median of BENCH_REPEATS (default 1):

* **e-health backfill** — ``run ehealth-adoption`` over the sample's 120
  months (two monthly exports a month, unit-level files for the last 12);
* **unit-level year** — ``run ehealth-adoption`` over 12 unit-level files
  (1.46 M rows), against pyarrow's ``read_csv → write_table`` of the same
  files in one process (the practical limit; issue 23's target: ≤ 3×);
* **no-op** — the backfill's run again, nothing new (target ≤ 1.5 s);
* **one-month correction** — one month's journal export corrected (one
  region's count + 1) on the backfilled warehouse (target ≤ 5 s).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, env_with_project, machine, run_python, table  # noqa: E402

BEFORE_REF = os.environ.get("BENCH_BEFORE_REF", "3cc769f")
REPEATS = int(os.environ.get("BENCH_REPEATS", "1"))

UNIT_YEAR = r"""
import sys, datetime as dt
from pathlib import Path
from etl.sample import ehealth
out = Path(sys.argv[1])
units = ehealth.make_units(4000, 2016)
for m in range(1, 13):
    for path in ehealth.write_month(out / "ehealth", dt.date(2025, m, 1), units=units):
        if not path.name.startswith("webbtidbok_enheter_"):
            path.unlink()
"""

PYARROW = r"""
import json, sys, time
from pathlib import Path
from etl import storage
from etl.sources import unit_daily
import pyarrow.csv as pc, pyarrow.parquet as pq
landing, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
fs, _ = storage.filesystem(str(landing))
start = time.perf_counter()
for path in sorted((landing / "ehealth").glob("webbtidbok_enheter_*.csv")):
    encoding, delimiter, _ = unit_daily.header_and_encoding(fs, str(path), path.name)
    t = pc.read_csv(path, read_options=pc.ReadOptions(encoding=encoding),
                    parse_options=pc.ParseOptions(delimiter=delimiter))
    pq.write_table(t, out / (path.stem + ".parquet"), compression="zstd")
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _worktree(ref: str) -> Path:
    where = Path(tempfile.mkdtemp(prefix="bench-before-")) / "src"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), ref], check=True)
    # The suites are package data (etl.expectations -> expectations/); found beside the package as well.
    (where / "etl" / "expectations").symlink_to(Path("..") / "expectations")
    return where


def _cli(source: Path, *args: str) -> float:
    env = env_with_project(PYTHONPATH=str(source))
    start = time.perf_counter()
    out = subprocess.run([PYTHON, "-m", "etl", *args], capture_output=True, text=True, env=env, cwd=str(source))
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"etl {' '.join(args[:2])} failed ({source}): {out.stderr[-1500:]}")
    return seconds


CORRECTION = r"""
import sys, datetime as dt
from pathlib import Path
from etl.sample import ehealth as sample
folder, month = Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2] + "-01")
for old in folder.glob(f"journalen_{month:%Y-%m}.*"):
    old.unlink()
journal, _, _ = sample.month_values(month, 12345)  # other counts than the sample's: a correction
rows = sample.export_rows("journalen", month, journal, sample.PLAIN, frozenset())
(folder / f"journalen_{month:%Y-%m}.csv").write_text("\n".join(";".join(map(str, r)) for r in rows) + "\n")
"""


def _correct_one_month(landing: Path, month: str) -> None:
    """The month's journal export replaced by a corrected one (every region, other counts)."""
    run_python(CORRECTION, str(landing / "ehealth"), month)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    before = _worktree(BEFORE_REF)
    try:
        sample = work / "sample"
        subprocess.run(
            [
                PYTHON,
                "-m",
                "etl",
                "sample",
                "--out",
                str(sample),
                "--years",
                "2016-2025",
                "--units",
                "4000",
                "--unit-months",
                "12",
            ],
            check=True,
            capture_output=True,
            env=env_with_project(),
        )
        unit_year = work / "unit-year"
        run_python(UNIT_YEAR, str(unit_year))
        versions = {"before": before, "after": ROOT}
        times: dict[tuple[str, str], list[float]] = {}
        pyarrow = []
        for i in range(REPEATS):
            pyarrow.append(
                json.loads(run_python(PYARROW, str(unit_year), str(work / f"pa-{i}")).splitlines()[-1])["seconds"]
            )
            for name, source in versions.items():
                wh = work / f"{name}-{i}-backfill"
                landing = work / f"{name}-{i}-landing"
                shutil.copytree(sample / "ehealth", landing / "ehealth")
                where = ["--landing", str(landing), "--warehouse", str(wh)]
                times.setdefault(("e-health backfill, 120 months", name), []).append(
                    _cli(source, "run", "ehealth-adoption", *where)
                )
                times.setdefault(("no-op run", name), []).append(_cli(source, "run", "ehealth-adoption", *where))
                _correct_one_month(landing, "2021-06")
                times.setdefault(("one-month correction", name), []).append(
                    _cli(source, "run", "ehealth-adoption", *where)
                )
                times.setdefault(("unit-level year (1.46 M rows)", name), []).append(
                    _cli(
                        source,
                        "run",
                        "ehealth-adoption",
                        "--landing",
                        str(unit_year),
                        "--warehouse",
                        str(work / f"{name}-{i}-units"),
                    )
                )
        base = statistics.median(pyarrow)
        rows = []
        for workload in dict.fromkeys(w for w, _ in times):
            b, a = statistics.median(times[(workload, "before")]), statistics.median(times[(workload, "after")])
            vs = f"{a / base:.1f}x / {b / base:.1f}x pyarrow ({base:.2f} s)" if workload.startswith("unit") else "-"
            rows.append([workload, b, a, f"{a / b:.2f}", vs])
        print(f"Validation cost, whole CLI processes, median of {REPEATS} ({machine()}); before = {BEFORE_REF}")
        print(table(["workload", "before s", "after s", "after/before", "after / before vs pyarrow"], rows))
        print("Targets (issue 23): unit-level year <= 3x pyarrow, no-op <= 1.5 s, one-month correction <= 5 s.")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
