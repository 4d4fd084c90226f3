"""County reports pipeline end to end: real files in a landing folder → validated, published tables.

Covers whole-report quarantine for each kind of bad input, row accounting,
corrections (later replaces, superseded, late older file), identical
re-delivery, nothing-new runs, recovery of a half-committed run, the
sample generator, and that no contact person's data reaches any file
under the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl import publish, storage
from etl.errors import ValidationFailed
from etl.pipelines import county_reports as pipeline
from etl.sample import county_reports as sample
from etl.sources import county_template as tpl
from tests.county_support import DAY, T0, builders

ROOT = Path(__file__).resolve().parent.parent


def rows(settings, table: str) -> list[dict]:
    data = publish.read_table(settings.warehouse_uri, table).to_pylist()
    for row in data:
        row.pop("batch_id"), row.pop("loaded_at")
    return sorted(data, key=lambda r: json.dumps(r, default=str, sort_keys=True))


def snapshot(settings) -> dict:
    return {t: rows(settings, t) for t in pipeline.TABLES}


def quarantine(settings, table: str) -> dict[tuple[str, int], str]:
    return {
        (Path(r["source_file"]).name, r["row_number"]): r["reason"]
        for r in publish.read_quarantine(settings.warehouse_uri, table).to_pylist()
    }


def log_of(settings, batch_id: str) -> dict[str | None, dict]:
    """The batch's load log rows by table (None: a row of the whole batch, e.g. nothing new)."""
    return {
        r["table_name"]: r
        for r in publish.read_load_log(settings.warehouse_uri).to_pylist()
        if r["batch_id"] == batch_id
    }


def assert_accounting(settings, report) -> dict[str | None, dict]:
    log = log_of(settings, report.batch_id)
    assert set(log) == set(pipeline.TABLES)
    for entry in log.values():
        assert entry["rows_in"] == entry["rows_loaded"] + entry["rows_quarantined"], entry
    return log


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


# --------------------------------------------------------------------------- bad input, whole reports


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<a>" + b"0" * (30 * 1024 * 1024) + b"</a>")
    return buffer.getvalue()


def _with_duplicate_field(workbook):
    workbook[tpl.SHEET_REPORT].append(["Region:", "Region Skåne"])


# The row the duplicate lands on: under the template's last field row, however many fields it declares.
DUPLICATE_ROW = openpyxl.load_workbook(io.BytesIO(builders.xlsx_bytes(builders.doc())))[tpl.SHEET_REPORT].max_row + 1


BAD_FILES = {
    # file name: (bytes, expected reason in the county_report quarantine, initiative rows, service rows)
    "unknown_region.json": (
        builders.json_bytes(builders.doc(region="Landstinget Atlantis")),
        "Region: unknown region 'Landstinget Atlantis'",
        3,
        4,
    ),
    "negative_spend.xlsx": (
        builders.xlsx_bytes(builders.doc(region="04", spend_sek={"it_support": "-5 000 kr"})),
        "Använt IT-stöd och processer (kr): negative amount: '-5 000 kr'",
        3,
        4,
    ),
    "year_out_of_range.json": (
        builders.json_bytes(builders.doc(region="05", report_year=2015)),
        "Redovisningsår: 2015 is outside 2016..2100",
        3,
        4,
    ),
    "missing_sheet.xlsx": (
        builders.xlsx_bytes(builders.doc(region="06"), lambda wb: wb.remove(wb["Insatser"])),
        "missing sheet(s) Insatser",
        0,
        4,
    ),
    "duplicate_field.xlsx": (
        builders.xlsx_bytes(builders.doc(region="07"), _with_duplicate_field),
        f"field 'Region' appears twice (rows 2 and {DUPLICATE_ROW})",
        3,
        4,
    ),
    "non_numeric_amount.json": (
        builders.json_bytes(builders.doc(region="08", grant_sek="tjugo miljoner")),
        "Erhållna medel (kr): not an amount: 'tjugo miljoner'",
        3,
        4,
    ),
    "spend_over_grant.xlsx": (
        builders.xlsx_bytes(builders.doc(region="09", grant_sek="10 mnkr", spend_sek={"it_support": "10,2 mnkr"})),
        "spend 10200000 kr is 102.0 % of the grant 10000000 kr",
        3,
        4,
    ),
    "empty.xlsx": (b"", "empty file", 0, 0),
    "empty.json": (b"", "empty file", 0, 0),
    "corrupt.xlsx": (b"PK\x03\x04\x14\x00garbage", "not a valid .xlsx file (not a zip archive)", 0, 0),
    "wrong_types.json": (
        builders.json_bytes(builders.doc(region="10", spend_sek=[1, 2], initiatives="inga")),
        "spend_sek must be a JSON object, not an array; initiatives must be a JSON array, not text",
        0,
        4,
    ),
    "zip_bomb.xlsx": (_zip_bomb(), "refused as a possible zip bomb", 0, 0),
}


def test_bad_reports_are_quarantined_whole_and_the_other_regions_load(settings, landing):
    for i, (name, (data, *_)) in enumerate(BAD_FILES.items()):
        builders.land(landing, name, data, T0 + i)
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), T0)
    # Spend 100.5 % of the grant: inside the tolerance, published with a warning.
    builders.land(
        landing,
        "vgr_2017.xlsx",
        builders.xlsx_bytes(
            builders.doc(region="VGR", grant_sek="159 mnkr", spend_sek={"it_support": "159 795 000 kr"})
        ),
        T0,
    )
    unknown_enum = builders.doc(
        region="Region Halland",
        initiatives=[
            *builders.VALID["initiatives"],
            {"title": "Forskningsprojekt", "area": "Forskning", "status": "Pågående"},
        ],
    )
    builders.land(landing, "halland_2017.json", builders.json_bytes(unknown_enum), T0)

    with pytest.raises(ValidationFailed) as error:
        pipeline.run(settings)
    message = str(error.value)
    # Each file refused whole is named with its reason; the run fails, the other regions load.
    assert f"{len(BAD_FILES)} file(s) blocked" in message
    for name, (_, reason, *_) in BAD_FILES.items():
        assert f"{name}: blocked, refused whole: " in message and reason in message, name

    loaded = {(r["region_code"], r["report_year"]) for r in rows(settings, "county_report")}
    assert loaded == {("03", 2017), ("14", 2017), ("13", 2017)}
    assert quarantine(settings, "county_report") == {}  # refused files are held back, not half-loaded
    # The unknown enum loses only its own row; the rest of Halland's report loads (it replaces nothing).
    initiative_reasons = quarantine(settings, "county_initiative")
    assert initiative_reasons[("halland_2017.json", 4)].startswith("Område: unknown area 'Forskning'")
    assert sorted(r["title"] for r in rows(settings, "county_initiative") if r["region_code"] == "13") == [
        "Digitala vårdbesök",
        "Kliniskt introduktionsår",
        "Vårdnära service",
    ]

    log = publish.read_load_log(settings.warehouse_uri).to_pandas()
    blocked = log[log.outcome == "blocked"]
    assert len(blocked) == len(BAD_FILES)
    done = log[log.outcome == "published"].set_index("table_name")
    assert (done.rows_in == done.rows_loaded + done.rows_quarantined).all()
    assert (done.loc["county_report", "rows_in"], done.loc["county_report", "rows_loaded"]) == (3, 3)
    assert done.loc["county_report", "validation"] == "warning"
    assert "spend exceeds the grant (within the 1 % tolerance)" in done.loc["county_report", "warnings"]
    with pytest.raises(ValidationFailed):  # and so every run, until the files are replaced or removed
        pipeline.run(settings)


# --------------------------------------------------------------------------- corrections


def test_a_later_submission_replaces_the_report_in_all_three_tables(settings, landing):
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), T0)
    builders.land(landing, "halland_2017.xlsx", builders.xlsx_bytes(builders.doc(region="13")), T0)
    first = pipeline.run(settings)
    assert_accounting(settings, first)
    halland_before = [r for r in rows(settings, "county_initiative") if r["region_code"] == "13"]

    # The initiative keeps its cost and answer: emptying them would be a value loss to approve (issue 23 §2).
    correction = builders.doc(
        grant_sek="21 mnkr",
        initiatives=[
            {
                "title": "Digitala vårdbesök",
                "area": "IT",
                "status": "Genomförd",
                "cost_sek": "3 mnkr",
                "new_due_to_grant": "Ja",
            }
        ],
        ehealth_services=[],
    )
    builders.land(landing, "uppsala_2017_rattelse.xlsx", builders.xlsx_bytes(correction), T0 + 10 * DAY)
    second = pipeline.run(settings)
    assert_accounting(settings, second)

    uppsala = [r for r in rows(settings, "county_report") if r["region_code"] == "03"]
    assert len(uppsala) == 1
    assert uppsala[0]["grant_sek"] == 21_000_000
    assert uppsala[0]["submitted_at"] == utc(T0 + 10 * DAY)
    assert uppsala[0]["source_file"].endswith("uppsala_2017_rattelse.xlsx")
    assert [
        (r["initiative_no"], r["title"], r["status"])
        for r in rows(settings, "county_initiative")
        if r["region_code"] == "03"
    ] == [(1, "Digitala vårdbesök", "completed")]
    # The correction lists no services: the old ones are gone, not kept.
    assert [r for r in rows(settings, "county_ehealth_service") if r["region_code"] == "03"] == []
    # Other regions are untouched.
    assert [r for r in rows(settings, "county_initiative") if r["region_code"] == "13"] == halland_before
    assert len(rows(settings, "county_ehealth_service")) == 4


def test_two_files_for_one_region_year_in_one_delivery_the_newer_wins(settings, landing):
    builders.land(landing, "uppsala_a.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0 + DAY)
    builders.land(landing, "uppsala_b.xlsx", builders.xlsx_bytes(builders.doc(grant_sek="22 mnkr")), T0)
    report = pipeline.run(settings)

    assert [r["grant_sek"] for r in rows(settings, "county_report")] == [20_000_000]
    reason = quarantine(settings, "county_report")[("uppsala_b.xlsx", 0)]
    assert reason.startswith("superseded by uppsala_a.json")
    assert quarantine(settings, "county_initiative")[("uppsala_b.xlsx", 0)].startswith("superseded by uppsala_a.json")
    log = assert_accounting(settings, report)
    assert (
        log["county_report"]["rows_quarantined"],
        log["county_initiative"]["rows_quarantined"],
        log["county_ehealth_service"]["rows_quarantined"],
    ) == (1, 3, 4)
    assert len(rows(settings, "county_initiative")) == 3 and len(rows(settings, "county_ehealth_service")) == 4


def test_a_file_arriving_later_counts_even_with_an_older_modification_time(settings, landing):
    """Delivery order is arrival order: a re-send that kept its old time (cp -p, rsync -a) is the delivery now."""
    builders.land(landing, "uppsala_new.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0 + DAY)
    pipeline.run(settings)
    builders.land(landing, "uppsala_old.json", builders.json_bytes(builders.doc(grant_sek="19,95 mnkr")), T0)
    report = pipeline.run(settings)
    assert publish.read_table(settings.warehouse_uri, "county_report").column("grant_sek").to_pylist() == [19_950_000]
    log = assert_accounting(settings, report)
    assert log["county_report"]["outcome"] == "published"


def test_identical_redelivery_changes_nothing(settings, landing):
    data = builders.json_bytes(builders.doc())
    builders.land(landing, "uppsala.json", data, T0)
    pipeline.run(settings)
    before = snapshot(settings)
    assert before["county_report"][0]["submitted_at"] == utc(T0)

    # The same bytes again under another name: skipped by SHA-256.
    builders.land(landing, "uppsala_igen.json", data, T0 + DAY)
    again = pipeline.run(settings)
    assert again.outcome == "nothing_new"
    assert snapshot(settings) == before

    # The same content in new bytes (the other file format, a later file time): loaded, nothing changes.
    builders.land(landing, "uppsala_omskickad.xlsx", builders.xlsx_bytes(builders.doc()), T0 + 2 * DAY)
    resent = pipeline.run(settings)
    log = assert_accounting(settings, resent)
    assert {t: e["outcome"] for t, e in log.items()} == {t: "unchanged" for t in pipeline.TABLES}
    assert resent.outcome == "unchanged"
    assert snapshot(settings) == before
    assert quarantine(settings, "county_report") == {}


def test_nothing_new_is_quick_and_logged(settings, landing):
    empty = pipeline.run(settings)
    assert empty.outcome == "nothing_new" and empty.results == []
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    builders.land(landing, ".README.txt", b"hidden: not a delivery", T0)
    assert pipeline.run(settings).outcome == "published"
    report = pipeline.run(settings)
    assert report.outcome == "nothing_new"
    assert report.messages == ["nothing new: 1 county report file(s) in landing, all already loaded"]
    entry = log_of(settings, report.batch_id)[None]
    assert (entry["outcome"], entry["rows_in"]) == ("nothing_new", 0)


def test_a_run_that_died_between_tables_is_redone(settings, landing, warehouse):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    first = pipeline.run(settings)
    before = snapshot(settings)
    # As if the process died after publishing county_report: the later tables' log rows never got written.
    from deltalake import DeltaTable

    DeltaTable(str(warehouse / "_load_log")).delete(
        f"batch_id = '{first.batch_id}' AND table_name IN ('county_initiative', 'county_ehealth_service')"
    )
    (warehouse / "_state" / "deliveries" / "county_reports.json").unlink()  # written last: never reached
    assert publish.loaded_sha256(settings.warehouse_uri, pipeline.PIPELINE, tables=pipeline.TABLES) == set()
    redo = pipeline.run(settings)
    assert redo.outcome == "unchanged"
    assert snapshot(settings) == before
    assert len(publish.loaded_sha256(settings.warehouse_uri, pipeline.PIPELINE, tables=pipeline.TABLES)) == 1


def test_a_header_that_fails_validation_takes_its_rows_along(settings, landing):
    """The suite is the second line of defence: the parser never lets a year before 2016 through, so force one."""
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    (landed,) = storage.list_landed(settings.landing_uri, pipeline.PREFIX, pipeline.SUFFIXES)
    sub = pipeline.read_submission(landed)
    assert sub.parsed.header is not None, sub.parsed.error
    for row in [sub.parsed.header, *sub.parsed.initiatives, *sub.parsed.services]:
        row["report_year"] = 2015
    report_batch = pipeline._report_batch([sub], settings.warehouse_uri, "b1")
    assert report_batch.rows.empty and report_batch.rows_quarantined == 1
    pipeline._drop_rejected_headers([sub], report_batch)
    assert sub.parsed.error == "report header failed validation: report_year is outside 2016..2100"
    detail = pipeline._detail_batch(pipeline.INITIATIVE, [sub], settings.warehouse_uri, "b1")
    assert detail.rows.empty and detail.rows_in == detail.rows_quarantined == 3
    assert detail.replace_keys == []
    assert detail.quarantine[["row_number", "rows_held"]].values.tolist() == [[0, 3]]


# --------------------------------------------------------------------------- sample data and personal data


def _warehouse_text(warehouse: Path) -> str:
    """Every file under the warehouse as text: raw bytes, and Parquet decoded through pandas."""
    parts = []
    for path in sorted(p for p in warehouse.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts.append(data.decode("utf-8", "replace"))
        if path.suffix == ".parquet":
            parts.append(pq.read_table(path).to_pandas().to_csv())
    return "\n".join(parts)


def test_sample_loads_and_no_contact_person_reaches_any_file(settings, landing, warehouse):
    written = sample.write(landing, 2010, 2019, units=1, unit_months=1, seed=7)
    folder = landing / "county_reports"
    # 21 regions x 4 years (none before 2016) + 1 correction
    assert written == 85 == len(list(folder.iterdir()))  # reports only: the README and defects list lie beside
    assert "SYNTHETIC" in (folder.parent / "README-county_reports.txt").read_text()
    # A report whose header is bad still carries its contact person into the parser.
    builders.land(landing, "bad.json", builders.json_bytes(builders.doc(region="Atlantis")), T0)
    builders.land(
        landing, "good.xlsx", builders.xlsx_bytes(builders.doc(region="Region Gotland", report_year=2020)), T0
    )

    with pytest.raises(ValidationFailed, match=r"bad.json: blocked, refused whole: Region: unknown region 'Atlantis'"):
        pipeline.run(settings)
    (landing / "county_reports" / "bad.json").unlink()
    report = pipeline.run(settings)
    assert report.outcome == "nothing_new"  # everything else was loaded by the failing run
    reports = pd.DataFrame(rows(settings, "county_report"))
    assert len(reports) == 85  # 84 sample reports + good.xlsx; the corrected original superseded, bad.json blocked
    sample_reports = reports[reports["report_year"] <= 2019]
    assert sorted(set(sample_reports["report_year"])) == [2016, 2017, 2018, 2019]
    assert sample_reports.groupby("report_year")["region_code"].nunique().tolist() == [21, 21, 21, 21]
    assert len(quarantine(settings, "county_report")) == 1  # the superseded original
    # Grants: national totals and Västra Götaland's 2016 share, within the rounding of how senders write amounts.
    totals = sample_reports.groupby("report_year")["grant_sek"].sum()
    assert totals[2016] == pytest.approx(950e6, rel=0.005)
    assert totals[2017] == pytest.approx(976e6, rel=0.005) and totals[2019] == pytest.approx(976e6, rel=0.005)
    vgr = sample_reports[(sample_reports["region_code"] == "14") & (sample_reports["report_year"] == 2016)]
    assert vgr["grant_sek"].iloc[0] == pytest.approx(159e6, rel=0.005)
    spend = sample_reports[["spend_it_support_sek", "spend_competence_use_sek", "spend_competence_supply_sek"]].sum(
        axis=1
    )
    assert (spend <= sample_reports["grant_sek"]).all() and (spend >= 0.85 * sample_reports["grant_sek"]).all()

    # Every contact person written into the landing files, as names and addresses.
    secrets = {builders.CONTACT_NAME, builders.CONTACT_MAIL, "Fiktivsdotter", "19800101-1234", "example.se"}
    for path in folder.glob("*.json"):
        secrets.add(json.loads(path.read_text())["contact_person"])
    from openpyxl import load_workbook

    for path in folder.glob("*.xlsx"):
        workbook = load_workbook(path, read_only=True)
        sheet = next(workbook[n] for n in workbook.sheetnames if n.casefold() == "uppgifter")
        for label, v in sheet.iter_rows(values_only=True, max_col=2):
            if label:
                assert isinstance(label, str), label
                if "kontaktperson" in label.casefold():
                    secrets.add(str(v))
        workbook.close()
    secrets.update(sample.LAST_NAMES)
    assert len(secrets) > 80
    text = _warehouse_text(warehouse)
    assert "Region Uppsala" in text or "Redovisningsår" in text  # the scan does see the quarantined raw text
    leaked = sorted(s for s in secrets if s.casefold() in text.casefold())
    assert leaked == []


def test_sample_is_deterministic_and_covers_the_years_asked_from_the_first_agreement_year(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    written = sample.write(a, 2018, 2025, units=1, unit_months=1, seed=3)
    sample.write(b, 2018, 2025, units=1, unit_months=1, seed=3)
    corrections = len(list((a / "county_reports").glob("*_rattelse.*")))
    assert corrections == 1 and written == 8 * 21 + corrections  # reports only (README, defects list beside)

    def fingerprint(root: Path) -> dict:
        # File times are part of a report (they are its submission time); the README's is not.
        return {
            p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime if p.suffix != ".txt" else 0)
            for p in (root / "county_reports").iterdir()
        }

    assert fingerprint(a) == fingerprint(b)
    names = list(fingerprint(a))
    assert {n.rsplit(".", 1)[1] for n in names} == {"xlsx", "json"}
    assert {n.split("_")[1] for n in names if n != "README.txt"} == {str(y) for y in range(2018, 2026)}
    assert sample.write(tmp_path / "c", 2010, 2015, units=1, unit_months=1, seed=3) == 0  # none before 2016
    assert sample.grants(2016)["14"] == pytest.approx(159e6, rel=0.005)
    assert sum(sample.grants(2017).values()) == 976_000_000


def test_dag_runs_the_pipeline_daily_with_the_three_table_assets(tmp_path):
    code = r"""
import json, os
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=os.environ["DAG_FILE"])
dag = bag.dags["county_reports"]
task = dag.tasks[0]
print(json.dumps({"errors": list(bag.import_errors), "schedule": str(dag.schedule), "catchup": dag.catchup,
                  "tasks": [t.task_id for t in dag.tasks], "pool": task.pool,
                  "outlets": sorted(o.uri for o in task.outlets)}))
"""
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        DAG_FILE=str(ROOT / "dags" / "county_reports.py"),
        PYTHONPATH=str(ROOT),
        ETL_WAREHOUSE_URI=str(tmp_path / "warehouse"),
    )
    env.pop("AIRFLOW_VAR_ETL_WAREHOUSE_URI", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["schedule"] == "@daily" and result["catchup"] is False
    assert result["tasks"] == ["load_new_reports"]
    assert result["pool"] == "etl_warehouse_writer"
    # The Assets name the tables where they are: the warehouse's own URI (tests/test_dags.py covers s3://).
    assert result["outlets"] == sorted(f"file://{tmp_path}/warehouse/{t}" for t in pipeline.TABLES)


def test_the_analysts_views_follow_every_publish(settings, landing, warehouse):
    """followup.duckdb is refreshed by each run that publishes, not only by the followup DAG (issue 14)."""
    import duckdb

    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    pipeline.run(settings)

    def count(sql: str) -> int:
        with duckdb.connect(str(warehouse / "followup.duckdb"), read_only=True) as con:
            row = con.execute(sql).fetchone()
            assert row is not None  # an aggregate has one row
            return row[0]

    assert count("select count(*) from county_initiative") == 3
    assert count("select count(*) from quarantine_county_initiative") == 0
    doc = builders.doc(region="04")
    doc["initiatives"][1]["status"] = "Kanske"  # quarantined row of a new region-year: nothing published shrinks
    builders.land(landing, "sormland.json", builders.json_bytes(doc), T0 + DAY)
    pipeline.run(settings)
    assert count("select count(*) from county_initiative") == 5
    assert count("select count(*) from quarantine_county_initiative") == 1  # once an empty view, now refreshed
