"""A warehouse written before a declaration gained a column, and a run that fails outside the project's errors.

Issue 26 (a reviewer's finding): a county field or e-health series added to its declaration made every run
on an existing warehouse fail ("No field named …"), and that failure — a library's error, not one of ours —
left no load-log row, so ``etl status`` said "failures: 0". Now a run first adds the declared columns
(one metadata commit per table, null in the rows already published, a load-log row), and any failure of a
pipeline leaves its load-log row.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from etl import migrations, publish, schemas, status
from etl.errors import ConfigError
from etl.pipelines import county_reports
from tests.county_support import builders

DROPPED = "has_task_shifting"  # a yes/no county field: as if the warehouse predates it


def _as_if_older(warehouse, table: str, drop: str, retype: dict | None = None) -> None:
    """Rewrite ``table`` as an older version of the project would have left it: without ``drop``."""
    uri = str(warehouse / table)
    rows = DeltaTable(uri).to_pyarrow_table().drop_columns([drop])
    for name, arrow_type in (retype or {}).items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, rows.column(name).cast(arrow_type))
    write_deltalake(uri, rows, mode="overwrite", schema_mode="overwrite")


def _migration_rows(warehouse) -> list[dict]:
    return [r for r in publish.read_load_log(str(warehouse)).to_pylist() if r["pipeline"] == "migration"]


def test_a_column_the_declaration_gained_is_added_at_the_next_run_null_in_the_rows_already_published(
    settings, landing, warehouse
):
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), mtime=1_600_000_000)
    county_reports.run(settings)
    _as_if_older(warehouse, "county_report", DROPPED)
    schema = publish.stored_schema(str(warehouse), "county_report")
    assert schema is not None, "county_report is published"
    assert DROPPED not in schema.names

    # A new region's report arrives: the run adds the column first, then publishes as usual.
    other = builders.doc(region="Region Stockholm", offers={"task_shifting": "Ja"})
    builders.land(landing, "stockholm_2017.json", builders.json_bytes(other), mtime=1_600_000_100)
    report = county_reports.run(settings)
    assert report.outcome == "published"
    added = [m for m in report.messages if "migrated" in m]
    assert added == [
        "county_report: migrated (column(s) has_task_shifting added; null in the 1 row(s) already published)"
    ]
    rows = {r["region_code"]: r[DROPPED] for r in publish.read_table(str(warehouse), "county_report").to_pylist()}
    assert rows == {"03": None, "01": True}  # Uppsala's published row: not answered (null), never "no"
    [logged] = _migration_rows(warehouse)
    assert (logged["table_name"], logged["outcome"], logged["rows_in"], logged["message"]) == (
        "county_report",
        "published",
        1,
        added[0],
    )
    # Current now: nothing more to add, no second row.
    assert migrations.ensure_current(str(warehouse)) == [] and len(_migration_rows(warehouse)) == 1


def test_two_runs_adding_the_same_column_at_once_add_it_once(settings, landing, warehouse):
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), mtime=1_600_000_000)
    county_reports.run(settings)
    _as_if_older(warehouse, "county_report", DROPPED)
    got: list = []
    barrier = threading.Barrier(2)

    def add() -> None:
        barrier.wait()
        got.append(migrations.add_declared_columns(str(warehouse)))

    threads = [threading.Thread(target=add) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(lines) for lines in got) == [0, 1], got
    assert len(_migration_rows(warehouse)) == 1
    fields = DeltaTable(str(warehouse / "county_report")).schema().to_arrow()
    assert [f.name for f in pa.schema(fields)].count(DROPPED) == 1


def test_a_required_column_the_table_lacks_is_one_clear_error_naming_table_and_column(settings, landing, warehouse):
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), mtime=1_600_000_000)
    county_reports.run(settings)
    required = next(
        f.name
        for f in schemas.get("county_report").arrow_schema
        if not f.nullable and f.name not in schemas.get("county_report").key
    )
    _as_if_older(warehouse, "county_report", required)
    with pytest.raises(
        ConfigError,
        match=f"county_report: the published table lacks required column\\(s\\) {required}: .*etl/migrations.py",
    ):
        migrations.ensure_current(str(warehouse))


def test_a_run_that_fails_outside_the_projects_errors_still_leaves_its_load_log_row(settings, landing, warehouse):
    """A table another tool rewrote with a type the registry cannot read back: a pyarrow error, not an EtlError."""
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), mtime=1_600_000_000)
    county_reports.run(settings)
    uri = str(warehouse / "county_report")
    rows = DeltaTable(uri).to_pyarrow_table()
    at = rows.schema.get_field_index("submitted_at")
    rows = rows.set_column(at, "submitted_at", pa.array(["not a time"] * rows.num_rows))
    write_deltalake(uri, rows, mode="overwrite", schema_mode="overwrite")
    assert "failures: 0" in status.render(str(warehouse))

    builders.land(
        landing, "uppsala_2017.json", builders.json_bytes(builders.doc(grant_sek="21 mnkr")), mtime=1_600_000_200
    )
    with pytest.raises(Exception) as raised:
        county_reports.run(settings)
    assert not isinstance(raised.value, AssertionError)
    failed = [r for r in publish.read_load_log(str(warehouse)).to_pylist() if r["outcome"] == "failed"]
    assert len(failed) == 1, failed
    assert failed[0]["pipeline"] == "county_reports"
    assert failed[0]["message"].startswith(f"county_reports: unexpected {type(raised.value).__name__}: ")
    assert "failures: 1" in status.render(str(warehouse))


@pytest.mark.integration
def test_on_s3_the_column_is_added_and_the_analysts_view_has_it(s3_env, tmp_path):
    """The same on a real S3 server (SeaweedFS): the metadata commit, the load-log row and the DuckDB view."""
    from etl.marts import access
    from tests.settings_support import local_settings

    landing, warehouse = tmp_path / "landing", s3_env.uri("evolution")
    settings = local_settings(landing, warehouse)
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), mtime=1_600_000_000)
    county_reports.run(settings)
    options = {**s3_env.env(), "conditional_put": "etag"}
    uri = f"{warehouse}/county_report"
    rows = DeltaTable(uri, storage_options=options).to_pyarrow_table().drop_columns([DROPPED])
    write_deltalake(uri, rows, mode="overwrite", schema_mode="overwrite", storage_options=options)
    publish.forget_opened()

    assert migrations.ensure_current(warehouse) == [
        f"county_report: migrated (column(s) {DROPPED} added; null in the 1 row(s) already published)"
    ]
    schema = publish.stored_schema(warehouse, "county_report")
    assert schema is not None, "county_report is published"
    assert DROPPED in schema.names
    assert [r["table_name"] for r in publish.read_load_log(warehouse).to_pylist() if r["pipeline"] == "migration"] == [
        "county_report"
    ]
    # The analysts' catalogue, rebuilt as every run does: its view has the column (null: no file has it yet).
    access.build_duckdb(warehouse)
    with access.connect(warehouse) as con:
        assert con.execute(f"select region_code, {DROPPED} from county_report").fetchall() == [("03", None)]
