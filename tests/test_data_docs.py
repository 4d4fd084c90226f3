"""Data Docs: self-contained pages (no CDN), working links, failing rows with keys and reasons,
an index that is newest first with a status per entry and drops nothing, and every value escaped.

Every page comes from the real path: ``etl.validation.validate`` on a frame with its ``_row``
column, as ``etl.pipelines.common.checked_batch`` builds it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

from etl import data_docs, regions, validation

XSS = "<img src=x onerror=alert(document.domain)>"
UNITS_FILE = "s3://landing/ehealth/webbtidbok_enheter_2024-02.csv"


class _Parsed(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def links(self) -> list[str]:
        return [attrs[name] for _, attrs in self.tags for name in ("href", "src") if attrs.get(name)]


def _pages(warehouse: Path) -> list[Path]:
    return sorted((warehouse / "_data_docs").rglob("*.html"))


def _units(hsa_ids, bookings=None, region_codes=None):
    n = len(hsa_ids)
    return pd.DataFrame(
        {
            "month": ["2024-02"] * n,
            "date": pd.to_datetime([f"2024-02-{i + 1:02d}" for i in range(n)]),
            "_check_date_in_month": [True] * n,
            "region_code": region_codes or ["01"] * n,
            "unit_hsa_id": hsa_ids,
            "unit_name": ["Vårdcentralen Centrum"] * n,
            "bookings": pd.array(bookings or [3] * n, dtype="Int64"),
            "cancellations": pd.array([0] * n, dtype="Int64"),
            "rebookings": pd.array([None] * n, dtype="Int64"),
            "source_file": [UNITS_FILE] * n,
            "row_number": list(range(2, n + 2)),
            "raw": [f"line {i}" for i in range(n)],
            "_row": range(n),
        }
    )


def _dim_region(codes):
    return pd.DataFrame(
        {
            "region_code": codes,
            "region_name": [f"Region {c}" for c in codes],
            "county_name": [f"Län {c}" for c in codes],
            "kolada_id": ["00" + c for c in codes],
            "_row": range(len(codes)),
        }
    )


def _population(missing_one: bool):
    codes = list(regions.REGION_CODES)
    frame = pd.DataFrame(
        {
            "region_code": codes,
            "year": [2023] * 21,
            "population": pd.array([300_000] * 21, dtype="Int64"),
            "_check_regions_in_year": [21] * 21,
            "_check_yoy_change": [0.01] * 21,
            "source_file": ["scb"] * 21,
            "row_number": range(1, 22),
            "raw": [""] * 21,
            "_row": range(21),
        }
    )
    if missing_one:
        frame["population"] = frame["population"].astype("Int64")
        frame.loc[5, "population"] = None
    return frame


def _assert_safe_and_linked(warehouse: Path) -> None:
    """Offline (no remote asset, no script), escaped (no raw tag from the data), every relative link resolves."""
    pages = _pages(warehouse)
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<img" not in text.lower(), page
        parsed = _Parsed(text)
        for tag, attrs in parsed.tags:
            assert tag not in ("script", "img", "iframe", "object", "embed"), (page, tag)
            assert not any(name.startswith("on") for name in attrs), (page, tag, attrs)
            for name in ("src", "href"):
                assert not re.match(r"\s*(https?:)?//", attrs.get(name) or "", re.I), (page, tag, attrs)
        assert "http://" not in text and "https://" not in text, page
        assert 'http-equiv="Content-Security-Policy"' in text, page
        for link in parsed.links():
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, (page, link)
            if not parts.path:
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.relative_to(warehouse)} links to missing {link}"


def _reachable(warehouse: Path) -> set[Path]:
    """Every page reached by following links from the top index."""
    start = (warehouse / "_data_docs" / "index.html").resolve()
    seen, todo = {start}, [start]
    while todo:
        page = todo.pop()
        for link in _Parsed(page.read_text(encoding="utf-8")).links():
            path = urlsplit(link).path
            if path:
                target = (page.parent / unquote(path)).resolve()
                if target.suffix == ".html" and target.is_file() and target not in seen:
                    seen.add(target)
                    todo.append(target)
    return seen


def test_a_hostile_hsa_id_is_shown_escaped_never_as_markup(warehouse):
    result = validation.validate(
        "ehealth_unit_daily",
        _units(["SE2321000016-A1", XSS, "SE2321000016-A3"]),
        warehouse_uri=str(warehouse),
        batch_id="xss",
    )
    assert result.failed_rows == {1: ["malformed HSA id (expected SE + 10 digits + '-' + 1-8 letters/digits)"]}
    page = (warehouse / "_data_docs" / "ehealth_unit_daily" / "xss.html").read_text(encoding="utf-8")
    index = (warehouse / "_data_docs" / "index.html").read_text(encoding="utf-8")
    for text in (page, index):
        assert XSS not in text and "<img" not in text.lower()
    assert "&lt;img src=x onerror=alert(document.domain)&gt;" in page  # shown as text
    _assert_safe_and_linked(warehouse)


def test_pages_need_no_network_and_every_link_resolves(warehouse):
    wh = str(warehouse)
    validation.validate("dim_region", _dim_region(list(regions.REGION_CODES)), warehouse_uri=wh, batch_id="ok")
    validation.validate(
        "dim_region", _dim_region(list(regions.REGION_CODES)[:20]), warehouse_uri=wh, batch_id="blocked"
    )
    validation.validate("population", _population(missing_one=True), warehouse_uri=wh, batch_id="warned")
    validation.validate("ehealth_unit_daily", _units(["SE2321000016-A1", "bad"]), warehouse_uri=wh, batch_id="q")
    _assert_safe_and_linked(warehouse)
    docs = warehouse / "_data_docs"
    page = (docs / "dim_region" / "ok.html").read_text(encoding="utf-8")
    hrefs = _Parsed(page).links()
    assert "../index.html" in hrefs and "suite.html" in hrefs  # Home and the suite
    suite = (docs / "dim_region" / "suite.html").read_text(encoding="utf-8")
    assert "Must have exactly" in suite and "dim_region must hold exactly the 21 regions" in suite
    assert _reachable(warehouse) == {p.resolve() for p in _pages(warehouse)}


def test_failing_rows_show_keys_reason_and_mask_personal_data(warehouse):
    frame = _units(
        ["SE2321000016-A1", "SE2321000016-A2", "anna.svensson@example.se", "19811218-9876"],
        bookings=[3, -4, 1, 1],
        region_codes=["01", "03", "05", "06"],
    )
    result = validation.validate("ehealth_unit_daily", frame, warehouse_uri=str(warehouse), batch_id="rows")
    assert set(result.failed_rows) == {1, 2, 3}
    text = (warehouse / "_data_docs" / "ehealth_unit_daily" / "rows.html").read_text(encoding="utf-8")
    rows = _Parsed(text).rows
    head = next(r for r in rows if "Reason" in r and "region_code" in r)
    assert head[:5] == ["Source (file:line)", "region_code", "month", "date", "unit_hsa_id"]
    negative = dict(zip(head, next(r for r in rows if r and r[-1] == "negative bookings"), strict=False))
    assert negative == {
        "Source (file:line)": "webbtidbok_enheter_2024-02.csv:3",
        "region_code": "03",
        "month": "2024-02",
        "date": "2024-02-02",
        "unit_hsa_id": "SE2321000016-A2",
        "bookings": "-4",
        "Reason": "negative bookings",
    }
    masked = [dict(zip(head, r, strict=False)) for r in rows if r and r[-1].startswith("malformed HSA id")]
    assert [(r["region_code"], r["unit_hsa_id"]) for r in masked] == [
        ("05", "[e-post borttagen]"),
        ("06", "[personnummer borttaget]"),
    ]
    for page in _pages(warehouse):
        content = page.read_text(encoding="utf-8")
        assert "anna.svensson@example.se" not in content and "19811218-9876" not in content
    assert "DataFrame" not in text and "df.filter" not in text


def _at(moment: dt.datetime):
    return lambda data: moment.isoformat(timespec="microseconds")


def test_index_is_newest_first_with_status_and_keeps_every_entry(warehouse, monkeypatch):
    monkeypatch.setattr(data_docs, "DOCS_RECENT", 3)
    wh = str(warehouse)
    base = dt.datetime(2025, 1, 30, 12, tzinfo=dt.UTC)
    # Batch ids sort the other way round from time: a path-sorted index would get it wrong.
    runs = [
        ("z-first", "dim_region", _dim_region(list(regions.REGION_CODES)), "Passed"),
        ("y-second", "dim_region", _dim_region(list(regions.REGION_CODES)[:20]), "Failed: batch blocked"),
        ("x-third", "population", _population(missing_one=True), "Passed with warnings"),
        ("w-fourth", "ehealth_unit_daily", _units(["SE2321000016-A1", "bad"]), "Failed: rows quarantined"),
        ("v-fifth", "dim_region", _dim_region(list(regions.REGION_CODES)), "Passed"),
    ]
    for day, (batch, table, frame, _) in enumerate(runs):
        monkeypatch.setattr(data_docs, "_validation_time", _at(base + dt.timedelta(days=day)))
        validation.validate(table, frame, warehouse_uri=wh, batch_id=batch)
    index = _Parsed((warehouse / "_data_docs" / "index.html").read_text(encoding="utf-8"))
    newest = [r for r in index.rows if len(r) == 7 and r[0] != "Validated (UTC)"]
    assert [(r[2], r[3]) for r in newest] == [
        ("v-fifth", "Passed"),
        ("w-fourth", "Failed: rows quarantined"),
        ("x-third", "Passed with warnings"),
    ]
    tables = {r[0]: r for r in index.rows if len(r) == 5 and r[0] != "Table"}
    assert tables["dim_region"][2] == "Passed" and tables["dim_region"][3] == "3"
    assert tables["population"][2] == "Passed with warnings"
    # The table's own index: newest first, its months linked, each month page listing all of it.
    table_index = _Parsed((warehouse / "_data_docs" / "dim_region" / "index.html").read_text(encoding="utf-8"))
    listed = [(r[1], r[2]) for r in table_index.rows if len(r) == 6 and r[0] != "Validated (UTC)"]
    assert listed == [("v-fifth", "Passed"), ("y-second", "Failed: batch blocked"), ("z-first", "Passed")]
    assert "by-month/2025-02.html" in table_index.links() and "by-month/2025-01.html" in table_index.links()
    assert _reachable(warehouse) == {p.resolve() for p in _pages(warehouse)}
    _assert_safe_and_linked(warehouse)


def test_more_than_500_results_and_pages_from_gx_renderer_are_all_indexed(warehouse):
    """An existing warehouse: 520 pages from GX's old renderer (CDN links, raw values) and their results."""
    wh = str(warehouse)
    validation.validate("ehealth_unit_daily", _units(["SE2321000016-A1", XSS]), warehouse_uri=wh, batch_id="seed")
    results = warehouse / "_validation" / "ehealth_unit_daily"
    docs = warehouse / "_data_docs"
    seed = json.loads((results / "seed.json").read_text(encoding="utf-8"))
    shutil.rmtree(docs)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    (docs / "ehealth_unit_daily").mkdir(parents=True)
    for i in range(520):
        seed["meta"]["batch_markers"]["ge_load_time"] = (start + dt.timedelta(hours=3 * i)).strftime(
            "%Y%m%dT%H%M%S.%fZ"
        )
        (results / f"old{i:04d}.json").write_text(json.dumps(seed), encoding="utf-8")
        (docs / "ehealth_unit_daily" / f"old{i:04d}.html").write_text(
            '<html><head><script src="https://code.jquery.com/jquery-3.7.1.min.js"></script></head>'
            f'<body><a href="../../../../index.html">Home</a><td>{XSS}</td></body></html>',
            encoding="utf-8",
        )
    (docs / "index.html").write_text("<ul><li>old</li></ul>", encoding="utf-8")

    validation.validate("dim_region", _dim_region(list(regions.REGION_CODES)), warehouse_uri=wh, batch_id="new")

    pages = {p.resolve() for p in _pages(warehouse)}
    assert len([p for p in pages if p.name.startswith("old")]) == 520
    assert _reachable(warehouse) == pages
    _assert_safe_and_linked(warehouse)
    table_index = _Parsed((docs / "ehealth_unit_daily" / "index.html").read_text(encoding="utf-8"))
    newest = [r[1] for r in table_index.rows if len(r) == 6 and r[0] != "Validated (UTC)"]
    assert newest[:3] == ["old0519", "old0518", "old0517"]
    assert "520 validation(s)" in (docs / "ehealth_unit_daily" / "index.html").read_text(encoding="utf-8")
    old = (docs / "ehealth_unit_daily" / "old0000.html").read_text(encoding="utf-8")
    assert "Failed: rows quarantined" in old and "2024-01-01 00:00:00 UTC" in old


def test_an_entry_lost_to_a_concurrent_writer_is_taken_back_from_its_page(warehouse, monkeypatch):
    """Two processes updating one month's entries at once can lose one; the next pass over the folder
    (the month's first batch, or a broken summary) takes it back from the page's own <head>."""
    wh = str(warehouse)
    folder = warehouse / "_data_docs" / "ehealth_unit_daily"
    monkeypatch.setattr(data_docs, "_validation_time", _at(dt.datetime(2025, 1, 31, tzinfo=dt.UTC)))
    validation.validate("ehealth_unit_daily", _units(["SE2321000016-A1", "bad"]), warehouse_uri=wh, batch_id="one")
    before = (folder / "one.html").read_text(encoding="utf-8")
    (folder / "_entries" / "2025-01.json").write_text("{}", encoding="utf-8")  # the lost update
    monkeypatch.setattr(data_docs, "_validation_time", _at(dt.datetime(2025, 2, 1, tzinfo=dt.UTC)))
    validation.validate("ehealth_unit_daily", _units(["SE2321000016-A1"]), warehouse_uri=wh, batch_id="two")
    assert (folder / "one.html").read_text(encoding="utf-8") == before  # not rendered again: its rows kept
    january = json.loads((folder / "_entries" / "2025-01.json").read_text(encoding="utf-8"))
    assert {k: v["status"] for k, v in january.items()} == {"one.html": "quarantined"}
    (folder / "_summary.json").write_text("{truncated", encoding="utf-8")
    monkeypatch.setattr(data_docs, "_validation_time", _at(dt.datetime(2025, 2, 2, tzinfo=dt.UTC)))
    validation.validate("ehealth_unit_daily", _units(["SE2321000016-A1"]), warehouse_uri=wh, batch_id="three")
    index = _Parsed((folder / "index.html").read_text(encoding="utf-8"))
    assert [(r[1], r[2]) for r in index.rows if len(r) == 6 and r[0] != "Validated (UTC)"] == [
        ("three", "Passed"),
        ("two", "Passed"),
        ("one", "Failed: rows quarantined"),
    ]
    _assert_safe_and_linked(warehouse)


@pytest.mark.parametrize("batch_id, page", [("index", "batch-index.html"), ("run <1>", "run__1_.html")])
def test_batch_ids_never_overwrite_an_index_or_leave_the_folder(warehouse, batch_id, page):
    validation.validate(
        "dim_region", _dim_region(list(regions.REGION_CODES)), warehouse_uri=str(warehouse), batch_id=batch_id
    )
    assert (warehouse / "_data_docs" / "dim_region" / page).is_file()
    _assert_safe_and_linked(warehouse)
