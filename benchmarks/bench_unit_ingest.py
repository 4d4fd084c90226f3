"""2. Unit-level ingest (webbtidbok_enheter files): rows/s and peak RSS through the real path.

For 1 month, 1 year and 10 years of synthetic unit files (4 000 units), each
configuration in a fresh process:

* **pipeline** — ``etl.pipelines.ehealth_adoption.run`` over every landed
  month (what a backfill or ``python -m etl run ehealth`` does): read →
  validate (GX) → publish, month by month, the next month's file read
  ahead while this one is validated;
* **cli** — the same as one whole ``python -m etl run ehealth-adoption``
  process (interpreter, imports, GX start-up included): what a user or a
  task pays;
* **pyarrow** — ``pyarrow.csv.read_csv → parquet.write_table`` per file (the
  practical limit: no typing rules, no validation);
* **pandas** — ``pandas.read_csv → to_parquet`` per file.

Reports rows/s, the ratio to pyarrow measured in the same run, peak RSS, and
the share of pipeline time spent in GX validation. BENCH_UNIT_MONTHS (e.g.
"1,12") trims the sizes on a busy machine.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import env_with_project, machine, median, run_python, table  # noqa: E402

UNITS = int(os.environ.get("BENCH_UNITS", "4000"))
SIZES = [int(x) for x in os.environ.get("BENCH_UNIT_MONTHS", "1,12,120").split(",")]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))

GENERATE = r"""
import sys, datetime as dt
from pathlib import Path
from etl.sample import ehealth
out, months, units = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
unit_set = ehealth.make_units(units, 2016)
start = dt.date(2025 - (months - 1) // 12, 1, 1)
done = 0
y, m = start.year, start.month
while done < months:
    paths = ehealth.write_month(out / "ehealth", dt.date(y, m, 1), units=unit_set)
    for path in paths:  # only the unit-level files: the same input as the baselines
        if not path.name.startswith("webbtidbok_enheter_"):
            path.unlink()
    done += 1
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
"""

PIPELINE = r"""
import json, resource, sys, time
from etl import storage, validation
from etl.config import Settings
from etl.pipelines import ehealth_adoption
landing, warehouse = sys.argv[1], sys.argv[2]
settings = Settings.resolve(landing=landing, warehouse=warehouse, kolada_kpis="",
                            environ={"ETL_LANDING_SETTLE_SECONDS": "0"})  # files just written are complete
gx_seconds = 0.0
real_validate = validation.validate
def timed_validate(*a, **k):
    global gx_seconds
    t = time.perf_counter()
    try:
        return real_validate(*a, **k)
    finally:
        gx_seconds += time.perf_counter() - t
validation.validate = timed_validate
validation._context()  # GX start-up is paid once per worker process; measured apart
start = time.perf_counter()
report = ehealth_adoption.run(settings)  # every landed month, as a backfill or `python -m etl run ehealth` does
elapsed = time.perf_counter() - start
units = [r for r in report.results if r.table == "ehealth_unit_daily"]
rows = sum(r.rows_in for r in units)
assert units and units[-1].table_rows == rows, "the unit table does not hold every row read"
print(json.dumps({"rows": rows, "seconds": elapsed, "gx": gx_seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BASELINE = r"""
import json, resource, sys, time
from pathlib import Path
from etl import storage
from etl.sources import unit_daily
landing, out, engine = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
out.mkdir(parents=True, exist_ok=True)
files = sorted((landing / "ehealth").glob("webbtidbok_enheter_*.csv"))
fs, _ = storage.filesystem(str(landing))
if engine == "pyarrow":
    import pyarrow.csv as pc, pyarrow.parquet as pq
    def convert(path, encoding, delimiter):
        t = pc.read_csv(path, read_options=pc.ReadOptions(encoding=encoding),
                        parse_options=pc.ParseOptions(delimiter=delimiter))
        pq.write_table(t, out / (path.stem + ".parquet"), compression="zstd")
        return t.num_rows
else:
    import pandas as pd
    def convert(path, encoding, delimiter):
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding, dtype=str)
        frame.to_parquet(out / (path.stem + ".parquet"), compression="zstd")
        return len(frame)
rows = 0
start = time.perf_counter()
for path in files:
    encoding, delimiter, _ = unit_daily.header_and_encoding(fs, str(path), path.name)
    rows += convert(path, encoding, delimiter)
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _cli(landing: Path, warehouse: Path) -> dict:
    """One whole CLI process over the landed months; seconds from start to exit."""
    import subprocess
    import time

    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "run",
            "ehealth-adoption",
            "--landing",
            str(landing),
            "--warehouse",
            str(warehouse),
            "--kolada-kpis",
            "",
        ],
        capture_output=True,
        text=True,
        env=env_with_project(),
    )
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return {"seconds": seconds}


def main() -> None:
    rows_out = []
    for months in SIZES:
        work = Path(tempfile.mkdtemp(prefix=f"bench-units-{months}-"))
        run_python(GENERATE, str(work / "landing"), str(months), str(UNITS))
        results = {}
        for name, code in (("pyarrow", BASELINE), ("pandas", BASELINE), ("pipeline", PIPELINE)):
            runs = []
            for i in range(REPEATS):
                target = work / f"{name}-{i}"
                out = run_python(code, str(work / "landing"), str(target), name)
                runs.append(json.loads(out.strip().splitlines()[-1]))
            results[name] = {k: median([r[k] for r in runs]) for k in runs[0]}
        cli = [_cli(work / "landing", work / f"cli-{i}")["seconds"] for i in range(REPEATS)]
        results["cli"] = {"rows": results["pipeline"]["rows"], "seconds": median(cli), "rss_mb": float("nan")}
        base = results["pyarrow"]["seconds"]
        for name in ("pyarrow", "pandas", "pipeline", "cli"):
            r = results[name]
            gx_share = f"{r['gx'] / r['seconds']:.0%}" if "gx" in r else "-"
            rows_out.append(
                [
                    f"{months} month(s)",
                    name,
                    int(r["rows"]),
                    r["seconds"],
                    r["rows"] / r["seconds"],
                    r["seconds"] / base,
                    r["rss_mb"],
                    gx_share,
                ]
            )
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(f"Unit-level ingest, {UNITS} units, median of {REPEATS} run(s) each ({machine()})")
    print(table(["size", "path", "rows", "seconds", "rows/s", "x pyarrow", "peak RSS MB", "GX share"], rows_out))
    print(
        "Targets: pipeline within 2x of pyarrow, the whole CLI process within 3x (issue 23); peak RSS flat as months grow; GX share < 33 %."
    )


if __name__ == "__main__":
    main()
