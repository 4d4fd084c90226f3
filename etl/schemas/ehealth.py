"""E-health adoption tables: monthly exports and unit-level daily web booking (docs/input-formats.md §2, §2b)."""

import pyarrow as pa

from etl.schemas.declaration import Column, TableSchema, table
from etl.schemas.reference import REGION_CODE
from etl.sources.ehealth_spec import ALL_METRICS, EXPORTS, LINE_RULES

# The services and metrics are the export kinds' (etl/sources/ehealth_spec.py), not typed again here.
_SERVICES = " | ".join(s.service for s in EXPORTS.values()) + "."
_METRICS = "; ".join(f"{', '.join(s.metric_names)} ({s.service_en})" for s in EXPORTS.values()) + "."


def _declared(national: bool) -> tuple[dict, ...]:
    """What the exports declare (etl/sources/ehealth_spec.py), as expectations merged into the adoption
    suites by etl.validation: the services and metrics there are, and each line rule on its _check_ column."""

    def reason(rule) -> str:
        if national:
            return f"national {rule.lesser} exceeds {rule.greater}"
        lesser, greater = (
            next(m.header for s in EXPORTS.values() for m in s.metrics if m.name == name)
            for name in (rule.lesser, rule.greater)
        )
        where = " on this line" if rule.severity == "critical" else ""  # a critical rule quarantines the line
        return f"{lesser} ({rule.lesser}) exceeds {greater} ({rule.greater}){where}"

    source = {"derived_from": "etl/sources/ehealth_spec.py"}
    return (
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "service", "value_set": [s.service for s in EXPORTS.values()]},
            "severity": "critical",
            "meta": {"reason": "unknown service", **source},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "metric", "value_set": list(ALL_METRICS)},
            "severity": "critical",
            "meta": {"reason": "unknown metric", **source},
        },
        *(
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": rule.check, "value_set": [True]},
                "severity": rule.severity,
                "meta": {"reason": reason(rule), **source},
            }
            for rule in LINE_RULES
        ),
    )


_ADOPTION_COLUMNS = (
    Column("year", pa.int16(), "Calendar year of the month (partition).", False),
    Column("month", pa.date32(), "The month, as its first day.", False),
    Column("service", pa.string(), _SERVICES, False),
    Column("metric", pa.string(), _METRICS, False),
    Column("value", pa.int64(), "The count; null when suppressed or not available (never 0 for those).", True),
    Column("suppressed", pa.bool_(), "True when the sender suppressed the cell or it was not available.", False),
)

EHEALTH_ADOPTION = table(
    TableSchema(
        name="ehealth_adoption",
        domain="ehealth",
        description="Monthly adoption of the e-health services (web booking, the patient journal online, …) per region, long format.",
        columns=(REGION_CODE, *_ADOPTION_COLUMNS),
        key=("region_code", "month", "service", "metric"),
        replaced_by=("year", "month", "service"),
        partition_by=("year",),
        expectations=_declared(national=False),
    )
)

EHEALTH_ADOPTION_NATIONAL = table(
    TableSchema(
        name="ehealth_adoption_national",
        domain="ehealth",
        description="The national total rows of the monthly exports (Riket), kept apart from the regions for reconciliation.",
        columns=_ADOPTION_COLUMNS,
        key=("month", "service", "metric"),
        replaced_by=("year", "month", "service"),
        partition_by=("year",),
        expectations=_declared(national=True),
    )
)

EHEALTH_UNIT_DAILY = table(
    TableSchema(
        name="ehealth_unit_daily",
        domain="ehealth",
        description="Web booking per care unit and day (webbtidbok_enheter files).",
        columns=(
            Column(
                "month",
                pa.date32(),
                "The month, as its first day (partition; the same type as ehealth_adoption.month).",
                False,
            ),
            Column("date", pa.date32(), "The day.", False),
            REGION_CODE,
            Column("unit_hsa_id", pa.string(), "The care unit's HSA id, e.g. SE2321000016-15CX.", False),
            Column("unit_name", pa.string(), "The care unit's name.", True),
            Column("bookings", pa.int64(), "Bookings made that day; null when suppressed.", True),
            Column("cancellations", pa.int64(), "Cancellations that day; null when suppressed.", True),
            Column("rebookings", pa.int64(), "Rebookings that day; null when suppressed.", True),
        ),
        key=("date", "unit_hsa_id"),
        replaced_by=("month",),
        partition_by=("month",),
    )
)
