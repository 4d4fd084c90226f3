"""The national e-service operator's exports, declared once (docs/input-formats.md §2, §2b).

One :class:`ExportSpec` per monthly export kind says everything the
project knows about it: the file-name prefix, the service, each value
column as the operator writes its header (Swedish) with the metric it
becomes and the labels analysts read (Swedish and English), the month from
which a file is expected, the rules across the metrics of one line, and the
tables it loads. The unit-level export has its :class:`UnitExportSpec`.

Derived from this module: the file-name pattern and the headers the reader
looks for (:mod:`etl.sources.ehealth_exports`), the kinds each month
expects and from when (:mod:`etl.pipelines.ehealth_adoption`,
:mod:`etl.quality`), the per-line ``_check_*`` columns, the sample
generator's headers (:mod:`etl.sample.ehealth`) and the analysts' service
and metric labels. Checked against it by ``tests/test_ehealth_spec.py``:
that the suites ``expectations/ehealth_adoption*.json`` repeat none of
what is derived from here, and the ``service`` / ``metric`` column docs of
the schemas. The business rules in the suites (ranges, reconciliation
tolerance) stay hand-written there.

The suites' value sets of ``service`` and ``metric`` and the line rules'
expectations are derived from here (``TableSchema.expectations``), and so
are the follow-up marts' per-1 000 columns of every :data:`SERIES`, their
expectations and labels, the sample generator's files (:func:`etl.sample.ehealth.declared_values`
for a kind it has no model of) and the input contract's list of kinds
(``python -m etl docs``). Adding an export kind: its :class:`ExportSpec` in
:data:`EXPORTS` (and a :class:`Series` for what analysts follow), then
``make docs`` — tests/test_ehealth_spec.py proves it on a copy of the checkout.
"""

from __future__ import annotations

from dataclasses import dataclass

ADOPTION_TABLES = ("ehealth_adoption", "ehealth_adoption_national")
FIRST_MONTH = "2016-01"  # the agreement's start: the first month any export is expected for


@dataclass(frozen=True)
class Metric:
    """One value column of an export: how the operator heads it, the metric it becomes, analysts' labels."""

    header: str  # the column header in the file, as the operator writes it (Swedish)
    name: str  # the metric's name in the tables (``ehealth_adoption.metric``)
    sv: str  # label for analysts, Swedish (workbook, report)
    en: str  # label for analysts, English (docs)


@dataclass(frozen=True)
class LineRule:
    """A rule across the metrics of one line: ``lesser`` ≤ ``greater`` when both are known.

    ``check`` is the derived boolean column the suite tests for ``[True]``;
    a critical rule quarantines the line, a warning only reports it.
    """

    check: str
    lesser: str
    greater: str
    severity: str  # critical | warning


@dataclass(frozen=True)
class ExportSpec:
    """One monthly export kind: ``<kind>_YYYY-MM.<suffix>``, one line per region plus the national total."""

    kind: str  # file-name prefix
    service: str  # ``ehealth_adoption.service``
    service_sv: str  # "Journal via nätet"
    service_en: str  # "the patient journal online" (inside a sentence)
    title_en: str  # "Patient journal online" (a heading)
    short_sv: str  # "Journalen": analysts' short name in headers
    metrics: tuple[Metric, ...]
    rules: tuple[LineRule, ...] = ()
    expected_from: str = FIRST_MONTH  # YYYY-MM: months before it never expect this kind (not overdue)
    tables: tuple[str, ...] = ADOPTION_TABLES

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def expected_in(self, period: str) -> bool:
        """Whether a file of this kind is expected for ``period`` (YYYY-MM)."""
        return period >= self.expected_from


@dataclass(frozen=True)
class Series:
    """A metric the follow-up marts give per 1 000 inhabitants: ``<prefix>_per_1000_mean`` / ``_dec`` /
    ``_months`` (and ``_change`` from the previous year's mean when ``change``), per region and for the country."""

    prefix: str  # column prefix in the marts
    kind: str  # the export kind
    metric: str  # the metric's name
    change: bool = False

    @property
    def export(self) -> ExportSpec:
        return EXPORTS[self.kind]


@dataclass(frozen=True)
class UnitExportSpec:
    """The optional unit-level export: ``<kind>_YYYY-MM.csv[.gz]``, one line per care unit and day."""

    kind: str
    service: str
    header: tuple[str, ...]  # as the operator writes it
    tables: tuple[str, ...]


JOURNAL = ExportSpec(
    kind="journalen",
    service="patient_journal_online",
    service_sv="Journal via nätet",
    service_en="the patient journal online",
    title_en="Patient journal online",
    short_sv="Journalen",
    metrics=(
        Metric("Inloggningar", "logins", "inloggningar", "logins"),
        Metric("Unika användare", "unique_users", "unika användare", "unique users"),
        Metric("Förstagångsinloggningar", "first_time_users", "förstagångsinloggningar", "first-time users"),
    ),
    rules=(
        LineRule("_check_unique_users_le_logins", "unique_users", "logins", "critical"),
        LineRule("_check_first_time_le_unique_users", "first_time_users", "unique_users", "warning"),
    ),
)
WEB_BOOKING = ExportSpec(
    kind="webbtidbok",
    service="web_booking",
    service_sv="Webbtidbok",
    service_en="web booking",
    title_en="Web booking",
    short_sv="Webbtidbok",
    metrics=(
        Metric("Bokningar", "bookings", "bokningar", "bookings"),
        Metric("Avbokningar", "cancellations", "avbokningar", "cancellations"),
        Metric("Ombokningar", "rebookings", "ombokningar", "rebookings"),
        Metric("Anslutna enheter", "units_connected", "anslutna vårdenheter", "units connected"),
        Metric("Enheter totalt", "units_total", "vårdenheter totalt", "units in total"),
    ),
    rules=(LineRule("_check_units_connected_le_total", "units_connected", "units_total", "critical"),),
)
UNITS = UnitExportSpec(
    kind="webbtidbok_enheter",
    service=WEB_BOOKING.service,
    header=("Datum", "Region", "HSA-id", "Enhet", "Bokningar", "Avbokningar", "Ombokningar"),
    tables=("ehealth_unit_daily",),
)

# Every monthly export kind, in the order months list them.
EXPORTS: dict[str, ExportSpec] = {s.kind: s for s in (JOURNAL, WEB_BOOKING)}
MONTHLY_KINDS: tuple[str, ...] = tuple(EXPORTS)
SERVICES: dict[str, ExportSpec] = {s.service: s for s in EXPORTS.values()}
ALL_METRICS: tuple[str, ...] = tuple(m for s in EXPORTS.values() for m in s.metric_names)
LINE_RULES: tuple[LineRule, ...] = tuple(r for s in EXPORTS.values() for r in s.rules)
TABLES_BY_KIND: dict[str, tuple[str, ...]] = {**{k: s.tables for k, s in EXPORTS.items()}, UNITS.kind: UNITS.tables}

# What analysts follow per 1 000 inhabitants, in the marts' column order.
SERIES: tuple[Series, ...] = (
    Series("journal_unique_users", "journalen", "unique_users", change=True),
    Series("journal_logins", "journalen", "logins"),
    Series("web_booking_bookings", "webbtidbok", "bookings", change=True),
)


def kinds_expected(period: str) -> tuple[str, ...]:
    """The monthly export kinds a month (YYYY-MM) expects."""
    return tuple(kind for kind, spec in EXPORTS.items() if spec.expected_in(period))
