"""Nothing torn: SIGKILL a publishing process at every stage and at random moments.

The child publishes version after version of a 10-partition table in which
every row of version *i* carries the value *i*. Whatever moment it dies,
readers must find a readable table holding exactly one version (never a mix
of partitions from two versions, never a half-written file), and the next
publish must recover without manual cleanup.
"""

import datetime as dt
import random
import signal
import time

import duckdb
import pytest

from etl import publish
from tests.process_support import ROWS_PER_VERSION, Publisher, version_batch

SEED = 20161


def _child(warehouse, first, count, stage=None) -> Publisher:
    """A process of its own publishing versions first..first+count-1 (with a quarantined row each), killing
    itself at ``stage``."""
    return Publisher(str(warehouse), first, count, quarantine=True, fault_stage=stage)


def _assert_one_whole_version(warehouse, allowed):
    """The table as readers see it (DuckDB over the current version's files, and deltalake): whole, one version."""
    published = publish.table_files(str(warehouse), "county_report")
    assert published is not None, "county_report is published"
    files = [f.removeprefix("file://") for f in published]
    listed = ", ".join(f"'{f}'" for f in files)
    values = duckdb.sql(
        f"select grant_sek, count(*) from read_parquet([{listed}], hive_partitioning=true) group by 1"
    ).fetchall()
    assert len(values) == 1, f"a mix of versions is visible: {values}"
    value, rows = values[0]
    assert rows == ROWS_PER_VERSION
    assert value in allowed
    assert publish.read_table(str(warehouse), "county_report").num_rows == rows
    return value


def _recover_and_check(warehouse, next_value):
    proc = _child(warehouse, next_value, 1)
    assert proc.wait(timeout=120) == 0, proc.error
    assert _assert_one_whole_version(warehouse, {next_value}) == next_value
    log = publish.read_load_log(str(warehouse))
    assert f"batch-{next_value}" in log.column("batch_id").to_pylist()


def _assert_every_commit_logged(warehouse):
    """Every version of the table that a publish committed is named in the load log by its batch id: a
    publish killed between its table commit and its load-log row is recorded by a later publish."""
    from deltalake import DeltaTable

    logged = {r["batch_id"]: r for r in publish.read_load_log(str(warehouse)).to_pylist()}
    for commit in DeltaTable(str(warehouse / "county_report")).history():
        batch = commit.get(publish.COMMIT_BATCH_KEY)
        if batch is None:
            continue  # version 0: the table created empty
        assert batch in logged, f"version {commit['version']} ({batch}) has no load-log row"
        assert logged[batch]["outcome"] == "published"


def _baseline(warehouse):
    proc = _child(warehouse, 1, 1)
    assert proc.wait(timeout=120) == 0, proc.error


@pytest.mark.slow
@pytest.mark.parametrize("stage", publish.FAULT_STAGES)
def test_kill_at_each_stage_leaves_old_or_new_version(stage, tmp_path):
    warehouse = tmp_path / "wh"
    _baseline(warehouse)
    proc = _child(warehouse, 2, 1, stage=stage)
    assert proc.wait(timeout=120) == -signal.SIGKILL, f"fault stage {stage} was never reached: {proc.error}"
    _assert_one_whole_version(warehouse, {1, 2})
    _recover_and_check(warehouse, 3)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["table-committed", "quarantine-published"])
@pytest.mark.parametrize("again", [2, 3], ids=["same-rows", "corrected-rows"])
def test_a_later_publish_records_the_publish_a_crash_left_unlogged(stage, again, tmp_path, monkeypatch):
    """Killed after its table commit, batch-2's rows are in version 2 and no load-log row says so. A later
    publish under the same keys — the same rows (``unchanged``) or a correction replacing them — records
    that publish under batch-2's id, with its version, before its own row: every table commit is in the
    load log. Until the commit is publish.CRASHED_AFTER old it is taken for a publish in flight."""
    warehouse = tmp_path / "wh"
    _baseline(warehouse)
    proc = _child(warehouse, 2, 1, stage=stage)
    assert proc.wait(timeout=120) == -signal.SIGKILL, proc.error
    assert "batch-2" not in publish.read_load_log(str(warehouse)).column("batch_id").to_pylist()

    # Seconds after the crash: as likely another writer between its commits, so left to it.
    publish.publish(str(warehouse), "crash-test", version_batch(2, quarantine=True), "batch-soon")
    assert "batch-2" not in publish.read_load_log(str(warehouse)).column("batch_id").to_pylist()

    monkeypatch.setattr(publish, "CRASHED_AFTER", dt.timedelta(0))  # later: old enough to be a crash
    publish.publish(str(warehouse), "crash-test", version_batch(again, quarantine=True), "batch-later")
    rows = [r for r in publish.read_load_log(str(warehouse)).to_pylist() if r["table_name"] == "county_report"]
    recorded, own = rows[-2:]
    assert (recorded["batch_id"], recorded["outcome"], recorded["table_version"]) == ("batch-2", "published", "2")
    assert recorded["rows_loaded"] == ROWS_PER_VERSION and recorded["validation"] == "skipped"
    assert "recorded by batch batch-later" in recorded["message"] and "before its load-log row" in recorded["message"]
    assert (own["batch_id"], own["outcome"]) == ("batch-later", "unchanged" if again == 2 else "published")
    _assert_every_commit_logged(warehouse)
    # Recorded once: the next publish finds it in the load log.
    publish.publish(str(warehouse), "crash-test", version_batch(4, quarantine=True), "batch-next")
    assert [r["batch_id"] for r in publish.read_load_log(str(warehouse)).to_pylist()].count("batch-2") == 1


@pytest.mark.slow
def test_kill_at_random_moments(tmp_path):
    """≥ 20 seeded trials across the whole publish loop (file writes, commits, quarantine, load log)."""
    rng = random.Random(SEED)
    trials = 0
    for trial in range(17):
        warehouse = tmp_path / f"wh{trial}"
        _baseline(warehouse)
        proc = _child(warehouse, 2, 50)
        # Let it get into publishing, then kill at a random moment.
        assert proc.next_version() == 2, proc.error
        time.sleep(rng.uniform(0.0, 0.6))
        proc.kill()
        proc.wait(timeout=60)
        seen = _assert_one_whole_version(warehouse, set(range(1, 52)))
        _recover_and_check(warehouse, 100 + trial)
        trials += 1
        assert seen >= 2
    assert trials + len(publish.FAULT_STAGES) >= 20
