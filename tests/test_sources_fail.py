"""Sources fail: unreadable landing storage fails the run clearly and leaves the published data as it was;
credentials in an API URL never reach a log, a message, the load log or a table.

Unreadable storage is the local disk seen through a small fsspec filesystem
(``tests/fixtures/corpus/unreadable_fs.py``) that refuses to open chosen
files with the ``PermissionError`` a file without read permission gives —
``chmod 000`` alone proves nothing when the tests run as root (it is used
too when they do not). HTTP failure paths of the API client are in
``tests/test_http.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug import Response

from etl import publish, regions, schemas
from etl.config import Settings
from etl.errors import EtlError, SourceUnavailable
from etl.pipelines import county_reports, ehealth_adoption
from etl.sample import ehealth as ehealth_sample
from etl.sample import reference as reference_sample

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
sys.path.insert(0, str(CORPUS))
import unreadable_fs  # noqa: E402  (registers the "unreadable" fsspec protocol)

from tests.county_support import builders  # noqa: E402
from tests.settings_support import local_settings  # noqa: E402

COUNTY_TABLES = ("county_report", "county_initiative", "county_ehealth_service")
EHEALTH_TABLES = ("ehealth_adoption", "ehealth_adoption_national")
SECRET = "s3cret"


def table_hashes(warehouse_uri: str, tables, keep=lambda row: True) -> dict[str, str]:
    """Content hash per table over its business columns (rows sorted), of the rows ``keep`` accepts."""
    out = {}
    for name in tables:
        schema = schemas.get(name)
        rows = [
            r for r in publish.read_table(warehouse_uri, name).select(schema.business_columns).to_pylist() if keep(r)
        ]
        lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
        out[name] = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return out


def committed(warehouse_uri: str) -> int:
    return sum(r["outcome"] in {"published", "unchanged"} for r in publish.read_load_log(warehouse_uri).to_pylist())


@pytest.fixture
def unreadable(monkeypatch):
    """make(name, after=0): from now on ``name`` cannot be opened (after ``after`` successful opens)."""
    unreadable_fs.UnreadableLocalFileSystem.opened.clear()

    def make(name: str, after: int = 0) -> None:
        monkeypatch.setenv(unreadable_fs.ENV_NAMES, name)
        monkeypatch.setenv(unreadable_fs.ENV_AFTER, str(after))

    monkeypatch.delenv(unreadable_fs.ENV_NAMES, raising=False)
    return make


def county_loaded(landing: Path, warehouse: Path) -> Settings:
    """Landing through the ``unreadable://`` filesystem, two reports published."""
    settings = local_settings(f"unreadable://{landing}", warehouse)
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), mtime=1_600_000_000)
    builders.land(
        landing, "skane_2017.xlsx", builders.xlsx_bytes(builders.doc(region="Region Skåne")), mtime=1_600_000_000
    )
    report = county_reports.run(settings)
    assert report.outcome == "published"
    return settings


def assert_clear_failure(exc: BaseException, name: str) -> None:
    """A failure a person can act on: one line that names the file (not a crash deep in a parser)."""
    assert isinstance(exc, (EtlError, OSError)), f"unexpected {type(exc).__name__}: {exc}"
    assert "\n" not in str(exc) and name in str(exc), str(exc)


@pytest.mark.parametrize("when", ["listing", "reading"])
def test_unreadable_county_report_fails_clearly_and_keeps_published_data(when, landing, warehouse, unreadable):
    settings = county_loaded(landing, warehouse)
    before, commits = table_hashes(settings.warehouse_uri, COUNTY_TABLES), committed(settings.warehouse_uri)
    # A correction arrives, and the storage refuses to hand it over (at once, or after it was listed and hashed).
    builders.land(
        landing, "uppsala_2017_v2.json", builders.json_bytes(builders.doc(grant_sek="21 mnkr")), mtime=1_700_000_000
    )
    unreadable("uppsala_2017_v2.json", after=0 if when == "listing" else 1)

    with pytest.raises((EtlError, OSError)) as info:
        county_reports.run(settings)
    assert_clear_failure(info.value, "uppsala_2017_v2.json")
    assert table_hashes(settings.warehouse_uri, COUNTY_TABLES) == before
    assert committed(settings.warehouse_uri) == commits  # nothing committed by the failed run

    # Storage back: the correction is loaded as if nothing had happened.
    unreadable("")
    report = county_reports.run(settings)
    assert [r.outcome for r in report.results] == ["published"] * 3
    grants = {
        r["region_code"]: r["grant_sek"]
        for r in publish.read_table(settings.warehouse_uri, "county_report").to_pylist()
    }
    assert grants == {"03": 21_000_000, "12": 20_000_000}


def test_unreadable_landing_is_reported_as_source_unavailable(landing, warehouse, unreadable):
    settings = county_loaded(landing, warehouse)
    builders.land(landing, "uppsala_2017_v2.json", builders.json_bytes(builders.doc(grant_sek="21 mnkr")))
    unreadable("uppsala_2017_v2.json")
    with pytest.raises(SourceUnavailable, match="uppsala_2017_v2.json"):
        county_reports.run(settings)


def test_unreadable_monthly_export_mid_backfill_keeps_what_was_published(landing, warehouse, unreadable):
    import datetime as dt

    settings = local_settings(f"unreadable://{landing}", warehouse)
    for month in (1, 2):
        ehealth_sample.write_month(landing / "ehealth", dt.date(2017, month, 1), seed=3, style=ehealth_sample.PLAIN)
    ehealth_adoption.run(settings)
    before = table_hashes(settings.warehouse_uri, EHEALTH_TABLES)  # January and February
    for month in (3, 4):
        ehealth_sample.write_month(landing / "ehealth", dt.date(2017, month, 1), seed=3, style=ehealth_sample.PLAIN)
    unreadable("journalen_2017-04.csv", after=1)  # listed and hashed, then unreadable when April is read

    with pytest.raises((EtlError, OSError)) as info:
        ehealth_adoption.run(settings)
    assert_clear_failure(info.value, "journalen_2017-04.csv")
    months = {
        r["month"].isoformat()[:7] for r in publish.read_table(settings.warehouse_uri, "ehealth_adoption").to_pylist()
    }
    # Each month is published whole or not at all: March (read before April) is in, April is not.
    assert months == {"2017-01", "2017-02", "2017-03"}
    # January and February exactly as they were.
    assert table_hashes(settings.warehouse_uri, EHEALTH_TABLES, lambda r: r["month"].month < 3) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_chmod_000_landing_file_fails_clearly(landing, warehouse):
    settings = local_settings(landing, warehouse)
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()))
    county_reports.run(settings)
    before = table_hashes(settings.warehouse_uri, COUNTY_TABLES)
    path = builders.land(landing, "uppsala_2017_v2.json", builders.json_bytes(builders.doc(grant_sek="21 mnkr")))
    path.chmod(0)
    try:
        with pytest.raises((EtlError, OSError)) as info:
            county_reports.run(settings)
    finally:
        path.chmod(0o644)
    assert_clear_failure(info.value, "uppsala_2017_v2.json")
    assert table_hashes(settings.warehouse_uri, COUNTY_TABLES) == before


def test_cli_unreadable_landing_is_one_line_and_exit_1(landing, warehouse):
    county_loaded(landing, warehouse)
    before = table_hashes(str(warehouse), COUNTY_TABLES)
    builders.land(landing, "uppsala_2017_v2.json", builders.json_bytes(builders.doc(grant_sek="21 mnkr")))
    # The CLI exactly as `python -m etl` runs it, with the test filesystem registered first.
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import unreadable_fs; "
        "from etl.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{unreadable_fs.ENV_NAMES: "uppsala_2017_v2.json"})
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(CORPUS),
            "run",
            "county-reports",
            "--landing",
            f"unreadable://{landing}",
            "--warehouse",
            str(warehouse),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "uppsala_2017_v2.json" in last and "Permission denied" in last, last
    assert table_hashes(str(warehouse), COUNTY_TABLES) == before


def test_missing_landing_root_is_a_clear_failure_and_changes_nothing(landing, warehouse, tmp_path):
    settings = county_loaded(landing, warehouse)
    before = table_hashes(settings.warehouse_uri, COUNTY_TABLES)
    gone = local_settings(tmp_path / "unmounted", warehouse)
    # An unmounted volume must alert, not read as "nothing new" day after day.
    with pytest.raises(SourceUnavailable, match="unmounted.*does not exist"):
        county_reports.run(gone)
    with pytest.raises(SourceUnavailable, match="does not exist"):
        ehealth_adoption.run(gone, period="2017-03")
    assert table_hashes(settings.warehouse_uri, COUNTY_TABLES) == before


def test_missing_prefix_folder_is_nothing_new(landing, warehouse):
    settings = county_loaded(landing, warehouse)
    month = ehealth_adoption.run(settings, period="2017-03")  # landing exists, no ehealth/ delivered yet
    assert month.outcome == "nothing_new" and str(landing / "ehealth") in month.messages[0]


# --------------------------------------------------------------------------- no secrets in logs


KPI = "N17473"
KOLADA_PATH = f"/kolada/data/kpi/{KPI}/municipality/{','.join(r.kolada_id for r in regions.REGIONS)}/year/2016,2017"


def serve(httpserver, kolada_ok: bool) -> None:
    httpserver.clear()
    httpserver.expect_request("/scb/tables/TAB638/metadata").respond_with_data(
        (ROOT / "tests" / "fixtures" / "api" / "scb_tab638_metadata.json").read_bytes(), content_type="application/json"
    )
    httpserver.expect_request("/scb/tables/TAB638/data", method="POST").respond_with_data(
        json.dumps(reference_sample.scb_document(2016, 2017, seed=3)), content_type="application/json"
    )
    if kolada_ok:
        page = {"count": 42, "values": reference_sample.kolada_records((KPI,), 2016, 2017, seed=3)}
        httpserver.expect_request(KOLADA_PATH).respond_with_data(json.dumps(page), content_type="application/json")
    else:
        # Failing, but fast: Retry-After 0 makes every retry immediate (and logged).
        httpserver.expect_request(KOLADA_PATH).respond_with_response(
            Response("overloaded", status=503, headers={"Retry-After": "0"})
        )


def run_reference_cli(httpserver, landing: Path, warehouse: Path, *extra: str) -> subprocess.CompletedProcess:
    base = httpserver.url_for("/").rstrip("/").replace("://", f"://etl-user:{SECRET}@")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            *extra,
            "run",
            "reference",
            "--landing",
            str(landing),
            "--warehouse",
            str(warehouse),
            "--year",
            "2017",
            "--kolada-kpis",
            KPI,
            "--scb-url",
            f"{base}/scb",
            "--kolada-url",
            f"{base}/kolada",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def warehouse_text(warehouse: Path) -> str:
    """Everything a person can read back from the warehouse: load log, tables, quarantines."""
    parts = [json.dumps(publish.read_load_log(str(warehouse)).to_pylist(), default=str)]
    for name in ("population", "kolada_kpi"):
        parts.append(json.dumps(publish.read_table(str(warehouse), name).to_pylist(), default=str))
        parts.append(json.dumps(publish.read_quarantine(str(warehouse), name).to_pylist(), default=str))
    return "\n".join(parts)


def test_redact_removes_userinfo_only():
    from etl.privacy import redact_uri as redact

    assert redact("GET https://user:p@ss@host:8443/api?x=1#f failed") == "GET https://***@host:8443/api?x=1#f failed"
    assert redact("http://host/path@x and ftp://a@b/c") == "http://host/path@x and ftp://***@b/c"


@pytest.mark.slow  # two CLI runs with retries: ~10 s
def test_credentials_in_api_urls_never_reach_logs_messages_or_tables(httpserver, landing, warehouse):
    serve(httpserver, kolada_ok=False)
    failed = run_reference_cli(httpserver, landing, warehouse)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Kolada: GET http://") and "failed after 5 attempt(s): HTTP 503" in last, last
    assert "retry 2/5" in failed.stderr  # the retries were logged, URL and all
    # The credentials were used (Basic auth on every request) ...
    expected = "Basic " + base64.b64encode(f"etl-user:{SECRET}".encode()).decode()
    assert httpserver.log and all(req.headers.get("Authorization") == expected for req, _ in httpserver.log)
    # ... and shown nowhere: not in the output, the logs, the one-line error or the load log.
    assert SECRET not in failed.stdout + failed.stderr
    assert SECRET not in warehouse_text(warehouse)

    # A successful run with --debug (httpx request logging on, tracebacks shown): still nowhere, and the
    # lineage columns name the request without its credentials.
    serve(httpserver, kolada_ok=True)
    ok = run_reference_cli(httpserver, landing, warehouse, "--debug")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "HTTP Request: POST http://" in ok.stderr  # httpx did log the requests
    assert SECRET not in ok.stdout + ok.stderr
    text = warehouse_text(warehouse)
    assert SECRET not in text and "etl-user" not in text
    sources = {r["source_file"] for r in publish.read_table(str(warehouse), "kolada_kpi").to_pylist()}
    assert sources and all(s.startswith("http://127.0.0.1:") or s.startswith("http://localhost:") for s in sources)
