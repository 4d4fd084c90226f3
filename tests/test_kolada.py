"""Kolada v3: paging (next_url / next_page), chunked id lists, nulls, empty answers — through real HTTP."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from werkzeug import Response

from etl import regions
from etl.errors import BadInput, ConfigError, SourceUnavailable
from etl.sources import kolada
from etl.sources.http import RetryPolicy

FIXTURES = Path(__file__).parent / "fixtures" / "api"
FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, jitter=0.001, read_timeout=5)
REGION_IDS = ",".join(r.kolada_id for r in regions.REGIONS)


def page(name: str, rename_next: str | None = None) -> dict:
    """A recorded page as the live API writes it: ``next_url`` absolute, on https://api.kolada.se/v3."""
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if rename_next and "next_url" in doc:
        doc[rename_next] = doc.pop("next_url")
    return doc


def serve_two_pages(httpserver, rename_next=None, prefix: str = "/kolada/v3") -> str:
    """The two recorded pages behind ``prefix`` on the local server; the configured base URL."""

    def answer(request):
        name = "kolada_page2.json" if request.args.get("page") == "2" else "kolada_page1.json"
        return Response(json.dumps(page(name, rename_next)), content_type="application/json")

    httpserver.expect_request(
        f"{prefix}/data/kpi/N17473,N17461/municipality/{REGION_IDS}/year/2016,2017", method="GET"
    ).respond_with_handler(answer)
    # As an operator would configure a local mirror: by address, with its path prefix.
    return f"http://127.0.0.1:{httpserver.port}{prefix}"


def test_fixtures_are_in_the_live_shape():
    # The live API names its own host in next_url; a fixture that names the test server would
    # never exercise the rebasing a proxy or mirror needs.
    assert page("kolada_page1.json")["next_url"].startswith("https://api.kolada.se/v3/data/kpi/")
    assert "{base_url}" not in (FIXTURES / "kolada_page2.json").read_text(encoding="utf-8")


def as_tuples(result) -> list[tuple]:
    return sorted((r["kpi_id"], r["region_code"], r["year"], r["gender"], r["value"], r["status"]) for r in result.rows)


@pytest.mark.parametrize("prefix", ["/kolada/v3", "", "/mirror/kolada/v3"], ids=["base", "host-root", "mirror-prefix"])
@pytest.mark.parametrize("next_key", ["next_url", "next_page"])
def test_multi_page_answer_is_followed_to_the_end(httpserver, next_key, prefix):
    base = serve_two_pages(httpserver, rename_next=None if next_key == "next_url" else "next_page", prefix=prefix)
    result = kolada.fetch_kpis(base, ["N17473", "N17461"], [2016, 2017], policy=FAST)

    requests = [r for r, _ in httpserver.log]
    assert [r.args.get("page") for r in requests] == [None, "2"]
    # Page 2 is asked of the configured server under its own prefix, not of api.kolada.se's /v3.
    assert all(r.path.startswith(f"{prefix}/data/kpi/") for r in requests)
    assert all(response.status_code == 200 for _, response in httpserver.log)
    assert requests[0].args.get("per_page") == "5000"
    assert as_tuples(result) == [
        ("N17461", "12", 2017, "K", 74.2, None),
        ("N17461", "12", 2017, "M", 66.8, None),
        ("N17461", "12", 2017, "T", 70.5, None),
        ("N17473", "01", 2016, "T", 31250.0, None),
        ("N17473", "01", 2017, "T", 32190.0, None),
        ("N17473", "09", 2016, "T", None, None),  # Kolada's null stays null
        ("N17473", "14", 2017, "T", 29876.5, None),
    ]
    # Every record of the answer is accounted for: the national total and a municipality are rejected.
    assert result.rows_in == 9
    reasons = sorted(r["reason"] for r in result.rejected)
    assert any("national total" in r for r in reasons) and any("'0180' is not a region id" in r for r in reasons)
    # Withdrawn values (isdeleted on a record with two values, and on one value) are dropped and counted,
    # not input: rows in stays the 9 current values.
    assert result.withdrawn == 3
    assert result.warnings == ["3 withdrawn Kolada record(s) dropped (isdeleted: true; not current key figures)"]
    assert len(result.sources) == 2
    assert result.sources[1][0] == (
        f"{base}/data/kpi/N17473,N17461/municipality/{REGION_IDS}/year/2016,2017?page=2&per_page=5000"
    )


def test_more_than_25_kpi_ids_are_chunked(httpserver):
    kpis = [f"N{10000 + i}" for i in range(30)]

    def answer(request):
        asked = request.path.split("/kpi/")[1].split("/")[0].split(",")
        values = [
            {
                "kpi": k,
                "municipality": "0003",
                "period": 2020,
                "values": [{"count": 1, "gender": "T", "status": "", "value": float(k[1:])}],
            }
            for k in asked
        ]
        return Response(json.dumps({"count": len(values), "values": values}), content_type="application/json")

    httpserver.expect_request(re.compile(r"^/kolada/data/kpi/.*")).respond_with_handler(answer)
    result = kolada.fetch_kpis(httpserver.url_for("/kolada"), kpis, [2020], policy=FAST)

    paths = [r.path for r, _ in httpserver.log]
    asked = [p.split("/kpi/")[1].split("/")[0].split(",") for p in paths]
    assert [len(a) for a in asked] == [25, 5]
    assert asked[0] + asked[1] == kpis
    for p in paths:
        assert p.endswith(f"/municipality/{REGION_IDS}/year/2020")
        assert len(p.split("/municipality/")[1].split("/")[0].split(",")) == 21
    assert len(result.rows) == 30
    assert {r["value"] for r in result.rows} == {float(k[1:]) for k in kpis}


def test_unknown_kpi_gives_an_empty_list_and_a_warning(httpserver, caplog):
    empty = json.loads((FIXTURES / "kolada_empty.json").read_text())
    httpserver.expect_request(f"/kolada/data/kpi/X99999/municipality/{REGION_IDS}/year/2020").respond_with_json(empty)
    with caplog.at_level(logging.WARNING, logger="etl.sources.kolada"):
        result = kolada.fetch_kpis(httpserver.url_for("/kolada"), ["X99999"], [2020], policy=FAST)
    assert result.rows == [] and result.rejected == []
    assert result.warnings == [
        "Kolada returned nothing for KPI id(s) X99999 (unknown id, or no data for these regions and years)"
    ]
    assert "X99999" in caplog.text


def test_empty_kpi_list_asks_nothing(httpserver):
    result = kolada.fetch_kpis(httpserver.url_for("/kolada"), [], [2020], policy=FAST)
    assert result.rows == [] and result.warnings == [] and httpserver.log == []


def test_429_then_answer(httpserver):
    httpserver.expect_oneshot_request(f"/kolada/data/kpi/N1/municipality/{REGION_IDS}/year/2020").respond_with_data(
        "", status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_request(f"/kolada/data/kpi/N1/municipality/{REGION_IDS}/year/2020").respond_with_json(
        {
            "values": [
                {
                    "kpi": "N1",
                    "municipality": "0025",
                    "period": 2020,
                    "values": [{"gender": "T", "status": "", "value": 1.5}],
                }
            ]
        }
    )
    result = kolada.fetch_kpis(httpserver.url_for("/kolada"), ["N1"], [2020], policy=FAST)
    assert as_tuples(result) == [("N1", "25", 2020, "T", 1.5, None)]
    assert len(httpserver.log) == 2


def test_truncated_page_fails_after_retries(httpserver):
    httpserver.expect_request(f"/kolada/data/kpi/N1/municipality/{REGION_IDS}/year/2020").respond_with_data(
        '{"values": [{"kpi": "N1", "munic', content_type="application/json"
    )
    with pytest.raises(SourceUnavailable, match=r"Kolada: GET .* after 3 attempt\(s\): .*not valid JSON"):
        kolada.fetch_kpis(httpserver.url_for("/kolada"), ["N1"], [2020], policy=FAST)


def test_records_that_break_the_shape_are_rejected_with_reasons():
    doc = {
        "values": [
            {
                "kpi": "N1",
                "municipality": "0001",
                "period": "2020",
                "values": [
                    {"gender": "T", "status": "B", "value": 3},
                    {"gender": None, "value": 1.0},
                    {"gender": "K", "value": "12,5"},
                    {"gender": "X", "value": 2.0},
                ],
            },
            {"kpi": "N1", "municipality": "0001", "period": "20x0", "values": [{"gender": "T", "value": 1.0}]},
            {"kpi": "N1", "municipality": "0001", "period": 2020},
        ]
    }
    result = kolada.decode_page(doc, "p1")
    # 'X' is kept here and quarantined by the suite (gender in T/K/M), so the reason is GX's.
    assert as_tuples(result) == [("N1", "01", 2020, "T", 3.0, "B"), ("N1", "01", 2020, "X", 2.0, None)]
    reasons = [r["reason"] for r in result.rejected]
    assert reasons == [
        "Kolada: gender is missing",
        "Kolada: value '12,5' is not a number",
        "Kolada: period '20x0' is not a year",
        "Kolada: record has no 'values' list",
    ]
    assert result.rows_in == 6
    assert sorted(r["row_number"] for r in result.rows + result.rejected) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(BadInput, match="not a data page"):
        kolada.decode_page({"error": "x"}, "p2")


def test_lists_longer_than_25_are_refused_in_one_url():
    with pytest.raises(ConfigError):
        kolada.data_path([f"N{i}" for i in range(26)], ["0001"], [2020])
    assert kolada.chunked(list(range(51))) == [list(range(25)), list(range(25, 50)), [50]]
    with pytest.raises(ConfigError):
        kolada.fetch_kpis("http://localhost:1/v3", ["N1"], [2020], per_page=6000)


def test_withdrawn_values_are_dropped_and_counted():
    doc = {
        "values": [
            {
                "kpi": "N1",
                "municipality": "0001",
                "period": 2020,
                "isdeleted": True,
                "values": [{"gender": "T", "status": "", "value": 1.0}],
            },
            {
                "kpi": "N1",
                "municipality": "0001",
                "period": 2020,
                "isdeleted": False,
                "values": [
                    {"gender": "K", "status": "", "value": 2.0, "isdeleted": False},
                    {"gender": "M", "status": "", "value": 3.0, "isdeleted": True},
                ],
            },
        ]
    }
    result = kolada.decode_page(doc, "https://api.kolada.se/v3/data/kpi/N1")
    assert [(r["gender"], r["value"], r["row_number"]) for r in result.rows] == [("K", 2.0, 1)]
    assert result.rejected == [] and result.rows_in == 1 and result.withdrawn == 2
    assert kolada.withdrawn_warning(0) == []


def test_a_redirect_or_link_to_another_host_never_leaves_the_configured_server(httpserver):
    # A next_url naming some other host is still asked of the configured server (path and query only).
    first = {"values": [], "next_url": "https://elsewhere.example/v3/data/kpi/N1/municipality/x/year/2020?page=2"}
    httpserver.expect_request(f"/m/v3/data/kpi/N1/municipality/{REGION_IDS}/year/2020").respond_with_json(first)
    httpserver.expect_request("/m/v3/data/kpi/N1/municipality/x/year/2020").respond_with_json({"values": []})
    kolada.fetch_kpis(httpserver.url_for("/m/v3"), ["N1"], [2020], policy=FAST)
    assert [r.path for r, _ in httpserver.log][-1] == "/m/v3/data/kpi/N1/municipality/x/year/2020"
