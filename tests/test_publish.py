"""Publishing: atomic swap, merge-by-key idempotence, accounting, quarantine, load log."""

import os
import uuid

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl import publish
from etl.errors import AccountingError, EtlError
from etl.publish import TableBatch


def _pop(rows, source="pop.json"):
    frame = pd.DataFrame(rows, columns=["region_code", "year", "population"])
    frame["source_file"] = source
    return frame


def _batch(rows, rows_in=None, quarantine=None, merge_keys=("region_code", "year"), **kw):
    quarantine = quarantine if quarantine is not None else pd.DataFrame(
        columns=["source_file", "row_number", "raw", "reason"])
    n = len(rows)
    return TableBatch("population", rows, quarantine, rows_in if rows_in is not None else n + len(quarantine),
                      merge_keys, **kw)


def _content(uri, table="population"):
    return sorted(publish.read_table(uri, table).select(["region_code", "year", "population"]).to_pylist(),
                  key=lambda r: (r["region_code"], r["year"]))


def test_first_publish_is_readable_by_duckdb_and_symlinked(warehouse):
    uri = str(warehouse)
    result = publish.publish(uri, "test", _batch(_pop([("01", 2016, 2_269_060), ("03", 2016, 368_971)])), "b1")
    assert (result.outcome, result.rows_loaded, result.table_rows) == ("published", 2, 2)
    assert os.path.islink(warehouse / "population")
    got = duckdb.sql(
        f"select region_code, population from read_parquet('{warehouse}/population/**/*.parquet', "
        "hive_partitioning=true) order by 1").fetchall()
    assert got == [("01", 2_269_060), ("03", 368_971)]
    files = list((warehouse / "population").glob("**/*.parquet"))
    assert files and pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"


def test_merge_replaces_rows_with_the_same_key_and_keeps_others(warehouse):
    uri = str(warehouse)
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 100), ("03", 2016, 200)])), "b1")
    publish.publish(uri, "test", _batch(_pop([("03", 2016, 250), ("03", 2017, 260)])), "b2")
    assert _content(uri) == [
        {"region_code": "01", "year": 2016, "population": 100},
        {"region_code": "03", "year": 2016, "population": 250},
        {"region_code": "03", "year": 2017, "population": 260},
    ]


def test_same_input_twice_changes_nothing_not_even_lineage(warehouse):
    uri = str(warehouse)
    rows = _pop([("01", 2016, 100), ("03", 2016, 200)])
    first = publish.publish(uri, "test", _batch(rows), "b1")
    before = publish.read_table(uri, "population")
    second = publish.publish(uri, "test", _batch(rows), "b2")
    assert second.outcome == "unchanged" and second.version == first.version
    assert publish.read_table(uri, "population").equals(before)
    log = publish.read_load_log(uri).to_pylist()
    assert [r["outcome"] for r in log] == ["published", "unchanged"]


def test_replace_whole_table(warehouse):
    uri = str(warehouse)
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1), ("03", 2016, 2)]), merge_keys=None), "b1")
    publish.publish(uri, "test", _batch(_pop([("04", 2016, 3)]), merge_keys=None), "b2")
    assert _content(uri) == [{"region_code": "04", "year": 2016, "population": 3}]


def test_accounting_mismatch_publishes_nothing_and_is_logged(warehouse):
    uri = str(warehouse)
    with pytest.raises(AccountingError, match="3 in != 2 loaded"):
        publish.publish(uri, "test", _batch(_pop([("01", 2016, 1), ("03", 2016, 2)]), rows_in=3), "b1")
    assert not (warehouse / "population").exists()
    assert publish.read_load_log(uri).to_pylist()[0]["outcome"] == "failed"


def test_duplicate_keys_are_refused(warehouse):
    with pytest.raises(AccountingError, match="duplicate key"):
        publish.publish(str(warehouse), "test", _batch(_pop([("01", 2016, 1), ("01", 2016, 2)])), "b1")
    assert not (warehouse / "population").exists()


def test_duplicate_keys_far_apart_and_across_a_merge_are_refused_with_an_example(warehouse):
    uri = str(warehouse)
    rows = [("01", 2016, 1), ("03", 2016, 2), ("04", 2017, 3), ("03", 2017, 4), ("01", 2016, 5)]
    with pytest.raises(AccountingError, match=r"1 duplicate key\(s\) after merge, e\.g\. "
                                              r"\{'region_code': '01', 'year': 2016\}"):
        publish.publish(uri, "test", _batch(_pop(rows)), "b1")
    publish.publish(uri, "test", _batch(_pop(rows[:4])), "b2")
    # Merging a new key in, next to the four already published, is not a duplicate.
    publish.publish(uri, "test", _batch(_pop([("05", 2017, 6)]), merge_keys=("region_code", "year")), "b3")
    assert len(_content(uri)) == 5


def test_quarantine_is_replaced_per_source_file(warehouse):
    uri = str(warehouse)
    q = pd.DataFrame([{"source_file": "pop.json", "row_number": 3, "raw": "99;2016;x", "reason": "unknown region"},
                      {"source_file": "pop.json", "row_number": 3, "raw": "99;2016;x", "reason": "not a number"}])
    result = publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)]), rows_in=2, quarantine=q), "b1")
    assert result.rows_quarantined == 1  # one row, two reasons
    rows = publish.read_quarantine(uri, "population").to_pylist()
    assert len(rows) == 1 and rows[0]["reason"] == "unknown region; not a number"
    # The same file fixed and re-delivered: its quarantine rows go away.
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1), ("99", 2016, 5)])[:1]), "b2")
    assert publish.read_quarantine(uri, "population").num_rows == 0


def test_stale_staging_from_a_crash_is_swept_and_the_table_kept(warehouse):
    uri = str(warehouse)
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)])), "b1")
    stale = warehouse / "_versions" / "population" / ".staging-crashed"
    (stale / "x").mkdir(parents=True)
    (stale / "x" / "part.parquet").write_bytes(b"half a file")
    assert _content(uri) == [{"region_code": "01", "year": 2016, "population": 1}]
    publish.publish(uri, "test", _batch(_pop([("03", 2016, 2)])), "b2")
    assert not stale.exists()
    assert len(_content(uri)) == 2


def test_old_versions_are_pruned(warehouse):
    uri = str(warehouse)
    for i in range(6):
        publish.publish(uri, "test", _batch(_pop([("01", 2016, i)])), f"b{i}")
    versions = [p for p in (warehouse / "_versions" / "population").iterdir() if not p.name.startswith(".")]
    assert len(versions) <= publish.KEEP_VERSIONS
    assert _content(uri) == [{"region_code": "01", "year": 2016, "population": 5}]


def test_partitioned_table_touches_only_affected_partitions(warehouse):
    uri = str(warehouse)
    frame = pd.DataFrame({
        "region_code": ["01", "01"], "report_year": [2016, 2017], "submitted_at": pd.Timestamp("2017-01-01", tz="UTC"),
        "grant_sek": [10, 20], "source_file": "a.json",
    })
    batch = TableBatch("county_report", frame, pd.DataFrame(), 2, ("region_code", "report_year"))
    publish.publish(uri, "test", batch, "b1")
    before_2016 = next((warehouse / "county_report").glob("report_year=2016/*.parquet"))
    inode = before_2016.stat().st_ino
    fix = frame.iloc[[1]].assign(grant_sek=25)
    publish.publish(uri, "test", TableBatch("county_report", fix, pd.DataFrame(), 1, ("region_code", "report_year")), "b2")
    after_2016 = next((warehouse / "county_report").glob("report_year=2016/*.parquet"))
    assert after_2016.stat().st_ino == inode  # hard-linked, not rewritten
    got = duckdb.sql(f"select report_year, grant_sek from read_parquet('{warehouse}/county_report/**/*.parquet', "
                     "hive_partitioning=true) order by 1").fetchall()
    assert got == [(2016, 10), (2017, 25)]


def test_remote_fsspec_warehouse_uses_the_same_code_path():
    uri = f"memory://wh-{uuid.uuid4().hex}"
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1), ("03", 2016, 2)])), "b1")
    publish.publish(uri, "test", _batch(_pop([("03", 2016, 3)])), "b2")
    assert _content(uri) == [{"region_code": "01", "year": 2016, "population": 1},
                             {"region_code": "03", "year": 2016, "population": 3}]
    import fsspec

    fs = fsspec.filesystem("memory")
    files = [p for p in fs.find(uri.replace("memory://", "/") + "/population")]
    assert len(files) == 1  # the old version's file was removed after the swap


def test_schema_drift_is_refused(warehouse):
    rows = _pop([("01", 2016, 1)]).assign(surprise=1)
    with pytest.raises(EtlError, match="not in the schema"):
        publish.publish(str(warehouse), "test", _batch(rows), "b1")


def test_concurrent_publishers_are_serialised(warehouse):
    """Two processes publishing the same table at once: both land, nothing is lost or torn."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_publish_one, args=(str(warehouse), code)) for code in ("01", "03", "04", "05")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert [r["region_code"] for r in _content(str(warehouse))] == ["01", "03", "04", "05"]


def _publish_one(uri, code):
    publish.publish(uri, "test", _batch(_pop([(code, 2016, int(code))])), f"b{code}")


def _log_rows(uri, n, start=0, pipeline="test"):
    for i in range(start, start + n):
        publish.append_load_log(uri, pipeline, f"b{i:04d}", None, [], 0, 0, 0, "nothing_new", "skipped", [],
                                "nothing new", None, publish.utcnow())


def _log_folder(warehouse):
    names = sorted(p.name for p in (warehouse / "_load_log").iterdir())
    return [n for n in names if n.startswith("segment-")], [n for n in names if not n.startswith("segment-")]


def test_load_log_row_files_are_merged_into_segments_and_every_row_is_read_once(warehouse):
    uri = str(warehouse)
    _log_rows(uri, publish.COMPACT_LOAD_LOG_AT + 44)
    segments, rows = _log_folder(warehouse)
    assert len(segments) == 1 and len(rows) == 44
    batch_ids = publish.read_load_log(uri)["batch_id"].to_pylist()
    assert sorted(batch_ids) == [f"b{i:04d}" for i in range(publish.COMPACT_LOAD_LOG_AT + 44)]

    # Analysts' DuckDB view over the folder sees the same rows, once.
    import duckdb

    from etl.marts import access

    path = access.build_duckdb(uri)
    with duckdb.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT batch_id) FROM load_log").fetchone() == (300, 300)


def test_a_compaction_cut_short_never_shows_a_row_twice_and_is_finished_next_time(warehouse):
    uri = str(warehouse)
    _log_rows(uri, 10)
    kept = {p.name: p.read_bytes() for p in (warehouse / "_load_log").iterdir()}
    assert publish.compact_load_log(uri) == 10
    # As if the process died after the segment became visible, before its members were deleted,
    # and another one before its next segment was renamed into place.
    for name, data in list(kept.items())[:3]:
        (warehouse / "_load_log" / name).write_bytes(data)
    (warehouse / "_load_log" / ".segment-x.parquet.tmp").write_bytes(b"half a file")
    assert sorted(publish.read_load_log(uri)["batch_id"].to_pylist()) == [f"b{i:04d}" for i in range(10)]
    assert publish.compact_load_log(uri) == 0  # nothing new to merge; the leftovers are removed
    segments, rows = _log_folder(warehouse)
    assert len(segments) == 1 and rows == []
    assert publish.read_load_log(uri).num_rows == 10


def test_appends_racing_with_compaction_lose_and_double_nothing(warehouse):
    import threading

    uri = str(warehouse)
    threads = [threading.Thread(target=_log_rows, args=(uri, 150, start)) for start in (0, 150)]
    reads: list[int] = []
    reader = threading.Thread(target=lambda: [reads.append(publish.read_load_log(uri).num_rows) for _ in range(20)])
    for t in (*threads, reader):
        t.start()
    for t in (*threads, reader):
        t.join()
    assert reads == sorted(reads)  # never a row counted twice, then lost
    assert sorted(publish.read_load_log(uri)["batch_id"].to_pylist()) == [f"b{i:04d}" for i in range(300)]


def test_two_segments_merging_the_same_row_files_still_read_each_row_once(warehouse):
    """On an object store there is no lock: two compactions may merge the same files."""
    uri = str(warehouse)
    _log_rows(uri, 6)
    folder = warehouse / "_load_log"
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    publish.compact_load_log(uri)
    (first,) = [p for p in folder.iterdir() if p.name.startswith("segment-")]
    first.rename(folder / "segment-0-first.parquet")
    for name, data in list(kept.items())[2:]:  # the second compaction listed four of the six
        (folder / name).write_bytes(data)
    for name in list(kept)[:2]:
        (folder / name).unlink(missing_ok=True)
    # Build the second segment by hand as a racing compaction would have: without seeing the first.
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    members = sorted(list(kept)[2:])
    table = pa.concat_tables([pq.read_table(folder / m) for m in members]).replace_schema_metadata(
        {b"etl.load_log.members": json.dumps(members).encode()})
    pq.write_table(table, folder / "segment-1-second.parquet")
    for m in members:
        (folder / m).unlink()
    assert sorted(publish.read_load_log(uri)["batch_id"].to_pylist()) == [f"b{i:04d}" for i in range(6)]


def test_a_rerun_leaves_a_quarantine_of_several_source_files_unchanged(warehouse):
    """The quarantine's key starts with source_file, which is not a business column: compare in key order."""
    uri = str(warehouse)
    q = pd.DataFrame([{"source_file": "b.json", "row_number": 1, "raw": "x", "reason": "bad"},
                      {"source_file": "a.json", "row_number": 2, "raw": "y", "reason": "bad"},
                      {"source_file": "a.json", "row_number": 1, "raw": "z", "reason": "bad"}])
    versions = warehouse / "_versions" / "_quarantine" / "population"
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)]), rows_in=4, quarantine=q), "b1")
    before = os.readlink(warehouse / "_quarantine" / "population")
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)]), rows_in=4, quarantine=q), "b2")
    assert os.readlink(warehouse / "_quarantine" / "population") == before
    assert {r["batch_id"] for r in publish.read_quarantine(uri, "population").to_pylist()} == {"b1"}
    assert len([p for p in versions.iterdir() if not p.name.startswith((".", "_"))]) == 1
