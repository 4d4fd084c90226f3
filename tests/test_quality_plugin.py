"""Issue 15 §3: data quality in the Airflow UI — etl/quality.py on a real warehouse, and the plugin's app.

The warehouse is built once by the project's own pipeline (e-health exports
with a blocked month, a unit-level file with broken rows) plus one
quarantine entry written as a warehouse from before the publisher masked
personal data would hold it. The plugin is exercised in a subprocess with
its own AIRFLOW_HOME (SQLite metadata DB, SimpleAuthManager, the plugins
folder): the real Airflow API app with the plugin mounted, requests through
fastapi's TestClient, tokens from the auth manager — no dependency override.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from airflow_run_support import sqlite_metadata

from etl import publish, quality
from etl.errors import ValidationFailed
from etl.pipelines import ehealth_adoption as pipeline
from etl.sample import ehealth as sample
from etl.sources import ehealth_spec as spec
from tests.export_support import declared_exports
from tests.settings_support import local_settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "ehealth"
XSS = "<img src=x onerror=alert(1)>"
EMAIL = "anna.svensson@example.se"
PNR = "19800101-1234"
MARCH, APRIL, MAY = dt.date(2017, 3, 1), dt.date(2017, 4, 1), dt.date(2017, 5, 1)
TODAY = dt.date(2017, 6, 20)  # April due 2017-05-15 (overdue), May due 2017-06-15 (overdue), June open
# The fixture lands March's journal (blocked) and web booking (loaded); any other kind declared for March is overdue.
MARCH_STATUS = (
    "overdue" if declared_exports(["2017-03"], frozenset({"journalen_2017-03", "webbtidbok_2017-03"})) else "blocked"
)


def _export(folder: Path, kind: str, month: dt.date, drop_region: str | None = None) -> Path:
    journal, web, _ = sample.month_values(month, 7)
    rows = sample.export_rows(kind, month, journal if kind == "journalen" else web, sample.PLAIN, frozenset())
    lines = [";".join(map(str, r)) for r in rows]
    if drop_region:
        lines = [line for line in lines if f";{drop_region};" not in line]
    path = folder / f"{kind}_{month:%Y-%m}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A warehouse and landing: March 2017 journal blocked (a region missing), March web booking published,
    April and May never sent, a unit-level file for 2024-02 with broken rows (one HSA id is markup, one unit
    name carries an e-mail address and a personnummer), and one unmasked legacy quarantine row."""
    base = tmp_path_factory.mktemp("quality")
    landing, warehouse = base / "landing", base / "warehouse"
    folder = landing / "ehealth"
    folder.mkdir(parents=True)
    warehouse.mkdir()
    settings = local_settings(landing, warehouse)
    _export(folder, "journalen", MARCH, drop_region="12")
    _export(folder, "webbtidbok", MARCH)
    units = (FIXTURES / "webbtidbok_enheter_2024-02.csv").read_text(encoding="utf-8-sig").rstrip("\n")
    units += (
        f"\n2024-02-09;01;{XSS};Vårdcentralen Åby;3;0;0\n2024-02-10;01;SE2321000016-15CX;Kontakt {EMAIL} {PNR};-5;0;0\n"
    )
    (folder / "webbtidbok_enheter_2024-02.csv").write_text(units, encoding="utf-8")
    with pytest.raises(ValidationFailed, match="1 of 21 regions missing"):
        pipeline.run(settings)

    # A quarantine row as a warehouse from before masking would hold it: published with masking switched off.
    frame = pd.DataFrame([("01", 2016, 100)], columns=["region_code", "year", "population"])
    frame["source_file"] = str(landing / "scb" / "pop.json")
    bad = pd.DataFrame(
        [
            {
                "source_file": str(landing / "scb" / "pop.json"),
                "row_number": 7,
                "raw": f"03;2016;kontakt {EMAIL}, pnr {PNR};" + "x" * 1000,
                "reason": f"population: not a number: '{PNR}'",
            }
        ]
    )
    batch = publish.TableBatch("population", frame, bad, 2, ("region_code", "year"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(publish.privacy, "mask_personal_data", lambda text: text)
        publish.publish(
            str(warehouse), "reference", batch, "legacy-batch", [(str(landing / "scb" / "pop.json"), "ab" * 32)]
        )
    assert PNR in json.dumps(publish.read_quarantine(str(warehouse), "population").to_pylist(), default=str)
    return settings


def _dump(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


# --------------------------------------------------------------------------- etl/quality.py


def test_overview_per_table_counts_rows_loads_quarantine_and_blocked(built):
    tables = {t["table"]: t for t in quality.table_overview(built.warehouse_uri)}
    assert set(tables) == {s.name for s in quality.published_tables()}
    adoption = tables["ehealth_adoption"]
    assert adoption["rows"] == 21 * 5  # March web booking only (5 metrics): the journal file was blocked
    assert adoption["last_load"]["outcome"] == "published"
    assert adoption["totals"]["rows_loaded"] == 21 * 5 and adoption["totals"]["rows_quarantined"] == 0
    [blocked] = adoption["blocked_deliveries"]
    assert blocked["file"] == "journalen_2017-03.csv" and "lack 1 region(s): 12 Region Skåne" in blocked["message"]
    assert tables["county_report"]["rows"] is None and tables["county_report"]["last_load"] is None

    units = tables["ehealth_unit_daily"]
    assert units["rows"] == 4
    assert units["totals"] == {
        "loads": 1,
        "outcomes": {"published": 1},
        "rows_in": 15,
        "rows_loaded": 4,
        "rows_quarantined": 11,
        "rows_held_back": 0,
    }
    q = units["quarantine"]
    assert (q["entries"], q["rows"]) == (11, 11)
    reasons = {r["reason"]: r for r in q["reasons"]}
    hsa = reasons["malformed HSA id (expected SE + 10 digits + '-' + 1-8 letters/digits)"]
    assert hsa["rows"] == 2 and len(hsa["examples"]) == 2
    assert any(XSS in e["raw"] for e in hsa["examples"])  # plain data: escaping is the page's job
    duplicate = reasons[
        "the same unit and day appears more than once in the file; all such rows quarantined, never summed"
    ]
    assert duplicate["rows"] == 2
    # Quoted values are left out of the grouping; the examples keep them.
    negative = reasons["Bokningar: negative value: '…'"]
    assert negative["rows"] == 2 and {e["reason"] for e in negative["examples"]} == {
        "Bokningar: negative value: '-3'",
        "Bokningar: negative value: '-5'",
    }
    assert all(len(r["examples"]) <= quality.EXAMPLES_PER_REASON for r in q["reasons"])
    assert sum(r["rows"] for r in q["reasons"]) == q["rows"]


def test_personal_data_in_quarantined_rows_never_reaches_the_output(built):
    out = _dump(
        [
            quality.table_overview(built.warehouse_uri),
            quality.deliveries(built.warehouse_uri),
            quality.ehealth_months(built.warehouse_uri, built.landing_uri, "2017-01", "2024-03", today=TODAY),
        ]
    )
    assert EMAIL not in out and PNR not in out and "19800101" not in out
    assert "[e-post borttagen]" in out and "[personnummer borttaget]" in out
    population = next(t for t in quality.table_overview(built.warehouse_uri) if t["table"] == "population")
    [reason] = population["quarantine"]["reasons"]
    [example] = reason["examples"]
    assert example["raw"].startswith("03;2016;kontakt [e-post borttagen], pnr [personnummer borttaget];xxx")
    assert len(example["raw"]) <= quality.RAW_LIMIT + 1 and example["raw"].endswith("…")  # cut after masking
    assert example["reason"] == "population: not a number: '[personnummer borttaget]'"


def test_shown_text_masks_before_cutting_and_redacts_credentials():
    assert quality.shown_text(f"{'a' * 290} {PNR} tail", 300) == f"{'a' * 290} [personnummer borttaget]"[:300] + "…"
    assert quality.shown_text("s3://key:secret@store/landing/x.csv") == "s3://***@store/landing/x.csv"
    assert quality.shown_text("line\x00break\x1b") == "line break "
    assert quality.shown_text(None) is None


def test_reasons_group_without_the_value_they_end_with():
    assert quality.reason_kind("Region: unknown region 'Atlantis'") == "Region: unknown region '…'"
    assert quality.reason_kind('x: not a date: "2024-02-30"') == 'x: not a date: "…"'
    assert quality.reason_kind("expected SE + '-' + digits") == "expected SE + '-' + digits"
    assert quality.reason_kind(None) == "(no reason recorded)"


def test_deliveries_latest_outcome_rows_and_why_blocked(built):
    found = {d["file"]: d for d in quality.deliveries(built.warehouse_uri)}
    assert set(found) == {
        "journalen_2017-03.csv",
        "webbtidbok_2017-03.csv",
        "webbtidbok_enheter_2024-02.csv",
        "pop.json",
    }
    journal = found["journalen_2017-03.csv"]
    assert journal["outcome"] == "blocked" and journal["last_loaded"] is None
    assert "lack 1 region(s): 12 Region Skåne" in journal["message"]
    assert journal["rows_now"] == {}
    assert [(t["table"], t["outcome"], t["rows_in"], t["rows_loaded"]) for t in journal["tables"]] == [
        (None, "blocked", 21 * 3, 0)
    ]  # the rows it held: 20 regions and the national line, 3 metrics
    web = found["webbtidbok_2017-03.csv"]
    assert web["outcome"] == "published" and web["message"] is None
    assert web["rows_now"] == {"ehealth_adoption": 21 * 5, "ehealth_adoption_national": 5}
    unit = found["webbtidbok_enheter_2024-02.csv"]
    assert unit["rows_now"] == {"ehealth_unit_daily": 4} and unit["quarantined_now"] == {"ehealth_unit_daily": 11}
    assert [d["outcome"] for d in quality.deliveries(built.warehouse_uri, outcome="blocked")] == ["blocked"]
    assert {d["file"] for d in quality.deliveries(built.warehouse_uri, pipeline="reference")} == {"pop.json"}


def test_ehealth_months_expected_received_loaded_blocked_overdue(built, tmp_path):
    status = quality.ehealth_months(built.warehouse_uri, built.landing_uri, "2017-03", "2017-06", today=TODAY)
    months = {m["month"]: m for m in status["months"]}
    assert list(months) == ["2017-06", "2017-05", "2017-04", "2017-03"]
    march = {d["kind"]: d for d in months["2017-03"]["deliveries"]}
    assert march["journalen"]["status"] == "blocked" and "lack 1 region" in march["journalen"]["message"]
    assert march["webbtidbok"]["status"] == "loaded" and march["webbtidbok"]["loaded_at"]
    # A month is as bad as its worst delivery; a declared kind that never landed in March is overdue, worse.
    assert months["2017-03"]["status"] == MARCH_STATUS
    april = {d["kind"]: d for d in months["2017-04"]["deliveries"]}
    assert april["journalen"]["status"] == "overdue" and april["journalen"]["due"] == "2017-05-15"
    assert april["journalen"]["days_overdue"] == 36
    assert months["2017-06"]["status"] == "open"
    assert months["2017-03"]["units"]["status"] == "not sent"
    # Every kind the spec declares counts: what did not land in March, April and May is overdue, June's open.
    landed = frozenset({"journalen_2017-03", "webbtidbok_2017-03"})
    counts = {
        "blocked": 1,
        "loaded": 1,
        "overdue": len(declared_exports(["2017-03", "2017-04", "2017-05"], landed)),
        "open": len(declared_exports(["2017-06"])),
    }
    # A kind declared from a later month on is "not sent" in these months, not overdue.
    later = sum(len(spec.EXPORTS) - len(spec.kinds_expected(f"2017-{m:02d}")) for m in (3, 4, 5, 6))
    assert status["counts"] == counts | ({"not sent": later} if later else {})

    # N is a parameter: with 60 days' grace May is not overdue yet.
    grace = quality.ehealth_months(
        built.warehouse_uri, built.landing_uri, "2017-05", "2017-05", today=TODAY, overdue_after_days=60
    )
    assert grace["months"][0]["status"] == "expected"

    # A file that lands is "waiting" until a run loads it; the unit-level file of 2024-02 is loaded.
    landing = tmp_path / "landing"
    shutil.copytree(built.landing_uri, landing)
    _export(landing / "ehealth", "journalen", APRIL)
    moved = quality.ehealth_months(built.warehouse_uri, str(landing), "2017-04", "2017-04", today=TODAY)
    assert {d["kind"]: d["status"] for d in moved["months"][0]["deliveries"]} == {
        kind: "waiting" if kind == "journalen" else "overdue" if kind in spec.kinds_expected("2017-04") else "not sent"
        for kind in spec.EXPORTS
    }
    units = quality.ehealth_months(built.warehouse_uri, built.landing_uri, "2024-02", "2024-02", today=TODAY)
    assert units["months"][0]["units"]["status"] == "loaded"

    # A landing that is not there is said on the page (one line), not a crash, and not "nothing landed";
    # what the warehouse holds is still shown. Bad ranges are one line.
    gone = quality.ehealth_months(built.warehouse_uri, str(tmp_path / "nowhere"), "2017-03", "2017-03", today=TODAY)
    assert {d["status"] for d in gone["months"][0]["deliveries"] if d["kind"] in ("journalen", "webbtidbok")} == {
        "blocked",
        "loaded",
    }
    assert gone["landing_error"].endswith("nowhere does not exist (unmounted, or a wrong landing URI?)"), gone
    for first, last in (("2017-13", "2017-12"), ("2018-01", "2017-01"), ("1990-01", "2030-01"), ("x", "y")):
        with pytest.raises(ValueError):
            quality.ehealth_months(built.warehouse_uri, built.landing_uri, first, last)


def test_month_ranges():
    assert quality.month_range("2017-11", "2018-02") == ["2017-11", "2017-12", "2018-01", "2018-02"]
    assert quality.default_months(dt.date(2018, 2, 10), 3) == ("2017-12", "2018-02")


def test_run_activity_is_the_pipelines_rows_in_the_runs_span(built):
    log_rows = quality.load_log_rows(built.warehouse_uri)
    rows = quality.run_activity(built.warehouse_uri, "ehealth_adoption", None, None, log_rows=log_rows)
    assert {r["outcome"] for r in rows} == {"published", "blocked"}
    assert all(r["pipeline"] == "ehealth_adoption" for r in rows)
    after = log_rows[-1]["finished_at"] + dt.timedelta(seconds=1)
    assert quality.run_activity(built.warehouse_uri, "ehealth_adoption", after, None, log_rows=log_rows) == []


def test_warehouse_files_cannot_leave_their_folder(built, tmp_path):
    warehouse = Path(built.warehouse_uri)
    docs = warehouse / "_data_docs"
    docs.mkdir(exist_ok=True)
    (docs / "index.html").write_text("<p>docs</p>")
    (warehouse / "exports").mkdir(exist_ok=True)
    (tmp_path / "secret.txt").write_text("secret")
    (docs / "link.html").symlink_to(tmp_path / "secret.txt")
    assert quality.safe_parts("") == ["index.html"]
    assert quality.safe_parts("ehealth_unit_daily/") == ["ehealth_unit_daily", "index.html"]
    assert quality.warehouse_file(built.warehouse_uri, ["_data_docs", *quality.safe_parts("")]) == b"<p>docs</p>"
    assert quality.warehouse_file(built.warehouse_uri, list(quality.REPORT)) is None
    for bad in (
        "../_load_log/x",
        "a/../../secret.txt",
        "/etc/passwd",
        "..",
        "a\\b",
        ".hidden",
        "a//b",
        "a/./b",
        "x\x00y",
    ):
        with pytest.raises(ValueError):
            quality.safe_parts(bad)
    for parts in (
        ["_data_docs", "link.html"],
        ["_load_log", "x"],
        ["exports", "other.html"],
        ["_data_docs"],
        ["_data_docs", ".."],
    ):
        with pytest.raises(ValueError):
            quality.warehouse_file(built.warehouse_uri, parts)


def test_quality_works_on_an_object_store(built):
    """The same functions on fsspec's in-memory filesystem (the README's stand-in for s3://)."""
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.put(built.landing_uri, "/q-landing", recursive=True)
    status = quality.ehealth_months(built.warehouse_uri, "memory://q-landing", "2017-03", "2017-04", today=TODAY)
    assert [m["status"] for m in status["months"]] == ["overdue", MARCH_STATUS]
    memory.pipe("/q-wh/_data_docs/index.html", b"<p>mem</p>")
    assert quality.warehouse_file("memory://q-wh", ["_data_docs", "index.html"]) == b"<p>mem</p>"


# --------------------------------------------------------------------------- the plugin, through Airflow's API app

CLIENT = r"""
import json, os, sys, datetime as dt
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

app = create_app("core")
manager = get_auth_manager()
viewer = manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
nobody = manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
client = TestClient(app, raise_server_exceptions=False)

# A run of ehealth_adoption spanning the whole load log, for its "Data quality" tab.
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
with create_session() as session:
    run = DagRun(dag_id="ehealth_adoption", run_id="manual__quality", run_type="manual", state="success",
                 run_after=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                 start_date=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    run.end_date = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    session.add(run)

def get(path, token=None, cookie=None, accept=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    cookies = {"_token": cookie} if cookie else {}
    r = client.get(path, headers=headers, cookies=cookies, follow_redirects=False)
    return {"status": r.status_code, "body": r.text, "headers": dict(r.headers)}

plugin = next(r for r in app.routes if getattr(r, "path", None) == "/etl-quality")
paths = sorted({"/etl-quality" + route.path.replace("{path:path}", "x").replace("{run_id:path}", "x")
                .replace("{dag_id}", "x") for route in plugin.app.routes if "GET" in getattr(route, "methods", ())})
out = {
    "routes": paths,
    "anonymous": {p: get(p)["status"] for p in paths},
    "garbage_token": get("/etl-quality/", token="not-a-token")["status"],
    "no_role": get("/etl-quality/", token=nobody)["status"],
    "no_role_ehealth": get("/etl-quality/ehealth", token=nobody)["status"],
    "overview": get("/etl-quality/", token=viewer),
    "overview_cookie": get("/etl-quality/", cookie=viewer)["status"],
    "deliveries": get("/etl-quality/deliveries", token=viewer),
    "blocked": get("/etl-quality/deliveries?outcome=blocked", token=viewer),
    "ehealth": get("/etl-quality/ehealth?from=2017-03&to=2017-05", token=viewer),
    "ehealth_bad": get("/etl-quality/ehealth?from=2017-13&to=<b>", token=viewer),
    "docs_root": get("/etl-quality/data-docs", token=viewer),
    "docs": get("/etl-quality/data-docs/", token=viewer),
    "docs_page": get("/etl-quality/data-docs/ehealth_unit_daily/evil.html", token=viewer),
    "docs_traversal": get("/etl-quality/data-docs/%2e%2e/_load_log/x", token=viewer)["status"],
    "docs_traversal2": get("/etl-quality/data-docs/..%2F..%2Fsecret.txt", token=viewer)["status"],
    "docs_missing": get("/etl-quality/data-docs/nothing.html", token=viewer)["status"],
    "report": get("/etl-quality/report", token=viewer),
    "run": get("/etl-quality/run/ehealth_adoption/manual__quality", token=viewer),
    "run_missing": get("/etl-quality/run/ehealth_adoption/nope", token=viewer)["status"],
    "run_anonymous": get("/etl-quality/run/ehealth_adoption/manual__quality")["status"],
    "run_anonymous_browser": get("/etl-quality/run/ehealth_adoption/manual__quality", accept="text/html,*/*"),
    "garbage_browser": get("/etl-quality/", cookie="not-a-token", accept="text/html"),
    "no_role_browser": get("/etl-quality/", cookie=nobody, accept="text/html,*/*"),
    "plugins": json.loads(get("/api/v2/plugins", token=viewer)["body"]),
    "openapi": get("/etl-quality/openapi.json", token=viewer)["status"],
}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def served(built, tmp_path_factory):
    """The plugin inside Airflow's API app (create_app), driven by TestClient in a fresh Airflow home."""
    home = tmp_path_factory.mktemp("airflow-home")
    warehouse = Path(built.warehouse_uri)
    (warehouse / "_data_docs" / "ehealth_unit_daily").mkdir(parents=True, exist_ok=True)
    (warehouse / "_data_docs" / "index.html").write_text('<a href="ehealth_unit_daily/evil.html">x</a>')
    (warehouse / "_data_docs" / "ehealth_unit_daily" / "evil.html").write_text(f"<td>{XSS}</td>")
    (warehouse / "exports").mkdir(exist_ok=True)
    (warehouse / "exports" / "followup_report.html").write_text("<h1>Report</h1>", encoding="utf-8")
    (tmp_path_factory.getbasetemp() / "secret.txt").write_text("secret")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ETL_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlite_metadata(home),  # migrated
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "no-dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "viewer:viewer",
            "AIRFLOW__API_AUTH__JWT_SECRET": "quality-plugin-test-secret",
            "AIRFLOW_VAR_ETL_WAREHOUSE_URI": built.warehouse_uri,
            "AIRFLOW_VAR_ETL_LANDING_URI": built.landing_uri,
            "PYTHONPATH": str(ROOT),
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    (home / "no-dags").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=300, cwd=str(home)
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_every_route_refuses_unauthenticated_requests(served):
    assert set(served["routes"]) >= {
        "/etl-quality/",
        "/etl-quality/deliveries",
        "/etl-quality/ehealth",
        "/etl-quality/data-docs/x",
        "/etl-quality/report",
        "/etl-quality/run/x/x",
    }
    assert served["anonymous"] == {path: 401 for path in served["routes"]}
    assert served["run_anonymous"] == 401
    # A person following a failure line's link without a session: to the login page and back, no data.
    browser = served["run_anonymous_browser"]
    assert browser["status"] == 303 and "/login" in browser["headers"]["location"]
    assert "next=" in browser["headers"]["location"] and "manual__quality" in browser["headers"]["location"]
    assert "journalen" not in browser["body"]
    # A bookmarked page with a session the server no longer accepts (Airflow's 403 "Invalid JWT token"):
    # to the login page and back, like no session at all — not the raw JSON.
    stale = served["garbage_browser"]
    assert stale["status"] == 303 and "/login" in stale["headers"]["location"], stale
    assert "next=" in stale["headers"]["location"] and "Invalid JWT" not in stale["body"]
    assert served["garbage_token"] == 403  # a token that is no valid JWT
    assert served["no_role"] == 403 and served["no_role_ehealth"] == 403  # valid token, no DAG access
    # The same person in a browser: a page that says why, not Airflow's raw JSON, and none of the data.
    refused = served["no_role_browser"]
    assert refused["status"] == 403 and "text/html" in refused["headers"]["content-type"], refused
    assert "has no role that may read the pipelines" in refused["body"] and '"detail"' not in refused["body"]
    assert "ehealth_unit_daily" not in refused["body"] and "journalen" not in refused["body"]
    assert served["openapi"] in (401, 404)  # no unauthenticated schema or docs routes


def test_authenticated_user_gets_the_pages(served):
    page = served["overview"]
    assert page["status"] == 200 and served["overview_cookie"] == 200
    assert "Data quality: tables" in page["body"] and "ehealth_unit_daily" in page["body"]
    assert "lack 1 region(s): 12 Region Skåne" in page["body"]
    assert "<script" not in page["body"] and "http://" not in page["body"] and "https://" not in page["body"]
    assert "script-src" not in page["headers"]["content-security-policy"]
    assert page["headers"]["x-content-type-options"] == "nosniff"
    assert "journalen_2017-03.csv" in served["deliveries"]["body"]
    assert served["blocked"]["status"] == 200 and "webbtidbok_2017-03.csv" not in served["blocked"]["body"]
    ehealth = served["ehealth"]
    assert ehealth["status"] == 200 and "2017-04" in ehealth["body"] and "overdue" in ehealth["body"]
    assert served["ehealth_bad"]["status"] == 400 and "<b>" not in served["ehealth_bad"]["body"]


def test_markup_and_personal_data_in_rows_are_escaped_and_masked_in_the_html(served):
    body = served["overview"]["body"]
    assert XSS not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    for page in ("overview", "deliveries", "ehealth", "run"):
        assert EMAIL not in served[page]["body"] and PNR not in served[page]["body"]
    assert "[personnummer borttaget]" in body


def test_data_docs_and_report_are_served_safely(served):
    assert served["docs_root"]["status"] == 307
    assert served["docs_root"]["headers"]["location"].endswith("/etl-quality/data-docs/")
    assert served["docs"]["status"] == 200 and "evil.html" in served["docs"]["body"]
    evil = served["docs_page"]
    assert evil["status"] == 200 and evil["headers"]["content-type"].startswith("text/html")
    csp = evil["headers"]["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert served["docs_traversal"] == 404 and served["docs_traversal2"] == 404 and served["docs_missing"] == 404
    report = served["report"]
    assert report["status"] == 200 and report["body"] == "<h1>Report</h1>"
    assert "default-src 'none'" in report["headers"]["content-security-policy"]


def test_dag_run_page_and_links_in_the_ui(served):
    run = served["run"]
    assert run["status"] == 200 and "manual__quality" in run["body"]
    assert "journalen_2017-03.csv" in run["body"] and "lack 1 region(s)" in run["body"]
    assert served["run_missing"] == 404
    [plugin] = [p for p in served["plugins"]["plugins"] if p["name"] == "etl_quality"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/etl-quality"]
    views = {v["destination"]: v for v in plugin["external_views"]}
    assert views["nav"]["name"] == "Data quality" and views["nav"]["href"] == "/etl-quality/"
    assert views["dag_run"]["href"] == "/etl-quality/run/{DAG_ID}/{RUN_ID}"


def test_loading_the_plugin_is_cheap_for_every_airflow_process(tmp_path):
    """Every process (each task, to integrate macros) loads the plugins folder: no API-server or data imports then."""
    probe = f"""
import json, sys, time, warnings
warnings.simplefilter("error")  # no deprecation noise in task logs from loading the plugin
import airflow.sdk
start = time.time()
sys.path.insert(0, {str(ROOT / "plugins")!r})
import etl_quality_plugin as plugin
heavy = ("airflow.api_fastapi.core_api.security", "starlette.testclient", "pyarrow", "deltalake", "etl.quality")
print(json.dumps({{"seconds": time.time() - start, "loaded": [m for m in heavy if m in sys.modules],
                  "prefix": plugin.EtlQualityPlugin.fastapi_apps[0]["url_prefix"]}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    probe_result = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe_result["loaded"] == [] and probe_result["prefix"] == "/etl-quality"
    assert probe_result["seconds"] < 1.0, probe_result  # generous for noisy CI; about 0.1 s here


def test_the_task_logs_quality_link_is_absolute_where_the_ui_is_known():
    """Issue 24: the failure line's data-quality link was a relative path a log viewer cannot open."""
    from etl.orchestration import quality_url

    run = "manual__2026-12-06T10:00:00+00:00"
    assert quality_url("ehealth_adoption", run, {"AIRFLOW__API__BASE_URL": "https://airflow.agency.se/"}) == (
        "https://airflow.agency.se/etl-quality/run/ehealth_adoption/manual__2026-12-06T10%3A00%3A00%2B00%3A00"
    )
    # `make airflow`: scripts/airflow_standalone.sh sets the API server's host and port.
    assert quality_url("followup", "r1", {"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": "8081"}) == (
        "http://127.0.0.1:8081/etl-quality/run/followup/r1"
    )
    assert quality_url("followup", "r1", {"AIRFLOW__API__HOST": "0.0.0.0", "AIRFLOW__API__PORT": "8080"}) == (
        "http://localhost:8080/etl-quality/run/followup/r1"
    )
    assert quality_url("followup", "r1", {}) == "/etl-quality/run/followup/r1"  # nothing known: the path
