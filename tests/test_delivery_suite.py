"""Issue 23 §1: the suite is the contract — every rule that blocks or quarantines a file is an expectation, the
run's verdict is read off the validation result, and the stored result and Data Docs say what the run did.

Each case lands a month's exports made the way the sample generator writes them, edits one thing, runs the
pipeline through the CLI and then reads the stored result JSON under ``_validation/`` and its Data Docs page.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from etl import approvals, cli, expectation_suites, validation
from tests.export_support import export_lines, land, set_cell

SEED = 11
MARCH = dt.date(2017, 3, 1)


def _run(capsys, settings) -> tuple[int, str]:
    code = cli.main(
        ["run", "ehealth-adoption", "--landing", settings.landing_uri, "--warehouse", settings.warehouse_uri]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _results(warehouse: Path, table: str) -> list[tuple[Path, dict]]:
    paths = sorted((warehouse / "_validation" / table).glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in paths]


def _failing(data: dict, rule: str) -> dict | None:
    for item in data["results"]:
        if not item["success"] and (item["expectation_config"].get("meta") or {}).get("rule") == rule:
            return item
    return None


def _suite_rules() -> dict[str, dict]:
    return {
        e["meta"]["rule"]: e
        for e in expectation_suites.load_suite_json(expectation_suites.DELIVERY_SUITE)["expectations"]
    }


def _good_month(landing: Path) -> None:
    land(landing, "journalen_2017-03.csv", export_lines("journalen", MARCH, SEED))
    land(landing, "webbtidbok_2017-03.csv", export_lines("webbtidbok", MARCH, SEED))


CASES: dict[str, tuple[Callable[[], list[str] | bytes], bool, bool, str]] = {
    # rule → (the journal file's lines, whether published data exists first, approvable, a text of the line)
    "21 regions": (
        lambda: [x for x in export_lines("journalen", MARCH, SEED) if ";09;" not in x],
        False,
        True,
        "1 of 21 regions missing",
    ),
    "21 regions readable": (
        lambda: set_cell(export_lines("journalen", MARCH, SEED), "03", 2, "13x 594"),
        False,
        False,
        "first line 3: Inloggningar: not a number",
    ),
    "national total": (
        lambda: export_lines("journalen", MARCH, SEED)[:-1],
        False,
        False,
        "the national row (Riket) is missing",
    ),
    "readable file": (lambda: b"\xff\xfe\x00garbage that is no export\n", False, False, "refused whole"),
    "table rules on the whole file": (
        lambda: set_cell(export_lines("journalen", MARCH, SEED), "Riket", 2, 999),
        False,
        False,
        "regions do not sum to the national total within 0.5%: journalen_2017-03 logins",
    ),
    "no silent value loss": (
        lambda: set_cell(export_lines("journalen", MARCH, SEED), "03", 2, ""),
        True,
        True,
        "into null",
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_blocking_rule_is_a_failed_expectation_in_the_stored_result(rule, capsys, settings, landing, warehouse):
    make, published_first, approvable, said = CASES[rule]
    assert rule in _suite_rules() and _suite_rules()[rule]["meta"].get("approvable", False) == approvable
    if published_first:
        _good_month(landing)
        assert _run(capsys, settings)[0] == 0
    else:
        land(landing, "webbtidbok_2017-03.csv", export_lines("webbtidbok", MARCH, SEED))
    path = land(landing, "journalen_2017-03.csv", make(), step=1)
    code, out = _run(capsys, settings)
    line = next(x for x in out.splitlines() if path.name in x and "blocked" in x)
    assert code != 0 and said in line, out
    assert (approvals.HINT in line) == approvable, line
    assert len(line) < 300, line  # the CLI's one line: the run's summary, then the file's short line

    # The stored result of the journal's table is Failed and names the rule, the file and why.
    stored, data = _results(warehouse, "ehealth_adoption")[-1]
    item = _failing(data, rule)
    assert item is not None, [r["expectation_config"]["meta"] for r in data["results"] if not r["success"]]
    assert data["success"] is False and data["meta"]["etl_verdict"]["blocked"] == [path.name]
    assert any(path.name in str(e) for e in item["result"]["partial_unexpected_list"])
    page = (warehouse / "_data_docs" / "ehealth_adoption" / f"{stored.stem}.html").read_text(encoding="utf-8")
    assert "Failed: batch blocked" in page and path.name in page
    top = (warehouse / "_data_docs" / "index.html").read_text(encoding="utf-8")
    assert f"ehealth_adoption/{stored.stem}.html" in top


def test_an_unparsable_count_is_quarantined_by_a_named_expectation_with_its_line(capsys, settings, landing, warehouse):
    """``13x 594``: the line is quarantined by "every line parses"; the file is blocked by "21 regions readable"."""
    land(landing, "webbtidbok_2017-03.csv", export_lines("webbtidbok", MARCH, SEED))
    land(landing, "journalen_2017-03.csv", set_cell(export_lines("journalen", MARCH, SEED), "03", 2, "13x 594"), step=1)
    assert _run(capsys, settings)[0] != 0
    _, data = _results(warehouse, "ehealth_adoption")[-1]
    parses = next(
        r for r in data["results"] if (r["expectation_config"].get("meta") or {}).get("rule") == "every line parses"
    )
    assert parses["success"] is False
    rows = parses["result"]["unexpected_index_list"]
    assert [(Path(r["source_file"]).name, r["row_number"]) for r in rows] == [("journalen_2017-03.csv", 3)]
    assert "13x 594" in rows[0]["unreadable"]
    assert _failing(data, "21 regions readable") is not None


def test_an_approved_block_is_stored_as_a_warning_and_the_page_passes_with_warnings(
    capsys, settings, landing, warehouse
):
    land(landing, "webbtidbok_2017-03.csv", export_lines("webbtidbok", MARCH, SEED))
    path = land(
        landing, "journalen_2017-03.csv", [x for x in export_lines("journalen", MARCH, SEED) if ";09;" not in x], step=1
    )
    assert _run(capsys, settings)[0] != 0
    blocked = approvals.find(settings.warehouse_uri, path.name)
    approvals.record(settings.warehouse_uri, blocked, True, "steward", "Gotland did not report in March")
    code, out = _run(capsys, settings)
    assert code == 0, out
    stored, data = _results(warehouse, "ehealth_adoption")[-1]
    item = next(r for r in data["results"] if (r["expectation_config"].get("meta") or {}).get("rule") == "21 regions")
    assert item["success"] is False and item["expectation_config"]["severity"] == "warning"
    assert data["meta"]["etl_verdict"] == {"blocked": [], "approved": [path.name]}
    page = (warehouse / "_data_docs" / "ehealth_adoption" / f"{stored.stem}.html").read_text(encoding="utf-8")
    assert "Passed with warnings" in page and "approved" in page


def test_the_verdict_follows_the_suite(capsys, settings, landing, warehouse, monkeypatch):
    """The bound lives in expectations/delivery.json: loosened there, a month lacking a region publishes."""
    suite = json.loads(json.dumps(expectation_suites.load_suite_json(expectation_suites.DELIVERY_SUITE)))
    for expectation in suite["expectations"]:
        if expectation["meta"]["rule"] == "21 regions":
            expectation["kwargs"]["max_value"] = 1
    monkeypatch.setattr(
        validation,
        "load_suite_json",
        lambda table, _real=expectation_suites.load_suite_json: (
            suite if table == expectation_suites.DELIVERY_SUITE else _real(table)
        ),
    )
    validation._suite.cache_clear()
    try:
        land(landing, "webbtidbok_2017-03.csv", export_lines("webbtidbok", MARCH, SEED))
        land(landing, "journalen_2017-03.csv", [x for x in export_lines("journalen", MARCH, SEED) if ";09;" not in x])
        code, out = _run(capsys, settings)
        assert code == 0, out
    finally:
        validation._suite.cache_clear()
