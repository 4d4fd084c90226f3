"""Issue 23 §5: one validation per table per run, with per-file results kept.

A run validates every month's small monthly exports in one GX validation per
table (:func:`etl.validation.validate_many`), and the skeleton judges the files
of the months it holds with one validation of the delivery suite
(:func:`etl.verdict.judge_steps`); each result is split back per file and month.
These tests hold the split to what validating each file alone gives, count GX
validations in a run, and check that each month's stored result is its own.
"""

from __future__ import annotations

import datetime as dt
import json

from etl import cli, expectation_suites, storage, validation
from etl.pipelines import ehealth_adoption
from tests.export_support import export_lines, land, set_cell

MONTHS = [dt.date(2017, m, 1) for m in (1, 2, 3, 4)]


def _land_months(landing, broken: bool = True) -> None:
    """Four months; with ``broken``: Feb quarantines a line, Mar lacks a region, Apr's national row does not add up."""
    for step, month in enumerate(MONTHS):
        journal = export_lines("journalen", month)
        if broken and month.month == 2:
            journal = set_cell(journal, "03", 3, 99_999_999)  # unique users above logins: the line is quarantined
        if broken and month.month == 3:
            journal = [x for x in journal if ";09;" not in x]
        if broken and month.month == 4:
            journal = set_cell(journal, "Riket", 2, 999)  # the regions no longer sum to the national total
        land(landing, f"journalen_{month:%Y-%m}.csv", journal, step)
        land(landing, f"webbtidbok_{month:%Y-%m}.csv", export_lines("webbtidbok", month), step)


def _months(settings) -> dict[str, dict[str, list]]:
    landed = storage.list_landed(settings.landing_uri, "ehealth", (".csv",))
    by_month, _ = ehealth_adoption._group_by_month(landed)
    return by_month


def _essentials(data: dict) -> list[tuple]:
    out = []
    for item in data["results"]:
        res = item["result"]
        rows = sorted(e[expectation_suites.ROW_ID] for e in res.get("unexpected_index_list") or [])
        out.append(
            (
                item["expectation_config"]["type"],
                item["success"],
                res.get("element_count"),
                res.get("unexpected_count", 0),
                rows,
            )
        )
    return out


def test_each_files_part_of_the_run_result_is_what_validating_it_alone_gives(settings, landing):
    _land_months(landing)
    prepared = ehealth_adoption.prepare_exports(settings, _months(settings))
    compared = 0
    for part in prepared.values():
        for together in part.results:
            alone = validation.validate(together.table, together.frame, keep_result=True)
            assert together.failed_rows == alone.failed_rows
            assert together.warnings == alone.warnings and together.critical == alone.critical
            assert together.data is not None and alone.data is not None  # the run keeps its results
            assert together.data["success"] == alone.data["success"]
            assert together.data["statistics"] == alone.data["statistics"]
            assert _essentials(together.data) == _essentials(alone.data)
            compared += 1
    assert compared == 2 * 4 * 2  # each file: its regional rows, then (as they pass) its national rows
    failed = {p.export.source_file.rsplit("/", 1)[-1]: p.failed for p in prepared.values() if p.failed}
    assert (
        list(failed) == ["journalen_2017-04.csv"]
        and "do not sum to the national total" in failed["journalen_2017-04.csv"]
    )


def test_a_run_validates_each_monthly_table_once_and_stores_each_months_own_result(
    capsys, settings, landing, warehouse, monkeypatch
):
    _land_months(landing)
    runs: list[tuple[str, int]] = []
    real = validation._run_suite

    def counted(table, frame):  # a spy: GX still validates
        runs.append((table, len(frame)))
        return real(table, frame)

    monkeypatch.setattr(validation, "_run_suite", counted)
    code = cli.main(
        ["run", "ehealth-adoption", "--landing", settings.landing_uri, "--warehouse", settings.warehouse_uri]
    )
    out = capsys.readouterr()
    assert code != 0 and "journalen_2017-04.csv" in out.out + out.err  # April is blocked, the others published
    tables = [t for t, _ in runs]
    assert tables.count("ehealth_adoption") == 1 and tables.count("ehealth_adoption_national") == 1, runs
    assert tables.count(expectation_suites.DELIVERY_SUITE) == 1, runs  # the four months' files judged together
    assert next(n for t, n in runs if t == expectation_suites.DELIVERY_SUITE) == 2 * len(MONTHS)  # every file
    regional_rows = next(n for t, n in runs if t == "ehealth_adoption")
    assert regional_rows == 20 * 3 + 21 * 3 * 3 + 21 * 5 * 4  # every month's regional long rows in one batch

    stored = {}
    for path in (warehouse / "_validation" / "ehealth_adoption").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        stored[path.stem[-7:]] = data
    assert sorted(stored) == [f"{m:%Y-%m}" for m in MONTHS]
    counts = {
        m: sorted(
            {
                r["result"].get("element_count")
                for r in d["results"]
                if "rule" not in (r["expectation_config"].get("meta") or {})
            }
        )
        for m, d in stored.items()
    }
    # A month's result holds each of its two files' rows (journal 3 metrics, web booking 5, per region), not the run's.
    assert counts == {"2017-01": [63, 105], "2017-02": [63, 105], "2017-03": [60, 105], "2017-04": [63, 105]}, counts
    assert stored["2017-01"]["success"] is True
    feb = stored["2017-02"]
    failing = [r for r in feb["results"] if not r["success"]]
    quarantined = [r for r in failing if "rule" not in (r["expectation_config"].get("meta") or {})]
    assert [r["expectation_config"]["kwargs"]["column"] for r in quarantined] == ["_check_unique_users_le_logins"]
    assert [r["expectation_config"]["meta"]["rule"] for r in failing if r not in quarantined] == [
        "21 regions readable"
    ]  # the delivery suite: the quarantined line leaves a region out, the file is blocked
    assert {e[expectation_suites.ROW_ID] for e in quarantined[0]["result"]["unexpected_index_list"]} <= set(
        range(21 * 8)
    )
    national = {
        p.stem[-7:]: json.loads(p.read_text(encoding="utf-8"))
        for p in (warehouse / "_validation" / "ehealth_adoption_national").glob("*.json")
    }
    april = national["2017-04"]
    assert april["success"] is False
    page = next((warehouse / "_data_docs" / "ehealth_adoption_national").glob("*2017-04.html")).read_text("utf-8")
    assert "Failed: batch blocked" in page and "Failed: rows quarantined" not in page
    failing = [r for r in april["results"] if not r["success"]]
    assert any(r["expectation_config"]["kwargs"].get("column") == "_check_reconciliation_deviation" for r in failing)
    # The delivery suite names the rule and the file in both tables' results: the journal file is blocked whole.
    for data in (april, stored["2017-04"]):
        rule = [
            r
            for r in data["results"]
            if not r["success"]
            and (r["expectation_config"].get("meta") or {}).get("rule") == "table rules on the whole file"
        ]
        assert rule and "journalen_2017-04.csv" in str(rule[0]["result"]["partial_unexpected_list"]), data["results"]
        assert data["success"] is False and data["meta"]["etl_verdict"]["blocked"] == ["journalen_2017-04.csv"]
    assert national["2017-01"]["success"] is True
    for month in ("2017-02", "2017-03"):  # their own rows reconcile; the result fails on the journal file's block
        own = [r for r in national[month]["results"] if "rule" not in (r["expectation_config"].get("meta") or {})]
        assert own and all(r["success"] for r in own) and national[month]["success"] is False


def test_a_suite_with_a_batch_level_expectation_is_not_split(settings):
    import pandas as pd
    import pytest

    from etl.errors import EtlError

    frame = pd.DataFrame({"region_code": ["01"], "year": [2020], "population": [1], expectation_suites.ROW_ID: [0]})
    with pytest.raises(EtlError, match="batch-level"):
        validation.validate_many("population", [frame])


def _findings_cases():
    from etl.verdict import Findings

    tables = ("ehealth_adoption",)
    return [
        Findings("a.csv", tables),
        Findings("b.csv", tables, refused_whole="b.csv: not a CSV"),
        Findings("c.csv", tables, national_row="the national row (Riket) is missing"),
        Findings("d.csv", tables, regions_lacking=["09 Region Gotland"]),
        Findings(
            "e.csv",
            tables,
            regions_lacking=["03 Region Uppsala"],
            quarantined_lines=1,
            rejected=[{"row_number": 3, "reason": "not a number"}],
        ),
        Findings("f.csv", tables, values_lost=2, rows_removed=1),
        Findings("g.csv", ("ehealth_unit_daily",), rows_loadable=0),
        Findings("h.csv", ("ehealth_unit_daily",), rows_loadable=5, rejected=[{"row_number": 9, "reason": "bad"}]),
        Findings("i.csv", tables, regions_lacking=[]),
    ]


def test_check_decides_with_the_same_suite_without_gx_as_gx_does():
    """``etl check`` (nothing stored) reads the delivery suite without GX; its decisions equal GX's on each rule."""
    from etl import verdict

    cases = _findings_cases()
    frames = [verdict._delivery_frame(cases[:4]), verdict._delivery_frame(cases[4:])]
    plain = validation.outcomes_without_gx(expectation_suites.DELIVERY_SUITE, frames)
    gx = validation.validate_many(expectation_suites.DELIVERY_SUITE, frames)
    assert plain is not None
    for mine, theirs in zip(plain, gx, strict=True):
        assert {r: sorted(c["meta"]["rule"] for c in cs) for r, cs in mine.failed_expectations.items()} == {
            r: sorted(c["meta"]["rule"] for c in cs) for r, cs in theirs.failed_expectations.items()
        }
        assert mine.critical == theirs.critical == [] and mine.warnings == theirs.warnings == []
    failed = {
        **{i: r for i, r in plain[0].failed_expectations.items()},
        **{i + 4: r for i, r in plain[1].failed_expectations.items()},
    }
    assert sorted(failed) == [1, 2, 3, 4, 5, 6, 7]  # every case but the clean ones (a.csv, i.csv) fails a rule


def _cli_in_a_fresh_process(*args: str) -> tuple[int, bool]:
    """``python -m etl <args>`` in a new interpreter: its exit code and whether it imported GX."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from etl import cli\n"
        f"rc = cli.main({list(args)!r})\n"
        "print(rc, 'great_expectations' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ETL_LANDING_SETTLE_SECONDS": "0"},
    )
    rc, imported = out.stdout.split()[-2:]
    return int(rc), imported == "True"


def test_gx_is_not_imported_by_a_check_that_does_not_parse_a_no_op_run_or_status(settings, landing, warehouse, capsys):
    bad = landing.parent / "journalen_2017-03.csv"
    bad.write_bytes(b"\xff\xfe\x00 not an export\n")
    assert _cli_in_a_fresh_process("check", str(bad), "--warehouse", str(warehouse)) == (1, False)
    _land_months(landing, broken=False)
    where = ["--landing", str(landing), "--warehouse", str(warehouse)]
    assert cli.main(["run", "ehealth-adoption", *where]) == 0
    assert _cli_in_a_fresh_process("run", "ehealth-adoption", *where) == (0, False)  # nothing new
    assert _cli_in_a_fresh_process("status", "--warehouse", str(warehouse)) == (0, False)
    # A file that parses is validated: then GX is paid, as it must be.
    good = landing / "ehealth" / "journalen_2017-01.csv"
    assert _cli_in_a_fresh_process("check", str(good), "--warehouse", str(warehouse)) == (0, True)


def test_when_the_run_wide_validation_cannot_run_each_month_is_validated_on_its_own(
    capsys, settings, landing, warehouse, monkeypatch, caplog
):
    """A suite that cannot run over the run's files together (an EtlError) costs the batching, not the run:
    each month then prepares its own files, and one that still cannot be validated fails alone."""
    from etl.errors import EtlError

    _land_months(landing, broken=False)
    real = validation.validate_many

    def fails_together(table, frames):
        if table != expectation_suites.DELIVERY_SUITE and len(frames) > 2:  # the run-wide call, not a month's own
            raise EtlError(f"{table}: expectation could not run")
        return real(table, frames)

    monkeypatch.setattr(validation, "validate_many", fails_together)
    code = cli.main(
        ["run", "ehealth-adoption", "--landing", settings.landing_uri, "--warehouse", settings.warehouse_uri]
    )
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "each month on its own" in caplog.text
    from etl import publish

    months = {r["month"].strftime("%Y-%m") for r in publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()}
    assert months == {f"{m:%Y-%m}" for m in MONTHS}
