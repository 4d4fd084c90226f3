"""Publishing: atomic swap, merge-by-key idempotence, accounting, quarantine, load log."""

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl import publish
from etl.errors import AccountingError, EtlError
from etl.publish import TableBatch
from tests.delta_support import arrow as _arrow
from tests.process_support import writer


def _pop(rows, source="pop.json"):
    frame = pd.DataFrame(rows, columns=["region_code", "year", "population"])
    frame["source_file"] = source
    return frame


def _batch(rows, rows_in=None, quarantine=None, merge_keys=("region_code", "year"), **kw):
    quarantine = (
        quarantine if quarantine is not None else pd.DataFrame(columns=["source_file", "row_number", "raw", "reason"])
    )
    n = len(rows)
    return TableBatch(
        "population", rows, quarantine, rows_in if rows_in is not None else n + len(quarantine), merge_keys, **kw
    )


def _files(uri: str, table: str) -> list[str]:
    """The current version's files of a table this test published (None would mean never published)."""
    files = publish.table_files(uri, table)
    assert files is not None, f"{table} is published"
    return files


def _content(uri, table="population"):
    return sorted(
        publish.read_table(uri, table).select(["region_code", "year", "population"]).to_pylist(),
        key=lambda r: (r["region_code"], r["year"]),
    )


def test_first_publish_is_a_delta_table_readable_by_duckdb_and_deltalake(warehouse):
    from deltalake import DeltaTable

    uri = str(warehouse)
    result = publish.publish(uri, "test", _batch(_pop([("01", 2016, 2_269_060), ("03", 2016, 368_971)])), "b1")
    assert (result.outcome, result.rows_loaded, result.table_rows, result.version) == (
        "published",
        2,
        2,
        "1",
    )  # version 0: created empty
    assert (warehouse / "population" / "_delta_log").is_dir()
    table = DeltaTable(str(warehouse / "population"))
    assert sorted(_arrow(table).column("population").to_pylist()) == [368_971, 2_269_060]
    files = [f.removeprefix("file://") for f in _files(uri, "population")]
    listed = ", ".join(f"'{f}'" for f in files)
    got = duckdb.sql(f"select region_code, population from read_parquet([{listed}]) order by 1").fetchall()
    assert got == [("01", 2_269_060), ("03", 368_971)]
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"


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
    with pytest.raises(
        AccountingError,
        match=r"1 duplicate key\(s\) after merge, e\.g\. "
        r"\{'region_code': '01', 'year': 2016\}",
    ):
        publish.publish(uri, "test", _batch(_pop(rows)), "b1")
    publish.publish(uri, "test", _batch(_pop(rows[:4])), "b2")
    # Merging a new key in, next to the four already published, is not a duplicate.
    publish.publish(uri, "test", _batch(_pop([("05", 2017, 6)]), merge_keys=("region_code", "year")), "b3")
    assert len(_content(uri)) == 5


def test_quarantine_is_replaced_per_source_file(warehouse):
    uri = str(warehouse)
    q = pd.DataFrame(
        [
            {"source_file": "pop.json", "row_number": 3, "raw": "99;2016;x", "reason": "unknown region"},
            {"source_file": "pop.json", "row_number": 3, "raw": "99;2016;x", "reason": "not a number"},
        ]
    )
    result = publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)]), rows_in=2, quarantine=q), "b1")
    assert result.rows_quarantined == 1  # one row, two reasons
    rows = publish.read_quarantine(uri, "population").to_pylist()
    assert len(rows) == 1 and rows[0]["reason"] == "unknown region; not a number"
    # The same file fixed and re-delivered: its quarantine rows go away.
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1), ("99", 2016, 5)])[:1]), "b2")
    assert publish.read_quarantine(uri, "population").num_rows == 0


def test_files_of_a_write_that_never_committed_are_not_part_of_the_table(warehouse):
    uri = str(warehouse)
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)])), "b1")
    stray = warehouse / "population" / "part-00000-crashed.zstd.parquet"
    pq.write_table(
        publish.stamp_lineage(
            __import__("etl.schemas", fromlist=["get"]).get("population"),
            _pop([("03", 2016, 99)]),
            "crashed",
            publish.utcnow(),
        ),
        stray,
    )
    assert _content(uri) == [{"region_code": "01", "year": 2016, "population": 1}]
    publish.publish(uri, "test", _batch(_pop([("04", 2016, 2)])), "b2")
    assert _content(uri) == [
        {"region_code": "01", "year": 2016, "population": 1},
        {"region_code": "04", "year": 2016, "population": 2},
    ]


def test_every_publish_is_one_version_and_earlier_versions_stay_readable(warehouse):
    uri = str(warehouse)
    for i in range(6):
        result = publish.publish(uri, "test", _batch(_pop([("01", 2016, i)])), f"b{i}")
        assert result.version == str(i + 1)  # version 0 is the table created empty
    assert _content(uri) == [{"region_code": "01", "year": 2016, "population": 5}]
    assert publish.read_table(uri, "population", version=3).column("population").to_pylist() == [2]


def test_partitioned_table_touches_only_affected_partitions(warehouse):
    uri = str(warehouse)
    frame = pd.DataFrame(
        {
            "region_code": ["01", "01"],
            "report_year": [2016, 2017],
            "submitted_at": pd.Timestamp("2017-01-01", tz="UTC"),
            "grant_sek": [10, 20],
            "source_file": "a.json",
        }
    )
    batch = TableBatch("county_report", frame, pd.DataFrame(), 2, ("region_code", "report_year"))
    publish.publish(uri, "test", batch, "b1")
    before_2016 = [f for f in _files(uri, "county_report") if "report_year=2016" in f]
    fix = frame.iloc[[1]].assign(grant_sek=25)
    publish.publish(
        uri, "test", TableBatch("county_report", fix, pd.DataFrame(), 1, ("region_code", "report_year")), "b2"
    )
    after = _files(uri, "county_report")
    assert [f for f in after if "report_year=2016" in f] == before_2016  # untouched, not rewritten
    got = publish.read_table(uri, "county_report").sort_by("report_year").select(["report_year", "grant_sek"])
    assert got.to_pylist() == [{"report_year": 2016, "grant_sek": 10}, {"report_year": 2017, "grant_sek": 25}]


def test_schema_drift_is_refused(warehouse):
    rows = _pop([("01", 2016, 1)]).assign(surprise=1)
    with pytest.raises(EtlError, match="not in the schema"):
        publish.publish(str(warehouse), "test", _batch(rows), "b1")


def test_concurrent_publishers_are_serialised(warehouse):
    """Two processes publishing the same table at once: both land, nothing is lost or torn."""
    procs = [writer(_publish_one, str(warehouse), code) for code in ("01", "03", "04", "05")]
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
        publish.append_load_log(
            uri,
            publish.LoadLogEntry(
                pipeline, f"b{i:04d}", "nothing_new", "skipped", publish.utcnow(), message="nothing new"
            ),
        )


def test_load_log_rows_are_each_read_once_also_when_appended_from_several_processes(warehouse):
    uri = str(warehouse)
    procs = [writer(_log_rows, uri, 10, 10 * i) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sorted(publish.read_load_log(uri)["batch_id"].to_pylist()) == [f"b{i:04d}" for i in range(40)]


def test_a_rerun_leaves_a_quarantine_of_several_source_files_unchanged(warehouse):
    """The quarantine's key starts with source_file, which is not a business column: compare in key order."""
    from deltalake import DeltaTable

    uri = str(warehouse)
    q = pd.DataFrame(
        [
            {"source_file": "b.json", "row_number": 1, "raw": "x", "reason": "bad"},
            {"source_file": "a.json", "row_number": 2, "raw": "y", "reason": "bad"},
            {"source_file": "a.json", "row_number": 1, "raw": "z", "reason": "bad"},
        ]
    )
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)]), rows_in=4, quarantine=q), "b1")
    before = DeltaTable(str(warehouse / "_quarantine" / "population")).version()
    publish.publish(uri, "test", _batch(_pop([("01", 2016, 1)]), rows_in=4, quarantine=q), "b2")
    assert DeltaTable(str(warehouse / "_quarantine" / "population")).version() == before
    assert {r["batch_id"] for r in publish.read_quarantine(uri, "population").to_pylist()} == {"b1"}
