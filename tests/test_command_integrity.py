"""Issue 22 §5: a command either does all it says or nothing.

Each test is an example an adversary found, as the user meets it: the CLI's exit code and the line it
prints, the load-log rows (read with ``etl.publish.read_load_log``), the report's text.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from etl import approvals, cli, publish
from etl.errors import BadInput, ValidationFailed
from etl.pipelines import approved as approved_run
from etl.pipelines import county_reports

ROOT = Path(__file__).resolve().parent.parent
from tests.cli_support import SETTLED, run_etl  # noqa: E402
from tests.county_support import builders  # noqa: E402

T0 = dt.datetime(2018, 3, 1, 9, 0, tzinfo=dt.UTC).timestamp()
DAY = 86_400
REASON = "Uppsala confirmed they ran no initiatives in 2017"


def _log(warehouse) -> list[dict]:
    return publish.read_load_log(str(warehouse)).to_pylist()


def _decisions(warehouse) -> list[dict]:
    return [r for r in _log(warehouse) if r["outcome"] in approvals.DECISIONS]


def _etl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m etl …`` as a person runs it from ``cwd``, with no landing or warehouse in the environment."""
    return run_etl(*args, env={**SETTLED, "ETL_LANDING_URI": None, "ETL_WAREHOUSE_URI": None}, cwd=cwd)


def _main(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    """``etl.cli.main`` in this process: (exit code, stdout lines, stderr lines)."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


@pytest.fixture
def uppsala_blocked(settings, landing, warehouse):
    """Uppsala's 2017 report published, then a correction whose JSON leaves its initiatives out: blocked."""
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    county_reports.run(settings)
    doc = builders.doc()
    del doc["initiatives"]
    path = builders.land(landing, "uppsala_rättelse.json", builders.json_bytes(doc), T0 + DAY)
    with pytest.raises(ValidationFailed, match="a person may approve"):
        county_reports.run(settings)
    return path


# --------------------------------------------------------------------------- (a) check first, then record


def test_approve_without_landing_records_nothing(tmp_path, landing, warehouse, uppsala_blocked):
    """Found by an adversary: without --landing the approval was recorded, then the publish failed (exit 1)."""
    elsewhere = tmp_path / "elsewhere"  # the current folder has no ./landing
    elsewhere.mkdir()
    out = _etl(
        "approve",
        "uppsala_rättelse.json",
        "--reason",
        REASON,
        "--by",
        "ada",
        "--warehouse",
        str(warehouse),
        cwd=elsewhere,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: uppsala_rättelse.json: approval not recorded: publishing reads it from landing, and landing "
        f"storage: {elsewhere / 'landing'} does not exist (unmounted, or a wrong landing URI?)"
    )
    assert _decisions(warehouse) == []
    assert [b.name for b in approvals.blocked_now(str(warehouse))] == ["uppsala_rättelse.json"]
    assert publish.read_table(str(warehouse), "county_initiative").num_rows == 3
    # With the landing given, the same command does all it says: recorded once, published.
    out = _etl(
        "approve",
        "uppsala_rättelse.json",
        "--reason",
        REASON,
        "--by",
        "ada",
        "--warehouse",
        str(warehouse),
        "--landing",
        str(landing),
        cwd=elsewhere,
    )
    assert out.returncode == 0, out.stderr
    assert f"uppsala_rättelse.json: approved by ada on {dt.datetime.now(dt.UTC):%Y-%m-%d}: {REASON}" in out.stdout
    assert [(r["outcome"], r["message"]) for r in _decisions(warehouse)] == [("approved", f"approved by ada: {REASON}")]
    assert publish.read_table(str(warehouse), "county_initiative").num_rows == 0


def test_approving_a_file_gone_or_changed_in_landing_records_nothing(settings, warehouse, uppsala_blocked):
    blocked = approvals.find(str(warehouse), "uppsala_rättelse.json")
    data = uppsala_blocked.read_bytes()
    uppsala_blocked.unlink()
    with pytest.raises(
        BadInput,
        match=r"^uppsala_rättelse.json: approval not recorded: it is not in .*/landing/"
        r"county_reports \(removed since it was blocked, or a wrong landing URI\?\)$",
    ):
        approved_run.decide(settings, blocked, True, "ada", REASON)
    uppsala_blocked.write_bytes(data + b"\n")
    with pytest.raises(
        BadInput,
        match="approval not recorded: the file in .* changed since it was blocked; the next "
        "run judges the new content$",
    ):
        approved_run.decide(settings, blocked, True, "ada", REASON)
    with pytest.raises(BadInput, match="a reason of at least 10 characters"):
        approved_run.decide(settings, blocked, False, "ada", "no")
    assert _decisions(warehouse) == []
    # A rejection needs nothing from landing: recorded.
    decision, report = approved_run.decide(settings, blocked, False, "bo", "Uppsala must send its initiatives")
    assert report is None and [r["outcome"] for r in _decisions(warehouse)] == ["rejected"]


def test_approve_without_file_refuses_decision_flags(capsys, landing, warehouse, uppsala_blocked):
    """Listing what is blocked ignored --reject/--reason: the command said it rejected and did nothing."""
    code, out, err = _main(
        capsys, "approve", "--reject", "--reason", REASON, "--landing", str(landing), "--warehouse", str(warehouse)
    )
    assert code == 2 and out == []
    assert err[-1] == "error: approve: --reason, --reject need(s) FILE, the blocked file to decide on; nothing recorded"
    assert _decisions(warehouse) == []


# --------------------------------------------------------------------------- (b) a correction that removes rows says so


def test_a_county_correction_dropping_an_initiative_says_so(capsys, landing, warehouse):
    """Found by an adversary: a corrected report listing fewer initiatives published with no line saying so."""
    where = ("--landing", str(landing), "--warehouse", str(warehouse))
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    code, out, _ = _main(capsys, "run", "county-reports", *where)
    assert code == 0 and not [line for line in out if "removed" in line]
    doc = builders.doc(grant_sek="21 mnkr")
    doc["initiatives"] = [doc["initiatives"][0], doc["initiatives"][2]]  # 'Vårdnära service' left out
    builders.land(landing, "uppsala_rättelse.json", builders.json_bytes(doc), T0 + DAY)
    code, out, _ = _main(capsys, "run", "county-reports", *where)
    line = (
        "county_initiative: 1 published row removed by the correction of uppsala_rättelse.json "
        "(region 03 2017: initiative 'Vårdnära service' no longer in the report)"
    )
    assert code == 0 and line in out
    assert [x for x in out if "removed" in x] == [line]  # the services and the header lose nothing
    [row] = [
        r
        for r in _log(warehouse)
        if r["table_name"] == "county_initiative"
        and r["outcome"] == "published"
        and r["source_files"][0].endswith("uppsala_rättelse.json")
    ]
    assert line in row["warnings"]
    # A stated withdrawal ("initiatives": [] and one service fewer) names every table it empties.
    doc["initiatives"], doc["ehealth_services"] = [], doc["ehealth_services"][:3]
    builders.land(landing, "uppsala_v3.json", builders.json_bytes(doc), T0 + 2 * DAY)
    code, out, _ = _main(capsys, "run", "county-reports", *where)
    assert code == 0
    assert [x for x in out if "removed" in x] == [
        "county_initiative: 2 published rows removed by the correction of uppsala_v3.json (region 03 2017: "
        "initiatives 'Digitala vårdbesök', 'Kliniskt introduktionsår' no longer in the report)",
        "county_ehealth_service: 1 published row removed by the correction of uppsala_v3.json (region 03 2017: "
        "e-health service 'self_check_in' no longer in the report)",
    ]


def test_an_ehealth_unit_correction_dropping_a_unit_says_so(capsys, tmp_path):
    """The same kind in the e-health exports: a corrected unit-level file without one unit (its bookings moved to
    another unit of the region, so the month still adds up) removed 31 published rows without a word."""
    from etl.sample import ehealth as sample

    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    sample.write(landing, 2017, 2017, units=20, unit_months=1, seed=2016)
    where = ("--period", "2017-12", "--landing", str(landing), "--warehouse", str(warehouse))
    code, out, _ = _main(capsys, "run", "ehealth-adoption", *where)
    assert code == 0 and not [line for line in out if "removed" in line]
    path = landing / "ehealth" / "webbtidbok_enheter_2017-12.csv"
    text = path.read_bytes().decode("cp1252")
    header, *lines = text.splitlines()
    cells = [line.split(",") for line in lines]
    gone, into = cells[1][2], cells[0][2]  # two units of one region
    moved = {c[0]: c for c in cells if c[2] == gone}
    kept = []
    for c in cells:
        if c[2] == into:
            c = c[:4] + [str(int(a) + int(b)) for a, b in zip(c[4:], moved[c[0]][4:], strict=True)]
        if c[2] != gone:
            kept.append(",".join(c))
    path.write_bytes(("\n".join([header, *kept]) + "\n").encode("cp1252"))
    code, out, _ = _main(capsys, "run", "ehealth-adoption", *where)
    line = (
        f"ehealth_unit_daily: 31 published rows removed by the correction of webbtidbok_enheter_2017-12.csv "
        f"(unit {gone!r} no longer in the file)"
    )
    assert code == 0 and [x for x in out if "removed" in x] == [line]
    [row] = [
        r
        for r in _log(warehouse)
        if r["table_name"] == "ehealth_unit_daily"
        and r["outcome"] == "published"
        and len(r["warnings"] or [])
        and line in r["warnings"]
    ]
    assert row["rows_loaded"] == len(kept)


# --------------------------------------------------------------------------- (c) no date from the future


def _next_month(today: dt.date) -> str:
    return f"{today.year + today.month // 12:04d}-{today.month % 12 + 1:02d}"


def test_report_as_of_a_future_date_is_refused(capsys, tmp_path, warehouse):
    """Found by an adversary: `report --as-of` a date to come was built from today's tables, dated then."""
    today = dt.datetime.now(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    out_dir = tmp_path / "then"
    code, out, err = _main(
        capsys, "report", "--as-of", tomorrow.isoformat(), "--out", str(out_dir), "--warehouse", str(warehouse)
    )
    assert (code, out) == (2, [])
    assert err[-1] == (
        f"error: --as-of {tomorrow.isoformat()} is in the future (today is {today.isoformat()} UTC): "
        "give a date up to today"
    )
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    code, _, err = _main(
        capsys, "report", "--as-of", later.isoformat(), "--out", str(out_dir), "--warehouse", str(warehouse)
    )
    assert code == 2 and err[-1].startswith(f"error: --as-of {later.isoformat()} is in the future (now ")
    assert not out_dir.exists()
    # Today is no future: it passes the check (and fails here only because nothing was published there, which
    # the line says instead of blaming the date).
    code, _, err = _main(
        capsys, "report", "--as-of", today.isoformat(), "--out", str(out_dir), "--warehouse", str(warehouse)
    )
    assert code == 1 and err[-1] == (
        f"error: nothing is published in {warehouse}: it has no dim_region table "
        "(a wrong --warehouse or ETL_WAREHOUSE_URI?)"
    ), err


def test_run_for_a_month_or_year_to_come_is_refused(capsys, landing, warehouse):
    today = dt.datetime.now(dt.UTC).date()
    where = ("--landing", str(landing), "--warehouse", str(warehouse))
    month = _next_month(today)
    code, out, err = _main(capsys, "run", "ehealth-adoption", "--period", month, *where)
    assert (code, out) == (2, [])
    assert err[-1] == (
        f"error: --period {month} is a month that has not begun (this month is {today:%Y-%m}, UTC): "
        "give a month up to it"
    )
    code, out, err = _main(capsys, "run", "reference", "--offline-snapshot", "--year", str(today.year + 1), *where)
    assert (code, out) == (2, [])
    assert err[-1] == (
        f"error: --year {today.year + 1} is in the future (this year is {today.year}): give a year up to it"
    )
    assert list(warehouse.iterdir()) == []  # nothing recorded: not even a load log


# --------------------------------------------------------------------------- (d) no query string or fragment in a store


STORE_LINE = (
    "a store location is a folder or bucket prefix only; remove it (and rename a folder whose name holds '?' or '#')"
)


ESCAPE_LINE = (
    "the storage libraries disagree about decoding it (delta-rs does, s3fs and local paths do not), so the "
    "tables and the rest would land in two places; write the character itself, or rename the folder"
)


@pytest.mark.parametrize(
    "flag, value, holds, line, secret",
    [
        # Found by an adversary: `--warehouse s3://bucket/wh?x=1` wrote the load log into the bucket's root.
        ("--warehouse", "s3://bucket/wh?x=1", "a query string ('?')", STORE_LINE, None),
        ("--warehouse", "{tmp}/wh?x", "a query string ('?')", STORE_LINE, None),
        ("--warehouse", "{tmp}/wh#old", "a fragment ('#')", STORE_LINE, None),
        ("--landing", "s3://bucket/landing#x", "a fragment ('#')", STORE_LINE, None),
        ("--landing", "http://etl:s3cr3t@host/landing?token=s3cr3t&v=1", "a query string ('?')", STORE_LINE, "s3cr3t"),
        # Found by a reviewer: delta-rs decodes `s3://warehouse/wq%3Fz` (tables under `wq?z/`), s3fs does not
        # (state and data docs under `wq%3Fz/`); locally a Kernel error and a stray folder, or a folder `whf?x`.
        ("--warehouse", "s3://warehouse/wq%3Fz", "the percent-escape '%3F'", ESCAPE_LINE, None),
        ("--warehouse", "s3://warehouse/wh%23f", "the percent-escape '%23'", ESCAPE_LINE, None),
        ("--warehouse", "{tmp}/wh%3Fx=1", "the percent-escape '%3F'", ESCAPE_LINE, None),
        ("--warehouse", "file://{tmp}/whf%3Fx", "the percent-escape '%3F'", ESCAPE_LINE, None),
        ("--warehouse", "file://{tmp}/whf%20sp", "the percent-escape '%20'", ESCAPE_LINE, None),
        ("--warehouse", "{tmp}/w%c3%a5", "the percent-escapes '%c3', '%a5'", ESCAPE_LINE, None),
        ("--landing", "s3://landing/in%2Fbox", "the percent-escape '%2F'", ESCAPE_LINE, None),
        ("--landing", "http://etl:s3%23cr3t@host/land%20ing", "the percent-escape '%20'", ESCAPE_LINE, "s3%23cr3t"),
    ],
)
def test_a_store_uri_with_a_query_fragment_or_percent_escape_is_refused(
    capsys, tmp_path, flag, value, holds, line, secret
):
    value = value.format(tmp=tmp_path)
    other = "--landing" if flag == "--warehouse" else "--warehouse"
    code, out, err = _main(capsys, "run", "county-reports", flag, value, other, str(tmp_path / "other"))
    assert (code, out) == (2, [])
    name = "warehouse URI" if flag == "--warehouse" else "landing URI"
    shown = value.replace(f"etl:{secret}", "***").replace(f"token={secret}", "token=***") if secret else value
    assert err[-1] == f"error: {name} {shown!r} holds {holds}: {line}"
    assert "s3cr3t" not in "\n".join(err) and "s3%23cr3t" not in "\n".join(err)
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_percent_escapes_are_refused_from_the_environment_and_report_out_too(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ETL_WAREHOUSE_URI", f"{tmp_path}/w%20h")
    code, _, err = _main(capsys, "status")
    assert (code, err[-1]) == (
        2,
        f"error: warehouse URI '{tmp_path}/w%20h' holds the percent-escape '%20': {ESCAPE_LINE}",
    )
    monkeypatch.setenv("ETL_WAREHOUSE_URI", str(tmp_path / "wh"))
    monkeypatch.setenv("ETL_LANDING_URI", f"{tmp_path}/l%C3%A5")
    code, _, err = _main(capsys, "run", "county-reports")
    assert (code, err[-1]) == (
        2,
        f"error: landing URI '{tmp_path}/l%C3%A5' holds the percent-escapes '%C3', '%A5': {ESCAPE_LINE}",
    )
    code, _, err = _main(capsys, "report", "--as-of", "2020-01-01", "--out", f"{tmp_path}/then%3F")
    assert (code, err[-1]) == (2, f"error: --out '{tmp_path}/then%3F' holds the percent-escape '%3F': {ESCAPE_LINE}")
    assert list(tmp_path.iterdir()) == []


def test_a_literal_percent_and_an_encoded_password_are_no_escape(tmp_path):
    """A "%" not followed by two hex digits is no escape to any library: kept. A password is encoded on purpose."""
    from etl.config import Settings

    settings = Settings.resolve(landing=f"{tmp_path}/in_100%", warehouse=f"{tmp_path}/wh%zz", environ={})
    assert (settings.landing_uri, settings.warehouse_uri) == (f"{tmp_path}/in_100%", f"{tmp_path}/wh%zz")
    remote = Settings.resolve(landing="ftp://etl:s3%23cr3t@host/landing", warehouse=str(tmp_path), environ={})
    assert remote.landing_uri == "ftp://etl:s3%23cr3t@host/landing"


def test_env_vars_and_report_out_are_refused_the_same_way(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ETL_WAREHOUSE_URI", f"{tmp_path}/wh?versionId=3")
    code, _, err = _main(capsys, "status")
    assert (
        code == 2
        and err[-1] == f"error: warehouse URI '{tmp_path}/wh?versionId=3' holds a query string ('?'): {STORE_LINE}"
    )
    monkeypatch.setenv("ETL_WAREHOUSE_URI", str(tmp_path / "wh"))
    monkeypatch.setenv("ETL_LANDING_URI", f"{tmp_path}/landing#2")
    code, _, err = _main(capsys, "run", "county-reports")
    assert code == 2 and err[-1] == f"error: landing URI '{tmp_path}/landing#2' holds a fragment ('#'): {STORE_LINE}"
    code, _, err = _main(capsys, "report", "--as-of", "2020-01-01", "--out", f"{tmp_path}/then?x")
    assert code == 2 and err[-1] == f"error: --out '{tmp_path}/then?x' holds a query string ('?'): {STORE_LINE}"
    assert list(tmp_path.iterdir()) == []


def test_an_airflow_variable_with_a_query_fails_the_task_with_one_line(monkeypatch, tmp_path):
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException

    from etl import orchestration

    variables = {"etl_warehouse_uri": "s3://bucket/wh?x=1", "etl_landing_uri": str(tmp_path / "landing")}
    monkeypatch.setattr(Variable, "get", staticmethod(lambda name, default=None: variables.get(name, default)))
    with pytest.raises(AirflowFailException) as failed:
        orchestration.fail_fast(lambda: orchestration.settings_from_airflow({}))
    assert str(failed.value).startswith(f"warehouse URI 's3://bucket/wh?x=1' holds a query string ('?'): {STORE_LINE}")
    variables["etl_warehouse_uri"] = "s3://warehouse/wq%3Fz"
    with pytest.raises(AirflowFailException) as failed:
        orchestration.fail_fast(lambda: orchestration.settings_from_airflow({}))
    assert str(failed.value).startswith(
        f"warehouse URI 's3://warehouse/wq%3Fz' holds the percent-escape '%3F': {ESCAPE_LINE}"
    )


# --------------------------------------------------------------------------- (e) what a person types is masked


def test_a_phone_number_in_an_approval_reason_never_reaches_an_output(capsys, settings, landing, warehouse):
    """Found by an adversary: a phone number typed into an approval reason reached the report."""
    from etl.pipelines import followup, reference
    from etl.sample import reference as reference_sample

    reference_sample.write(landing, 2017, 2017, units=0, unit_months=0, seed=2016)
    reference.run(settings, offline_snapshot=True)
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    county_reports.run(settings)
    doc = builders.doc()
    del doc["initiatives"]  # left out: blocked, approvable
    builders.land(landing, "uppsala_rättelse.json", builders.json_bytes(doc), T0 + DAY)
    with pytest.raises(ValidationFailed, match="a person may approve"):
        county_reports.run(settings)
    phone, mobile = "018-611 00 00", "+46 70 123 45 67"
    reason = f"Uppsala confirmed by phone ({phone}, Anna on {mobile}): no initiatives in 2017"
    masked = "Uppsala confirmed by phone ([telefonnummer borttaget], Anna on [telefonnummer borttaget]): no initiatives in 2017"
    where = ("--landing", str(landing), "--warehouse", str(warehouse))
    # A rejection first: the block stays, and `etl status` shows the decision.
    code, _, err = _main(
        capsys,
        "approve",
        "uppsala_rättelse.json",
        "--reject",
        "--reason",
        f"Call Anna on {mobile}",
        "--by",
        "bo",
        *where,
    )
    assert code == 0, err
    code, status, _ = _main(capsys, "status", "--warehouse", str(warehouse))
    assert code == 0 and any(
        "rejected by bo on " in line and ": Call Anna on [telefonnummer borttaget]" in line for line in status
    )
    code, out, err = _main(capsys, "approve", "uppsala_rättelse.json", "--reason", reason, "--by", "ada", *where)
    assert code == 0, err
    assert out[0] == f"uppsala_rättelse.json: approved by ada on {dt.datetime.now(dt.UTC):%Y-%m-%d}: {masked}"
    assert [r["message"] for r in _decisions(warehouse)] == [
        "rejected by bo: Call Anna on [telefonnummer borttaget]",
        f"approved by ada: {masked}",
    ]
    out += status
    followup.run(settings)
    page = (warehouse / "exports" / "followup_report.html").read_text(encoding="utf-8")
    assert "av ada: Uppsala confirmed by phone ([telefonnummer borttaget], Anna on [telefonnummer borttaget])" in page
    everything = "\n".join([page, str(_log(warehouse)), *out])
    assert phone not in everything and mobile not in everything and "70 123 45 67" not in everything
