"""The reference pipeline end to end: local SCB and Kolada servers (real HTTP) → validation → Parquet."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import pytest
from werkzeug import Response

from etl import publish, regions
from etl.config import Settings
from etl.errors import BadInput, ConfigError, SourceUnavailable, ValidationFailed
from etl.pipelines import reference
from etl.sample import reference as sample
from etl.sources.http import RetryPolicy
from tests.settings_support import local_settings

FIXTURES = Path(__file__).parent / "fixtures" / "api"
FAST = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.01, jitter=0.001, read_timeout=5)
REGION_IDS = ",".join(r.kolada_id for r in regions.REGIONS)
KOLADA_PATH = f"/kolada/data/kpi/N17473,N17461/municipality/{REGION_IDS}/year/2016,2017"


class FakeSCB:
    """Answers TAB638 queries from ``figures``; a test edits the figures or the status markers."""

    def __init__(self, figures: dict, status: dict | None = None, omit: frozenset[str] | set[str] = frozenset()):
        self.figures = figures
        self.status = status or {}
        self.omit = omit  # regions left out of the answer altogether
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        sel = {s["variableCode"]: s["valueCodes"] for s in json.loads(request.data)["selection"]}
        codes, years = [c for c in sel["Region"] if c not in self.omit], sel["Tid"]
        cells = [(c, y) for c in codes for y in years]
        doc = sample.jsonstat2(
            [
                ("Region", "region", {c: c for c in codes}),
                ("ContentsCode", "innehåll", {"BE0101N1": "Folkmängd"}),
                ("Tid", "år", {y: y for y in years}),
            ],
            [self.figures.get((c, int(y))) for c, y in cells],
            label="TAB638",
            status={str(i): self.status[(c, int(y))] for i, (c, y) in enumerate(cells) if (c, int(y)) in self.status},
        )
        return Response(json.dumps(doc), content_type="application/json")


def serve(httpserver, scb: FakeSCB, kolada_ok: bool = True) -> None:
    httpserver.expect_request("/scb/tables/TAB638/metadata").respond_with_data(
        (FIXTURES / "scb_tab638_metadata.json").read_bytes(), content_type="application/json"
    )
    httpserver.expect_request("/scb/tables/TAB638/data", method="POST").respond_with_handler(scb)
    if not kolada_ok:
        httpserver.expect_request(KOLADA_PATH).respond_with_data("maintenance", status=500)
        return
    base = httpserver.url_for("/kolada")

    def kolada(request):
        name = "kolada_page2.json" if request.args.get("page") == "2" else "kolada_page1.json"
        return Response(
            (FIXTURES / name).read_text(encoding="utf-8").replace("{base_url}", base), content_type="application/json"
        )

    httpserver.expect_request(KOLADA_PATH).respond_with_handler(kolada)


@pytest.fixture
def api_settings(httpserver, landing, warehouse) -> Settings:
    return local_settings(
        landing,
        warehouse,
        scb_base_url=httpserver.url_for("/scb"),
        kolada_base_url=httpserver.url_for("/kolada"),
        kolada_kpis="N17473,N17461",
    )


def table(settings: Settings, name: str) -> list[dict]:
    return publish.read_table(settings.warehouse_uri, name).to_pylist()


def population_map(settings: Settings) -> dict:
    return {(r["region_code"], r["year"]): r["population"] for r in table(settings, "population")}


def load_log(settings: Settings) -> list[dict]:
    return publish.read_load_log(settings.warehouse_uri).to_pylist()


def test_end_to_end_publishes_population_and_key_figures(httpserver, api_settings):
    figures = sample.population_figures(2016, 2017, seed=11)
    serve(httpserver, FakeSCB(figures))
    report = reference.run(api_settings, year=2017, policy=FAST)

    assert {r.table: r.outcome for r in report.results} == {
        "dim_region": "published",
        "population": "published",
        "kolada_kpi": "published",
    }
    assert population_map(api_settings) == figures
    pop = table(api_settings, "population")
    assert len(pop) == 42 and all(
        "/scb/tables/TAB638/data?lang=sv&outputFormat=json-stat2#" in r["source_file"] for r in pop
    )

    kpi = {
        (r["kpi_id"], r["region_code"], r["year"], r["gender"]): r["value"] for r in table(api_settings, "kolada_kpi")
    }
    assert kpi == {
        ("N17473", "01", 2016, "T"): 31250.0,
        ("N17473", "01", 2017, "T"): 32190.0,
        ("N17473", "09", 2016, "T"): None,
        ("N17473", "14", 2017, "T"): 29876.5,
        ("N17461", "12", 2017, "K"): 74.2,
        ("N17461", "12", 2017, "M"): 66.8,
        ("N17461", "12", 2017, "T"): 70.5,
    }
    quarantined = publish.read_quarantine(api_settings.warehouse_uri, "kolada_kpi").to_pylist()
    assert sorted(json.loads(q["raw"])["municipality"] for q in quarantined) == ["0000", "0180"]
    kolada_result = next(r for r in report.results if r.table == "kolada_kpi")
    assert (kolada_result.rows_in, kolada_result.rows_loaded, kolada_result.rows_quarantined) == (9, 7, 2)
    # Null value and regions without figures are warnings, logged with the load.
    logged = {r["table_name"]: r for r in load_log(api_settings)}
    assert "Kolada has no value" in logged["kolada_kpi"]["warnings"]
    assert "not all 21 regions have a value" in logged["kolada_kpi"]["warnings"]
    assert logged["population"]["outcome"] == "published" and len(logged["population"]["source_sha256"]) == 1

    again = reference.run(api_settings, year=2017, policy=FAST)
    assert {r.table: r.outcome for r in again.results}["population"] == "unchanged"


def test_failed_fetch_leaves_published_data_unchanged(httpserver, api_settings):
    serve(httpserver, FakeSCB(sample.population_figures(2016, 2017, seed=11)))
    reference.run(api_settings, year=2017, policy=FAST)
    before_pop, before_kpi = table(api_settings, "population"), table(api_settings, "kolada_kpi")

    httpserver.clear()
    scb = FakeSCB(sample.population_figures(2016, 2017, seed=99))  # new figures that must NOT be published
    serve(httpserver, scb, kolada_ok=False)
    with pytest.raises(SourceUnavailable, match=r"Kolada: GET .* failed after 2 attempt\(s\): HTTP 500"):
        reference.run(api_settings, year=2017, policy=FAST)

    assert scb.calls == 1  # SCB was fetched fine; only Kolada failed
    assert table(api_settings, "population") == before_pop
    assert table(api_settings, "kolada_kpi") == before_kpi
    failed = [r for r in load_log(api_settings) if r["outcome"] == "failed"]
    assert len(failed) == 1 and "Kolada" in failed[0]["message"]


def test_a_region_missing_from_the_answer_blocks_both_tables(httpserver, api_settings):
    serve(httpserver, FakeSCB(sample.population_figures(2016, 2017, seed=11), omit={"25"}))
    with pytest.raises(ValidationFailed, match="not all 21 regions are present"):
        reference.run(api_settings, year=2017, policy=FAST)
    assert table(api_settings, "population") == [] and table(api_settings, "kolada_kpi") == []
    failed = [r for r in load_log(api_settings) if r["outcome"] == "failed"]
    assert [r["table_name"] for r in failed] == ["population"]


def test_implausible_suppressed_and_jumping_values(httpserver, api_settings):
    drawn = sample.population_figures(2016, 2017, seed=11)
    figures: dict[tuple[str, int], int | None] = dict(drawn)  # None: no figure (SCB's ".." below)
    figures[("09", 2016)] = 12  # implausible: quarantined
    figures[("03", 2017)] = int(drawn[("03", 2016)] * 1.07)  # +7 %: published with a warning
    figures[("23", 2017)] = None
    serve(httpserver, FakeSCB(figures, status={("23", 2017): ".."}))
    report = reference.run(api_settings, year=2017, policy=FAST)

    published = population_map(api_settings)
    assert ("09", 2016) not in published and len(published) == 41
    assert published[("23", 2017)] is None
    assert published[("03", 2017)] == figures[("03", 2017)]
    quarantine = publish.read_quarantine(api_settings.warehouse_uri, "population").to_pylist()
    assert len(quarantine) == 1 and "plausible" in quarantine[0]["reason"]
    assert json.loads(quarantine[0]["raw"]) == {
        "ContentsCode": "BE0101N1",
        "Region": "09",
        "Tid": "2016",
        "status": None,
        "value": 12,
    }
    result = next(r for r in report.results if r.table == "population")
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (42, 41, 1)
    warnings = " | ".join(result.warnings)
    assert "more than 5 %" in warnings and "SCB marks the population missing" in warnings


def test_population_is_replaced_year_by_year(httpserver, api_settings):
    figures = sample.population_figures(2016, 2017, seed=11)
    serve(httpserver, FakeSCB(figures))
    reference.run(api_settings, year=2017, policy=FAST)

    httpserver.clear()
    revised = {k: v + 10 for k, v in figures.items()}
    serve(httpserver, FakeSCB(revised))
    # Kolada is asked for 2016 only now: an empty answer for that URL.
    httpserver.expect_request(f"/kolada/data/kpi/N17473,N17461/municipality/{REGION_IDS}/year/2016").respond_with_json(
        {"count": 0, "values": []}
    )
    reference.run(api_settings, year=2016, policy=FAST)

    now = population_map(api_settings)
    assert all(now[(c, 2016)] == revised[(c, 2016)] for c in regions.REGION_CODES)
    assert all(now[(c, 2017)] == figures[(c, 2017)] for c in regions.REGION_CODES)


def test_empty_kpi_list_publishes_an_empty_key_figure_table(httpserver, landing, warehouse):
    serve(httpserver, FakeSCB(sample.population_figures(2016, 2017, seed=11)))
    settings = local_settings(
        landing, warehouse, scb_base_url=httpserver.url_for("/scb"), kolada_base_url=httpserver.url_for("/kolada")
    )
    report = reference.run(settings, year=2017, policy=FAST)
    assert {r.table: r.table_rows for r in report.results} == {"dim_region": 21, "population": 42, "kolada_kpi": 0}
    assert not any("/kolada/" in r.path for r, _ in httpserver.log)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_offline_snapshot_fills_the_tables_without_http(landing, warehouse):
    assert sample.write(landing, 2016, 2018, units=1, unit_months=1, seed=5) == 4
    readme = (landing / "api_snapshot" / "README.txt").read_text()
    assert "SYNTHETIC" in readme
    dead = _closed_port_url()  # any HTTP attempt would fail the run
    settings = local_settings(landing, warehouse, scb_base_url=dead, kolada_base_url=dead, kolada_kpis="N17473,N17461")
    report = reference.run(settings, year=2019, offline_snapshot=True)

    assert population_map(settings) == sample.population_figures(2016, 2018, seed=5)
    assert any("offline snapshot has no population for 2019" in m for m in report.messages)
    rows = table(settings, "kolada_kpi")
    assert len(rows) == 21 * 3 * 1 + 21 * 3 * 3  # N17473 total only; N17461 by gender
    assert {r["source_file"].rsplit("/", 1)[1] for r in rows} == {"kolada_001.json", "kolada_002.json"}
    stockholm = sorted(r["population"] for r in table(settings, "population") if r["region_code"] == "01")
    assert 2_200_000 < stockholm[0] < stockholm[-1] < 2_400_000


def test_offline_snapshot_missing_or_incomplete_is_bad_input(landing, warehouse):
    settings = local_settings(landing, warehouse, kolada_kpis="N17473")
    with pytest.raises(BadInput, match="scb_tab638.json is missing"):
        reference.run(settings, year=2017, offline_snapshot=True)
    sample.write(landing, 2016, 2017, seed=5)
    (landing / "api_snapshot" / "kolada_002.json").unlink()
    with pytest.raises(BadInput, match="kolada_001.json links to a next page that was not recorded"):
        reference.run(settings, year=2017, offline_snapshot=True)
    assert table(settings, "population") == []


def test_reference_years():
    assert reference.reference_years(None, today=dt.date(2026, 3, 1)) == list(range(2016, 2026))
    assert reference.reference_years(2018) == [2016, 2017, 2018]
    with pytest.raises(ConfigError):
        reference.reference_years(2010)
