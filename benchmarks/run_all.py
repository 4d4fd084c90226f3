"""`make bench`: every benchmark in order, each printing its own table."""

import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHMARKS = [
    "bench_dag_parse",
    "bench_unit_ingest",
    "bench_backfill",
    "bench_noop",
    "bench_queries",
    "bench_no_shrink",
    "bench_validation_cost",
    "bench_delta",
]

if __name__ == "__main__":
    failed = []
    for name in BENCHMARKS:
        print(f"\n### {name}\n", flush=True)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                print(f"(not written yet: benchmarks/{name}.py)")
                failed.append(name)
                continue
            raise
        started = time.monotonic()
        try:
            module.main()
        except Exception as exc:  # report and go on: one broken benchmark must not hide the others
            print(f"FAILED: {type(exc).__name__}: {exc}")
            failed.append(name)
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    sys.exit(1 if failed else 0)
