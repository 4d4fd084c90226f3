"""County report tables: the regions' annual follow-up reports (docs/input-formats.md §1)."""

import pyarrow as pa

from etl.schemas.declaration import Column, TableSchema, table
from etl.schemas.reference import REGION_CODE
from etl.sources.county_template import YES_NO_FIELDS

REPORT_YEAR = Column("report_year", pa.int16(), "The report year (2016 or later).", False)
SUBMITTED_AT = Column(
    "submitted_at",
    pa.timestamp("us", tz="UTC"),
    "Timestamp of the submission file; a newer submission for the same region and year replaces an older one.",
    False,
)

# The template's yes/no fields as columns: null = not stated. (Every yes/no field has a column;
# ``if f.column`` only says so to the type checker.)
YES_NO = {
    f.column: Column(f.column, pa.bool_(), f"Does the region {f.en}? Null = not stated.", True)
    for f in YES_NO_FIELDS
    if f.column
}

COUNTY_REPORT = table(
    TableSchema(
        name="county_report",
        domain="county",
        description="One row per region and report year: the grant and how it was used (sheet Uppgifter / JSON header).",
        columns=(
            REGION_CODE,
            REPORT_YEAR,
            Column("grant_sek", pa.int64(), "Grant received that year, kronor.", True),
            YES_NO["earmarked"],
            Column(
                "spend_it_support_sek",
                pa.int64(),
                "Spent on priority area 1, IT support and e-health processes, kronor.",
                True,
            ),
            Column(
                "spend_competence_use_sek",
                pa.int64(),
                "Spent on priority area 2, smarter use of staff competence, kronor.",
                True,
            ),
            Column(
                "spend_competence_supply_sek",
                pa.int64(),
                "Spent on priority area 3, long-term competence supply, kronor.",
                True,
            ),
            # The offers, in the template's order: a yes/no field declared there is a column here.
            *(column for name, column in YES_NO.items() if name != "earmarked"),
            SUBMITTED_AT,
        ),
        key=("region_code", "report_year"),
        replaced_by=("region_code", "report_year"),
        partition_by=("report_year",),
        expectations=tuple(
            {
                "type": "expect_column_values_to_be_in_type_list",
                "kwargs": {"column": f.column, "type_list": ["bool", "boolean", "BooleanDtype"]},
                "severity": "critical",
                "meta": {"reason": f"{f.column} is not yes/no", "derived_from": "etl/sources/county_template.py"},
            }
            for f in YES_NO_FIELDS
        ),
    )
)

COUNTY_INITIATIVE = table(
    TableSchema(
        name="county_initiative",
        domain="county",
        description="Initiatives a region reported for a year (sheet Insatser / JSON initiatives).",
        columns=(
            REGION_CODE,
            REPORT_YEAR,
            Column("initiative_no", pa.int32(), "Position of the initiative in the submission (1-based).", False),
            Column("title", pa.string(), "The initiative's title.", False),
            Column("area", pa.string(), "Priority area: it_support | competence_use | competence_supply.", False),
            Column("status", pa.string(), "planned | ongoing | completed | cancelled.", False),
            Column(
                "new_due_to_grant", pa.bool_(), "Would not have happened without the grant; null = not stated.", True
            ),
            Column("cost_sek", pa.int64(), "Cost, kronor (optional).", True),
            Column("description", pa.string(), "Free-text description (optional; personal data masked).", True),
            SUBMITTED_AT,
        ),
        key=("region_code", "report_year", "initiative_no"),
        replaced_by=("region_code", "report_year"),
        partition_by=("report_year",),
    )
)

COUNTY_EHEALTH_SERVICE = table(
    TableSchema(
        name="county_ehealth_service",
        domain="county",
        description="Status of the national e-health services per region and year (sheet E-tjänster / JSON ehealth_services).",
        columns=(
            REGION_CODE,
            REPORT_YEAR,
            Column(
                "service", pa.string(), "web_booking | patient_journal_online | remote_care | self_check_in.", False
            ),
            Column("status", pa.string(), "implemented | partly_implemented | planned | not_started.", False),
            Column("implemented_on", pa.date32(), "Date the service was introduced (optional).", True),
            SUBMITTED_AT,
        ),
        key=("region_code", "report_year", "service"),
        replaced_by=("region_code", "report_year"),
        partition_by=("report_year",),
    )
)
