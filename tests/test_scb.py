"""SCB PxWeb v2 (TAB638): json-stat2 decoding, query building and splitting, through real HTTP."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from werkzeug import Response

from etl import regions
from etl.errors import BadInput, ConfigError, SourceUnavailable
from etl.sample.reference import jsonstat2, population_figures
from etl.sources import scb
from etl.sources.http import RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures" / "api"
FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, jitter=0.001, read_timeout=5)


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def triples(api_rows) -> list[tuple]:
    return sorted((r["region_code"], r["year"], r["population"]) for r in api_rows.rows)


def small_doc(region_codes, years, values, status=None, extra=None):
    dims = [
        ("Region", "region", {c: c for c in region_codes}),
        ("ContentsCode", "tabellinnehåll", {"BE0101N1": "Folkmängd"}),
        ("Tid", "år", {str(y): str(y) for y in years}),
    ]
    return jsonstat2(dims + (extra or []), values, label="test", status=status)


def scb_server(httpserver, figures, received, metadata=None):
    """A local PxWeb v2 that answers TAB638 data queries from their POST body."""

    def data(request):
        body = json.loads(request.data)
        received.append({"body": body, "args": dict(request.args)})
        sel = {s["variableCode"]: s for s in body["selection"]}
        codes, years = sel["Region"]["valueCodes"], sel["Tid"]["valueCodes"]
        doc = small_doc(codes, years, [figures[(c, int(y))] for c in codes for y in years])
        return Response(json.dumps(doc), content_type="application/json")

    httpserver.expect_request("/scb/tables/TAB638/metadata", method="GET").respond_with_json(
        metadata or fixture("scb_tab638_metadata.json")
    )
    httpserver.expect_request("/scb/tables/TAB638/data", method="POST").respond_with_handler(data)
    return httpserver.url_for("/scb")


# --------------------------------------------------------------------------- decoding


def test_dimension_order_does_not_change_the_rows():
    plain = scb.population_rows(fixture("scb_tab638_data.json"), "plain")
    reordered = scb.population_rows(fixture("scb_tab638_data_reordered.json"), "reordered")
    assert len(plain.rows) == 42 and not plain.rejected
    assert triples(plain) == triples(reordered)
    figures = population_figures(2016, 2017, seed=7)
    by_key = {(r, y): p for r, y, p in triples(reordered)}
    assert by_key[("01", 2016)] == figures[("01", 2016)]
    assert by_key[("25", 2017)] == figures[("25", 2017)]
    assert by_key[("23", 2016)] == 129_512  # status 'p' (preliminary) keeps its value


def test_suppressed_cells_are_null_never_zero():
    rows = triples(scb.population_rows(fixture("scb_tab638_data_reordered.json"), "x"))
    assert ("09", 2017, None) in rows
    doc = small_doc(["01", "03", "04", "05"], [2020], [None, "..", 361_000, 290_000], status={"2": "..", "3": "."})
    assert [p for _, _, p in triples(scb.population_rows(doc, "x"))] == [None, None, None, None]


def test_values_as_text_or_sparse_object_are_read():
    doc = small_doc(["01", "03"], [2020, 2021], ["2 377 081", 1, 2, 3])
    assert triples(scb.population_rows(doc, "x"))[0] == ("01", 2020, 2_377_081)
    sparse = small_doc(["01", "03"], [2020, 2021], [0, 0, 0, 0])
    sparse["value"] = {"0": 2_377_081, "3": 395_026}  # json-stat's sparse form: absent = missing
    assert triples(scb.population_rows(sparse, "x")) == [
        ("01", 2020, 2_377_081),
        ("01", 2021, None),
        ("03", 2020, None),
        ("03", 2021, 395_026),
    ]


def test_cells_that_are_not_counties_or_counts_are_rejected_with_a_reason():
    doc = small_doc(["00", "01", "0180", "03"], [2020], [10_379_295, 2_377_081, 984_748, -5])
    result = scb.population_rows(doc, "req")
    assert triples(result) == [("01", 2020, 2_377_081)]
    reasons = {json.loads(r["raw"])["Region"]: r["reason"] for r in result.rejected}
    assert "national total" in reasons["00"]
    assert "not a county code" in reasons["0180"]
    assert "negative" in reasons["03"]
    assert {r["row_number"] for r in result.rejected} == {1, 3, 4}
    assert result.rows_in == 4


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: d.update(value=d["value"][:-1]), "values for"),
        (lambda d: d["dimension"].pop("Tid"), "not described"),
        (lambda d: d["dimension"]["Region"]["category"].update(index={"01": 0, "03": 5}), "not 0..n-1"),
        (lambda d: d.update(size=[2, 1, 3]), "size"),
        (lambda d: d.update({"class": "collection"}), "class"),
    ],
)
def test_malformed_json_stat_is_bad_input(breakage, message):
    doc = small_doc(["01", "03"], [2020, 2021], [1, 2, 3, 4])
    breakage(doc)
    with pytest.raises(BadInput, match=message):
        scb.population_rows(doc, "x")


def test_an_answer_split_by_another_variable_is_refused_not_summed():
    doc = small_doc(["01"], [2020], [1_000_000, 1_100_000], extra=[("Kon", "kön", {"1": "män", "2": "kvinnor"})])
    with pytest.raises(BadInput, match="splits 'Kon'"):
        scb.population_rows(doc, "x")


# --------------------------------------------------------------------------- queries


def test_query_body_is_the_contracts_shape():
    body = scb.build_query(["01", "03"], [2016, 2017])
    assert body == {
        "selection": [
            {"variableCode": "Region", "codelist": "vs_RegionLän07", "valueCodes": ["01", "03"]},
            {"variableCode": "ContentsCode", "valueCodes": ["BE0101N1"]},
            {"variableCode": "Tid", "valueCodes": ["2016", "2017"]},
        ]
    }


def test_split_selection_keeps_every_call_under_the_cell_limit():
    codes, years = list(regions.REGION_CODES), list(range(2016, 2026))
    assert scb.split_selection(codes, years) == [(codes, years)]
    pieces = scb.split_selection(codes, years, cell_limit=50)
    assert [len(y) for _, y in pieces] == [2, 2, 2, 2, 2]
    tiny = scb.split_selection(codes, [2020, 2021], cell_limit=10)
    assert [len(r) for r, _ in tiny] == [10, 10, 1, 10, 10, 1]
    for limit in (50, 10, 21, 7):
        pieces = scb.split_selection(codes, years, cell_limit=limit)
        assert all(len(r) * len(y) <= limit for r, y in pieces)
        assert sorted((c, y) for r, ys in pieces for c in r for y in ys) == sorted((c, y) for c in codes for y in years)
    with pytest.raises(ConfigError):
        scb.split_selection(codes, years, cell_limit=0)


# --------------------------------------------------------------------------- over HTTP


def test_fetch_splits_queries_and_skips_unpublished_years(httpserver):
    figures = population_figures(2016, 2026, seed=3)
    received: list[dict[str, Any]] = []  # the JSON body and the query arguments of each data request
    base = scb_server(httpserver, figures, received)
    result = scb.fetch_population(base, range(2016, 2027), policy=FAST, cell_limit=63)

    assert any("2026" in w and "latest published: 2025" in w for w in result.warnings)
    assert len(received) == 4  # 10 published years, 3 per call (21 regions x 3 = 63 cells)
    seen_years = []
    for call in received:
        assert call["args"] == {"lang": "sv", "outputFormat": "json-stat2"}
        sel = {s["variableCode"]: s for s in call["body"]["selection"]}
        assert sel["Region"]["codelist"] == "vs_RegionLän07"
        assert sel["Region"]["valueCodes"] == list(regions.REGION_CODES)
        assert sel["ContentsCode"]["valueCodes"] == ["BE0101N1"]
        assert len(sel["Tid"]["valueCodes"]) <= 3
        seen_years += sel["Tid"]["valueCodes"]
    assert sorted(seen_years) == [str(y) for y in range(2016, 2026)]
    assert len(result.rows) == 210 and not result.rejected
    got = {(r, y): p for r, y, p in triples(result)}
    assert got[("14", 2025)] == figures[("14", 2025)]
    assert all(src.startswith("http://") and "#Region=01-25&Tid=" in src for src, _ in result.sources)
    assert all(len(sha) == 64 for _, sha in result.sources)


def test_rate_limit_403_from_scb_is_retried(httpserver):
    figures = population_figures(2016, 2017, seed=3)
    httpserver.expect_oneshot_request("/scb/tables/TAB638/data").respond_with_data(
        "Too many requests", status=403, headers={"Retry-After": "0"}
    )
    base = scb_server(httpserver, figures, [])
    result = scb.fetch_population(base, [2016, 2017], policy=FAST)
    assert len(result.rows) == 42


def test_metadata_that_no_longer_fits_the_query_stops_the_fetch(httpserver):
    meta = fixture("scb_tab638_metadata.json")
    meta["dimension"]["Kon"]["extension"]["elimination"] = False
    base = scb_server(httpserver, {}, [], metadata=meta)
    with pytest.raises(BadInput, match="'Kon' can no longer be eliminated"):
        scb.fetch_population(base, [2020], policy=FAST)

    meta = fixture("scb_tab638_metadata.json")
    meta["dimension"]["Region"]["extension"]["codeLists"] = [{"id": "vs_Other"}]
    httpserver.clear()
    base = scb_server(httpserver, {}, [], metadata=meta)
    with pytest.raises(BadInput, match="codelist vs_RegionLän07"):
        scb.fetch_population(base, [2020], policy=FAST)


def test_server_errors_on_data_fail_clearly(httpserver):
    httpserver.expect_request("/scb/tables/TAB638/metadata").respond_with_json(fixture("scb_tab638_metadata.json"))
    httpserver.expect_request("/scb/tables/TAB638/data").respond_with_data("oops", status=502)
    with pytest.raises(SourceUnavailable, match=r"SCB: POST .*TAB638/data.* after 3 attempt\(s\): HTTP 502"):
        scb.fetch_population(httpserver.url_for("/scb"), [2020], policy=FAST)


def test_metadata_decoding_ignores_the_empty_value_list():
    years, warnings = scb.usable_years(copy.deepcopy(fixture("scb_tab638_metadata.json")), [2019, 2020])
    assert years == [2019, 2020] and warnings == []
