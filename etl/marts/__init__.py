"""Marts: tables computed from published tables (never from raw input), and the analyst access built on them.

``followup`` computes the follow-up marts, ``access`` builds the DuckDB
file of views, ``exports`` the Excel workbook, ``report`` the HTML report.
This package file stays import-light (no pandas/pyarrow): the DAG reads the
table lists below at parse time.
"""

# Every table the follow-up run reads or exposes; the DAG is scheduled on any of them being republished.
SOURCE_TABLES: tuple[str, ...] = (
    "dim_region",
    "population",
    "kolada_kpi",
    "county_report",
    "county_initiative",
    "county_ehealth_service",
    "ehealth_adoption",
    "ehealth_adoption_national",
    "ehealth_unit_daily",
)
# The subset the mart computation reads (kolada_kpi and ehealth_unit_daily are only exposed as views).
MART_INPUTS: tuple[str, ...] = (
    "dim_region",
    "population",
    "county_report",
    "county_initiative",
    "county_ehealth_service",
    "ehealth_adoption",
    "ehealth_adoption_national",
)
MART_TABLES: tuple[str, ...] = ("followup_region_year", "followup_national_year")
