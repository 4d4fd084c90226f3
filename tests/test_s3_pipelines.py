"""Issue 14: the pipelines end to end with landing and warehouse on a real S3 server (SeaweedFS).

The same sample delivered to local disk and to ``s3://`` must give the same
table contents; a second run on S3 is a no-op; analysts' readers (deltalake,
DuckDB over the current version's files) read the S3 tables.
"""

from __future__ import annotations

import os
import time

import pytest

from etl import publish
from etl.config import Settings
from etl.pipelines import county_reports, ehealth_adoption, reference
from tests.cli_support import SETTLED, run_etl
from tests.delta_support import arrow as _arrow
from tests.settings_support import local_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = (
    "population",
    "kolada_kpi",
    "county_report",
    "county_initiative",
    "county_ehealth_service",
    "ehealth_adoption",
    "ehealth_adoption_national",
    "ehealth_unit_daily",
)


def _sample(folder):
    from etl.sample import county_reports as county_sample
    from etl.sample import ehealth as ehealth_sample
    from etl.sample import reference as reference_sample

    for module in (reference_sample, county_sample, ehealth_sample):
        module.write(folder, 2019, 2019, units=40, unit_months=1, seed=2016)
    # One clock for both stores: delivery order (newest file per region-year) must not depend on upload time.
    for i, path in enumerate(sorted(p for p in folder.rglob("*") if p.is_file())):
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))


def _run_all(settings: Settings) -> list[str]:
    outcomes = []
    outcomes.append(reference.run(settings, offline_snapshot=True).outcome)
    for module in (county_reports, ehealth_adoption):
        outcomes.append(module.run(settings).outcome)
    return outcomes


def _content(warehouse: str, name: str) -> list[tuple]:
    """A table's business content, order-free.

    Lineage (file URIs, batch ids, load times) differs by design, and so does
    ``submitted_at``: a county report's submission time is its file's time
    in landing, which S3 sets at upload.
    """
    from etl import schemas

    columns = [c for c in schemas.get(name).business_columns if c != "submitted_at"]
    rows = publish.read_table(warehouse, name).select(columns).to_pylist()
    return sorted((tuple(r[c] for c in columns) for r in rows), key=repr)


def test_pipelines_on_s3_give_the_local_tables_and_a_second_run_is_a_no_op(s3_env, tmp_path):
    import fsspec

    local_landing = tmp_path / "landing"
    local_landing.mkdir()
    _sample(local_landing)
    s3_landing, s3_warehouse = s3_env.uri("landing"), s3_env.uri("warehouse")
    fs = fsspec.filesystem("s3")
    fs.put(str(local_landing) + "/", s3_landing.removeprefix("s3://") + "/", recursive=True)

    local = local_settings(local_landing, tmp_path / "warehouse")
    remote = local_settings(s3_landing, s3_warehouse)
    assert _run_all(local) == ["published"] * 3
    started = time.monotonic()
    assert _run_all(remote) == ["published"] * 3
    first_s3_run = time.monotonic() - started

    for name in TABLES:
        assert _content(remote.warehouse_uri, name) == _content(local.warehouse_uri, name), name
    log = publish.read_load_log(remote.warehouse_uri).to_pylist()
    assert all(r["rows_in"] == r["rows_loaded"] + r["rows_quarantined"] for r in log)
    assert {r["outcome"] for r in log} <= {"published", "unchanged", "nothing_new"}

    # Nothing new: no table gets a new version.
    versions = {name: publish.table_rows(remote.warehouse_uri, name) for name in TABLES}
    again = _run_all(remote)
    assert again[1:] == ["nothing_new", "nothing_new"] and again[0] in ("unchanged", "nothing_new")
    assert {name: publish.table_rows(remote.warehouse_uri, name) for name in TABLES} == versions
    assert first_s3_run < 300


def test_deltalake_and_the_table_file_list_read_the_s3_tables(s3_env):
    """What analysts' tools read on S3: the Delta table itself, and the current version's files by URI."""
    import pandas as pd
    from deltalake import DeltaTable

    from etl import storage
    from etl.publish import TableBatch

    warehouse = s3_env.uri("readers")
    for i, value in enumerate((10, 11)):
        rows = pd.DataFrame(
            {"region_code": ["01", "03"], "year": [2019, 2019], "population": [value, 20], "source_file": "pop.json"}
        )
        publish.publish(
            warehouse, "test", TableBatch("population", rows, pd.DataFrame(), 2, ("region_code", "year")), f"b{i}"
        )
    uri = f"{warehouse}/population"
    table = DeltaTable(uri, storage_options=storage.delta_options(uri))
    assert table.version() == 2  # version 0: the table created empty
    assert sorted(_arrow(table).column("population").to_pylist()) == [11, 20]
    assert sorted(publish.read_table(warehouse, "population", version=1).column("population").to_pylist()) == [10, 20]
    files = publish.table_files(warehouse, "population")
    assert files is not None and len(files) == 1 and files[0].startswith(uri + "/")


CREDENTIAL_CASES: dict[str, tuple[str, dict[str, str | None], str]] = {
    # case: (where the store is used, environment change, what the one error line says)
    "wrong secret": (
        "warehouse",
        {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        "the object store refused access (SignatureDoesNotMatch)",
    ),
    "no credentials": (
        "warehouse",
        {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
        "no credentials for s3://",
    ),
    "wrong secret for landing": (
        "landing",
        {"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
        "landing storage: cannot read s3://",
    ),
    "unknown key for landing": ("landing", {"AWS_ACCESS_KEY_ID": "AKNOSUCHKEY"}, "the object store refused access"),
    "no landing bucket": ("no bucket", {}, "bucket 'no-such-bucket' of s3://no-such-bucket/landing does not exist"),
}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("case", sorted(CREDENTIAL_CASES))
def test_a_store_refusing_the_credentials_is_a_one_line_configuration_error(s3_server, tmp_path, case, debug):
    """Measured: these printed delta-rs' cause chain over 6–10 lines with ANSI colours and the server's XML,
    "error: unexpected NoCredentialsError", a retryable "cannot read" (landing), or "nothing new" with exit 0
    (a landing bucket that does not exist) — now one line saying what to fix, exit 2, with --debug too."""
    where, change, expected = CREDENTIAL_CASES[case]
    env = {**s3_server.env(), **SETTLED, **change}  # a None in change removes that variable
    landing, warehouse = tmp_path / "landing", s3_server.uri("refused")
    (landing / "ehealth").mkdir(parents=True)
    if where == "landing":
        landing, warehouse = s3_server.uri("landing"), tmp_path / "warehouse"
    elif where == "no bucket":
        landing, warehouse = "s3://no-such-bucket/landing", tmp_path / "warehouse"
    done = run_etl(
        *(["--debug"] if debug else []),
        "run",
        "ehealth-adoption",
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "not-the-secret" not in done.stderr + done.stdout
    if debug:
        return  # a traceback is what --debug is for; the exit code and the redaction still hold
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "\x1b[" not in done.stderr and "<?xml" not in done.stderr  # delta-rs' coloured cause chain, cut
    assert "unexpected" not in done.stderr


def test_fail_fast_fails_a_refused_store_at_once_and_retries_an_unreachable_one():
    pytest.importorskip("airflow")
    import botocore.exceptions  # type: ignore[import-untyped]  # botocore ships no types (as in etl/storage.py)
    from airflow.sdk.exceptions import AirflowFailException

    from etl.errors import SourceUnavailable
    from etl.orchestration import fail_fast

    def raises(exc):
        def call():
            raise exc

        return call

    with pytest.raises(AirflowFailException, match="^object store: no credentials"):
        fail_fast(raises(botocore.exceptions.NoCredentialsError()))
    with pytest.raises(SourceUnavailable, match="^object store unreachable: Could not connect"):
        fail_fast(raises(botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")))
    with pytest.raises(ZeroDivisionError):  # a bug stays a bug, retried with its traceback
        fail_fast(raises(ZeroDivisionError("x")))
