"""Input at the edge of the contract: numbers a column cannot hold, JSON keys twice, keys the web form never writes.

Each case builds the file as a sender would (the county builders, the
monthly export lines), runs the real pipeline and ``etl check``, and asserts
the outcome the contract gives (docs/input-formats.md): the file refused
whole and named in a failed run, or the one line / row quarantined with its
reason — the other files still published, never an OverflowError or
TypeError.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from etl import check, publish, swedish
from etl.errors import BadInput, ValidationFailed
from etl.pipelines import county_reports as county
from etl.pipelines import ehealth_adoption as ehealth
from etl.sample import county_reports as sample
from etl.sample import ehealth as ehealth_sample
from etl.sources import county_reports as county_source
from etl.sources import county_template as tpl
from etl.sources import ehealth_exports
from tests.county_support import DAY, T0, builders
from tests.export_support import MARCH
from tests.export_support import PIPELINE_SEED as SEED
from tests.export_support import pipeline_lines as _lines
from tests.export_support import set_cell as _set
from tests.export_support import write_export as _write

APRIL = dt.date(2017, 4, 1)
INT64_MAX = 2**63 - 1
TOO_LARGE = "number too large"


def _id(value) -> str:
    """A short test id (an int of 5000 digits has no str())."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"int_{value.bit_length()}_bits"
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}…{len(text)}_chars"


def _names(warehouse, table: str, column: str = "source_file") -> set[str]:
    return {Path(v).name for v in publish.read_table(str(warehouse), table).column(column).to_pylist()}


def _quarantined(warehouse, table: str) -> dict[tuple[str, int], str]:
    return {
        (Path(r["source_file"]).name, r["row_number"]): r["reason"]
        for r in publish.read_quarantine(str(warehouse), table).to_pylist()
    }


def _accounting_holds(warehouse) -> None:
    log = publish.read_load_log(str(warehouse)).to_pandas()
    done = log[log.outcome.isin(["published", "unchanged"])]
    assert len(done)
    assert (done.rows_in == done.rows_loaded + done.rows_quarantined).all()


def _one_verdict(path: Path, settings) -> check.Verdict:
    [verdict] = check.check([str(path)], settings)
    assert not verdict.ok, verdict
    return verdict


def _county_refused(settings, landing, warehouse, name: str, data: bytes, *expected: str) -> str:
    """``name`` is refused whole: named with ``expected`` in the failed run and by ``etl check``; Halland loads."""
    bad = builders.land(landing, name, data, T0)
    builders.land(landing, "halland_2017.xlsx", builders.xlsx_bytes(builders.doc(region="13")), T0)
    verdict = _one_verdict(bad, settings)
    assert verdict.verdict == check.REFUSED, verdict
    assert all(text in verdict.lines[0] for text in expected), verdict
    with pytest.raises(ValidationFailed) as error:
        county.run(settings)
    message = str(error.value)
    assert f"{name}: blocked, refused whole: " in message, message
    assert all(text in message for text in expected), message
    line = message.split(f"{name}: blocked, refused whole: ", 1)[1]
    assert "\n" not in line
    assert _names(warehouse, "county_report") == {"halland_2017.xlsx"}  # the other region is published
    assert {r["region_code"] for r in publish.read_table(str(warehouse), "county_initiative").to_pylist()} == {"13"}
    _accounting_holds(warehouse)
    with pytest.raises(ValidationFailed, match=name):  # and every run says so until the file is replaced
        county.run(settings)
    return message


def _with(document: dict, key: str, value) -> dict:
    """``document`` with a header field (``spend_sek.it_support`` reaches into the group) set to ``value``."""
    if "." in key:
        parent, child = key.split(".", 1)
        document[parent] = {**(document.get(parent) or {}), child: value}
    else:
        document[key] = value
    return document


# --------------------------------------------------------------------------- 1. numbers too large: swedish.py


@pytest.mark.parametrize(
    "value,expected",
    [
        (INT64_MAX, INT64_MAX),
        ("9 223 372 036 854 775 807", INT64_MAX),
        ("9 223 372 036 854 tkr", 9_223_372_036_854_000),
        (1e18, 10**18),
        (12.0, 12),
        ("159 mnkr", 159_000_000),
    ],
    ids=_id,
)
def test_amounts_up_to_the_int64_column_are_read(value, expected):
    assert swedish.parse_amount(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        10**30,
        2**63,
        1e30,
        "99999999999999999999 mnkr",
        "9 223 372 036 854 775 808",
        "9223372036854776 tkr",
        "10 000 000 000 mdkr",
        "9" * 100_000,
        "9" * 1_000_001 + " mnkr",
        10**5000,
    ],
    ids=_id,
)
def test_amounts_beyond_the_int64_column_are_bad_input(value):
    with pytest.raises(BadInput, match=TOO_LARGE):
        swedish.parse_amount(value)


def test_negative_amounts_are_bounded_too_where_allowed():
    assert swedish.parse_amount(-(2**63), allow_negative=True) == -(2**63)
    with pytest.raises(BadInput, match=TOO_LARGE):
        swedish.parse_amount(-(2**63) - 1, allow_negative=True)
    with pytest.raises(BadInput, match=TOO_LARGE):
        swedish.parse_amount("-" + "9" * 1_000_001 + " kr", allow_negative=True)


@pytest.mark.parametrize(
    "value",
    [
        "9223372036854775808",
        "99999999999999999999",
        "99 999 999 999 999 999 999",
        2**63,
        1e19,
        "9" * 1_000_001,
        10**5000,
    ],
    ids=_id,
)
def test_counts_beyond_the_int64_column_are_bad_input(value):
    with pytest.raises(BadInput, match=TOO_LARGE):
        swedish.parse_count(value)


def test_narrower_columns_are_bounded_by_their_width():
    assert swedish.parse_count("32 767", bits=16) == 32767 and swedish.parse_count(INT64_MAX) == INT64_MAX
    with pytest.raises(BadInput, match=TOO_LARGE):
        swedish.parse_count("32 768", bits=16)
    with pytest.raises(BadInput, match=TOO_LARGE):
        swedish.parse_amount(2**31, bits=32)
    assert swedish.int_range(16) == (-32768, 32767) and swedish.int_range() == (-(2**63), INT64_MAX)


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_infinity_is_not_a_number(value):
    for parse in (swedish.parse_amount, swedish.parse_count):
        with pytest.raises(BadInput, match="not a number"):
            parse(value)
    assert swedish.excel_serial_date(value) is None


# --------------------------------------------------------------------------- 1. county reports


HEADER_AMOUNTS = [
    ("grant_sek", 10**30, "Erhållna medel (kr): number too large: '1"),
    ("grant_sek", "99999999999999999999 mnkr", "Erhållna medel (kr): number too large: '99999999999999999999 mnkr'"),
    # One past the largest int64 (a spreadsheet holds it as the float 9.223372036854776e+18).
    ("grant_sek", 2**63, "Erhållna medel (kr): number too large: '9"),
    ("spend_sek.it_support", 10**30, "Använt IT-stöd och processer (kr): number too large: '1"),
    (
        "spend_sek.competence_supply",
        "99999999999999999999 mnkr",
        "Använt kompetensförsörjning (kr): number too large: '99999999999999999999 mnkr'",
    ),
]


@pytest.mark.parametrize("shape", ["json", "xlsx"])
@pytest.mark.parametrize("key,value,reason", HEADER_AMOUNTS, ids=[f"{k}={_id(v)}" for k, v, _ in HEADER_AMOUNTS])
def test_county_header_amount_too_large_refuses_the_report_naming_the_field(
    settings, landing, warehouse, shape, key, value, reason
):
    document = _with(builders.doc(), key, value)
    data = builders.json_bytes(document) if shape == "json" else builders.xlsx_bytes(document)
    message = _county_refused(settings, landing, warehouse, f"uppsala_2017.{shape}", data, reason)
    assert "OverflowError" not in message and "Python int too large" not in message


def test_county_json_number_beyond_float_range_is_too_large_not_infinity(settings, landing, warehouse):
    data = builders.json_bytes(builders.doc()).replace(b'"grant_sek": "20 mnkr"', b'"grant_sek": 1e400')
    assert b"1e400" in data
    _county_refused(
        settings, landing, warehouse, "uppsala_2017.json", data, "Erhållna medel (kr): number too large: '1E+400'"
    )


@pytest.mark.parametrize(
    "literal,reason",
    [
        (b"NaN", "not valid JSON (NaN is not a JSON value)"),
        (b"Infinity", "not valid JSON (Infinity is not a JSON value)"),
        (b"1" + b"0" * 5000, "not valid JSON (a number of more than 4300 digits)"),
    ],
    ids=["NaN", "Infinity", "5001-digits"],
)
def test_county_json_number_python_reads_but_json_has_not_is_refused(settings, landing, warehouse, literal, reason):
    data = builders.json_bytes(builders.doc()).replace(b'"grant_sek": "20 mnkr"', b'"grant_sek": ' + literal)
    _county_refused(settings, landing, warehouse, "uppsala_2017.json", data, reason)


@pytest.mark.parametrize("shape", ["json", "xlsx"])
@pytest.mark.parametrize("cost", [10**30, "99999999999999999999 mnkr", 1e30], ids=_id)
def test_county_initiative_cost_too_large_quarantines_that_row(settings, landing, warehouse, shape, cost):
    document = builders.doc()
    document["initiatives"][1]["cost_sek"] = cost
    data = builders.json_bytes(document) if shape == "json" else builders.xlsx_bytes(document)
    path = builders.land(landing, f"uppsala_2017.{shape}", data, T0)
    builders.land(landing, "halland_2017.json", builders.json_bytes(builders.doc(region="13")), T0)

    verdict = _one_verdict(path, settings)
    assert verdict.verdict == check.QUARANTINE and TOO_LARGE in " ".join(verdict.lines), verdict
    county.run(settings)  # a first delivery: the row is quarantined, the rest of the report loads
    row_number = 2 if shape == "json" else 3  # JSON item 2; sheet row 3 (under the header)
    reason = _quarantined(warehouse, "county_initiative")[(path.name, row_number)]
    assert reason.startswith("Kostnad (kr): number too large: "), reason
    initiatives = publish.read_table(str(warehouse), "county_initiative").to_pylist()
    assert sorted((r["region_code"], r["initiative_no"]) for r in initiatives) == [
        ("03", 1),
        ("03", 3),
        ("13", 1),
        ("13", 2),
        ("13", 3),
    ]
    assert _names(warehouse, "county_report") == {path.name, "halland_2017.json"}
    _accounting_holds(warehouse)


# --------------------------------------------------------------------------- 1. monthly e-health exports


@pytest.mark.parametrize("cell", ["99999999999999999999", "9223372036854775808", "9 223 372 036 854 775 808"])
def test_ehealth_cell_too_large_quarantines_the_line_and_other_months_publish(settings, landing, warehouse, cell):
    bad = _write(landing, "webbtidbok", lines=_set(_lines("webbtidbok"), "14", 2, cell))  # Bokningar, VGR
    _write(landing, "journalen")
    _write(landing, "journalen", APRIL)
    _write(landing, "webbtidbok", APRIL)
    reason = f"Bokningar: number too large: '{cell}'"

    verdict = _one_verdict(bad, settings)
    assert verdict.verdict == check.BLOCKED and reason in " ".join(verdict.lines), verdict
    with pytest.raises(ValidationFailed) as error:
        ehealth.run(settings)
    message = str(error.value)
    # The line is quarantined with its reason; without it the file lacks a region, so it is held back (no shrink).
    assert f"{bad.name}: blocked, 1 of 21 regions missing (14 " in message, message
    assert reason in message and "OverflowError" not in message and "TypeError" not in message
    adoption = publish.read_table(str(warehouse), "ehealth_adoption").to_pandas()
    assert set(zip(adoption.month, adoption.service, strict=False)) == {
        (MARCH, "patient_journal_online"),
        (APRIL, "patient_journal_online"),
        (APRIL, "web_booking"),
    }
    _accounting_holds(warehouse)


def test_ehealth_national_cell_too_large_blocks_the_file_naming_the_line(settings, landing, warehouse):
    """Without a readable national row the month cannot be reconciled: the file is blocked (issue 23 §3)."""
    path = _write(landing, "journalen", lines=_set(_lines("journalen"), "Riket", 2, "9223372036854775808"))
    _write(landing, "webbtidbok")
    verdict = _one_verdict(path, settings)
    assert verdict.verdict == check.BLOCKED, verdict
    reason = "line 23: Inloggningar: number too large: '9223372036854775808'"
    assert reason in verdict.lines[0], verdict
    with pytest.raises(ValidationFailed, match=re.escape(reason)):
        ehealth.run(settings)
    regional = publish.read_table(str(warehouse), "ehealth_adoption").to_pandas()
    assert set(regional.service) == {"web_booking"}  # nothing of the journal file is published
    _accounting_holds(warehouse)


def test_ehealth_spreadsheet_number_cell_too_large_is_bad_input_for_its_line(settings, landing, warehouse):
    journal, _, _ = ehealth_sample.month_values(MARCH, SEED)
    # render_xlsx writes any cell value, and a float is what this test puts in.
    rows: list[list] = ehealth_sample.export_rows("journalen", MARCH, journal, ehealth_sample.PLAIN)
    rows[3][3] = 1e30  # Unika användare of the third region, a number cell
    data = ehealth_sample.render_xlsx(rows)
    read = ehealth_exports.read_export("/l/ehealth/journalen_2017-03.xlsx", data)
    assert [(r["row_number"], r["reason"]) for r in read.rejected_regional] == [
        (4, "Unika användare: number too large: '1e+30'")
    ]
    path = _write(landing, "journalen", data=data, ext="xlsx")
    assert _one_verdict(path, settings).verdict == check.BLOCKED
    with pytest.raises(ValidationFailed, match="Unika användare: number too large"):
        ehealth.run(settings)


# --------------------------------------------------------------------------- 2. a JSON key twice


def _twice(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


DUPLICATES = {
    # what the sender's JSON does → the key named
    "top-level list": (lambda d: _twice(d, b'\n "region":', b'\n "initiatives": [],\n "region":'), "'initiatives'"),
    "top-level value": (
        lambda d: _twice(d, b'"grant_sek": "20 mnkr"', b'"grant_sek": "20 mnkr", "grant_sek": "2 mnkr"'),
        "'grant_sek'",
    ),
    "in an object": (
        lambda d: _twice(d, b'"task_shifting": ""', b'"task_shifting": "", "task_shifting": "Ja"'),
        "'offers.task_shifting'",
    ),
    "in a list item": (
        lambda d: _twice(d, b'"cost_sek": "850 tkr"', b'"cost_sek": "850 tkr", "cost_sek": null'),
        "'initiatives[3].cost_sek'",
    ),
    "in a service": (
        lambda d: _twice(
            d, b'"implemented_on": "2016-03-01"', b'"implemented_on": "2016-03-01", "implemented_on": "2017-01-01"'
        ),
        "'ehealth_services[1].implemented_on'",
    ),
}


@pytest.mark.parametrize("case", DUPLICATES)
def test_county_json_key_twice_refuses_the_report_naming_the_key(settings, landing, warehouse, case):
    change, key = DUPLICATES[case]
    data = change(builders.json_bytes(builders.doc()))
    message = _county_refused(settings, landing, warehouse, "uppsala_2017.json", data, f"key(s) appearing twice: {key}")
    assert message.count("appearing twice") == 1


def test_county_json_key_twice_in_a_correction_keeps_the_published_version(settings, landing, warehouse):
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), T0)
    county.run(settings)
    before = publish.read_table(str(warehouse), "county_initiative").num_rows
    # The list, then an empty one after it: json alone keeps the last and would silently withdraw every initiative.
    data = builders.json_bytes(builders.doc()).rstrip().removesuffix(b"}") + b', "initiatives": []}'
    builders.land(landing, "uppsala_rattelse.json", data, T0 + DAY)
    with pytest.raises(
        ValidationFailed,
        match=r"uppsala_rattelse.json: blocked, refused whole: "
        r"key\(s\) appearing twice: 'initiatives'",
    ):
        county.run(settings)
    assert publish.read_table(str(warehouse), "county_initiative").num_rows == before == 3


# --------------------------------------------------------------------------- 3. keys the web form does not write


def _rename(document: dict, path: str, new: str) -> dict:
    """Rename the key at ``path`` (``offers``, ``spend_sek.it_support``, ``initiatives[].cost_sek``: every item)."""
    if path.endswith("]") or "[]." in path:
        parent, key = path.split("[].", 1)
        for item in document[parent]:
            item[new] = item.pop(key)
    elif "." in path:
        parent, key = path.split(".", 1)
        document[parent][new] = document[parent].pop(key)
    else:
        document[new] = document.pop(path)
    return document


MISSPELT = [
    ("offers", "Offers", "'Offers' (did you mean 'offers'?)"),
    ("earmarked", "Earmarked", "'Earmarked' (did you mean 'earmarked'?)"),
    ("spend_sek", "Spend_sek", "'Spend_sek' (did you mean 'spend_sek'?)"),
    ("grant_sek", "grantSek", "'grantSek' (did you mean 'grant_sek'?)"),
    ("spend_sek.it_support", "IT_support", "'spend_sek.IT_support' (did you mean 'it_support'?)"),
    ("offers.task_shifting", "task-shifting", "'offers.task-shifting' (did you mean 'task_shifting'?)"),
    ("initiatives[].cost_sek", "Cost_sek", "'initiatives[].Cost_sek' in items 1, 2, 3 (did you mean 'cost_sek'?)"),
    (
        "ehealth_services[].implemented_on",
        "Implemented_on",
        "'ehealth_services[].Implemented_on' in items 1, 2, 3, 4 (did you mean 'implemented_on'?)",
    ),
]


@pytest.mark.parametrize("path,new,named", MISSPELT)
def test_county_json_unknown_key_refuses_the_report_naming_it_and_the_key_it_resembles(
    settings, landing, warehouse, path, new, named
):
    document = _rename(builders.doc(), path, new)
    message = _county_refused(
        settings,
        landing,
        warehouse,
        "uppsala_2017.json",
        builders.json_bytes(document),
        f"unknown key(s), not produced by the web form: {named}",
    )
    assert "ignored" not in message


def test_county_json_unknown_key_without_a_likeness_and_one_a_level_too_high(settings, landing, warehouse):
    document = builders.doc(comment="hej", it_support="8 mnkr")
    document["initiatives"][2]["ansvarig"] = "Enheten"
    _county_refused(
        settings,
        landing,
        warehouse,
        "uppsala_2017.json",
        builders.json_bytes(document),
        "unknown key(s), not produced by the web form: 'comment', "
        "'it_support' (did you mean 'spend_sek.it_support'?), 'initiatives[].ansvarig' in item 3",
    )


def test_county_json_unknown_keys_are_named_a_few_then_counted(settings, landing, warehouse):
    document = builders.doc(**{f"extra_{i}": i for i in range(100_000)})
    message = _county_refused(
        settings,
        landing,
        warehouse,
        "uppsala_2017.json",
        builders.json_bytes(document),
        "'extra_0', ",
        "'extra_9' and 99990 more",
    )
    assert len(message) < 2000


def test_county_json_misspelt_correction_does_not_null_the_published_values(settings, landing, warehouse):
    builders.land(landing, "uppsala_2017.json", builders.json_bytes(builders.doc()), T0)
    county.run(settings)
    before = publish.read_table(str(warehouse), "county_report").to_pylist()
    assert before[0]["offers_clinical_intro_year"] is True and before[0]["earmarked"] is True
    correction = _rename(_rename(builders.doc(grant_sek="21 mnkr"), "offers", "Offers"), "earmarked", "Earmarked")
    builders.land(landing, "uppsala_rattelse.json", builders.json_bytes(correction), T0 + DAY)
    with pytest.raises(ValidationFailed, match=r"uppsala_rattelse.json: blocked, refused whole: unknown key\(s\)"):
        county.run(settings)
    assert publish.read_table(str(warehouse), "county_report").to_pylist() == before


def test_everything_the_web_form_writes_is_accepted(tmp_path):
    # The full document of the guide and the builders, every key present (nulls and empties included)…
    full = builders.doc()
    report = county_source.parse_report(builders.json_bytes(full), "r.json")
    assert report.error is None and report.warnings == [] and len(report.initiatives) == 3
    for where, keys in tpl.JSON_KEYS.items():
        container = full if not where else full[where.removesuffix("[]")]
        present = set(container[0] if where.endswith("[]") else container)
        assert present == set(keys), where
    # …and every JSON report the sample generator writes (both languages, every spelling it uses).
    sample.write(tmp_path, 2016, 2019, seed=11)
    reports = sorted((tmp_path / "county_reports").glob("*.json"))
    assert len(reports) > 20
    for path in reports:
        report = county_source.parse_report(path.read_bytes(), path.name)
        assert report.error is None and report.warnings == [], (path.name, report.error)
