"""Kolada API v3: SKR's key figures (KPIs) for the 21 regions.

Owns the data URL ``/data/kpi/{kpi_ids}/municipality/{ids}/year/{years}``
(comma lists of at most 25 items each, so longer lists are chunked),
``per_page`` (at most 5000), following ``next_url`` — or ``next_page``,
which older servers send — until it is absent, and mapping each
``{kpi, municipality, period, values: [{gender, status, value}]}``
record to rows ``kpi_id, region_code, year, gender, value, status``.

Kolada answers an unknown KPI id with an empty list rather than an error,
so a configured id that brings back nothing is reported as a warning.

Kolada v3 keeps withdrawn values in its answers, marked ``isdeleted: true``
(on a record, or on one value of it). They are not current key figures:
they are dropped, as rKolada does by default, and counted
(``ApiRows.withdrawn``, :func:`withdrawn_warning`) so the load log says how
many. They are not input rows either: the API states they no longer exist,
so they count in neither rows in, loaded nor quarantined.

``next_url`` is absolute and names the public host and root
(``https://api.kolada.se/v3/…``); the client rebases it onto the configured
base, path prefix included (:data:`PUBLIC_BASE_URL`), so a mirror or proxy
at ``…/mirror/kolada/v3`` is followed page after page.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from etl import regions
from etl.errors import BadInput, ConfigError
from etl.sources.http import ApiClient, ApiRows, RetryPolicy, compact_json

log = logging.getLogger(__name__)

PUBLIC_BASE_URL = "https://api.kolada.se/v3"  # the root Kolada's own absolute links start with
MAX_LIST = 25  # ids per comma list in one URL (Kolada's limit)
MAX_PER_PAGE = 5000
DEFAULT_POLICY = RetryPolicy()

_REGION_ID = re.compile(r"^00\d{2}$")
_YEAR = re.compile(r"^\d{4}$")


def chunked(items: Sequence, size: int = MAX_LIST) -> list[list]:
    """``items`` in lists of at most ``size``, order kept."""
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]


def data_path(kpi_ids: Sequence[str], municipality_ids: Sequence[str], years: Sequence[int]) -> str:
    for name, items in (("KPI ids", kpi_ids), ("municipality ids", municipality_ids), ("years", years)):
        if not items or len(items) > MAX_LIST:
            raise ConfigError(f"Kolada: {len(items)} {name} in one request; 1 to {MAX_LIST} allowed")
    return (
        f"/data/kpi/{','.join(kpi_ids)}/municipality/{','.join(municipality_ids)}"
        f"/year/{','.join(str(y) for y in years)}"
    )


def next_link(page: Any) -> str | None:
    """The next page's URL: v3's ``next_url``, or ``next_page`` from older servers; None on the last page."""
    if not isinstance(page, dict):
        return None
    return page.get("next_url") or page.get("next_page") or None


def _withdrawn(item: Any) -> bool:
    """Kolada's ``isdeleted`` flag: JSON ``true`` (or ``"true"``/``1`` from a lenient mirror)."""
    flag = item.get("isdeleted") if isinstance(item, dict) else None
    return flag is True or flag == 1 or (isinstance(flag, str) and flag.strip().lower() == "true")


def withdrawn_warning(count: int) -> list[str]:
    """The load-log line for ``count`` withdrawn values dropped (none when there were none)."""
    if not count:
        return []
    message = f"{count} withdrawn Kolada record(s) dropped (isdeleted: true; not current key figures)"
    log.info("%s", message)
    return [message]


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"value {str(value)[:40]!r} is not a number")
    try:
        number = float(value)  # a JSON integer past float's range (1e309…) overflows here
    except OverflowError:
        raise BadInput(f"value {str(value)[:40]!r}… is too large") from None
    if not math.isfinite(number):
        raise BadInput(f"value {value!r} is not a finite number")
    return number


def _year(period: Any) -> int:
    text = str(period).strip() if period is not None and not isinstance(period, bool) else ""
    if not _YEAR.match(text):
        raise BadInput(f"period {str(period)[:20]!r} is not a year")
    return int(text)


def _region(municipality: Any) -> str:
    text = str(municipality).strip() if municipality is not None else ""
    if not _REGION_ID.match(text):
        raise BadInput(f"municipality {text[:20]!r} is not a region id (0001…0025)")
    return regions.resolve_region(text)


def decode_page(
    doc: Any,
    source: str,
    *,
    sha256: str = "",
    kpi_ids: Iterable[str] | None = None,
    years: Iterable[int] | None = None,
    seen_kpis: set[str] | None = None,
) -> ApiRows:
    """Rows from one Kolada data page; records that break the shape are rejected with a reason.

    ``kpi_ids`` / ``years`` keep only those (a recorded snapshot may hold
    more than this run asks for; records outside the request are not input
    of this run). ``seen_kpis`` collects the KPI ids the page mentions.
    Withdrawn values (``isdeleted: true`` on the record or the value) are
    counted in ``withdrawn`` — one per value that would have been a row —
    and neither kept nor rejected.
    """
    # Size: one check per field of Kolada's answer that can be missing or malformed.
    if not isinstance(doc, dict) or not isinstance(doc.get("values"), list):
        raise BadInput(f"Kolada: {source} is not a data page (no 'values' list)")
    keep_kpis = set(kpi_ids) if kpi_ids is not None else None
    keep_years = {str(int(y)) for y in years} if years is not None else None
    out = ApiRows(sources=[(source, sha256)])
    row_number = 0
    for record in doc["values"]:
        kpi = record.get("kpi") if isinstance(record, dict) else None
        period = record.get("period") if isinstance(record, dict) else None
        if keep_kpis is not None and kpi not in keep_kpis:
            continue
        if keep_years is not None and str(period).strip() not in keep_years:
            continue
        if isinstance(kpi, str) and seen_kpis is not None:
            seen_kpis.add(kpi)
        points = record.get("values") if isinstance(record, dict) else None
        if _withdrawn(record):
            out.withdrawn += len(points) if isinstance(points, list) and points else 1
            continue
        if not isinstance(points, list):
            row_number += 1
            out.rejected.append(
                {
                    "source_file": source,
                    "row_number": row_number,
                    "raw": compact_json(record),
                    "reason": "Kolada: record has no 'values' list",
                }
            )
            continue
        context = {k: record.get(k) for k in ("kpi", "municipality", "period")}
        for point in points:
            if _withdrawn(point):
                out.withdrawn += 1
                continue
            row_number += 1
            origin = {
                "source_file": source,
                "row_number": row_number,
                "raw": compact_json({**context, **(point if isinstance(point, dict) else {"point": point})}),
            }
            try:
                if not isinstance(point, dict):
                    raise BadInput("value entry is not an object")
                if not isinstance(kpi, str) or not kpi.strip():
                    raise BadInput("kpi id is missing")
                gender = point.get("gender")
                if gender is None or not str(gender).strip():
                    raise BadInput("gender is missing")
                status = point.get("status")
                row = {
                    "kpi_id": kpi.strip(),
                    "region_code": _region(record.get("municipality")),
                    "year": _year(period),
                    # Validated against T/K/M by the suite, so an odd value is quarantined, not guessed.
                    "gender": str(gender).strip(),
                    "value": _number(point.get("value")),
                    "status": (str(status).strip() or None) if status is not None else None,
                }
            except BadInput as exc:
                out.rejected.append({**origin, "reason": f"Kolada: {exc}"})
                continue
            out.rows.append({**row, **origin})
    return out


def missing_kpis_warning(kpi_ids: Sequence[str], seen: set[str]) -> list[str]:
    missing = [k for k in kpi_ids if k not in seen]
    if not missing:
        return []
    message = (
        f"Kolada returned nothing for KPI id(s) {', '.join(missing)} "
        "(unknown id, or no data for these regions and years)"
    )
    log.warning("%s", message)
    return [message]


def fetch_kpis(
    base_url: str,
    kpi_ids: Sequence[str],
    years: Sequence[int],
    *,
    policy: RetryPolicy | None = None,
    per_page: int = MAX_PER_PAGE,
    region_codes: Sequence[str] = regions.REGION_CODES,
) -> ApiRows:
    """Every value of ``kpi_ids`` for the regions and years; an empty KPI list is valid and asks nothing.

    Fetches every chunk and page before returning; any failure raises and
    no partial result escapes.
    """
    kpi_ids = list(dict.fromkeys(kpi_ids))
    if not kpi_ids:
        return ApiRows()
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ConfigError(f"Kolada per_page must be 1..{MAX_PER_PAGE}, not {per_page}")
    municipality_ids = [regions.BY_CODE[c].kolada_id for c in region_codes]
    years = sorted({int(y) for y in years})
    result = ApiRows()
    seen: set[str] = set()
    with ApiClient(base_url, name="Kolada", policy=policy or DEFAULT_POLICY, public_base=PUBLIC_BASE_URL) as client:
        for kpis in chunked(kpi_ids):
            for munis in chunked(municipality_ids):
                for year_chunk in chunked(years):
                    path = data_path(kpis, munis, year_chunk)
                    for page in client.pages(path, params={"per_page": per_page}, next_link=next_link):
                        result.extend(decode_page(page.data, page.url, sha256=page.sha256, seen_kpis=seen))
    result.warnings.extend(missing_kpis_warning(kpi_ids, seen))
    result.warnings.extend(withdrawn_warning(result.withdrawn))
    return result
