"""Synthetic API snapshot for the reference pipeline: ``<out>/api_snapshot/``.

Writes what SCB (PxWeb v2, TAB638, json-stat2) and Kolada (v3 data pages,
with a ``next_url`` page break) answer, in exactly their recorded shapes,
so ``python -m etl run reference --offline-snapshot`` works without
network. The shapes are real; the numbers are SYNTHETIC (plausible
populations growing about 1 % a year, made-up key figures) and say so in
the README written next to them.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from etl import regions
from etl.config import DEFAULT_KOLADA_KPIS, KOLADA_DEFAULT_URL

SNAPSHOT_DIR = "api_snapshot"

# Roughly the 2016 populations (31 December) and typical yearly growth per region.
BASE_2016: dict[str, tuple[int, float]] = {
    "01": (2_269_000, 0.014),
    "03": (361_000, 0.014),
    "04": (290_000, 0.009),
    "05": (453_000, 0.009),
    "06": (352_000, 0.008),
    "07": (194_000, 0.009),
    "08": (242_000, 0.004),
    "09": (58_000, 0.006),
    "10": (158_500, 0.002),
    "12": (1_324_000, 0.010),
    "13": (320_000, 0.013),
    "14": (1_671_000, 0.010),
    "17": (280_000, 0.004),
    "18": (295_000, 0.009),
    "19": (268_000, 0.009),
    "20": (285_000, 0.004),
    "21": (284_000, 0.003),
    "22": (245_000, 0.001),
    "23": (129_000, 0.005),
    "24": (267_000, 0.006),
    "25": (250_000, -0.001),
}

README = """\
API snapshot for the reference pipeline (offline mode)
=======================================================

scb_tab638.json     SCB PxWeb API v2 answer for table TAB638 (POST
                    /tables/TAB638/data?lang=sv&outputFormat=json-stat2),
                    json-stat2: Region (codelist vs_RegionLän07) x
                    ContentsCode BE0101N1 x Tid.
kolada_NNN.json     Kolada API v3 data pages (/data/kpi/{{kpi}}/municipality/
                    {{ids}}/year/{{years}}), in order; a page with "next_url"
                    continues in the next file.

The SHAPES are the recorded API shapes. The VALUES ARE SYNTHETIC: made up
by `python -m etl sample` (seed {seed}) for demos and tests. Do not use them
as statistics.

Read with: .venv/bin/python -m etl run reference --offline-snapshot --landing <landing>
"""


def jsonstat2(
    dimensions: list[tuple[str, str, dict[str, str]]],
    values: list,
    *,
    label: str,
    status: dict[str, str] | None = None,
    roles: dict | None = None,
) -> dict:
    """A json-stat2 dataset as PxWeb v2 writes it; ``dimensions`` = [(id, label, {code: label})] in ``id`` order."""
    doc = {
        "version": "2.0",
        "class": "dataset",
        "label": label,
        "source": "Statistiska centralbyrån",
        "updated": "2026-02-20T07:00:00Z",
        "id": [d[0] for d in dimensions],
        "size": [len(d[2]) for d in dimensions],
        "dimension": {
            dim_id: {
                "label": dim_label,
                "category": {
                    "index": {code: i for i, code in enumerate(cats)},
                    "label": dict(cats),
                },
            }
            for dim_id, dim_label, cats in dimensions
        },
        "value": values,
    }
    if status:
        doc["status"] = status
    if roles:
        doc["role"] = roles
    return doc


def population_figures(first_year: int, last_year: int, seed: int) -> dict[tuple[str, int], int]:
    """(region_code, year) → a plausible synthetic population on 31 December."""
    rng = random.Random(seed)
    figures = {}
    for code in regions.REGION_CODES:
        base, growth = BASE_2016[code]
        value = base * (1 + growth) ** (first_year - 2016)
        for year in range(first_year, last_year + 1):
            if year > first_year:
                value *= 1 + growth + rng.uniform(-0.003, 0.003)
            figures[(code, year)] = int(round(value))
    return figures


def scb_document(first_year: int, last_year: int, seed: int) -> dict:
    figures = population_figures(first_year, last_year, seed)
    years = [str(y) for y in range(first_year, last_year + 1)]
    values = [figures[(code, int(year))] for code in regions.REGION_CODES for year in years]
    return jsonstat2(
        [
            ("Region", "region", {r.code: r.county_name for r in regions.REGIONS}),
            ("ContentsCode", "tabellinnehåll", {"BE0101N1": "Folkmängd"}),
            ("Tid", "år", {y: y for y in years}),
        ],
        values,
        label="Folkmängden efter region och år",
        roles={"time": ["Tid"], "metric": ["ContentsCode"], "geo": ["Region"]},
    )


def kolada_records(kpi_ids: tuple[str, ...], first_year: int, last_year: int, seed: int) -> list[dict]:
    """Kolada v3 data records: the first KPI a cost per inhabitant (T only), the others shares by gender."""
    rng = random.Random(seed + 1)
    records = []
    for n, kpi in enumerate(kpi_ids):
        for region in regions.REGIONS:
            level = rng.uniform(27_000, 34_000) if n == 0 else rng.uniform(55.0, 80.0)
            for year in range(first_year, last_year + 1):
                if n == 0:
                    value = round(level * 1.03 ** (year - first_year), 0)
                    points = [{"count": 1, "gender": "T", "status": "", "value": value}]
                else:
                    total = round(min(99.0, level + 0.4 * (year - first_year) + rng.uniform(-1, 1)), 1)
                    points = [
                        {"count": 1, "gender": "K", "status": "", "value": round(min(99.9, total + 2.0), 1)},
                        {"count": 1, "gender": "M", "status": "", "value": round(total - 2.0, 1)},
                        {"count": 1, "gender": "T", "status": "", "value": total},
                    ]
                records.append({"kpi": kpi, "municipality": region.kolada_id, "period": year, "values": points})
    return records


def kolada_pages(kpi_ids: tuple[str, ...], first_year: int, last_year: int, seed: int, pages: int = 2) -> list[dict]:
    """The records split over ``pages`` data pages linked by ``next_url``, as Kolada v3 pages them."""
    records = kolada_records(kpi_ids, first_year, last_year, seed)
    per_page = max(1, math.ceil(len(records) / pages))
    path = (
        f"{KOLADA_DEFAULT_URL}/data/kpi/{','.join(kpi_ids)}/municipality/"
        f"{','.join(r.kolada_id for r in regions.REGIONS)}/year/"
        f"{','.join(str(y) for y in range(first_year, last_year + 1))}"
    )
    chunks = [records[i : i + per_page] for i in range(0, len(records), per_page)] or [[]]
    out = []
    for i, chunk in enumerate(chunks, start=1):
        page = {"count": len(records), "values": chunk}
        if i > 1:
            page["previous_url"] = f"{path}?page={i - 1}&per_page={per_page}"
        if i < len(chunks):
            page["next_url"] = f"{path}?page={i + 1}&per_page={per_page}"
        out.append(page)
    return out


def write(out: Path, first_year: int, last_year: int, *, units: int = 0, unit_months: int = 0, seed: int = 2016) -> int:
    """Write ``<out>/api_snapshot/`` (SCB answer, Kolada pages, README); returns the number of files.

    ``units`` / ``unit_months`` belong to the care-unit sample and do not apply here.
    """
    folder = Path(out) / SNAPSHOT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("kolada_*.json"):  # a shorter rerun must not leave pages of a longer one
        stale.unlink()
    files = {"scb_tab638.json": scb_document(first_year, last_year, seed)}
    for i, page in enumerate(kolada_pages(DEFAULT_KOLADA_KPIS, first_year, last_year, seed), start=1):
        files[f"kolada_{i:03d}.json"] = page
    for name, doc in files.items():
        (folder / name).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (folder / "README.txt").write_text(README.format(seed=seed), encoding="utf-8")
    return len(files) + 1
