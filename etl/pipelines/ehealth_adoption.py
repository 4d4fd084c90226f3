"""E-health adoption pipeline: monthly exports and unit-level daily web booking → three tables.

Reads ``<landing>/ehealth/`` (docs/input-formats.md §2, §2b) one month at a time:

* ``journalen_YYYY-MM`` and ``webbtidbok_YYYY-MM`` (CSV or .xlsx) →
  ``ehealth_adoption`` (the 21 regions, long format) and
  ``ehealth_adoption_national`` (the national total row, kept apart);
* ``webbtidbok_enheter_YYYY-MM.csv`` → ``ehealth_unit_daily`` (streamed).

**Unit of work: the month.** The months' exports are read and validated
together (:func:`prepare_exports`: one GX validation per suite for the
whole run), then each month is judged and published with one publish per
table (a ten-year backfill is 120 × 3 publishes, never one per file or per
row). A critical failure — a region
missing from an export, regions not summing to the national total —
blocks that month only: nothing of it is published, the failure is in the
load log, and the run carries on with the other months and fails at the
end naming the blocked ones. While a month is validated and published,
the next month's unit-level file is already being read (:class:`etl.sources.unit_daily.ReadAhead`).

**Which months.** ``period="YYYY-MM"`` processes that month (always: the
result is idempotent, so a rerun just reports ``unchanged``);
``catch_up_late=True`` adds every earlier month that has a file not yet
committed — how the monthly DAG picks up late or corrected files.
``period=None`` (or ``"all"``) processes every month with an uncommitted
file (by SHA-256 in the load log), or records ``nothing_new``.

**Replacing.** A (re)published monthly file replaces its month and service
in both adoption tables (merge key year, month, service: the tables'
``replaced_by``); a unit file replaces its month of ``ehealth_unit_daily``.
A file whose lines all fail is blocked like any file missing a region, so
it never empties its month.

**Checks** (rules in ``expectations/ehealth_*.json``; this module computes
the derived ``_check_*`` columns they test): all 21 regions per service and
month and reconciliation with the national row within 0.5 % (critical, batch
blocked); unique keys, values ≥ 0, units_connected ≤ units_total,
unique_users ≤ logins (row-level: the whole input line is quarantined);
unit rows: HSA id, date inside the month, one row per unit and day (both
duplicates quarantined). The daily unit bookings of a month must sum to the
regional bookings: a mismatch is a warning in the load log. An export whose
national row is missing or unreadable (:func:`etl.sources.ehealth_rules.national_row_problem`)
and a unit-level file with no loadable row are blocked, not approvable: a
month never publishes without its reconciliation. A published value a file
would turn into null is blocked unless the cell holds a suppression marker
(:func:`etl.no_shrink.value_losses`; approvable).

Row accounting is in long rows (see :mod:`etl.sources.ehealth_exports`):
rows_in = input lines × metrics = loaded + quarantined, per table.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field

from etl import approvals, no_shrink, publish, regions, schemas, storage, validation, verdict
from etl.config import Settings
from etl.deliveries import DeliveryRecord, shown_name
from etl.errors import BadInput, ConfigError, ValidationFailed
from etl.pipelines import skeleton
from etl.pipelines.common import (
    ORIGIN,
    RunReport,
    checked_batch,
    combine,
    fold_quarantine_by_line,
    last_committed,
    numbered,
    records_unexpected_failures,
    start_run,
    take_in,
)
from etl.privacy import redact_uri
from etl.sources import ehealth_exports as exports
from etl.sources import ehealth_rules as rules
from etl.sources import ehealth_spec as spec
from etl.sources import unit_daily

log = logging.getLogger(__name__)

PIPELINE = "ehealth_adoption"
PREFIX = "ehealth"
SUFFIXES = exports.SUFFIXES

# The frame's columns: the table's declared content, then where each row came from.
ADOPTION_COLUMNS = [*schemas.get("ehealth_adoption").business_columns, *ORIGIN]


# --------------------------------------------------------------------------- which months


def _group_by_month(landed: list[storage.LandedFile]) -> tuple[dict[str, dict[str, list]], list[str]]:
    """period → kind → files, and a line for every file whose name is not an export's (not loaded)."""
    by_month: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    unnamed = []
    for f in landed:
        try:
            name = exports.parse_file_name(f.name)
        except BadInput as exc:
            unnamed.append(f"{f.name!r}: {exc}")
            continue
        by_month[name.period][name.kind].append(f)
    return by_month, unnamed


def delivery_id(kind: str, period: str) -> str:
    """The logical delivery a file is: its kind and month (``journalen_2019-03``), whatever its path or suffix."""
    return f"{kind}_{period}"


def _files(month_files: dict[str, list]) -> list[storage.LandedFile]:
    return [f for kind in sorted(month_files) for f in month_files[kind]]


def landed_exports(landing_uri: str) -> dict[tuple[str, str], list[dict]]:
    """(kind, period) → the export files under ``<landing>/ehealth/``: ``{"name", "size", "modified"}`` each.

    :func:`etl.storage.list_names` (nothing read or hashed), cheap enough for
    monitoring. Names that are no export's are left out (a run names them).
    Raises :class:`SourceUnavailable` when the landing cannot be listed.
    """
    found: dict[tuple[str, str], list[dict]] = {}
    for entry in storage.list_names(landing_uri, PREFIX, SUFFIXES):
        try:
            parsed = exports.parse_file_name(entry.name)
        except BadInput:
            continue
        found.setdefault((parsed.kind, parsed.period), []).append(
            {"name": entry.name, "size": entry.size, "modified": entry.modified}
        )
    return found


OVERDUE_AFTER_DAYS = 14  # the operator publishes a month's exports within days of its end


def overdue_deliveries(settings: Settings, through: str, today=None, grace_days: int = OVERDUE_AFTER_DAYS) -> list[str]:
    """Monthly exports expected by now that are neither in landing nor published: ``["journalen_2017-05", …]``.

    A month's exports are due ``grace_days`` after the month ends; months
    from :data:`etl.sources.ehealth_spec.FIRST_MONTH` through ``through`` (YYYY-MM) are checked, each
    for the kinds expected by then (``ExportSpec.expected_from``). One
    listing of ``<landing>/ehealth/`` (names only) and the delivery record;
    nothing is read or written. A late delivery never blocks a run: it is
    reported (and notified) until it lands, and the next run loads it.
    """
    import datetime as dt

    today = today or dt.datetime.now(dt.UTC).date()
    present = {delivery_id(kind, period) for kind, period in landed_exports(settings.landing_uri)}
    published = set(DeliveryRecord.load(settings.warehouse_uri, PIPELINE).published)
    overdue = []
    year, month = (int(x) for x in spec.FIRST_MONTH.split("-"))
    while f"{year:04d}-{month:02d}" <= through:
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        if following + dt.timedelta(days=grace_days) <= today:
            for kind in spec.kinds_expected(f"{year:04d}-{month:02d}"):
                did = delivery_id(kind, f"{year:04d}-{month:02d}")
                if did not in present and did not in published:
                    overdue.append(did)
        year, month = following.year, following.month
    return overdue


def legacy_committed(settings: Settings):
    """Per delivery, the content last committed to all its tables (for deliveries the record lacks)."""

    def delivery_of(uri: str):
        try:
            name = exports.parse_file_name(shown_name(uri))
        except BadInput:
            return None
        return delivery_id(name.kind, name.period), spec.TABLES_BY_KIND[name.kind]

    return lambda: last_committed(settings.warehouse_uri, PIPELINE, delivery_of)


@records_unexpected_failures(PIPELINE)
def run(settings: Settings, *, period: str | None = None, catch_up_late: bool = False) -> RunReport:
    """Process ``period`` (YYYY-MM), or every month with a pending delivery; see the module doc.

    Raises :class:`ValidationFailed` (every failure a blocked delivery or
    month) or :class:`EtlError` at the end, after the other months and files
    are published, naming what was not; :class:`BadInput` when landing holds
    entries that cannot be taken in.
    """
    if period in ("all", ""):
        period = None
    if period is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", str(period)):
        raise ConfigError(f"period must be YYYY-MM, not {period!r}")
    report = start_run(settings.warehouse_uri, PIPELINE)
    return skeleton.execute(settings, report, plan(settings, report, period, catch_up_late))


def approved_now(settings: Settings, record: DeliveryRecord) -> dict[str, approvals.Decision]:
    """The approvals in force (:func:`etl.approvals.approved`), those of deliveries published now included."""
    return approvals.approved(
        settings.warehouse_uri, PIPELINE, published={str(entry.get("sha256")) for entry in record.published.values()}
    )


def _judged_here(name: str, period: str | None, catch_up_late: bool) -> bool:
    """Whether a run for ``period`` (None: every month) judges the landed file ``name`` once it has settled."""
    if period is None:
        return True
    try:
        month = exports.parse_file_name(name).period
    except BadInput:
        return True  # no export's name: the run names it in its failure
    return month == period or (catch_up_late and month < period)


def plan(settings: Settings, report: RunReport, period: str | None, catch_up_late: bool) -> skeleton.Plan:
    """One independent step per month to process (see the module doc), or nothing new."""
    # Size: the month plan's parts in order: listing, overdue months, late files, steps; each a few lines.
    intake = take_in(settings, PREFIX, SUFFIXES, report)
    # What this run waits for: the files still arriving that it would judge once settled (its months; a name
    # that is no export's too, which it would name in its failure), not a later month's export.
    report.arriving = [n for n in report.arriving if _judged_here(n, period, catch_up_late)]
    if not report.arriving:
        report.settled_by = None
    by_month, unnamed = _group_by_month(intake.landed)
    for note in unnamed:
        log.warning("not loaded: %s", note)
    record = DeliveryRecord.load(settings.warehouse_uri, PIPELINE, legacy_committed=legacy_committed(settings))
    the_plan = skeleton.Plan(unit="month", skipped=[*intake.skipped, *unnamed], record=record)
    pending = sorted(
        m
        for m, kinds in by_month.items()
        if any(not record.is_published(delivery_id(kind, m), f) for kind, files in kinds.items() for f in files)
    )
    if period is not None:
        months = [period] if period in by_month else []
        if catch_up_late:
            months = sorted(set(months) | {m for m in pending if m < period})
    else:
        months = pending
    if not months:
        where = redact_uri(storage.join(settings.landing_uri, PREFIX))
        # A month whose files are still being written is not "without files": say they are on their way.
        settling = [n for n in intake.arriving_names if period is None or period in n]
        the_plan.nothing_new = (
            f"nothing new loaded from {where}: {len(settling)} file(s) "
            + (f"for {period} " if period else "")
            + "still arriving (named above)"
            if settling
            else f"no e-health files for {period} in {where}"
            if period is not None
            else f"nothing new in {where}: every delivery is loaded as it is in landing"
        )
        return the_plan

    # Read once for the run, not once a month: it reads the whole load log (~0.14 s at 260 rows, and growing).
    decisions = approved_now(settings, record)
    read_ahead = unit_daily.ReadAhead([by_month[m] for m in months])
    unit_reads = iter(read_ahead)  # a generator: it starts reading when the first month asks, inside the context

    # Every month's exports parsed and validated together when the first month is judged (one GX
    # validation per table for the run); if that fails, each month prepares its own and fails alone.
    prepared: dict[str, PreparedExport] = {}
    together: list[bool] = []

    def exports_of(month: str) -> dict[str, PreparedExport] | None:
        if not together:
            try:
                prepared.update(prepare_exports(settings, {m: by_month[m] for m in months}))
                together.append(True)
            except Exception as exc:  # noqa: BLE001 - any cause: each month then meets it alone, once
                # Said once, and not tried again by every month: each month prepares its own files and
                # fails alone if the cause is in them (an unexpected error included), as before batching.
                log.warning("validating every month's exports together failed (%s); each month on its own", exc)
                together.append(False)
        return prepared if together[0] else None

    def judge(month: str):
        def judge_this_month(step: skeleton.Step) -> skeleton.Judgement:
            unit_read = next(unit_reads)  # first thing: every month takes its own read, in order, even one that fails
            judged = judge_month(
                settings, month, by_month[month], step.batch_id, unit_read, decisions, exports_of(month), defer=True
            )
            judged.delivered = {delivery_id(kind, month): files for kind, files in by_month[month].items()}
            return judged

        return judge_this_month

    the_plan.context = read_ahead
    the_plan.steps = [
        skeleton.Step(month, f"{report.batch_id}-{month}", judge(month), sources=_files(by_month[month]))
        for month in months
    ]
    return the_plan


# --------------------------------------------------------------------------- the run's monthly exports


@dataclass
class PreparedExport:
    """One monthly export file parsed and validated, waiting for its month's step.

    ``regional`` and ``national``: its validated batches (None when the file
    is refused whole, its national row is unusable, or ``failed``);
    ``failed``: why a table suite blocked the file (a file-level critical
    expectation); ``results``: its validation results, stored by its step (:meth:`keep`).
    """

    export: exports.ExportRows
    regional: publish.TableBatch | None = None
    national: publish.TableBatch | None = None
    failed: str | None = None
    failed_short: str = ""  # ``failed``'s cause alone, for the terminal
    results: list[validation.Validation] = field(default_factory=list)

    def keep(self, warehouse_uri: str, batch_id: str) -> None:
        """Store (or hold for the step's verdict) this file's validation results under ``batch_id``."""
        for result in self.results:
            if result.data is not None:
                validation.keep(warehouse_uri, result.table, batch_id, result.data, result.frame)


def prepare_exports(settings: Settings, months: dict[str, dict[str, list]]) -> dict[str, PreparedExport]:
    """Parse every monthly export of ``months`` (month → kind → landed files) and validate them together.

    Each table's suite runs once for all the files (:func:`etl.validation.validate_many`:
    GX's cost is per validation, not per row, and a backfill has two small
    files a month), the results kept per file. The regional rows are
    validated first: a file's national rows are reconciled against its
    regional rows that passed. A kind with more than one file in a month is
    left out (:func:`judge_month` refuses that month). Returns file URI →
    :class:`PreparedExport`. Raises :class:`EtlError` when a suite cannot run.
    """
    prepared: dict[str, PreparedExport] = {}
    for month_files in months.values():
        for kind in spec.MONTHLY_KINDS:
            files = month_files.get(kind) or []
            if len(files) != 1:
                continue
            landed = files[0]
            export = exports.read_export_file(landed.uri, location=landed.path)
            _stamp_sha(export.rejected_regional + export.rejected_national, landed.sha256)
            prepared[landed.uri] = PreparedExport(export)
    todo = [p for p in prepared.values() if p.export.file_error is None and not rules.national_row_problem(p.export)]
    frames = [_regional_frame([p.export]) for p in todo]
    passed = []
    for part, frame, result in zip(todo, frames, validation.validate_many("ehealth_adoption", frames), strict=True):
        part.results.append(result)
        try:
            part.regional = _regional_batch([part.export], settings, "", frame, result)
        except ValidationFailed as exc:
            part.failed = str(exc)
        else:
            passed.append(part)
    framed = [_national_frame([p.export], p.regional.rows) for p in passed if p.regional is not None]
    results = validation.validate_many("ehealth_adoption_national", [f[0] for f in framed])
    for part, national, result in zip(passed, framed, results, strict=True):
        part.results.append(result)
        try:
            part.national = _national_batch([part.export], None, settings, "", national, result)
        except ValidationFailed as exc:
            part.failed = str(exc)
            details = national[1]
            if details:  # the cause, first: which metric is off, by how much
                part.failed_short = (
                    f"regions do not sum to the national total within {rules.RECONCILIATION_TOLERANCE:.1%}: "
                    + "; ".join(details)
                )
    return prepared


# --------------------------------------------------------------------------- one month


@dataclass
class MonthJudgement(skeleton.Judgement):
    """One month's files judged, before anything is written (a :class:`~etl.pipelines.skeleton.Judgement`).

    ``candidates`` are every validated per-file batch (blocked files
    included: what ``python -m etl check`` reports from).
    """

    candidates: list[publish.TableBatch] = field(default_factory=list)


def judge_month(
    settings: Settings,
    period: str,
    month_files: dict[str, list],
    batch_id: str,
    unit_read=None,
    decisions: dict[str, approvals.Decision] | None = None,
    prepared: dict[str, PreparedExport] | None = None,
    defer: bool = False,
) -> MonthJudgement:
    """Parse, validate and judge one month's files against the published warehouse; writes nothing.

    Each file is judged on its own: a file refused whole, failing a critical
    rule, lacking a region in the rows that would be published, or whose
    publishing would remove published rows because of quarantined lines
    (:mod:`etl.no_shrink`) is blocked, while the month's other files stay
    publishable. Raises :class:`BadInput` when the month has two files of
    one kind. ``unit_read`` returns the month's unit-level file already read
    (see :class:`etl.sources.unit_daily.ReadAhead`); without it the file is read here.
    ``decisions`` are the approvals in force (:func:`etl.approvals.approved`), read once by a run
    for all its months; without them they are read here.
    ``prepared``: the run's monthly exports already parsed and validated
    (:func:`prepare_exports`, keyed by file URI); without it this month's are prepared here.
    ``defer``: leave the delivery verdict to the run's skeleton (``settle``), which judges the files
    of the months it holds with one validation; else the verdict is reached here.
    Validation results are persisted unless :func:`etl.validation.not_persisted` is in force.
    """
    landed = _one_file_per_kind(period, month_files)
    judged = MonthJudgement(landed={f.uri: f for f in landed.values()})
    if decisions is None:
        decisions = approvals.approved(settings.warehouse_uri, PIPELINE)
    sha_of = {f.uri: f.sha256 for f in landed.values()}
    if prepared is None:
        prepared = prepare_exports(settings, {period: month_files})
    mine = [prepared[landed[k].uri] for k in spec.MONTHLY_KINDS if k in landed]
    for part in mine:
        part.keep(settings.warehouse_uri, batch_id)  # its validation results, stored with this step's verdict
    parsed = [part.export for part in mine]

    regional_parts, national_parts = [], []
    findings: dict[str, verdict.Findings] = {}
    for part in mine:
        source = part.export.source_file
        judged.held[source] = part.export.rows_in_regional + part.export.rows_in_national
        findings[source], tables = _measure_export(part, period)
        if tables is not None:
            regional, national = tables
            judged.candidates += [regional, national]
            regional_parts.append(regional)
            national_parts.append(national)

    unit_part = None
    if exports.UNIT_KIND in landed:
        # The unit file's days are summed against the regional files that may publish: complete ones, or
        # ones a person approved as they are.
        summed = [
            p
            for p in regional_parts
            if not any(findings[s].regions_lacking for s in p.source_keys)
            or any(sha_of.get(s, "") in decisions for s in p.source_keys)
        ]
        unit_part = _judge_unit_file(
            settings, period, batch_id, landed[exports.UNIT_KIND], unit_read, summed, judged, findings
        )

    candidates = [b for b in (*regional_parts, *national_parts, unit_part) if b is not None]
    measured = no_shrink.shrinks(settings.warehouse_uri, candidates, _stated_by(parsed, judged.landed))
    _add_shrinks(findings, measured)
    # The month's files judged by the delivery suite (expectations/delivery.json): the verdict is its result.
    judged.findings, judged.sha256, judged.decisions = list(findings.values()), sha_of, decisions
    settle = _settler(judged, landed, regional_parts, national_parts, unit_part)
    if defer:
        judged.settle = settle  # the skeleton calls it, then lets it go (it refers back to ``judged``)
    else:
        judged.verdict = verdict.judge(judged.findings, sha_of, decisions)
        settle(judged.verdict)
    return judged


def _one_file_per_kind(period: str, month_files: dict[str, list]) -> dict[str, storage.LandedFile]:
    """kind → the month's one file of it; :class:`BadInput` naming the files when a kind has two."""
    for kind, files in month_files.items():
        if len(files) > 1:
            names = ", ".join(f.name for f in files)
            raise BadInput(f"{period}: {len(files)} files for {kind} ({names}); remove all but one")
    return {kind: files[0] for kind, files in month_files.items()}


def _measure_export(
    part: PreparedExport, period: str
) -> tuple[verdict.Findings, tuple[publish.TableBatch, publish.TableBatch] | None]:
    """One monthly export's findings, and its (regional, national) batches when it can be judged further.

    None instead of the batches: refused whole, its national row missing or
    unreadable, or a table suite's rule on the file as a whole failed — the
    delivery suite blocks it on the findings alone.
    """
    export = part.export
    source = export.source_file
    found = verdict.Findings(
        source,
        spec.TABLES_BY_KIND[export.name.kind],
        rejected=[*export.rejected_regional, *export.rejected_national],
    )
    if export.file_error is not None:
        found.refused_whole = export.file_error
        return found, None
    found.national_row = rules.national_row_problem(export)
    if found.national_row is not None:
        return found, None  # nothing to validate: the month cannot be reconciled
    if part.failed is not None or part.regional is None or part.national is None:
        # A table suite's rule on the file as a whole failed (reconciliation): the delivery suite blocks it.
        whole = re.sub(rf"^{re.escape(period)}: ", "", str(part.failed))
        found.file_rules, found.file_rules_short = whole, part.failed_short or whole
        return found, None
    regional, national = part.regional, part.national
    keys = _replace_keys([export])
    regional.source_keys = {source: keys}
    national.source_keys = {source: keys}
    if not export.national_lines:
        national.unstated = {source}  # no national total line: says nothing about the published one
    found.regions_lacking = rules.regions_lacking(set(regional.rows["region_code"]) if len(regional.rows) else set())
    if found.regions_lacking:
        _, reasons = no_shrink.quarantine_reasons(regional, source, limit=3)
        lines = int((regional.quarantine["source_file"] == source).sum()) if len(regional.quarantine) else 0
        found.regions_detail = f"{lines} line(s) quarantined: {reasons}" if lines else "no line quarantined"
        found.quarantined_lines = lines
        found.first_quarantined = no_shrink.first_quarantined(regional, source)
    return found, (regional, national)


def _judge_unit_file(
    settings: Settings,
    period: str,
    batch_id: str,
    unit_file: storage.LandedFile,
    unit_read,
    summed: list[publish.TableBatch],
    judged: MonthJudgement,
    findings: dict[str, verdict.Findings],
) -> publish.TableBatch | None:
    """The month's unit-level file validated against ``summed`` (the regional batches that may publish).

    Records its rows in, its findings (or its block line when a critical
    rule fails) on ``judged``/``findings``; returns its batch when it has
    rows to load, else None.
    """
    # Read here when no read-ahead gave it (``etl check``): its unreadable lines are findings too.
    read = unit_read() if unit_read is not None else unit_daily.read_unit_daily(unit_file.uri, location=unit_file.path)
    all_regional = combine(summed)  # None when there are no parts
    regional_rows = all_regional.rows if all_regional is not None else None
    try:
        unit_part = unit_batch(unit_file, period, regional_rows, settings, batch_id, read)
    except ValidationFailed as exc:
        judged.blocked[unit_file.uri] = f"{shown_name(unit_file.uri)}: blocked, {exc}"
        judged.held[unit_file.uri] = read.rows_in
        return None
    judged.held[unit_file.uri] = unit_part.rows_in
    judged.candidates.append(unit_part)
    found = findings[unit_file.uri] = verdict.Findings(
        unit_file.uri, spec.TABLES_BY_KIND[exports.UNIT_KIND], rejected=list(read.rejected)
    )
    if unit_part.refused:
        found.refused_whole = unit_part.refused[unit_file.uri]
        return None
    found.rows_loadable = len(unit_part.rows)
    if not len(unit_part.rows):
        # Nothing would load: never "published" (an empty month), whatever it replaces.
        found.loadable_detail = _no_loadable_row(unit_part, unit_file.uri)
        return None
    return unit_part


def _add_shrinks(findings: dict[str, verdict.Findings], measured: dict) -> None:
    """What publishing each file would remove or null (:func:`etl.no_shrink.shrinks`), onto its findings."""
    for source, shrink in measured.items():
        if source not in findings:
            continue
        found = findings[source]
        if shrink.refused and found.refused_whole is None:
            found.refused_whole = "; ".join(shrink.refused)
        found.values_lost, found.lost_detail = shrink.values_lost, shrink.lost_line
        found.rows_removed, found.removed_detail = shrink.rows_removed, shrink.removed_detail
        found.rows_unreadable, found.unreadable_detail = shrink.rows_unreadable, shrink.unreadable_detail


def _settler(
    judged: MonthJudgement,
    landed: dict[str, storage.LandedFile],
    regional_parts: list[publish.TableBatch],
    national_parts: list[publish.TableBatch],
    unit_part: publish.TableBatch | None,
):
    """``settle(verdict)``: applies the delivery suite's verdict to ``judged`` — its blocked files left out
    of the month's batches, the approved ones' release notes added to theirs."""
    blocked = judged.blocked

    def settle(decided: verdict.Verdict) -> None:
        blocked.update(decided.blocked)
        judged.short.update(decided.short)
        judged.approved.update(decided.released)
        gone = set(blocked)
        for parts in (regional_parts, national_parts):
            batch = combine([p for p in parts if not set(p.source_keys) & gone])
            if batch is not None:
                batch.warnings += [
                    approvals.release_note(s, d) for s, d in judged.approved.items() if s in batch.source_keys
                ]
                sources = [landed[k] for k in spec.MONTHLY_KINDS if k in landed and landed[k].uri in batch.source_keys]
                judged.batches.append((batch, sources))
        if unit_part is not None and landed[exports.UNIT_KIND].uri not in gone:
            unit_uri = landed[exports.UNIT_KIND].uri
            if unit_uri in judged.approved:
                unit_part.warnings.append(approvals.release_note(unit_uri, judged.approved[unit_uri]))
            judged.batches.append((unit_part, [landed[exports.UNIT_KIND]]))

    return settle


def _no_loadable_row(batch: publish.TableBatch, source: str) -> str:
    """Why a unit-level file loads no row: its first quarantined line's reason, and how many lines there were."""
    held, _ = no_shrink.quarantine_reasons(batch, source)
    if not held:
        return "no row to load (no data lines under the header); nothing of it is published"
    first = no_shrink.first_quarantined(batch, source)
    return f"no row could be loaded, all {held} quarantined (first: {first}); nothing of it is published"


def _stated_by(parsed: list[exports.ExportRows], landed: dict[str, storage.LandedFile]):
    """``said(loss)`` for :func:`etl.no_shrink.blocked_sources`: whether a monthly export states a value's loss.

    The contract's way (docs/input-formats.md): the cell holds a suppression
    marker (``..``, ``–``, ``-``) — an empty cell, or a formula without a saved
    result, says nothing. Unit-level files have no such way: a lost unit value
    is a person's call (approval). The file is read again only when asked.
    """
    by_source = {e.source_file: e for e in parsed}
    stated: dict[str, set[tuple[int, str]]] = {}

    def said(loss: no_shrink.Loss) -> bool:
        export = by_source.get(loss.source)
        if export is None or loss.column != "value":
            return False
        if loss.source not in stated:
            f = landed[loss.source]
            try:
                data = storage.read_bytes(f.path, max_bytes=exports.MAX_EXPORT_BYTES)
            except BadInput:
                data = b""
            stated[loss.source] = rules.stated_suppressions(export, data) if data else set()
        metric = loss.key[-1]
        region = loss.key[0] if loss.table == "ehealth_adoption" else None
        rows = export.regional if region is not None else export.national
        line = next((r["row_number"] for r in rows if r["metric"] == metric and r["region_code"] == region), None)
        return (line, metric) in stated[loss.source]

    return said


def _stamp_sha(entries: list[dict], sha256: str) -> None:
    for entry in entries:
        entry["source_sha256"] = sha256


def _long_frame(parsed: list[exports.ExportRows], attr: str, extra: dict | None = None):
    """Long rows of several exports as a DataFrame with the derived _check_ columns."""
    import pandas as pd

    records = []
    for export in parsed:
        rows = getattr(export, attr)
        checks = rules.line_checks(rows)
        for row in rows:
            record = {
                **row,
                **checks[row["row_number"]],
                "_check_suppressed_iff_null": row["suppressed"] == (row["value"] is None),
            }
            if extra:
                record.update({k: f(export, row) for k, f in extra.items()})
            records.append(record)
    check_cols = [*(rule.check for rule in spec.LINE_RULES), "_check_suppressed_iff_null", *(extra or {})]
    frame = pd.DataFrame(records, columns=ADOPTION_COLUMNS + check_cols)
    # From the parsed ints, not the frame's column: with a suppressed (None) value pandas made that column
    # float64, which rounds a count above 2**53 and cannot hold int64's top.
    frame["value"] = pd.array([record["value"] for record in records], dtype="Int64")
    frame["year"] = frame["year"].astype("int64")
    frame["row_number"] = frame["row_number"].astype("int64")
    return frame


def _replace_keys(parsed: list[exports.ExportRows]) -> list[tuple]:
    return [(e.name.month.year, e.name.month, e.spec.service) for e in parsed]


def _adoption_batch(
    table: str,
    frame,
    rejected: list[dict],
    rows_in: int,
    parsed,
    settings: Settings,
    batch_id: str,
    warnings,
    prevalidated: validation.Validation | None = None,
) -> publish.TableBatch:
    """A validated adoption batch replacing each parsed file's month and service, quarantine folded by line."""
    return fold_quarantine_by_line(
        checked_batch(
            table,
            frame,
            rejected,
            rows_in,
            warehouse_uri=settings.warehouse_uri,
            batch_id=batch_id,
            replace_keys=_replace_keys(parsed),
            quarantine_sources=[e.source_file for e in parsed],
            extra_warnings=warnings,
            prevalidated=prevalidated,
        )
    )


def _regional_frame(parsed):
    return numbered(_long_frame(parsed, "regional", {"_check_regions_in_file": lambda e, _row: len(e.regions_seen)}))


def _regional_batch(
    parsed, settings: Settings, batch_id: str, frame=None, prevalidated: validation.Validation | None = None
) -> publish.TableBatch:
    frame = _regional_frame(parsed) if frame is None else frame
    rejected = [r for e in parsed for r in e.rejected_regional]
    notes = [n for e in parsed for n in e.notes]
    try:
        return _adoption_batch(
            "ehealth_adoption",
            frame,
            rejected,
            sum(e.rows_in_regional for e in parsed),
            parsed,
            settings,
            batch_id,
            notes,
            prevalidated,
        )
    except ValidationFailed as exc:
        missing = []
        for e in parsed:
            if e.file_error is None and len(e.regions_seen) < len(regions.REGION_CODES):
                lacking = [
                    f"{c} {regions.BY_CODE[c].region_name}" for c in regions.REGION_CODES if c not in e.regions_seen
                ]
                missing.append(f"{e.name.kind}_{e.name.period} lacks {len(lacking)} region(s): {', '.join(lacking)}")
        detail = ("; ".join(missing) + " — ") if missing else ""
        raise ValidationFailed(f"{parsed[0].name.period}: {detail}{exc}") from None


def _national_frame(parsed, regional_rows):
    """The national rows with their reconciliation deviation; also the deviations' details and warnings."""
    deviations: dict[tuple[str, str], float] = {}
    details: list[str] = []
    warnings: list[str] = []
    for export in parsed:
        dev, det, warn = rules.reconciliation(export, regional_rows)
        deviations.update({(export.source_file, m): v for m, v in dev.items()})
        details += det
        warnings += warn
    frame = _long_frame(
        parsed,
        "national",
        {"_check_reconciliation_deviation": lambda e, row: deviations.get((e.source_file, row["metric"]), -1.0)},
    )
    return numbered(frame.drop(columns=["region_code"])), details, warnings


def _national_batch(
    parsed,
    regional_rows,
    settings: Settings,
    batch_id: str,
    framed=None,
    prevalidated: validation.Validation | None = None,
) -> publish.TableBatch:
    frame, details, warnings = _national_frame(parsed, regional_rows) if framed is None else framed
    rejected = [r for e in parsed for r in e.rejected_national]
    try:
        return _adoption_batch(
            "ehealth_adoption_national",
            frame,
            rejected,
            sum(e.rows_in_national for e in parsed),
            parsed,
            settings,
            batch_id,
            warnings,
            prevalidated,
        )
    except ValidationFailed as exc:
        detail = (
            (
                "regions do not sum to the national total within "
                f"{rules.RECONCILIATION_TOLERANCE:.1%}: " + "; ".join(details) + " — "
            )
            if details
            else ""
        )
        raise ValidationFailed(f"{parsed[0].name.period}: {detail}{exc}") from None


def unit_batch(
    unit_file: storage.LandedFile,
    period: str,
    regional_rows,
    settings: Settings,
    batch_id: str,
    read: unit_daily.UnitMonth | None = None,
) -> publish.TableBatch:
    """One unit-level file → the validated ``ehealth_unit_daily`` batch of its month (not yet published).

    ``regional_rows`` (the month's regional adoption rows, or None) is what
    the daily bookings are summed against; ``read`` is the file already read.
    """
    # Size: the unit-level month's rows, quarantine and keys built in one vectorised pass (a month is ~124 000
    # rows).
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if read is None:
        read = unit_daily.read_unit_daily(unit_file.uri, location=unit_file.path)
    _stamp_sha(read.rejected, unit_file.sha256)
    first, last = unit_daily.month_bounds(period)
    columns = [
        "month",
        "date",
        "region_code",
        "unit_hsa_id",
        "unit_name",
        "bookings",
        "cancellations",
        "rebookings",
        "source_file",
        "row_number",
        "raw",
        "_check_date_in_month",
    ]
    if read.rows is not None and read.rows.num_rows:
        table = read.rows
        in_month = pc.and_(
            pc.greater_equal(table["date"], pa.scalar(first, pa.date32())),
            pc.less_equal(table["date"], pa.scalar(last, pa.date32())),
        )
        table = (
            table.append_column("_check_date_in_month", in_month)
            .append_column("month", pa.array([first] * table.num_rows, pa.date32()))
            .append_column("source_file", pa.array([unit_file.uri] * table.num_rows, pa.string()))
        )
        # Dates as datetime64, not Python date objects: GX's null and uniqueness checks and the
        # publisher's cast back to date32 are vectorised on it (a third less validation time).
        frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get, date_as_object=False)[columns]
    else:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    batch = checked_batch(
        "ehealth_unit_daily",
        frame,
        read.rejected,
        read.rows_in,
        warehouse_uri=settings.warehouse_uri,
        batch_id=batch_id,
        replace_keys=[(first,)],
        quarantine_sources=[unit_file.uri],
    )
    if regional_rows is None or not (regional_rows["service"] == exports.SERVICE_WEB_BOOKING).any():
        regional_rows = _published_web_bookings(settings.warehouse_uri, period)  # no web booking file this run
    off = rules.unit_sum_warnings(period, batch.rows, regional_rows)
    batch.warnings.extend(off)
    mismatch = [w for w in off if "do not sum" in w]
    if mismatch:
        # Published unit rows are only replaced by a file whose days add up (no_shrink decides).
        batch.doubts = {unit_file.uri: mismatch[0]}
    batch.source_keys = {unit_file.uri: [(first,)]}
    if read.file_error is not None:
        batch.refused = {unit_file.uri: read.file_error}
    return batch


def _published_web_bookings(warehouse_uri: str, period: str):
    """The month's published regional web booking rows (pandas), or None: what a unit file alone is summed against."""
    import datetime as dt

    year, month = (int(x) for x in period.split("-"))
    keys = {(year, dt.date(year, month, 1), exports.SERVICE_WEB_BOOKING)}
    table = publish.read_table_where(warehouse_uri, "ehealth_adoption", ("year", "month", "service"), keys)
    return table.to_pandas() if table.num_rows else None
