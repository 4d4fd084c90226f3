"""Reference data pipeline: the region dimension, SCB population and Kolada key figures.

``dim_region`` is built from :mod:`etl.regions`, the one region module.
``population`` comes from SCB (PxWeb v2, TAB638) and ``kolada_kpi`` from
Kolada (v3) through :mod:`etl.sources.scb` / :mod:`etl.sources.kolada` — or,
with ``offline_snapshot=True``, from the recorded answers under
``<landing>/api_snapshot/`` decoded by the very same functions (no HTTP).

Order of work: fetch everything, then validate both tables, then publish.
A fetch or a blocking validation failure anywhere publishes neither API
table, so the warehouse never mixes a new population with old key figures
from a half-finished run.

Withdrawn Kolada values (``isdeleted: true``) are dropped by the decoder and
are *not* counted in ``kolada_kpi``'s rows in: like records outside the
requested KPIs and years, they are not input of this run but the API saying
the value no longer exists. So rows in = loaded + quarantined still holds
over the current records, and the load log's warnings say
"N withdrawn Kolada record(s) dropped". As ``kolada_kpi`` is replaced
whole, a value that was published before and is withdrawn now disappears.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence

from etl import publish, regions, schemas, storage
from etl.config import Settings
from etl.errors import BadInput, ConfigError
from etl.pipelines import skeleton
from etl.pipelines.common import ORIGIN, RunReport, checked_batch, records_unexpected_failures, start_run
from etl.privacy import redact_uri
from etl.sources import kolada, scb
from etl.sources.http import ApiRows, RetryPolicy

log = logging.getLogger(__name__)

PIPELINE = "reference"
FIRST_YEAR = 2016  # the follow-up starts with report year 2016
SNAPSHOT_DIR = "api_snapshot"
SCB_SNAPSHOT = "scb_tab638.json"
KOLADA_SNAPSHOT_PREFIX = "kolada_"
SNAPSHOT_MAX_BYTES = 50 * 1024 * 1024

# The frames' columns: each table's declared content, then where each row came from.
POPULATION_COLUMNS = [*schemas.get("population").business_columns, *ORIGIN]
KOLADA_COLUMNS = [*schemas.get("kolada_kpi").business_columns, *ORIGIN]


def dim_region_batch(settings: Settings, batch_id: str) -> publish.TableBatch:
    """``dim_region``'s 21 rows from :mod:`etl.regions`, validated (replaced whole)."""
    import pandas as pd

    rows = pd.DataFrame(
        [
            {
                "region_code": r.code,
                "region_name": r.region_name,
                "county_name": r.county_name,
                "kolada_id": r.kolada_id,
                "source_file": "etl/regions.py",
                "row_number": i + 1,
                "raw": r.region_name,
            }
            for i, r in enumerate(regions.REGIONS)
        ]
    )
    return checked_batch("dim_region", rows, [], len(rows), warehouse_uri=settings.warehouse_uri, batch_id=batch_id)


def reference_years(year: int | None, first_year: int = FIRST_YEAR, today: dt.date | None = None) -> list[int]:
    """``first_year``..``year``; without ``year``, up to last year (this year's 31 December has not come)."""
    last = int(year) if year is not None else (today or dt.date.today()).year - 1
    if not 2000 <= first_year <= last <= 2100:
        raise ConfigError(f"reference years {first_year}..{last} are out of range (first year ≤ year, 2000–2100)")
    return list(range(first_year, last + 1))


# --------------------------------------------------------------------------- fetching


def fetch_live(
    settings: Settings, years: Sequence[int], *, policy: RetryPolicy | None = None, scb_cell_limit: int = scb.CELL_LIMIT
) -> tuple[ApiRows, ApiRows]:
    population = scb.fetch_population(settings.scb_base_url, years, policy=policy, cell_limit=scb_cell_limit)
    key_figures = kolada.fetch_kpis(settings.kolada_base_url, settings.kolada_kpis, years, policy=policy)
    return population, key_figures


def _load_json(file: storage.LandedFile):
    data = storage.read_bytes(file.path, SNAPSHOT_MAX_BYTES)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"offline snapshot {file.name}: not valid JSON ({exc})") from None
    except RecursionError:  # valid JSON nested deeper than the decoder goes: a broken recording
        raise BadInput(f"offline snapshot {file.name}: JSON nested too deeply to decode") from None


def read_snapshot(settings: Settings, years: Sequence[int]) -> tuple[ApiRows, ApiRows]:
    """The recorded answers under ``<landing>/api_snapshot/``, through the same decoders as live answers."""
    files = storage.list_landed(settings.landing_uri, SNAPSHOT_DIR, (".json",))
    by_name = {f.name: f for f in files}
    if SCB_SNAPSHOT not in by_name:
        raise BadInput(
            f"offline snapshot: {redact_uri(storage.join(settings.landing_uri, SNAPSHOT_DIR, SCB_SNAPSHOT))} is "
            "missing (write one with `.venv/bin/python -m etl sample --out <landing>`)"
        )
    scb_file = by_name[SCB_SNAPSHOT]
    scb_doc = _load_json(scb_file)
    population = scb.population_rows(scb_doc, scb_file.uri, sha256=scb_file.sha256, years=years)
    recorded = {int(y) for y in scb.decode_jsonstat2(scb_doc).codes[scb.TIME] if y.isdigit()}
    absent = sorted(set(years) - recorded)
    if absent:
        population.warnings.append(f"offline snapshot has no population for {', '.join(map(str, absent))}")
        log.warning("%s", population.warnings[-1])

    key_figures = ApiRows()
    pages = [f for f in files if f.name.startswith(KOLADA_SNAPSHOT_PREFIX)]
    if settings.kolada_kpis:
        if not pages:
            raise BadInput(
                f"offline snapshot: no {KOLADA_SNAPSHOT_PREFIX}*.json pages under "
                f"{redact_uri(storage.join(settings.landing_uri, SNAPSHOT_DIR))}"
            )
        seen: set[str] = set()
        docs = [(f, _load_json(f)) for f in pages]
        # Pages are recorded in order; the last one must end its chain, else a page is missing.
        if kolada.next_link(docs[-1][1]):
            raise BadInput(f"offline snapshot: {docs[-1][0].name} links to a next page that was not recorded")
        for file, doc in docs:
            key_figures.extend(
                kolada.decode_page(
                    doc, file.uri, sha256=file.sha256, kpi_ids=settings.kolada_kpis, years=years, seen_kpis=seen
                )
            )
        key_figures.warnings.extend(kolada.missing_kpis_warning(list(settings.kolada_kpis), seen))
        key_figures.warnings.extend(kolada.withdrawn_warning(key_figures.withdrawn))
    return population, key_figures


# --------------------------------------------------------------------------- frames


def population_frame(rows: list[dict]):
    """Rows → DataFrame with the derived ``_check_*`` columns the suite looks at."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=POPULATION_COLUMNS)
    frame["year"] = frame["year"].astype("int64")
    # From the rows, not the frame's column: with a missing (None) value that column is float64.
    frame["population"] = pd.array([row["population"] for row in rows], dtype="Int64")
    frame = frame.sort_values(["region_code", "year"], kind="stable").reset_index(drop=True)
    # Change against the same region's previous year in this batch (null for the first year, a gap
    # or a missing value): a jump over 5 % is almost always a boundary or coding change, worth a look.
    previous = frame.groupby("region_code")["population"].shift(1)
    consecutive = frame.groupby("region_code")["year"].diff() == 1
    change = frame["population"].astype("Float64") / previous.astype("Float64") - 1
    frame["_check_yoy_change"] = change.where(consecutive).astype("float64")
    # Every year must carry all 21 regions, or per-capita figures silently miss a region.
    frame["_check_regions_in_year"] = frame.groupby("year")["region_code"].transform("nunique").astype("int64")
    return frame


def kolada_frame(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=KOLADA_COLUMNS)
    frame["year"] = frame["year"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    return frame


# --------------------------------------------------------------------------- run


@records_unexpected_failures(PIPELINE)
def run(
    settings: Settings,
    *,
    year: int | None = None,
    offline_snapshot: bool = False,
    first_year: int = FIRST_YEAR,
    policy: RetryPolicy | None = None,
    scb_cell_limit: int = scb.CELL_LIMIT,
) -> RunReport:
    """dim_region, then population (``first_year``..``year``) and kolada_kpi for ``settings.kolada_kpis``.

    Two steps: the region dimension is published first (it needs no
    network); a fetch or validation failure of the API step then publishes
    neither API table and fails the run (:class:`SourceUnavailable`,
    :class:`BadInput`, :class:`ValidationFailed`), with its load-log row.
    """
    years = reference_years(year, first_year)
    report = start_run(settings.warehouse_uri, PIPELINE)
    wh = settings.warehouse_uri

    def judge_regions(step: skeleton.Step) -> skeleton.Judgement:
        return skeleton.Judgement(batches=[(dim_region_batch(settings, step.batch_id), [])])

    def judge_api_tables(step: skeleton.Step) -> skeleton.Judgement:
        if offline_snapshot:
            population, key_figures = read_snapshot(settings, years)
        else:
            population, key_figures = fetch_live(settings, years, policy=policy, scb_cell_limit=scb_cell_limit)
        step.sources = [*population.sources, *key_figures.sources]
        step.table, step.rows_in = "population", population.rows_in
        pop_rows = population_frame(population.rows)
        # Merge by year: each fetched year replaces that year wholesale (a revision by SCB, or a region
        # whose row is now quarantined, leaves no stale value), while years outside this run's range
        # (`--year 2018` to reload a few years) stay as published.
        pop_batch = checked_batch(
            "population",
            pop_rows,
            population.rejected,
            population.rows_in,
            warehouse_uri=wh,
            batch_id=step.batch_id,
            replace_keys=[(int(y),) for y in pop_rows["year"].unique()],
            extra_warnings=population.warnings,
        )
        step.table, step.rows_in = "kolada_kpi", 0
        # Full replace: the table is by definition "the configured KPI ids"; a KPI dropped from the
        # configuration must disappear, and an empty list gives an empty table. The fetch is
        # all-or-nothing, so a full replace never publishes a partial table.
        kpi_batch = checked_batch(
            "kolada_kpi",
            kolada_frame(key_figures.rows),
            key_figures.rejected,
            key_figures.rows_in,
            warehouse_uri=wh,
            batch_id=step.batch_id,
            extra_warnings=key_figures.warnings,
        )
        report.messages.extend(f"warning: {w}" for w in (*population.warnings, *key_figures.warnings))
        return skeleton.Judgement(batches=[(pop_batch, population.sources), (kpi_batch, key_figures.sources)])

    steps = [
        skeleton.Step("region dimension", report.batch_id, judge_regions),
        skeleton.Step("population and key figures", report.batch_id, judge_api_tables),
    ]
    return skeleton.execute(settings, report, skeleton.Plan(steps=steps))
