"""Several processes writing one table at once, on a fresh table and on an existing one, on local disk
and on a real S3 server (SeaweedFS): each key ends up once, and every writer's outcome is true.

The fault this holds (issue 22): the first write of a table used to be an append into nothing, which
has nothing to conflict with, so two processes creating one table both landed their rows (42 rows for
21). Now a table is created empty once (version 0, put-if-absent) and every write is a predicate
overwrite judged against a version (:func:`etl.publish.write_version`).
"""

from __future__ import annotations

import queue

import pandas as pd
import pytest

from etl import publish
from etl.publish import TableBatch
from tests.process_support import writer, writer_context

WRITERS = 4
REGIONS = [f"{i:02d}" for i in range(1, 22)]


def _writer(uri: str, value: int, barrier, results, env: dict[str, str]) -> None:
    """Publish the 21 regions' 2016 population = ``value`` (a writer process); report the outcome."""
    import os

    os.environ.update(env)
    rows = pd.DataFrame([{"region_code": r, "year": 2016, "population": value} for r in REGIONS])
    rows["source_file"] = f"writer-{value}.csv"
    batch = TableBatch("population", rows, pd.DataFrame(), len(rows), ("region_code", "year"))
    barrier.wait(timeout=60)
    result = publish.publish(uri, "test", batch, f"w{value}")
    results.put((value, result.outcome, result.version, result.table_rows))


def _race(uri: str, values: list[int], env: dict[str, str] | None = None) -> list[tuple]:
    context = writer_context()
    barrier = context.Barrier(len(values))
    results = context.Queue()
    procs = [writer(_writer, uri, v, barrier, results, env or {}) for v in values]
    for p in procs:
        p.start()
    outcomes = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=180))
    except queue.Empty:
        pass
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs), "a writer failed (its traceback is above)"
    return outcomes


def _keys_once(uri: str) -> list[dict]:
    rows = publish.read_table(uri, "population").to_pylist()
    keys = [(r["region_code"], r["year"]) for r in rows]
    assert len(keys) == len(set(keys)), f"duplicate keys: {len(keys)} rows, {len(set(keys))} keys"
    return rows


def _assert_same_rows_race(uri: str, env=None, others: int = 0) -> None:
    """Every writer sends the same rows: one publishes them, the others find them unchanged."""
    outcomes = _race(uri, [7] * WRITERS, env)
    assert sorted(o[1] for o in outcomes) == ["published"] + ["unchanged"] * (WRITERS - 1)
    assert {o[3] for o in outcomes} == {21 + others}  # each writer's own word on the table's size is true
    rows = [r for r in _keys_once(uri) if r["year"] == 2016]
    assert [(r["region_code"], r["population"]) for r in sorted(rows, key=lambda r: r["region_code"])] == [
        (r, 7) for r in REGIONS
    ]


def _assert_different_rows_race(uri: str, env=None, others: int = 0) -> None:
    """Every writer sends its own value for the same 21 keys: all publish, each in its own version, and
    the table holds exactly the rows of the writer whose version is last (never a mix, never doubled)."""
    values = [100 + i for i in range(WRITERS)]
    outcomes = _race(uri, values, env)
    assert {o[1] for o in outcomes} == {"published"}
    versions = [int(o[2]) for o in outcomes]
    assert len(set(versions)) == WRITERS, f"two writers report one version: {outcomes}"
    last = max(outcomes, key=lambda o: int(o[2]))[0]
    rows = _keys_once(uri)
    of_2016 = [r for r in rows if r["year"] == 2016]
    assert sorted((r["region_code"], r["population"]) for r in of_2016) == [(r, last) for r in REGIONS]
    assert len(rows) == 21 + others  # other keys of the table are untouched
    # The load log tells the same story: one row per writer, each naming its version.
    log = [r for r in publish.read_load_log(uri).to_pylist() if r["table_name"] == "population"]
    assert sorted(int(r["table_version"]) for r in log if r["batch_id"].startswith("w1")) == sorted(versions)


def _seed(uri: str) -> None:
    """An existing table: the 21 regions' 2015 population."""
    rows = pd.DataFrame([{"region_code": r, "year": 2015, "population": 1} for r in REGIONS])
    rows["source_file"] = "seed.csv"
    publish.publish(uri, "test", TableBatch("population", rows, pd.DataFrame(), 21, ("region_code", "year")), "seed")


ROUNDS = 4


@pytest.mark.slow
@pytest.mark.parametrize("existing", [False, True], ids=["fresh-table", "existing-table"])
def test_writers_at_once_on_local_disk_leave_each_row_once(tmp_path, existing):
    for round_ in range(ROUNDS):
        uri = str(tmp_path / f"same-{round_}")
        if existing:
            _seed(uri)
        _assert_same_rows_race(uri, others=21 if existing else 0)
        uri = str(tmp_path / f"different-{round_}")
        if existing:
            _seed(uri)
        _assert_different_rows_race(uri, others=21 if existing else 0)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("existing", [False, True], ids=["fresh-table", "existing-table"])
def test_writers_at_once_on_s3_leave_each_row_once(s3_env, existing):
    env = s3_env.env()
    for round_ in range(2):
        uri = s3_env.uri(f"race-same-{existing}-{round_}")
        if existing:
            _seed(uri)
        _assert_same_rows_race(uri, env, others=21 if existing else 0)
        uri = s3_env.uri(f"race-different-{existing}-{round_}")
        if existing:
            _seed(uri)
        _assert_different_rows_race(uri, env, others=21 if existing else 0)


def test_a_table_is_created_empty_once_then_written(tmp_path):
    """Version 0 is the empty table (schema, partitioning, retention properties); the rows come in version 1."""
    from deltalake import DeltaTable

    uri = str(tmp_path)
    rows = pd.DataFrame([{"region_code": "01", "year": 2016, "population": 5, "source_file": "a.csv"}])
    result = publish.publish(
        uri, "test", TableBatch("population", rows, pd.DataFrame(), 1, ("region_code", "year")), "b"
    )
    assert (result.outcome, result.version, result.table_rows) == ("published", "1", 1)
    table = DeltaTable(str(tmp_path / "population"))
    history = sorted(table.history(), key=lambda h: h["version"])
    assert [h["operation"] for h in history] == ["CREATE TABLE", "WRITE"]
    assert table.metadata().configuration["delta.logRetentionDuration"] == "interval 3650 days"
    assert DeltaTable(str(tmp_path / "population"), version=0).to_pyarrow_table().num_rows == 0


@pytest.mark.slow
def test_runs_of_the_cli_at_once_on_a_fresh_warehouse_load_each_row_once(tmp_path):
    """As the adversary met it: `etl run ehealth-adoption` several times at once on a fresh warehouse
    (a CLI backfill beside a scheduled run). All exit 0, each says published or unchanged, and the
    table holds every key once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from etl import schemas
    from etl.sample import ehealth as sample

    landing = tmp_path / "landing"
    sample.write(landing, 2017, 2017, units=0, unit_months=0, seed=3)
    for extra in sorted((landing / "ehealth").iterdir())[3:]:
        extra.unlink()  # a few months are enough to race
    warehouse = str(tmp_path / "warehouse")
    env = {**os.environ, "ETL_LANDING_SETTLE_SECONDS": "0"}
    argv = [sys.executable, "-m", "etl", "run", "ehealth-adoption", "--landing", str(landing), "--warehouse", warehouse]
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-1500:] for _, err in outs]
    finals = sorted(out.strip().splitlines()[-1].split(" in ")[0] for out, _ in outs)
    assert all(f in ("ehealth-adoption: published", "ehealth-adoption: unchanged") for f in finals), finals
    assert "ehealth-adoption: published" in finals
    for name in ("ehealth_adoption", "ehealth_adoption_national"):
        table = publish.read_table(warehouse, name)
        key = list(schemas.get(name).key)
        assert table.num_rows == table.group_by(key).aggregate([]).num_rows > 0, name
