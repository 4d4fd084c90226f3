"""SCB's PxWeb API v2: population per region and year from table TAB638.

Owns the query (Region through the county codelist ``vs_RegionLän07``,
ContentsCode ``BE0101N1`` "Folkmängd", Tid years; every other variable of
the table eliminated, i.e. summed by SCB), the metadata check that says
which years SCB has published, splitting queries under the per-call cell
limit, and decoding json-stat2 answers into rows ``region_code, year,
population``.

The json-stat2 decoder is generic: it reads ``id``/``size``/``dimension``
and walks ``value`` row-major, so it never depends on the order SCB
happens to list the dimensions in. Cells SCB marks missing (a null value,
or a status symbol such as ``..``) become null, never 0.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from etl import regions
from etl.errors import BadInput, ConfigError
from etl.sources.http import ApiClient, ApiRows, RetryPolicy, compact_json
from etl.swedish import is_suppressed, parse_count

log = logging.getLogger(__name__)

TABLE = "TAB638"
LANG = "sv"
REGION = "Region"
CONTENTS = "ContentsCode"
TIME = "Tid"
REGION_CODELIST = "vs_RegionLän07"
POPULATION = "BE0101N1"  # "Folkmängd": population on 31 December
# PxWeb at SCB answers at most ~100 000 cells per call (contract §3).
CELL_LIMIT = 100_000
# ~10 calls per 10 s per IP: pace ourselves just under it rather than collect 429s.
DEFAULT_POLICY = RetryPolicy(min_interval=1.1)
# PxWeb status symbols meaning "no figure here" ('.' = logically impossible,
# '..' = not available / too uncertain, '-' and dashes = nothing to report).
NO_FIGURE_STATUS = frozenset({"..", ".", "...", "-", "–", "—"})
# Guard against a malformed size list making us walk billions of cells.
MAX_CELLS_DECODED = 10_000_000

_YEAR = re.compile(r"^\d{4}$")
_COUNTY = re.compile(r"^\d{2}$")


# --------------------------------------------------------------------------- json-stat2


@dataclass(frozen=True)
class Cell:
    index: int  # position in the flat value array (row-major over id/size)
    coords: dict[str, str]  # dimension id → category code
    value: Any
    status: str | None


@dataclass(frozen=True)
class JsonStat:
    ids: tuple[str, ...]
    codes: dict[str, list[str]]  # dimension id → category codes in index order
    values: Any  # list (dense) or dict (sparse, "index" → value)
    status: Any  # None, one str for all cells, a list, or a dict "index" → str

    @property
    def size(self) -> int:
        return math.prod(len(self.codes[d]) for d in self.ids)

    def _value(self, i: int) -> Any:
        if isinstance(self.values, list):
            return self.values[i]
        return self.values.get(str(i))

    def _status(self, i: int) -> str | None:
        if self.status is None:
            return None
        if isinstance(self.status, str):
            return self.status
        if isinstance(self.status, list):
            return self.status[i] if i < len(self.status) else None
        return self.status.get(str(i))

    def cells(self) -> Iterator[Cell]:
        # itertools.product varies its last argument fastest: exactly
        # json-stat's row-major order over ``id``.
        axes = [self.codes[d] for d in self.ids]
        for i, combo in enumerate(itertools.product(*axes)):
            yield Cell(i, dict(zip(self.ids, combo, strict=True)), self._value(i), self._status(i))


def _category_codes(dim_id: str, dim: Any) -> list[str]:
    if not isinstance(dim, dict):
        raise BadInput(f"json-stat2: dimension {dim_id!r} is not an object")
    category = dim.get("category")
    if not isinstance(category, dict):
        raise BadInput(f"json-stat2: dimension {dim_id!r} has no category")
    index = category.get("index")
    if isinstance(index, list):
        codes = [str(c) for c in index]
    elif isinstance(index, dict):
        try:
            ordered = sorted(index.items(), key=lambda kv: int(kv[1]))
        except (TypeError, ValueError):
            raise BadInput(f"json-stat2: dimension {dim_id!r} has a non-integer category index") from None
        if [int(pos) for _, pos in ordered] != list(range(len(ordered))):
            raise BadInput(f"json-stat2: dimension {dim_id!r} category index is not 0..n-1")
        codes = [str(code) for code, _ in ordered]
    elif index is None:
        # json-stat allows omitting the index of a single-category dimension.
        labels = category.get("label")
        if isinstance(labels, dict) and len(labels) == 1:
            codes = [str(next(iter(labels)))]
        else:
            raise BadInput(f"json-stat2: dimension {dim_id!r} has no category index")
    else:
        raise BadInput(f"json-stat2: dimension {dim_id!r} has an unreadable category index")
    if len(set(codes)) != len(codes):
        raise BadInput(f"json-stat2: dimension {dim_id!r} lists a category twice")
    return codes


def decode_jsonstat2(doc: Any, *, require_values: bool = True) -> JsonStat:
    """A json-stat2 dataset → :class:`JsonStat`; :class:`BadInput` naming what is wrong."""
    if not isinstance(doc, dict):
        raise BadInput("json-stat2: the answer is not a JSON object")
    if doc.get("class", "dataset") != "dataset":
        raise BadInput(f"json-stat2: class is {doc.get('class')!r}, expected 'dataset'")
    ids, sizes, dims = doc.get("id"), doc.get("size"), doc.get("dimension")
    if not isinstance(ids, list) or not isinstance(sizes, list) or not isinstance(dims, dict):
        raise BadInput("json-stat2: id, size or dimension is missing")
    if len(ids) != len(sizes) or len(set(ids)) != len(ids):
        raise BadInput(f"json-stat2: id {ids} does not match size {sizes}")
    codes: dict[str, list[str]] = {}
    for dim_id, size in zip(ids, sizes, strict=True):
        if dim_id not in dims:
            raise BadInput(f"json-stat2: dimension {dim_id!r} is listed in id but not described")
        codes[dim_id] = _category_codes(dim_id, dims[dim_id])
        if not isinstance(size, int) or len(codes[dim_id]) != size:
            raise BadInput(f"json-stat2: dimension {dim_id!r} has {len(codes[dim_id])} categories but size {size}")
    stat = JsonStat(tuple(ids), codes, doc.get("value"), doc.get("status"))
    if stat.size > MAX_CELLS_DECODED:
        raise BadInput(f"json-stat2: {stat.size} cells is more than one answer can hold")
    if not require_values:  # metadata: the dimensions are the answer, value is empty
        return JsonStat(stat.ids, stat.codes, [], None)
    values = stat.values
    if isinstance(values, list):
        if len(values) != stat.size:
            raise BadInput(f"json-stat2: {len(values)} values for {stat.size} cells (size {sizes})")
    elif not isinstance(values, dict):
        raise BadInput("json-stat2: value is neither a list nor an object")
    if isinstance(stat.status, list) and len(stat.status) != stat.size:
        raise BadInput(f"json-stat2: {len(stat.status)} status entries for {stat.size} cells")
    return stat


# --------------------------------------------------------------------------- queries


def build_query(region_codes: Sequence[str], years: Sequence[int]) -> dict:
    """The POST body for TAB638: counties via the codelist, population, the given years."""
    return {
        "selection": [
            {"variableCode": REGION, "codelist": REGION_CODELIST, "valueCodes": list(region_codes)},
            {"variableCode": CONTENTS, "valueCodes": [POPULATION]},
            {"variableCode": TIME, "valueCodes": [str(y) for y in years]},
        ]
    }


def split_selection(
    region_codes: Sequence[str], years: Sequence[int], cell_limit: int = CELL_LIMIT
) -> list[tuple[list[str], list[int]]]:
    """(regions, years) pieces whose cell count (regions × 1 content × years) stays within ``cell_limit``.

    Years are split first (whole regions per call keep each answer's
    regions complete); regions only if even one year is too many cells.
    """
    if cell_limit < 1:
        raise ConfigError(f"SCB cell limit must be at least 1, not {cell_limit}")
    region_codes, years = list(region_codes), list(years)
    if not region_codes or not years:
        return []
    if len(region_codes) <= cell_limit:
        per_call = max(1, cell_limit // len(region_codes))
        return [(region_codes, years[i : i + per_call]) for i in range(0, len(years), per_call)]
    return [
        (region_codes[i : i + cell_limit], [year]) for year in years for i in range(0, len(region_codes), cell_limit)
    ]


def _dimension_extension(doc: dict, dim_id: str) -> dict:
    dim = (doc.get("dimension") or {}).get(dim_id) or {}
    ext = dim.get("extension") if isinstance(dim, dict) else None
    return ext if isinstance(ext, dict) else {}


def usable_years(metadata: Any, years: Sequence[int]) -> tuple[list[int], list[str]]:
    """Check TAB638's metadata still fits our query; return the requested years SCB has published.

    A requested year SCB has not published yet (population on 31 December
    appears the following spring) is left out with a warning, not an error.
    """
    stat = decode_jsonstat2(metadata, require_values=False)
    for needed in (REGION, CONTENTS, TIME):
        if needed not in stat.codes:
            raise BadInput(f"SCB {TABLE}: metadata has no variable {needed!r} (dimensions: {list(stat.ids)})")
    if POPULATION not in stat.codes[CONTENTS]:
        raise BadInput(f"SCB {TABLE}: ContentsCode {POPULATION} is gone (has {stat.codes[CONTENTS][:5]})")
    for dim_id in stat.ids:
        if dim_id in (REGION, CONTENTS, TIME):
            continue
        if _dimension_extension(metadata, dim_id).get("elimination") is False:
            raise BadInput(f"SCB {TABLE}: variable {dim_id!r} can no longer be eliminated; the query needs updating")
    region_ext = _dimension_extension(metadata, REGION)
    codelists = region_ext.get("codelists", region_ext.get("codeLists"))
    if isinstance(codelists, list) and codelists:
        offered = {str(c.get("id")) for c in codelists if isinstance(c, dict)}
        if REGION_CODELIST not in offered:
            raise BadInput(f"SCB {TABLE}: codelist {REGION_CODELIST} is not offered any more ({sorted(offered)[:5]})")
    published = {int(code) for code in stat.codes[TIME] if _YEAR.match(code)}
    wanted = sorted(set(years))
    missing = [y for y in wanted if y not in published]
    warnings = []
    if missing:
        latest = max(published) if published else None
        warnings.append(
            f"SCB {TABLE} has no population for {', '.join(map(str, missing))} yet "
            f"(latest published: {latest}); those years are skipped"
        )
        log.warning("%s", warnings[-1])
    return [y for y in wanted if y in published], warnings


# --------------------------------------------------------------------------- rows


def population_rows(doc: Any, source: str, *, sha256: str = "", years: Sequence[int] | None = None) -> ApiRows:
    """Rows (region_code, year, population + origin) from one TAB638 json-stat2 answer.

    ``years``: keep only these years (a recorded snapshot may hold more
    than was asked for; cells outside the request are not input of this
    run). A cell that is not one of the 21 counties, has an unreadable year
    or a value that is not a count is rejected with its reason.
    """
    stat = decode_jsonstat2(doc)
    for needed in (REGION, TIME):
        if needed not in stat.codes:
            raise BadInput(f"SCB {TABLE}: answer has no dimension {needed!r} (has {list(stat.ids)})")
    for dim_id in stat.ids:
        if dim_id in (REGION, TIME) or len(stat.codes[dim_id]) == 1:
            continue
        # Summing or picking would be a guess; the query eliminates these.
        raise BadInput(
            f"SCB {TABLE}: answer splits {dim_id!r} into {len(stat.codes[dim_id])} values; expected it eliminated"
        )
    if CONTENTS in stat.codes and stat.codes[CONTENTS] != [POPULATION]:
        raise BadInput(f"SCB {TABLE}: answer is for {stat.codes[CONTENTS]}, not {POPULATION}")
    wanted = {int(y) for y in years} if years is not None else None
    out = ApiRows(sources=[(source, sha256)])
    for cell in stat.cells():
        year_code = cell.coords[TIME]
        if wanted is not None and not (_YEAR.match(year_code) and int(year_code) in wanted):
            continue
        raw = compact_json({**cell.coords, "value": cell.value, "status": cell.status})
        origin = {"source_file": source, "row_number": cell.index + 1, "raw": raw}
        try:
            if not _YEAR.match(year_code):
                raise BadInput(f"Tid {year_code!r} is not a year")
            code = cell.coords[REGION]
            if not _COUNTY.match(code):
                raise BadInput(f"region {code!r} is not a county code (codelist {REGION_CODELIST} not applied?)")
            region_code = regions.resolve_region(code)
            status = cell.status.strip() if isinstance(cell.status, str) else None
            if status in NO_FIGURE_STATUS or is_suppressed(cell.value):
                population = None
            else:
                population = parse_count(cell.value)
        except BadInput as exc:
            out.rejected.append({**origin, "reason": f"SCB {TABLE}: {exc}"})
            continue
        out.rows.append({"region_code": region_code, "year": int(year_code), "population": population, **origin})
    return out


def fetch_population(
    base_url: str,
    years: Sequence[int],
    *,
    policy: RetryPolicy | None = None,
    cell_limit: int = CELL_LIMIT,
    check_metadata: bool = True,
) -> ApiRows:
    """Population of the 21 regions for ``years`` from the live API (or whatever ``base_url`` serves).

    Everything is fetched before anything is returned: any failure raises
    (:class:`~etl.errors.SourceUnavailable` / :class:`BadInput`) and no
    partial result escapes.
    """
    wanted = sorted({int(y) for y in years})
    result = ApiRows()
    with ApiClient(base_url, name="SCB", policy=policy or DEFAULT_POLICY, extra_retry_statuses={403}) as client:
        if check_metadata:
            meta = client.get_json(f"/tables/{TABLE}/metadata", {"lang": LANG})
            wanted, warnings = usable_years(meta.data, wanted)
            result.warnings.extend(warnings)
        for region_codes, chunk in split_selection(regions.REGION_CODES, wanted, cell_limit):
            answer = client.post_json(
                f"/tables/{TABLE}/data", build_query(region_codes, chunk), {"lang": LANG, "outputFormat": "json-stat2"}
            )
            # One URL serves every chunk (the query is the body): name the chunk in the lineage.
            source = f"{answer.url}#Region={region_codes[0]}-{region_codes[-1]}&Tid={chunk[0]}-{chunk[-1]}"
            result.extend(population_rows(answer.data, source, sha256=answer.sha256))
    got = {row["year"] for row in result.rows}
    absent = [y for y in wanted if y not in got]
    if absent:
        result.warnings.append(f"SCB {TABLE} returned no population rows for {', '.join(map(str, absent))}")
        log.warning("%s", result.warnings[-1])
    return result
