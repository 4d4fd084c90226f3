"""6. The no-shrink check: what judging a delivery against the published version costs.

Before anything is published, :mod:`etl.no_shrink` reads the published
keys a file would replace — only when rows of the file were quarantined or
a table is unstated (otherwise the file states its keys whole and nothing
is read). Timed in-process on the 2016–2025 sample warehouse, median of 5,
for :func:`etl.pipelines.ehealth_adoption.judge_month` (parse + validate +
judge, writes nothing) of the last month — both monthly exports and the
unit-level file (~120 000 rows):

* baseline: the check switched off (``blocked_sources`` returns nothing);
* as sent: the check on, nothing quarantined (no published keys read);
* worst case: one line of each file broken, so the check reads the
  month's published keys of all three tables — against the same broken
  files with the check off (broken rows cost a second validation pass).

Reported as ratios to the baseline measured in the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, run_python, sample_warehouse, table  # noqa: E402

PROBE = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
from etl import no_shrink, storage, validation
from etl.config import Settings
from etl.pipelines import ehealth_adoption as pipeline
from etl.sources import ehealth_exports as exports

landing, warehouse, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
files = sorted((landing / "ehealth").glob("*_enheter_*.csv"))
period = exports.parse_file_name(files[-1].name).period
work = Path(tempfile.mkdtemp())
month = {}
for path in sorted((landing / "ehealth").iterdir()):
    try:
        name = exports.parse_file_name(path.name)
    except Exception:
        continue
    if name.period != period:
        continue
    data = path.read_bytes()
    if mode.endswith("broken"):  # the second data line of every file gets an impossible value
        lines = data.split(b"\n")
        cells = lines[2].split(b";") if b";" in lines[2] else lines[2].split(b",")
        cells[-1] = b"-5"
        lines[2] = (b";" if b";" in lines[2] else b",").join(cells)
        data = b"\n".join(lines)
    copy = work / path.name
    copy.write_bytes(data)
    month[name.kind] = [storage.landed_file(str(copy))]
if mode.startswith("off"):
    no_shrink.blocked_sources = lambda *_: {}
    pipeline.no_shrink.blocked_sources = no_shrink.blocked_sources
settings = Settings.resolve(landing=str(landing), warehouse=warehouse, environ={})
times, blocked = [], None
with validation.not_persisted():
    for _ in range(5):
        start = time.perf_counter()
        judged = pipeline.judge_month(settings, period, month, "bench")
        times.append(time.perf_counter() - start)
        blocked = len(judged.blocked)
shutil.rmtree(work)
print(json.dumps({"median": sorted(times)[2], "blocked": blocked, "period": period}))
"""


def main() -> None:
    landing, warehouse = sample_warehouse()
    print(f"machine: {machine()}\n")
    results = {
        mode: json.loads(run_python(PROBE, str(landing), str(warehouse), mode).strip().splitlines()[-1])
        for mode in ("off", "on", "off-broken", "broken")
    }
    base = results["off"]["median"]
    rows = [
        ["check off (baseline)", results["off"]["blocked"], base, 1.0],
        [
            "check on, nothing quarantined",
            results["on"]["blocked"],
            results["on"]["median"],
            results["on"]["median"] / base,
        ],
        [
            "check off, a line of each file broken",
            results["off-broken"]["blocked"],
            results["off-broken"]["median"],
            results["off-broken"]["median"] / base,
        ],
        [
            "check on, a line of each file broken",
            results["broken"]["blocked"],
            results["broken"]["median"],
            results["broken"]["median"] / base,
        ],
    ]
    print(
        "(broken lines are validated twice — GX's BASIC pass, then COMPLETE for the failing rows — so\n"
        " the check's own cost is the last row against the one above it)\n"
    )
    print(f"judge_month({results['off']['period']}): two monthly exports + the unit-level file, median of 5\n")
    print(table(["case", "files blocked", "seconds", "× baseline"], rows))


if __name__ == "__main__":
    main()
