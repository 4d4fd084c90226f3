"""Issue 23 §3 and §2 (no silent value loss): a month never publishes without its reconciliation, a unit-level
file with no loadable row is blocked, and a delivery never turns a published value into null unless it says so.

Each case as the user meets it — as a first delivery and as a correction over published data: the run's exit
code and its line, ``python -m etl check FILE`` with the same verdict, the load-log row ``blocked``, and nothing
published changed (the tables read before and after).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest

from etl import approvals, cli, publish
from etl.sample import ehealth as sample
from tests.county_support import builders  # noqa: E402
from tests.export_support import export_lines, land, set_cell

SEED = 7
MARCH = dt.date(2017, 3, 1)
T0 = dt.datetime(2018, 3, 1, 9, 0, tzinfo=dt.UTC).timestamp()
DAY = 86_400
EHEALTH_TABLES = ("ehealth_adoption", "ehealth_adoption_national", "ehealth_unit_daily")
COUNTY_TABLES = ("county_report", "county_initiative", "county_ehealth_service")


# --------------------------------------------------------------------------- helpers (this file's own)


def _rows(kind: str, suppressed=frozenset()) -> list[list]:
    journal, web, _ = sample.month_values(MARCH, SEED)
    return sample.export_rows(kind, MARCH, journal if kind == "journalen" else web, sample.PLAIN, suppressed)


def _lines(kind: str) -> list[str]:
    return export_lines(kind, MARCH, SEED)


def _csv(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _xlsx(rows: list[list], national_formulas: bool = False, total_row: bool = False) -> bytes:
    """A monthly export as openpyxl writes it: numbers as numbers, formulas without a saved result."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has its one sheet active
    sheet.title = "Export"
    for i, row in enumerate(rows):
        out = []
        for j, cell in enumerate(row):
            digits = str(cell).replace(" ", "")
            out.append(int(digits) if i and j >= 2 and digits.isdigit() else cell)
        if national_formulas and i == len(rows) - 1:
            out = out[:2] + [f"=SUM({chr(ord('C') + j)}2:{chr(ord('C') + j)}22)" for j in range(len(out) - 2)]
        sheet.append(out)
    if total_row:  # a spreadsheet table's total row: a label, no region, SUBTOTAL formulas
        width = len(rows[0])
        sheet.append(
            ["Summa", None, *(f"=SUBTOTAL(109,{chr(ord('C') + j)}2:{chr(ord('C') + j)}23)" for j in range(width - 2))]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _tables(warehouse, names) -> dict[str, list[dict]]:
    out = {}
    for name in names:
        rows = publish.read_table(str(warehouse), name).to_pylist()
        for row in rows:
            row.pop("batch_id"), row.pop("loaded_at")
        out[name] = sorted(rows, key=repr)
    return out


def _run(capsys, pipeline: str, settings, *extra: str) -> tuple[int, str]:
    code = cli.main(["run", pipeline, "--landing", settings.landing_uri, "--warehouse", settings.warehouse_uri, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _check(capsys, settings, path: Path) -> tuple[int, str]:
    code = cli.main(["check", str(path), "--warehouse", settings.warehouse_uri])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _last_outcome(warehouse, name: str) -> tuple[str, str]:
    """The outcome of the last load naming the file (``published`` when any of its tables changed)."""
    rows = [
        r
        for r in publish.read_load_log(str(warehouse)).to_pylist()
        if any(Path(s).name == name for s in r["source_files"] or ())
    ]
    last = [r for r in rows if r["batch_id"] == rows[-1]["batch_id"]]
    outcomes = {r["outcome"] for r in last}
    outcome = "published" if "published" in outcomes else rows[-1]["outcome"]
    return outcome, rows[-1]["message"] or ""


def _blocked_as_the_user_meets_it(
    capsys, settings, warehouse, path: Path, pipeline: str, tables, said: str, approvable: bool, rule: str | None = None
) -> str:
    """Run, check and load log agree the file is blocked with ``said`` in its line; nothing published changes."""
    before = _tables(warehouse, tables)
    code, out = _run(capsys, pipeline, settings)
    assert code != 0, out
    line = next((x for x in out.splitlines() if path.name in x and "blocked" in x), "")
    assert said in line, out
    assert (approvals.HINT in line) == approvable, line
    assert _tables(warehouse, tables) == before
    outcome, message = _last_outcome(warehouse, path.name)
    assert outcome == "blocked" and said in message, message
    code, out = _check(capsys, settings, path)
    assert code == 1 and f"{path.name}: blocked" in out and said in out, out
    rule = rule or (
        "national total"
        if "national row" in said
        else "a loadable row"
        if "no row could be loaded" in said
        else "no silent value loss"
        if "null" in said
        else None
    )
    if rule is not None and not out.count("refused whole"):
        _stored_result_fails(warehouse, path.name, rule)
    return line


def _stored_result_fails(warehouse: Path, name: str, rule: str) -> dict:
    """Issue 23 §1: the stored validation result of the file's tables is Failed and names ``rule`` and the file,
    and its Data Docs page and the index say so too (the verdict is read off that result)."""
    found = []
    for path in sorted((warehouse / "_validation").glob("*/*.json"), key=lambda p: p.stat().st_mtime_ns):
        data = json.loads(path.read_text(encoding="utf-8"))
        for item in data["results"]:
            meta = item["expectation_config"].get("meta") or {}
            examples = (item.get("result") or {}).get("partial_unexpected_list") or []
            if not item["success"] and meta.get("rule") == rule and any(name in str(e) for e in examples):
                found.append((path, data, item))
    assert found, f"no stored result names {rule!r} for {name}"
    path, data, item = found[-1]
    assert data["success"] is False and name in data["meta"]["etl_verdict"]["blocked"], data["meta"]
    assert item["expectation_config"]["severity"] == "critical"
    page = warehouse / "_data_docs" / path.parent.name / f"{path.stem}.html"
    text = page.read_text(encoding="utf-8")
    assert "Failed: batch blocked" in text and name in text and "Passed" not in text.split("<h2>")[0], page
    index = (warehouse / "_data_docs" / path.parent.name / "index.html").read_text(encoding="utf-8")
    assert f"{path.stem}.html" in index
    return data


def _publish_good_month(capsys, settings, landing) -> None:
    land(landing, "journalen_2017-03.csv", _csv(_lines("journalen")))
    land(landing, "webbtidbok_2017-03.csv", _csv(_lines("webbtidbok")))
    code, out = _run(capsys, "ehealth-adoption", settings)
    assert code == 0, out


# --------------------------------------------------------------------------- §3 the national row


def _national_cases() -> dict[str, tuple[str, bytes, str]]:
    lines = _lines("journalen")
    riket = lines[-1].split(";")
    return {
        "truncated": ("csv", _csv([*lines[:-1], ";".join(riket[:3])]), "line 23: 3 fields, expected 5"),
        "empty_month": ("csv", _csv([*lines[:-1], ";".join(["", *riket[1:]])]), "line 23: Månad: not a month"),
        "empty_values": (
            "csv",
            _csv([*lines[:-1], ";".join([*riket[:2], "", "", ""])]),
            "line 23: no value for Inloggningar, Unika användare, Förstagångsinloggningar",
        ),
        "missing": ("csv", _csv(lines[:-1]), "no line for it"),
        "twice": ("csv", _csv([*lines, lines[-1]]), "2 national lines: 23, 24"),
    }


@pytest.mark.parametrize("case", sorted(_national_cases()))
@pytest.mark.parametrize("correction", [False, True], ids=["first", "correction"])
def test_an_unreadable_national_row_blocks_the_file_unapprovably(
    capsys, settings, landing, warehouse, case, correction
):
    if correction:
        _publish_good_month(capsys, settings, landing)
    else:  # the month's other export is published; the journal comes first now
        land(landing, "webbtidbok_2017-03.csv", _csv(_lines("webbtidbok")))
        assert _run(capsys, "ehealth-adoption", settings)[0] == 0
    ext, data, detail = _national_cases()[case]
    path = land(landing, f"journalen_2017-03.{ext}", data, step=1)
    line = _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "ehealth-adoption",
        EHEALTH_TABLES,
        "the national row (Riket) is missing or unreadable",
        approvable=False,
    )
    assert detail in line and "the month cannot be reconciled; nothing of it is published" in line, line
    with pytest.raises(Exception, match="not a blocked delivery|replace|not approvable|cannot be approved"):
        approvals.find(str(warehouse), path.name)


@pytest.mark.parametrize("shape", ["national_formulas", "total_row"])
@pytest.mark.parametrize("correction", [False, True], ids=["first", "correction"])
def test_a_workbook_whose_total_is_a_formula_without_a_saved_result_never_publishes(
    capsys, settings, landing, warehouse, shape, correction
):
    """openpyxl writes formulas without a cached value: an unsaved =SUM() national row, or a table's total row."""
    if correction:
        _publish_good_month(capsys, settings, landing)
    rows = _rows("journalen")
    if shape == "total_row":
        rows = rows[:-1]  # the table's total row stands where the national row would
    data = _xlsx(rows, national_formulas=shape == "national_formulas", total_row=shape == "total_row")
    (landing / "ehealth" / "journalen_2017-03.csv").unlink(missing_ok=True)
    path = land(landing, "journalen_2017-03.xlsx", data, step=1)
    before = _tables(warehouse, EHEALTH_TABLES)
    code, out = _run(capsys, "ehealth-adoption", settings)
    assert code != 0, out
    line = next(x for x in out.splitlines() if path.name in x and "blocked" in x)
    # Refused as a formula without a saved result (issue 23 §2), or blocked for its national row (§3).
    assert "national row (Riket)" in line or "formula" in line, line
    assert approvals.HINT not in line, line
    assert _tables(warehouse, EHEALTH_TABLES) == before
    assert _last_outcome(warehouse, path.name)[0] == "blocked"
    code, out = _check(capsys, settings, path)
    assert code == 1 and ("blocked" in out or "refused" in out), out


# --------------------------------------------------------------------------- §3 a unit-level file without a row


def _unit_file(month_units, dates_as_sql_server: bool) -> bytes:
    _, _, daily = sample.month_values(MARCH, SEED, month_units)
    data = sample.render_unit_csv(MARCH, month_units, daily, sample.PLAIN, SEED)
    if not dates_as_sql_server:
        return data
    # SQL Server's (and many a database tool's) datetime text: "2017-03-01 00:00:00.000".
    head, _, body = data.decode().partition("\n")
    fixed = [line.replace(";", " 00:00:00.000;", 1) for line in body.splitlines()]
    return ("\n".join([head, *fixed]) + "\n").encode()


@pytest.mark.parametrize("correction", [False, True], ids=["first", "correction"])
def test_a_unit_file_whose_every_row_is_quarantined_is_blocked_never_published(
    capsys, settings, landing, warehouse, correction
):
    month_units = sample.make_units(40, SEED)
    folder = landing / "ehealth"
    folder.mkdir(parents=True, exist_ok=True)
    sample.write_month(folder, MARCH, seed=SEED, units=month_units, style=sample.PLAIN)
    unit = folder / "webbtidbok_enheter_2017-03.csv"
    if correction:
        code, out = _run(capsys, "ehealth-adoption", settings)
        assert code == 0, out
        assert publish.read_table(str(warehouse), "ehealth_unit_daily").num_rows
    else:
        unit.unlink()
        code, out = _run(capsys, "ehealth-adoption", settings)
        assert code == 0, out
    path = land(landing, unit.name, _unit_file(month_units, dates_as_sql_server=True), step=1)
    line = _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "ehealth-adoption",
        EHEALTH_TABLES,
        "no row could be loaded",
        approvable=False,
    )
    assert "(first: line 2: Datum: not a date (YYYY-MM-DD): '2017-03-01 00:00:00.000')" in line, line
    assert len(line) < 300, line


def test_a_unit_correction_removing_published_rows_through_an_unreadable_line_is_not_approvable(
    capsys, settings, landing, warehouse
):
    """Issue 23 §4: published rows a correction would remove because its lines for them were quarantined is a
    sender's format error ("no shrink from unreadable lines"): blocked, and approval is not offered."""
    month_units = sample.make_units(40, SEED)
    folder = landing / "ehealth"
    folder.mkdir(parents=True, exist_ok=True)
    sample.write_month(folder, MARCH, seed=SEED, units=month_units, style=sample.PLAIN)
    code, out = _run(capsys, "ehealth-adoption", settings)
    assert code == 0, out
    head, _, body = _unit_file(month_units, dates_as_sql_server=False).decode().partition("\n")
    lines = body.splitlines()
    lines[4] = lines[4].replace("2017-03-", "2017-3x-", 1)  # one line's date no longer parses
    path = land(landing, "webbtidbok_enheter_2017-03.csv", ("\n".join([head, *lines]) + "\n").encode(), step=1)
    line = _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "ehealth-adoption",
        EHEALTH_TABLES,
        "1 row(s) quarantined, first line 6: Datum: not a date (YYYY-MM-DD): '2017-3x-01'",
        approvable=False,
        rule="no shrink from unreadable lines",
    )
    # The cause first, then what it would remove and the first row it would remove.
    assert "'2017-3x-01'; would remove 1 published ehealth_unit_daily row(s) (e.g. 2017-03-01 SE" in line, line
    assert len(line) < 300, line


# --------------------------------------------------------------------------- §2 no silent value loss: monthly


def test_a_count_emptied_by_a_correction_is_blocked_naming_the_cell_and_approval_lets_it_through(
    capsys, settings, landing, warehouse
):
    _publish_good_month(capsys, settings, landing)
    published = {
        (r["region_code"], r["metric"]): r["value"]
        for r in publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()
    }
    old = published[("03", "logins")]
    path = land(landing, "journalen_2017-03.csv", _csv(set_cell(_lines("journalen"), "03", 2, "")), step=1)
    line = _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "ehealth-adoption",
        EHEALTH_TABLES,
        f"ehealth_adoption 03 2017-03 patient_journal_online logins value {old} → null",
        approvable=True,
    )
    assert "blocked, 1 published value into null: ehealth_adoption 03 2017-03" in line, line  # the cell first
    code = cli.main(
        [
            "approve",
            path.name,
            "--reason",
            "Uppsala withdrew the figure, confirmed by phone",
            "--by",
            "steward",
            "--landing",
            settings.landing_uri,
            "--warehouse",
            settings.warehouse_uri,
        ]
    )
    capsys.readouterr()
    assert code == 0
    now = {
        (r["region_code"], r["metric"]): r["value"]
        for r in publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()
    }
    assert now[("03", "logins")] is None
    assert _last_outcome(warehouse, path.name)[0] == "published"


def test_a_cell_the_sender_marks_suppressed_is_honoured(capsys, settings, landing, warehouse):
    _publish_good_month(capsys, settings, landing)
    path = land(landing, "journalen_2017-03.csv", _csv(set_cell(_lines("journalen"), "09", 4, "..")), step=1)
    code, out = _run(capsys, "ehealth-adoption", settings)
    assert code == 0, out
    rows = publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()
    cell = next(r for r in rows if r["region_code"] == "09" and r["metric"] == "first_time_users")
    assert cell["value"] is None and cell["suppressed"] is True
    assert _last_outcome(warehouse, path.name)[0] == "published"


def test_an_empty_workbook_cell_over_a_published_count_is_blocked(capsys, settings, landing, warehouse):
    _publish_good_month(capsys, settings, landing)
    rows = _rows("journalen")
    rows[3][2] = None  # the second region's logins: an empty cell
    (landing / "ehealth" / "journalen_2017-03.csv").unlink()
    path = land(landing, "journalen_2017-03.xlsx", _xlsx(rows), step=1)
    _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "ehealth-adoption",
        EHEALTH_TABLES,
        "ehealth_adoption 04 2017-03 patient_journal_online logins value",
        approvable=True,
        rule="no silent value loss",
    )


def test_an_empty_cell_in_a_first_delivery_publishes_as_suppressed(capsys, settings, landing, warehouse):
    land(landing, "journalen_2017-03.csv", _csv(set_cell(_lines("journalen"), "09", 4, "")))
    code, out = _run(capsys, "ehealth-adoption", settings)
    assert code == 0, out


# --------------------------------------------------------------------------- §2 no silent value loss: county


GRANT = "128 944 953 kr"


@pytest.mark.parametrize("shape", ["json", "xlsx"])
def test_a_county_correction_whose_grant_became_null_is_blocked_and_a_steward_may_approve(
    capsys, settings, landing, warehouse, shape
):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek=GRANT)), T0)
    code, out = _run(capsys, "county-reports", settings)
    assert code == 0, out
    corrected = builders.doc(grant_sek=None)
    data = builders.json_bytes(corrected) if shape == "json" else builders.xlsx_bytes(corrected)
    path = builders.land(landing, f"uppsala_v2.{shape}", data, T0 + DAY)
    line = _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "county-reports",
        COUNTY_TABLES,
        "county_report 03 2017 grant_sek 128944953 → null",
        approvable=True,
    )
    assert "blocked, 1 published value into null: county_report 03 2017 grant_sek" in line, line  # the cell first
    code = cli.main(
        [
            "approve",
            path.name,
            "--reason",
            "Uppsala's grant is under review, per the steward",
            "--by",
            "steward",
            "--landing",
            settings.landing_uri,
            "--warehouse",
            settings.warehouse_uri,
        ]
    )
    capsys.readouterr()
    assert code == 0
    assert publish.read_table(str(warehouse), "county_report").column("grant_sek").to_pylist() == [None]


def test_a_county_first_delivery_without_a_grant_loads(capsys, settings, landing, warehouse):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek=None)), T0)
    code, out = _run(capsys, "county-reports", settings)
    assert code == 0, out
    assert publish.read_table(str(warehouse), "county_report").column("grant_sek").to_pylist() == [None]


def test_a_county_correction_emptying_an_initiatives_cost_is_blocked_naming_it(capsys, settings, landing, warehouse):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    assert _run(capsys, "county-reports", settings)[0] == 0
    corrected = builders.doc()
    corrected["initiatives"][0]["cost_sek"] = None  # the same initiative, its cost left blank
    path = builders.land(landing, "uppsala_v2.xlsx", builders.xlsx_bytes(corrected), T0 + DAY)
    _blocked_as_the_user_meets_it(
        capsys,
        settings,
        warehouse,
        path,
        "county-reports",
        COUNTY_TABLES,
        "county_initiative 03 2017 1 cost_sek 3000000 → null",
        approvable=True,
    )
