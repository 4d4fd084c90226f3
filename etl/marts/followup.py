"""The follow-up marts, computed from the source tables as pandas frames.

Pure computation: frames in (the business columns of the published source
tables), frames out (``followup_region_year``, ``followup_national_year`` and
the monthly per-1 000 series the report draws). No I/O here, so the rules
can be read and tested in one place.

Rules, the same at region and national level:

* Every region in ``dim_region`` gets a row for every year found in any
  source from 2016 on, so "21 rows a year" holds and a missing report is a
  row of nulls, not a missing row.
* Null means unknown. A region that did not report has null flags, spend
  and initiative counts (not ``False``/0); a share or a per-1 000 figure is
  null when its numerator or denominator is.
* Per-1 000 figures divide by the population of ``population_year_used``:
  the year itself, or the latest earlier year with a count (SCB publishes a
  year's population in the following spring, so the latest months would
  otherwise have no rate at all).
* Monthly means leave suppressed months out and say how many months they
  are over (``*_months``); December figures are null when December is
  missing or suppressed.
* Year-on-year changes look up ``year - 1`` explicitly (not the previous
  row), so a gap in the years gives null rather than a two-year change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from etl.schemas.followup import AREAS, COUNTED_FLAGS, SERVICES
from etl.sources import ehealth_spec

FIRST_YEAR = 2016

# (service, metric) in ehealth_adoption → column prefix in the marts: the analysts' series of the exports.
RATE_METRICS: dict[tuple[str, str], str] = {(s.export.service, s.metric): s.prefix for s in ehealth_spec.SERIES}
CHANGE_OF = tuple(s.prefix for s in ehealth_spec.SERIES if s.change)  # prefixes that get a year-on-year change
KEY = ["region_code", "year"]


@dataclass
class Marts:
    region_year: pd.DataFrame
    national_year: pd.DataFrame
    monthly: pd.DataFrame  # region_code ('00' = Riket), month, series, per_1000: what the report draws
    warnings: list[str] = field(default_factory=list)


def _ratio(numerator: pd.Series, denominator: pd.Series, scale: float = 1.0) -> pd.Series:
    """numerator / denominator × scale, null when either is null or the denominator is not positive."""
    num = pd.to_numeric(numerator).astype("Float64")
    den = pd.to_numeric(denominator).astype("Float64")
    ok = num.notna() & den.notna() & (den > 0)
    out = pd.Series(pd.NA, index=num.index, dtype="Float64")
    out[ok] = num[ok] / den[ok] * scale
    return out


def _year_int(frame: pd.DataFrame, column: str = "year") -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype("int64")
    return frame


def _previous(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """The values of ``columns`` for year - 1, aligned to each row of ``frame``."""
    prev = frame[keys + columns].copy()
    prev["year"] = prev["year"] + 1
    return frame[keys].merge(prev, on=keys, how="left")[columns]


def _years(sources: dict[str, pd.DataFrame]) -> list[int]:
    found: set[int] = set()
    for name, column in (
        ("population", "year"),
        ("county_report", "report_year"),
        ("county_initiative", "report_year"),
        ("county_ehealth_service", "report_year"),
        ("ehealth_adoption", "year"),
        ("ehealth_adoption_national", "year"),
    ):
        frame = sources.get(name)
        if frame is not None and len(frame):
            found.update(int(y) for y in frame[column].dropna().unique())
    return sorted(y for y in found if y >= FIRST_YEAR)


def _unknown_regions(sources: dict[str, pd.DataFrame], known: set[str]) -> list[str]:
    warnings = []
    for name, frame in sorted(sources.items()):
        if name == "dim_region" or frame is None or "region_code" not in frame.columns or not len(frame):
            continue
        unknown = sorted(set(frame["region_code"].dropna()) - known)
        if unknown:
            rows = int(frame["region_code"].isin(unknown).sum())
            warnings.append(
                f"{name}: {rows} row(s) for region code(s) not in dim_region left out of the mart: {unknown[:5]}"
            )
    return warnings


def _population_used(population: pd.DataFrame, grid: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """grid (by + year) → population_year_used and the denominator ``_pop_used`` (as-of, backwards)."""
    known = population.dropna(subset=["population"])
    known = known[known["population"] > 0]
    left = grid[by + ["year"]].copy()
    left["_order"] = range(len(left))
    if not len(known):
        left["population_year_used"] = pd.array([pd.NA] * len(left), dtype="Int64")
        left["_pop_used"] = pd.array([pd.NA] * len(left), dtype="Int64")
        return left.sort_values("_order").drop(columns="_order").reset_index(drop=True)
    right = known[by + ["year", "population"]].rename(columns={"population": "_pop_used"}).copy()
    right["population_year_used"] = right["year"]
    merged = pd.merge_asof(
        left.sort_values("year"), right.sort_values("year"), on="year", by=by or None, direction="backward"
    )
    merged = merged.sort_values("_order").drop(columns="_order").reset_index(drop=True)
    merged["population_year_used"] = merged["population_year_used"].astype("Int64")
    merged["_pop_used"] = merged["_pop_used"].astype("Int64")
    return merged


def _adoption(adoption: pd.DataFrame, denominators: pd.DataFrame, by: list[str]):
    """Monthly per-1 000 series and the yearly figures (mean, December, months, units share) per ``by`` + year."""
    keys = by + ["year"]
    wanted = set(RATE_METRICS) | {("web_booking", "units_connected"), ("web_booking", "units_total")}
    pairs = adoption["service"].astype(str) + "/" + adoption["metric"].astype(str)
    rows = adoption[pairs.isin({f"{s}/{m}" for s, m in wanted})].copy()
    rows = _year_int(rows)
    rows["month"] = pd.to_datetime(rows["month"])
    rows = rows.merge(denominators[keys + ["_pop_used"]], on=keys, how="left")
    # Suppressed cells are null by contract; a cell flagged suppressed with a value is not trusted either.
    rows["value"] = rows["value"].astype("Int64").where(~rows["suppressed"].astype("boolean").fillna(False))
    rows["per_1000"] = _ratio(rows["value"], rows["_pop_used"], 1000.0)
    rows["is_dec"] = rows["month"].dt.month == 12

    yearly = denominators[keys].copy()
    monthly_parts = []
    for (service, metric), prefix in RATE_METRICS.items():
        part = rows[(rows["service"] == service) & (rows["metric"] == metric)]
        monthly_parts.append(part[by + ["month", "per_1000"]].assign(series=prefix))
        stats = part.groupby(keys, sort=False).agg(mean=("per_1000", "mean"), months=("value", "count")).reset_index()
        dec = part[part["is_dec"]][keys + ["per_1000"]].rename(columns={"per_1000": "dec"})
        stats = stats.merge(dec, on=keys, how="left")
        stats = stats.rename(
            columns={"mean": f"{prefix}_per_1000_mean", "dec": f"{prefix}_per_1000_dec", "months": f"{prefix}_months"}
        )
        yearly = yearly.merge(stats, on=keys, how="left")
        yearly[f"{prefix}_per_1000_mean"] = yearly[f"{prefix}_per_1000_mean"].astype("Float64")
        yearly[f"{prefix}_per_1000_dec"] = yearly[f"{prefix}_per_1000_dec"].astype("Float64")
        yearly[f"{prefix}_months"] = yearly[f"{prefix}_months"].astype("Int64")

    def december(metric: str) -> pd.DataFrame:
        part = rows[(rows["service"] == "web_booking") & (rows["metric"] == metric) & rows["is_dec"]]
        return part[keys + ["value"]].rename(columns={"value": metric})

    units = (
        yearly[keys]
        .merge(december("units_connected"), on=keys, how="left")
        .merge(december("units_total"), on=keys, how="left")
    )
    yearly["web_booking_units_connected_share_dec"] = _ratio(units["units_connected"], units["units_total"])

    for prefix in CHANGE_OF:
        col = f"{prefix}_per_1000_mean"
        previous = _previous(yearly, keys, [col])[col]
        yearly[f"{prefix}_per_1000_change"] = (yearly[col] - previous.astype("Float64")).astype("Float64")
    monthly = pd.concat(monthly_parts, ignore_index=True) if monthly_parts else pd.DataFrame()
    return yearly, monthly


def _services(services: pd.DataFrame, grid: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    frame = grid[KEY].copy()
    services = _year_int(services.rename(columns={"report_year": "year"}))
    unknown = sorted(set(services["service"]) - set(SERVICES))
    warnings = [f"county_ehealth_service: unknown service(s) left out of the mart: {unknown}"] if unknown else []
    for service in SERVICES:
        part = services[services["service"] == service][KEY + ["status", "implemented_on"]]
        part = part.rename(columns={"status": f"{service}_status", "implemented_on": f"{service}_implemented_on"})
        frame = frame.merge(part, on=KEY, how="left")
    return frame, warnings


def _initiatives(initiatives: pd.DataFrame, grid: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    frame = grid[KEY].copy()
    rows = _year_int(initiatives.rename(columns={"report_year": "year"}))
    unknown = sorted(set(rows["area"]) - set(AREAS))
    warnings = [f"county_initiative: unknown area(s) left out of the per-area counts: {unknown}"] if unknown else []
    new = rows["new_due_to_grant"].astype("boolean")
    rows = rows.assign(_one=1, _new=new.fillna(False).astype(int), _unknown=new.isna().astype(int))
    total = (
        rows.groupby(KEY)
        .agg(
            initiatives_total=("_one", "sum"),
            initiatives_new_due_to_grant=("_new", "sum"),
            initiatives_new_unknown=("_unknown", "sum"),
        )
        .reset_index()
    )
    for area in AREAS:
        per = (
            rows[rows["area"] == area]
            .groupby(KEY)
            .agg(**{f"initiatives_{area}": ("_one", "sum"), f"initiatives_new_{area}": ("_new", "sum")})
            .reset_index()
        )
        frame = frame.merge(per, on=KEY, how="left")
    frame = frame.merge(total, on=KEY, how="left")
    return frame, warnings


def build_region_year(sources: dict[str, pd.DataFrame], years: list[int]):
    regions = sources["dim_region"][["region_code", "region_name"]].sort_values("region_code")
    grid = regions.merge(pd.DataFrame({"year": years}, dtype="int64"), how="cross")
    warnings: list[str] = []

    population = _year_int(sources["population"][["region_code", "year", "population"]])
    population["population"] = population["population"].astype("Int64")
    out = grid.merge(population, on=KEY, how="left")
    previous = out[KEY].merge(population.assign(year=population["year"] + 1), on=KEY, how="left")["population"]
    out["population_change"] = (out["population"] - previous).astype("Int64")
    denominators = _population_used(population, grid, ["region_code"])
    out["population_year_used"] = denominators["population_year_used"]
    out["_pop_used"] = denominators["_pop_used"]

    report = _year_int(sources["county_report"].rename(columns={"report_year": "year"}))
    report_cols = ["grant_sek", *(f"spend_{a}_sek" for a in AREAS), *COUNTED_FLAGS]
    out = out.merge(report[KEY + report_cols].assign(_report=True), on=KEY, how="left")

    services, more = _services(sources["county_ehealth_service"], grid)
    warnings += more
    initiatives, more = _initiatives(sources["county_initiative"], grid)
    warnings += more
    out = out.merge(services, on=KEY, how="left").merge(initiatives, on=KEY, how="left")
    # All three tables come from the one county report submission: any of them means the region reported.
    listed = pd.concat(
        [sources[t][["region_code", "report_year"]] for t in ("county_initiative", "county_ehealth_service")]
    )
    listed = _year_int(listed.rename(columns={"report_year": "year"})).drop_duplicates().assign(_listed=True)
    out = out.merge(listed, on=KEY, how="left")
    out["reported"] = out["_report"].notna() | out["_listed"].notna()
    for col in [c for c in out.columns if c.startswith("initiatives_")]:
        # A reporting region with no initiative in an area has 0 there; a region that did not report, null.
        out[col] = out[col].astype("Int64").fillna(0).where(out["reported"]).astype("Int64")

    out["grant_sek"] = out["grant_sek"].astype("Int64")
    out["grant_per_inhabitant"] = _ratio(out["grant_sek"], out["_pop_used"])
    spend = [f"spend_{a}_sek" for a in AREAS]
    for col in spend:
        out[col] = out[col].astype("Int64")
    out["spend_total_sek"] = out[spend].sum(axis=1, min_count=len(spend)).astype("Int64")
    out.loc[out[spend].isna().any(axis=1), "spend_total_sek"] = pd.NA
    for area in AREAS:
        out[f"share_{area}"] = _ratio(out[f"spend_{area}_sek"], out["grant_sek"])
    out["share_spent"] = _ratio(out["spend_total_sek"], out["grant_sek"])
    for flag in COUNTED_FLAGS:
        out[flag] = out[flag].astype("boolean")

    yearly, monthly = _adoption(sources["ehealth_adoption"], out[KEY + ["_pop_used"]], ["region_code"])
    out = out.merge(yearly, on=KEY, how="left")
    return out.drop(columns=["_report", "_listed"]), monthly, warnings


def build_national_year(sources: dict[str, pd.DataFrame], region_year: pd.DataFrame, years: list[int]):
    # Size: the national column families one after another (money, counts, adoption), in the mart's column
    # order.
    regions_total = len(sources["dim_region"])
    grid = pd.DataFrame({"year": years}, dtype="int64")
    by_year = region_year.groupby("year", sort=True)

    # National population only when every region has a count: a partial sum would look like a real total.
    population = _year_int(sources["population"][["region_code", "year", "population"]])
    counted = (
        population.dropna(subset=["population"])
        .groupby("year")
        .agg(population=("population", "sum"), regions=("population", "count"))
        .reset_index()
    )
    complete = counted[counted["regions"] == regions_total][["year", "population"]]
    complete = complete.assign(population=complete["population"].astype("Int64"))
    out = grid.merge(complete, on="year", how="left")
    out["population_change"] = (
        out["population"]
        - out[["year"]].merge(complete.assign(year=complete["year"] + 1), on="year", how="left")["population"]
    ).astype("Int64")
    denominators = _population_used(complete, grid, [])
    out["population_year_used"] = denominators["population_year_used"]
    out["_pop_used"] = denominators["_pop_used"]

    out["regions_total"] = regions_total
    out = out.merge(by_year["reported"].sum().rename("regions_reported").reset_index(), on="year", how="left")

    def pairwise_sum(num: str, den: str) -> pd.DataFrame:
        both = region_year[region_year[num].notna() & region_year[den].notna()]
        return both.groupby("year").agg(_num=(num, "sum"), _den=(den, "sum")).reset_index()

    sums = by_year[["grant_sek", *(f"spend_{a}_sek" for a in AREAS)]].sum(min_count=1).reset_index()
    out = out.merge(sums, on="year", how="left")
    spend_total = pairwise_sum("spend_total_sek", "spend_total_sek")[["year", "_num"]].rename(
        columns={"_num": "spend_total_sek"}
    )
    out = out.merge(spend_total, on="year", how="left")
    per_inhabitant = pairwise_sum("grant_sek", "_pop_used")
    out["grant_per_inhabitant"] = (
        out[["year"]].merge(per_inhabitant, on="year", how="left").pipe(lambda f: _ratio(f["_num"], f["_den"]))
    )
    for area, spend in [*((a, f"spend_{a}_sek") for a in AREAS), ("spent", "spend_total_sek")]:
        pair = out[["year"]].merge(pairwise_sum(spend, "grant_sek"), on="year", how="left")
        out[f"share_{area}"] = _ratio(pair["_num"], pair["_den"])

    for flag in COUNTED_FLAGS:
        answered = by_year[flag].count().rename(f"regions_answered_{flag}")
        yes = by_year[flag].sum().rename(f"regions_{flag}")
        out = out.merge(pd.concat([yes, answered], axis=1).reset_index(), on="year", how="left")
        out[f"regions_{flag}"] = out[f"regions_{flag}"].astype("Int64").where(out[f"regions_answered_{flag}"] > 0)
    for service in SERVICES:
        status = region_year[f"{service}_status"]
        counts = (
            region_year.assign(
                _impl=(status == "implemented").fillna(False).astype(int), _rep=status.notna().astype(int)
            )
            .groupby("year")
            .agg(**{f"regions_{service}_implemented": ("_impl", "sum"), f"regions_{service}_reported": ("_rep", "sum")})
        )
        out = out.merge(counts.reset_index(), on="year", how="left")
        out[f"regions_{service}_implemented"] = (
            out[f"regions_{service}_implemented"].astype("Int64").where(out[f"regions_{service}_reported"] > 0)
        )

    national = sources["ehealth_adoption_national"]
    yearly, monthly = _adoption(national, out[["year", "_pop_used"]], [])
    out = out.merge(yearly, on="year", how="left")

    initiative_cols = [c for c in region_year.columns if c.startswith("initiatives_")]
    out = out.merge(by_year[initiative_cols].sum(min_count=1).reset_index(), on="year", how="left")
    return out, monthly.assign(region_code="00")


def build(sources: dict[str, pd.DataFrame]) -> Marts:
    """Both marts from the source frames (each with at least its business columns; may be empty)."""
    known = set(sources["dim_region"]["region_code"])
    warnings = _unknown_regions(sources, known)
    # From here on every region-level source holds only the regions of the dimension (reported above).
    sources = {
        name: (
            frame[frame["region_code"].isin(known)]
            if "region_code" in frame.columns and name != "dim_region"
            else frame
        )
        for name, frame in sources.items()
    }
    years = _years(sources)
    region_year, monthly, more = build_region_year(sources, years)
    national_year, national_monthly = build_national_year(sources, region_year, years)
    monthly = pd.concat([monthly, national_monthly], ignore_index=True)
    return Marts(
        region_year.drop(columns=["_pop_used"]), national_year.drop(columns=["_pop_used"]), monthly, warnings + more
    )
