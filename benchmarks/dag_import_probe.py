"""Import one DAG file the way the DAG processor does and print, as JSON, the
seconds it took (once ``airflow.sdk`` is loaded) and the top-level modules it
pulled in. Used by ``bench_dag_parse.py`` and ``tests/test_dags.py``:

    python benchmarks/dag_import_probe.py dags/ehealth_adoption.py
"""

import importlib.util
import json
import sys
import time

import airflow.sdk  # noqa: F401  - the parse budget is measured once the SDK is loaded

before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dagfile", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "modules": sorted({m.split(".")[0] for m in set(sys.modules) - before})}))
