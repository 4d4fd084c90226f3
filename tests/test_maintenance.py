"""Issue 14: compaction, checkpoints and vacuum keep the rows, and retention bounds --as-of."""

from __future__ import annotations

import pandas as pd
import pytest

from etl import maintenance, publish
from etl.errors import ConfigError, EtlError
from etl.publish import TableBatch


def _publish(warehouse: str, code: str, value: int, batch: str) -> None:
    rows = pd.DataFrame({"region_code": [code], "year": [2019], "population": [value], "source_file": "pop.json"})
    publish.publish(
        warehouse, "test", TableBatch("population", rows, pd.DataFrame(), 1, ("region_code", "year")), batch
    )


def test_maintenance_compacts_checkpoints_and_vacuums_without_changing_a_row(warehouse):
    uri = str(warehouse)
    for i, code in enumerate(["01", "03", "04", "05", "06", "07"]):
        _publish(uri, code, 100 + i, f"b{i}")
    _publish(uri, "01", 999, "b9")  # a correction: version 7 no longer needs version 1's file (0: created empty)
    before = sorted(
        publish.read_table(uri, "population").select(["region_code", "population"]).to_pylist(),
        key=lambda r: r["region_code"],
    )
    files = publish.table_files(uri, "population")
    assert files is not None, "population is published"
    files_before = len(files)

    kept = maintenance.maintain_table(uri, "population", retention=3650)
    assert kept is not None, "a published table is maintained"
    assert kept.files_after == 1 and kept.files_before == files_before == 6
    assert kept.vacuumed == 0  # inside retention: every old version stays readable
    assert publish.read_table(uri, "population", version=3).num_rows == 3

    gone = maintenance.maintain_table(uri, "population", retention=0)
    assert gone is not None, "a published table is maintained"
    assert gone.vacuumed >= files_before  # the pre-compaction files, no longer needed by the current version
    after = sorted(
        publish.read_table(uri, "population").select(["region_code", "population"]).to_pylist(),
        key=lambda r: r["region_code"],
    )
    assert after == before
    assert (warehouse / "population" / "_delta_log" / "_last_checkpoint").exists()
    with pytest.raises(EtlError, match="version 3 can no longer be read"):
        publish.read_table(uri, "population", version=3)


def test_every_table_of_a_warehouse_is_maintained_and_named(warehouse):
    uri = str(warehouse)
    _publish(uri, "01", 1, "b1")
    results = maintenance.maintain(uri, retention=30)
    assert {r.location for r in results} == {"population", "_quarantine/population", "_load_log"}
    assert all("file(s)" in r.line() for r in results)


def test_retention_is_configured_in_whole_days():
    assert maintenance.retention_days({}) == maintenance.DEFAULT_RETENTION_DAYS == 3650
    assert maintenance.retention_days({"ETL_RETENTION_DAYS": "400"}) == 400
    for bad in ("0", "-1", "1.5", "ten"):
        with pytest.raises(ConfigError, match="ETL_RETENTION_DAYS"):
            maintenance.retention_days({"ETL_RETENTION_DAYS": bad})
