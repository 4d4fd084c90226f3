"""Issue 25: the HTML report answers the follow-up on its own, and its Sammanfattning is traced to sql/.

A hand-made warehouse shaped like the agency's 2016 follow-up: all 21 regions report 2016
with the three priority areas; 10 of 21 offer a clinical introduction year (just under
half), 15 of 21 study salary (a majority); three regions left care-near service empty,
nobody answered task shifting; one region did not state its area-3 spend. 2017 has
e-health figures only. Built through the follow-up pipeline, then read as an analyst would:
an HTML parser on the report, DuckDB on followup.duckdb with the sql/ queries the report
links to. Every figure compared comes from the query or the mart, never from report code.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from etl import publish, regions
from etl.marts import summary
from etl.publish import TableBatch
from tests.settings_support import settings_in

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2017, 3, 31)
CODES = list(regions.REGION_CODES)  # 21, in code order
NAMES = [r.region_name for r in regions.REGIONS]
J, W = "patient_journal_online", "web_booking"
SUBMITTED = dt.datetime(2017, 3, 1, tzinfo=dt.UTC)


def _publish(uri: str, table: str, rows: list[dict]) -> None:
    """Publish hand-made rows as a source pipeline would (a new version of the whole table)."""
    frame = pd.DataFrame(rows).assign(source_file=f"handmade/{table}")
    empty = pd.DataFrame(columns=["source_file", "row_number", "raw", "reason"])
    publish.publish(uri, "test", TableBatch(table, frame, empty, len(frame), None), publish.new_batch_id())


def _report(code, grant, earmarked, spend, offers) -> dict:
    it, use, supply = spend
    clinical, salary, care, task = offers
    return {
        "region_code": code,
        "report_year": 2016,
        "grant_sek": grant,
        "earmarked": earmarked,
        "spend_it_support_sek": it,
        "spend_competence_use_sek": use,
        "spend_competence_supply_sek": supply,
        "offers_clinical_intro_year": clinical,
        "offers_specialist_nurse_study_salary": salary,
        "has_care_near_service": care,
        "has_task_shifting": task,
        "submitted_at": SUBMITTED,
    }


def _service(code, service, status) -> dict:
    return {
        "region_code": code,
        "report_year": 2016,
        "service": service,
        "status": status,
        "implemented_on": None,
        "submitted_at": SUBMITTED,
    }


def _cell(code, month: dt.date, service, metric, value) -> dict:
    row = {
        "year": month.year,
        "month": month,
        "service": service,
        "metric": metric,
        "value": value,
        "suppressed": value is None,
    }
    return row if code is None else {**row, "region_code": code}


def _population(i: int) -> int:
    return 100_000 + 10_000 * i


def county_reports(clinical_yes: int = 10) -> list[dict]:
    rows = []
    for i, code in enumerate(CODES):
        grant = 100 * _population(i)  # 100 kr per inhabitant
        supply = None if i == 4 else grant * 35 // 100  # region 5 did not state area 3
        offers = (
            i < clinical_yes,  # clinical introduction year: the first `clinical_yes` regions
            i >= 6,  # study salary: 15 of 21
            None if i < 3 else i % 2 == 0,  # care-near service: three left it empty
            None,  # task shifting: nobody answered
        )
        rows.append(_report(code, grant, i != 20, (grant * 30 // 100, grant * 25 // 100, supply), offers))
    return rows


SERVICES = [
    *(_service(code, W, "implemented" if i < 11 else "planned") for i, code in enumerate(CODES)),
    *(_service(code, J, "implemented") for code in CODES[:20]),  # the last region did not list it
]
ADOPTION = [
    *(
        _cell(code, dt.date(2016, 12, 1), J, "unique_users", 10 * (i + 1) * _population(i) // 1000)
        for i, code in enumerate(CODES)
    ),  # 10·(i+1) per 1 000
    *(
        _cell(code, dt.date(2017, 1, 1), J, "unique_users", 11 * (i + 1) * _population(i) // 1000)
        for i, code in enumerate(CODES[:-1])
    ),  # the last region: no 2017 figure
    *(_cell(code, dt.date(2016, 12, 1), W, "bookings", 3 * _population(i) // 100) for i, code in enumerate(CODES)),
]
NATIONAL = [
    _cell(None, dt.date(2016, 12, 1), J, "unique_users", 400_000),
    _cell(None, dt.date(2017, 1, 1), J, "unique_users", 420_000),
    _cell(None, dt.date(2016, 12, 1), W, "bookings", 50_000),
]


def build_sources(uri: str, reports: list[dict]) -> None:
    _publish(
        uri,
        "dim_region",
        [
            {
                "region_code": r.code,
                "region_name": r.region_name,
                "county_name": r.county_name,
                "kolada_id": r.kolada_id,
            }
            for r in regions.REGIONS
        ],
    )
    _publish(
        uri, "population", [{"region_code": c, "year": 2016, "population": _population(i)} for i, c in enumerate(CODES)]
    )
    _publish(uri, "county_report", reports)
    _publish(uri, "county_ehealth_service", SERVICES)
    _publish(uri, "ehealth_adoption", ADOPTION)
    _publish(uri, "ehealth_adoption_national", NATIONAL)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from etl.pipelines import followup

    settings = settings_in(tmp_path_factory.mktemp("report_contents"))
    build_sources(settings.warehouse_uri, county_reports())
    followup.build_marts(settings)
    paths = followup.build_access(settings, today=TODAY)
    html = Path(paths["report"]).read_text(encoding="utf-8")
    return {"settings": settings, "warehouse": Path(settings.warehouse_uri), "html": html, "paths": paths}


def _query(built, sql: str) -> list[tuple]:
    with duckdb.connect(str(built["warehouse"] / "followup.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _sql(name: str) -> str:
    return (ROOT / "sql" / name).read_text(encoding="utf-8")


class _Page(HTMLParser):
    """Summary items (question, year, text, link), tables by section id (rows of cell texts), ids and links."""

    def __init__(self):
        super().__init__()
        self.items: list[dict] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._item: dict | None = None
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
            if self._item is not None:
                self._item["link"] = attrs["href"]
        if tag == "li" and "data-question" in attrs:
            self._item = {"question": attrs["data-question"], "year": int(attrs["data-year"]), "text": ""}
        if tag == "section" and "measure" in (attrs.get("class") or ""):
            self._section = attrs["id"]
            self.tables[self._section] = []
        if tag == "tr" and self._section:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "li" and self._item is not None:
            self.items.append(self._item)
            self._item = None
        if tag in ("td", "th") and self._cell is not None:
            assert self._row is not None, "a cell is inside a row"
            self._row.append(self._cell.strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            assert self._section is not None, "a row is inside a section"
            self.tables[self._section].append(self._row)
            self._row = None
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._item is not None and "link" not in self._item:
            self._item["text"] += data
        if self._cell is not None:
            self._cell += data


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _grid(page: _Page, anchor: str) -> tuple[list[str], dict[str, list[str]]]:
    """(years, {row label: cells}) of one region × year table."""
    head, *rows = page.tables[anchor]
    assert head[0] == "Region"
    return head[1:], {r[0]: r[1:] for r in rows}


def _number(text: str) -> float:
    return float(text.replace("\u202f", "").replace(",", "."))


# --------------------------------------------------------------------------- the summary


def test_summary_of_a_year_shaped_like_2016_says_knappt_halften_and_en_majoritet(built):
    texts = {i["question"]: i["text"].strip() for i in _page(built["html"]).items}
    assert texts["offers_clinical_intro_year"] == (
        "Knappt hälften av regionerna (10 av 21) erbjuder ett kliniskt introduktionsår för nyutexaminerade "
        "sjuksköterskor."
    )
    assert texts["offers_specialist_nurse_study_salary"] == (
        "En majoritet av regionerna (15 av 21) erbjuder studielön under specialistsjuksköterskeutbildning."
    )
    assert texts["reported"] == "Samtliga regioner (21 av 21) har skickat in sin regionrapport."
    assert texts["earmarked"].startswith("Nästan samtliga regioner (20 av 21) har öronmärkt")
    assert texts["web_booking_implemented"].startswith("Drygt hälften av regionerna (11 av 21) har infört webbtidbok")


def test_unanswered_are_said_and_never_counted_as_no(built):
    texts = {i["question"]: i["text"].strip() for i in _page(built["html"]).items}
    # Care-near service: 9 of the 18 that answered (i = 4, 6, …, 20), three left it empty.
    assert texts["has_care_near_service"] == (
        "Hälften av regionerna som svarat (9 av 18) har vårdnära servicepersonal. 3 regioner har inte svarat."
    )
    assert texts["has_task_shifting"] == (
        "Ingen region har svarat på om den arbetar med uppgiftsväxling mellan personalgrupper (0 av 21 har svarat)."
    )
    assert texts["patient_journal_online_implemented"] == (
        "Samtliga regioner som svarat (20 av 20) har infört Journal via nätet fullt ut. 1 region har inte svarat."
    )


def test_every_figure_in_the_summary_is_what_its_linked_query_returns(built):
    """Each sentence links to sql/06's entry; running that query with DuckDB gives each of its figures."""
    page = _page(built["html"])
    assert len(page.items) == len(summary.QUESTIONS)  # one sentence per question of the declaration
    rows = {
        (year, question): (yes, answered, not_answered, regions)
        for year, question, yes, answered, not_answered, regions in _query(built, _sql("06_summary_counts.sql"))
    }
    for item in page.items:
        assert item["link"] == "#sql-06"
        yes, answered, not_answered, total = rows[item["year"], item["question"]]
        text = item["text"]
        main = re.search(r"\((\d+) av (\d+)(?: har svarat)?\)", text)
        assert main is not None, text
        if answered == 0:
            assert main.groups() == ("0", str(total)) and "har svarat" in main.group(0)
        else:
            assert (int(main.group(1)), int(main.group(2))) == (yes, answered), text
        missing = re.search(r"(\d+) region(?:er)? har inte svarat", text)
        assert (int(missing.group(1)) if missing else 0) == (not_answered if answered else 0), text
        previous = re.search(r"Året innan, (\d{4}): (\d+) av (\d+)", text)
        if previous:
            year, p_yes, p_answered = map(int, previous.groups())
            assert rows[year, item["question"]][:2] == (p_yes, p_answered)
    # The link's target names the query and the command that runs it, and the file is in sql/.
    assert "sql-06" in page.ids
    entry = built["html"][built["html"].index("id='sql-06'") :]
    assert "sql/06_summary_counts.sql" in entry[:200]
    assert ".venv/bin/duckdb -readonly -box warehouse/followup.duckdb &lt; sql/06_summary_counts.sql" in entry[:800]
    header = _sql("06_summary_counts.sql")
    assert (
        header.startswith("-- Question")
        and "-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/06" in header
    )


def test_the_summary_agrees_with_the_programme_tables_of_the_same_report(built):
    page = _page(built["html"])
    years, rows = _grid(page, "t-offers_clinical_intro_year")
    column = years.index("2016")
    cells = [r[column] for name, r in rows.items() if name != "Riket"]
    assert (cells.count("Ja"), cells.count("Nej"), cells.count("uppgift saknas")) == (10, 11, 0)
    assert rows["Riket"][column] == "10 av 21"


# --------------------------------------------------------------------------- per region and year


def test_programme_tables_show_unknown_as_uppgift_saknas_never_nej(built):
    page = _page(built["html"])
    mart = {
        (c, n): v
        for c, n, v in _query(built, "select region_name, year, has_care_near_service from followup_region_year")
    }
    years, rows = _grid(page, "t-has_care_near_service")
    assert years == ["2016"]  # 2017 has no county report: not a column of "uppgift saknas"
    for name, cells in rows.items():
        if name == "Riket":
            assert cells == ["9 av 18"]
            continue
        expected = {True: "Ja", False: "Nej", None: "uppgift saknas"}[mart[name, 2016]]
        assert cells == [expected], name
    _, task = _grid(page, "t-has_task_shifting")
    assert {c for name, cells in task.items() for c in cells} == {"uppgift saknas"}
    assert "Åren 2017 visas inte" in built["html"]


def test_money_tables_equal_the_linked_query_per_region_and_for_riket(built):
    """Kronor and kronor per inhabitant per area: every cell is sql/07's figure (shown to 0 or 1 decimal)."""
    page = _page(built["html"])
    answer = _query(built, _sql("07_grant_and_spend_per_inhabitant.sql"))
    columns = [
        "grant_sek",
        "grant_per_inhabitant",
        "spend_it_support_sek",
        "it_support_per_inhabitant",
        "spend_competence_use_sek",
        "competence_use_per_inhabitant",
        "spend_competence_supply_sek",
        "competence_supply_per_inhabitant",
    ]
    by_name = {(row[0], row[1]): dict(zip(columns, row[2:], strict=False)) for row in answer}
    assert len(by_name) == 22  # 21 reporting regions and Riket, 2016
    for column in columns:
        years, rows = _grid(page, f"t-{column}")
        assert years == ["2016"]
        assert set(rows) == {name for name, _ in by_name}
        for name, cells in rows.items():
            expected = by_name[name, 2016][column]
            if expected is None:
                assert cells == ["uppgift saknas"], (column, name)
            elif column.endswith("_sek"):
                assert int(_number(cells[0])) == expected, (column, name)
            else:
                assert _number(cells[0]) == pytest.approx(expected, abs=0.051), (column, name)
    # Region 5 did not state area 3: unknown in its cell; Riket sums and divides over the 20 that did.
    _, supply = _grid(page, "t-competence_supply_per_inhabitant")
    assert supply[NAMES[4]] == ["uppgift saknas"]
    stated = [i for i in range(21) if i != 4]
    riket = sum(100 * _population(i) * 35 // 100 for i in stated) / sum(_population(i) for i in stated)
    assert _number(supply["Riket"][0]) == pytest.approx(riket, abs=0.051)


def test_money_riket_line_is_the_national_mart(built):
    page = _page(built["html"])
    ((grant, per_inhabitant),) = _query(
        built, "select grant_sek, grant_per_inhabitant from followup_national_year where year = 2016"
    )
    assert int(_number(_grid(page, "t-grant_sek")[1]["Riket"][0])) == grant
    assert _number(_grid(page, "t-grant_per_inhabitant")[1]["Riket"][0]) == pytest.approx(per_inhabitant, abs=0.051)


@pytest.mark.parametrize("column", ["web_booking_bookings_per_1000_mean", "journal_unique_users_per_1000_mean"])
def test_adoption_tables_per_1000_per_region_and_year_with_the_national_line(built, column):
    page = _page(built["html"])
    years, rows = _grid(page, f"t-{column}")
    mart = {(n, y): v for n, y, v in _query(built, f"select region_name, year, {column} from followup_region_year")}
    national = dict(_query(built, f"select year, {column} from followup_national_year"))
    expected_years = sorted(
        {y for (_, y), v in mart.items() if v is not None} | {y for y, v in national.items() if v is not None}
    )
    assert years == [str(y) for y in expected_years]
    for name, cells in rows.items():
        for year, cell in zip(expected_years, cells, strict=True):
            value = national[year] if name == "Riket" else mart[name, year]
            if value is None:
                assert cell == "uppgift saknas", (name, year)
            else:
                assert _number(cell) == pytest.approx(value, abs=0.051), (name, year)
    if column.startswith("journal"):
        assert years == ["2016", "2017"]
        assert rows[NAMES[20]][1] == "uppgift saknas"  # no January 2017 figure: unknown, not 0


# --------------------------------------------------------------------------- the page


def test_report_is_self_contained_readable_and_printable(built):
    html = built["html"]
    page = _page(html)
    internal = [link for link in page.links if link.startswith("#")]
    assert internal and {link[1:] for link in internal} <= page.ids  # every link lands in the page
    assert [link for link in page.links if not link.startswith(("#", "data:"))] == []
    assert "<html lang='sv'>" in html and "lang='en'" in html  # Swedish, the database names marked English
    # Printed: A4 landscape, header rows repeated, a table never split, sections on new pages.
    css = html[html.index("@media print") : html.index("</style>")]
    for rule in (
        "@page{size:A4 landscape",
        "thead{display:table-header-group}",
        "section.measure{break-inside:avoid}",
        "section.part{break-before:page}",
        ".measures{orphans:1;widows:1}",
    ):
        assert rule in css
    assert html.index("<h2>Sammanfattning</h2>") < html.index("<h2>Riket per år</h2>")
    assert Path(built["paths"]["report"]).stat().st_size < 1_500_000


def test_a_report_with_nothing_reported_says_so():
    import pandas as pd

    from etl.marts import report

    region = pd.DataFrame(
        {
            "region_code": ["01"],
            "region_name": ["Region Stockholm"],
            "year": [2024],
            "reported": [False],
            "population": [100],
            "population_year_used": [2024],
        }
    )
    national = pd.DataFrame({"year": [2024], "regions_reported": [0], "regions_total": [21]})
    assert "Inga regionrapporter ännu" in report.money_tables(region, national)
    assert "Inga regionrapporter ännu" in report.programme_tables(region, national)
    assert "inget att sammanfatta" in report.summary_section(national)


# --------------------------------------------------------------------------- as of a date


@pytest.mark.slow
def test_report_as_of_a_date_summarises_the_data_of_that_date(tmp_path):
    """A correction after `before`: the as-of report keeps the old summary and tables; today's has the new."""
    from etl.marts import access
    from etl.pipelines import followup

    settings = settings_in(tmp_path)
    build_sources(settings.warehouse_uri, county_reports(clinical_yes=10))
    followup.build_marts(settings)
    time.sleep(1.1)
    before = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    _publish(settings.warehouse_uri, "county_report", county_reports(clinical_yes=11))
    followup.build_marts(settings)
    assert publish.version_at(settings.warehouse_uri, "county_report", before) is not None

    for when, out, sentence, yes in (
        (before, "then", "Knappt hälften av regionerna (10 av 21) erbjuder", 10),
        (dt.datetime.now(dt.UTC), "now", "Drygt hälften av regionerna (11 av 21) erbjuder", 11),
    ):
        html = Path(followup.build_as_of(settings, when, str(tmp_path / out))["report"]).read_text(encoding="utf-8")
        page = _page(html)
        text = next(i["text"] for i in page.items if i["question"] == "offers_clinical_intro_year")
        assert text.startswith(sentence), (out, text)
        _, rows = _grid(page, "t-offers_clinical_intro_year")
        assert [c for name, cells in rows.items() if name != "Riket" for c in cells].count("Ja") == yes
        assert rows["Riket"] == [f"{yes} av 21"]
    # The query on today's warehouse gives today's figures (the as-of report says which versions it used).
    with duckdb.connect(access.build_duckdb(settings.warehouse_uri), read_only=True) as con:
        got = con.execute(_sql("06_summary_counts.sql")).fetchall()
    assert (2016, "offers_clinical_intro_year", 11, 21, 0, 21) in got


def test_the_report_names_the_county_reports_a_correction_replaced(tmp_path):
    """Found by an analyst reviewing the demo: the sample's superseded original (a region's report sent again as a
    correction) showed nowhere in the report. It is listed under its own heading, naming the correction."""
    from etl import status
    from etl.marts import report
    from etl.pipelines import county_reports, followup, reference
    from etl.sample import county_reports as county_sample
    from etl.sample import reference as reference_sample

    settings = settings_in(tmp_path)
    landing = tmp_path / "landing"
    for module in (reference_sample, county_sample):
        module.write(landing, 2017, 2017, units=0, unit_months=0, seed=2016)
    corrections = sorted(p.name for p in (landing / "county_reports").iterdir() if "_rattelse" in p.name)
    assert len(corrections) == 1  # the sample's planted correction
    reference.run(settings, offline_snapshot=True)
    county_reports.run(settings)
    followup.run(settings)
    stem = corrections[0].split("_rattelse")[0]  # the original may be sent in another format than its correction
    [original] = [
        p.name
        for p in (landing / "county_reports").iterdir()
        if p.name.startswith(stem + ".") and p.name != corrections[0]
    ]
    lines = status.superseded_reports(settings.warehouse_uri)
    assert lines == [
        f"{original}: ersatt av {corrections[0]} (samma region och år, inkom senare); dess uppgifter visas inte"
    ]
    page = (tmp_path / "warehouse" / "exports" / "followup_report.html").read_text(encoding="utf-8")
    assert report.SUPERSEDED_HEADING in page and f"{original}: ersatt av {corrections[0]}" in page
    # As of a time before anything was loaded: nothing was superseded yet.
    assert status.superseded_reports(settings.warehouse_uri, until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) == []
