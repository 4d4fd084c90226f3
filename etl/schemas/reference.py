"""Reference tables: the region dimension, SCB population, Kolada key figures."""

import pyarrow as pa

from etl.schemas.declaration import Column, TableSchema, table

REGION_CODE = Column(
    "region_code",
    pa.string(),
    "Two-digit SCB county code ('01'…'25'); joins every table.",
    False,
    "Länskod från SCB, två siffror ('01'…'25'); kopplar ihop alla tabeller.",
)

DIM_REGION = table(
    TableSchema(
        name="dim_region",
        domain="reference",
        description="The 21 Swedish regions, with names and the ids other sources use.",
        columns=(
            REGION_CODE,
            Column("region_name", pa.string(), "The region's name today, e.g. 'Region Uppsala'.", False),
            Column("county_name", pa.string(), "The county (län), e.g. 'Uppsala län'.", False),
            Column("kolada_id", pa.string(), "Kolada municipality id of the region ('00' + region_code).", False),
        ),
        key=("region_code",),
    )
)

POPULATION = table(
    TableSchema(
        name="population",
        domain="reference",
        description="Population on 31 December per region and year (SCB table TAB638, BefolkningNy).",
        columns=(
            REGION_CODE,
            Column("year", pa.int16(), "Year; the population is counted on 31 December of it.", False),
            Column("population", pa.int64(), "Inhabitants; null where SCB marks the value missing.", True),
        ),
        key=("region_code", "year"),
        replaced_by=("year",),
    )
)

KOLADA_KPI = table(
    TableSchema(
        name="kolada_kpi",
        domain="reference",
        description="SKR key figures (Kolada) per region, year and gender for the configured KPI ids.",
        columns=(
            Column("kpi_id", pa.string(), "Kolada KPI id, e.g. 'N17473'.", False),
            REGION_CODE,
            Column("year", pa.int16(), "Period (year) of the value.", False),
            Column("gender", pa.string(), "T (total), K (women) or M (men).", False),
            Column("value", pa.float64(), "The value; null where Kolada has none.", True),
            Column("status", pa.string(), "Kolada's status flag for the value (empty when fine).", True),
        ),
        key=("kpi_id", "region_code", "year", "gender"),
    )
)
