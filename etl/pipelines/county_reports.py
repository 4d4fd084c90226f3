"""County reports pipeline: the regions' annual follow-up reports → ``county_report``,
``county_initiative`` and ``county_ehealth_service``.

Reads ``<landing>/county_reports/*`` (``.xlsx``, ``.xls``, ``.ods``,
``.json``), parses them with :mod:`etl.sources.county_reports`, decides
which file is each region-year's delivery now, validates the three tables
with their suites and publishes them.

Which file counts — **delivery order** (:mod:`etl.deliveries`): for each
region and year the file in landing now that arrived last (first seen by a
run; files first seen together go by modification time) is the delivery,
and the tables reflect it. It is (re)loaded whenever its
content differs from the content the published version came from — so
re-sending an earlier version after a correction undoes the correction.
Older files for the same region-year stay in landing unloaded, named in
the run's messages. All three tables merge on ``(region_code,
report_year)``: a correction replaces every initiative and service row of
that region-year — but only what it states (:mod:`etl.no_shrink`): a
correction that would drop published rows because rows were quarantined,
or because its JSON leaves ``initiatives`` / ``ehealth_services`` out, is
blocked; an explicit ``"initiatives": []`` is a withdrawal and is honoured.
(A misspelt or unknown key refuses the report whole at parsing.) A
correction that would turn a published value into null (a grant, a spend,
a yes/no answer: :func:`etl.no_shrink.value_losses`) is blocked naming the
cells, too: a report has no way to say a value is withdrawn, so a person
approves it (docs/input-formats.md, "values that become null").

A file refused whole (unreadable, not a report, no region) fails the run
naming it, every run, until it is replaced or removed; the other files
still publish. A re-delivery with the same content changes nothing
(identical content keeps the published ``submitted_at``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from etl import approvals, no_shrink, publish, schemas, storage, verdict
from etl.config import Settings
from etl.deliveries import DeliveryRecord, delivery_path
from etl.errors import BadInput
from etl.pipelines import skeleton
from etl.pipelines.common import (
    ORIGIN,
    Progress,
    RunReport,
    checked_batch,
    last_committed,
    records_unexpected_failures,
    start_run,
    take_in,
)
from etl.sources import county_reports as source
from etl.sources.county_reports import ParsedReport

if TYPE_CHECKING:
    import pandas

log = logging.getLogger(__name__)

PIPELINE = "county_reports"
PREFIX = "county_reports"  # folder under the landing URI
SUFFIXES = source.SUFFIXES
REPORT, INITIATIVE, SERVICE = "county_report", "county_initiative", "county_ehealth_service"
TABLES = (REPORT, INITIATIVE, SERVICE)
SPEND_SHARE = "_check_spend_share"


@dataclass
class Submission:
    landed: storage.LandedFile
    parsed: ParsedReport
    submitted_at: pandas.Timestamp
    stated: frozenset = frozenset({"county_initiative", "county_ehealth_service"})  # tables the file states
    superseded: bool = False  # a later file for the same region-year came in the same delivery

    @property
    def accepted(self) -> bool:
        return self.parsed.error is None

    @property
    def key(self) -> tuple[str, int]:
        """(region code, report year) of an accepted submission (a rejected one may have no header)."""
        key = self.parsed.key
        assert key is not None, f"{self.landed.name}: no header read"
        return key

    @property
    def header(self) -> dict:
        """The header of an accepted submission."""
        header = self.parsed.header
        assert header is not None, f"{self.landed.name}: no header read"
        return header

    @property
    def reason(self) -> str:
        """Why a submission is not accepted."""
        error = self.parsed.error
        assert error is not None, f"{self.landed.name} is accepted"
        return error


# --------------------------------------------------------------------------- what is new


def _timestamp(modified: float | None):
    import pandas as pd

    if modified is None:
        # Every fsspec store we use reports a modification time; if one does
        # not, the arrival time is the best stand-in for the submission time.
        return pd.Timestamp(publish.utcnow()).floor("us")
    return pd.Timestamp(modified, unit="s", tz="UTC").floor("us")


def read_submission(landed: storage.LandedFile) -> Submission:
    stated = Submission.stated
    try:
        data = storage.read_bytes(landed.path, max_bytes=source.MAX_FILE_BYTES)
    except BadInput as exc:
        parsed = ParsedReport(source_file=landed.uri, file_name=landed.name).reject(str(exc))
    else:
        parsed = source.parse_report(data, landed.name, source_file=landed.uri)
        if parsed.error is None and landed.name.lower().endswith(".json"):
            stated = _json_states(data)
    return Submission(landed, parsed, _timestamp(landed.modified), stated)


def _json_states(data: bytes) -> frozenset:
    """The detail tables a web-form JSON states: its lists present under their exact keys.

    The web form leaves an empty list out, so a missing key says nothing
    about the region's initiatives; only a present list — ``[]`` included —
    replaces the published ones. (A misspelt key never gets here: the
    parser refuses a report with a key the web form does not write.)
    """
    import json

    from etl.sources import county_template as tpl

    document = json.loads(data.decode("utf-8-sig"))  # parse_report accepted it: valid JSON object
    return frozenset(
        table
        for table, key in ((INITIATIVE, tpl.JSON_INITIATIVES), (SERVICE, tpl.JSON_SERVICES))
        if isinstance(document.get(key), list)
    )


# --------------------------------------------------------------------------- which submission counts


def _content(header: dict, initiatives: list[dict], services: list[dict]) -> tuple:
    """What a submission says, without when it was sent: equal content = nothing to change."""

    def pick(table: str, row: dict) -> tuple:
        return tuple(row.get(c) for c in schemas.get(table).business_columns if c != "submitted_at")

    return (
        pick(REPORT, header),
        tuple(sorted((pick(INITIATIVE, r) for r in initiatives), key=repr)),
        tuple(sorted((pick(SERVICE, r) for r in services), key=repr)),
    )


def settle(submissions: list[Submission], warehouse_uri: str) -> None:
    """Reject, in place, submissions superseded in the same delivery; keep the first time of unchanged content."""
    import pandas as pd

    groups: dict[tuple, list[Submission]] = defaultdict(list)
    for sub in submissions:
        if sub.accepted:
            groups[sub.key].append(sub)
    winners: dict[tuple, Submission] = {}
    for key, group in groups.items():
        # Equal timestamps are broken by file name so the outcome never depends on listing order.
        group.sort(key=lambda s: (s.submitted_at, s.landed.name))
        winners[key] = group[-1]
        for older in group[:-1]:
            older.superseded = True
            older.parsed.reject(
                f"superseded by {group[-1].landed.name} (a later submission for region {key[0]}, "
                f"{key[1]} in the same delivery)"
            )

    published = publish.read_table(warehouse_uri, REPORT).to_pylist()
    current = {(r["region_code"], r["report_year"]): r for r in published}
    overlap = [key for key in winners if key in current]
    if not overlap:
        return
    old_rows: dict[str, dict[tuple, list[dict]]] = {}
    for table in (INITIATIVE, SERVICE):
        grouped: dict[tuple, list[dict]] = defaultdict(list)
        for row in publish.read_table(warehouse_uri, table).to_pylist():
            grouped[(row["region_code"], row["report_year"])].append(row)
        old_rows[table] = grouped
    for key in overlap:
        sub, old = winners[key], current[key]
        old_time = pd.Timestamp(old["submitted_at"])
        same = _content(old, old_rows[INITIATIVE][key], old_rows[SERVICE][key]) == _content(
            sub.header, sub.parsed.initiatives, sub.parsed.services
        )
        if same:
            # Nothing was corrected: keep the time the content was first
            # submitted, so the publish finds nothing to change.
            sub.submitted_at = old_time


# --------------------------------------------------------------------------- rows and batches


_DTYPES: dict[str, Literal["string", "Int16", "Int32", "Int64", "boolean"]] = {
    "string": "string",
    "int16": "Int16",
    "int32": "Int32",
    "int64": "Int64",
    "bool": "boolean",
}


def _report_frame(table: str, records: list[dict], extra: tuple[str, ...] = ()):
    """Parsed rows → a DataFrame with the table's columns in nullable pandas dtypes (what the suites expect)."""
    import pandas as pd
    import pyarrow as pa

    schema = schemas.get(table)
    columns = [*schema.business_columns, *ORIGIN, *extra]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for col in schema.columns:
        if pa.types.is_timestamp(col.type):
            frame[col.name] = pd.to_datetime(frame[col.name], utc=True).astype("datetime64[us, UTC]")
        elif pa.types.is_date32(col.type):
            frame[col.name] = frame[col.name].astype(object)
        elif _DTYPES[str(col.type)].startswith("Int"):
            # From the parsed ints: a column with a blank (None) is float64 in the frame, which rounds an
            # amount above 2**53 SEK.
            frame[col.name] = pd.array([record.get(col.name) for record in records], dtype=_DTYPES[str(col.type)])
        else:
            frame[col.name] = frame[col.name].astype(_DTYPES[str(col.type)])
    frame["source_file"] = frame["source_file"].astype("string")
    frame["row_number"] = frame["row_number"].astype("Int64")
    frame["raw"] = frame["raw"].astype("string")
    if SPEND_SHARE in frame:
        frame[SPEND_SHARE] = frame[SPEND_SHARE].astype("Float64")
    return frame


def _whole(sub: Submission, reason: str, rows_held: int, raw: str) -> dict:
    return {
        "source_file": sub.landed.uri,
        "row_number": 0,
        "raw": raw,
        "reason": reason,
        "rows_held": rows_held,
        "source_sha256": sub.landed.sha256,
    }


def _row_rejects(sub: Submission, rejected: list[dict]) -> list[dict]:
    return [{**r, "source_file": sub.landed.uri, "rows_held": 1, "source_sha256": sub.landed.sha256} for r in rejected]


def _report_batch(submissions: list[Submission], warehouse_uri: str, batch_id: str):
    rows, rejected = [], []
    for sub in submissions:
        parsed = sub.parsed
        if sub.accepted:
            rows.append(
                {
                    **sub.header,
                    "submitted_at": sub.submitted_at,
                    "source_file": sub.landed.uri,
                    "row_number": 1,
                    "raw": parsed.header_raw,
                    SPEND_SHARE: source.spend_share(sub.header),
                }
            )
        else:
            rejected.append(_whole(sub, sub.reason, 1, parsed.header_raw))
    warnings = [w for sub in submissions for w in sub.parsed.warnings]
    return _judged(
        checked_batch(
            REPORT,
            _report_frame(REPORT, rows, (SPEND_SHARE,)),
            rejected,
            len(submissions),
            warehouse_uri=warehouse_uri,
            batch_id=batch_id,
            quarantine_sources=[s.landed.uri for s in submissions],
            extra_warnings=warnings,
        ),
        submissions,
    )


def _drop_rejected_headers(submissions: list[Submission], report_batch) -> None:
    """A report whose header row failed validation takes its initiatives and services with it."""
    loaded = set(report_batch.rows["source_file"])
    reasons: dict[str, str] = {}
    if len(report_batch.quarantine):
        for row in report_batch.quarantine.to_dict("records"):
            reasons.setdefault(row["source_file"], row["reason"])
    for sub in submissions:
        if sub.accepted and sub.landed.uri not in loaded:
            sub.parsed.error = f"report header failed validation: {reasons.get(sub.landed.uri, 'see county_report')}"


def _detail_batch(table: str, submissions: list[Submission], warehouse_uri: str, batch_id: str):
    rows, rejected, rows_in = [], [], 0
    what = "initiative" if table == INITIATIVE else "e-health service"
    for sub in submissions:
        parsed = sub.parsed
        held = parsed.initiative_rows if table == INITIATIVE else parsed.service_rows
        rows_in += held
        if not sub.accepted:
            if held:
                rejected.append(_whole(sub, sub.reason, held, f"{held} {what} row(s) of the rejected report"))
            continue
        good = parsed.initiatives if table == INITIATIVE else parsed.services
        bad = parsed.rejected_initiatives if table == INITIATIVE else parsed.rejected_services
        rows += [{**r, "submitted_at": sub.submitted_at, "source_file": sub.landed.uri} for r in good]
        rejected += _row_rejects(sub, bad)
    # Every accepted report replaces its region-year (the tables' declared merge key), also when it lists no rows.
    replace = sorted({sub.key for sub in submissions if sub.accepted})
    batch = checked_batch(
        table,
        _report_frame(table, rows),
        rejected,
        rows_in,
        warehouse_uri=warehouse_uri,
        batch_id=batch_id,
        replace_keys=replace,
        quarantine_sources=[s.landed.uri for s in submissions],
    )
    return _judged(batch, submissions, unstated={s.landed.uri for s in submissions if table not in s.stated})


def _judged(batch, submissions: list[Submission], unstated: AbstractSet[str] = frozenset()):
    """What the no-shrink check needs: the region-year each file replaces, and the files refused whole."""
    batch.source_keys = {s.landed.uri: [s.key] for s in submissions if s.accepted}
    batch.refused = {s.landed.uri: s.parsed.error for s in submissions if not s.accepted and not s.superseded}
    batch.unstated = set(unstated)
    return batch


# --------------------------------------------------------------------------- the run


def judge(submissions: list[Submission], warehouse: str, batch_id: str):
    """The three tables' batches for ``submissions`` and the files blocked from them; writes nothing.

    Returns ``([county_report, county_initiative, county_ehealth_service]
    batches, the delivery verdict)`` (:class:`etl.verdict.Verdict`: ``blocked``
    file URI → one line, ``short`` → the same cut for the terminal). All three batches are validated
    before anything is published, so a blocking validation failure
    (:class:`ValidationFailed`) leaves every table as it was. A block a
    person approved (:mod:`etl.approvals`) is released: the file publishes
    and its batches' warnings say who approved it. Validation results are
    persisted unless :func:`etl.validation.not_persisted` is in force.
    """
    settle(submissions, warehouse)
    report_batch = _report_batch(submissions, warehouse, batch_id)
    _drop_rejected_headers(submissions, report_batch)
    batches = [
        _judged(report_batch, submissions),
        _detail_batch(INITIATIVE, submissions, warehouse, batch_id),
        _detail_batch(SERVICE, submissions, warehouse, batch_id),
    ]
    measured = no_shrink.shrinks(warehouse, batches)
    findings = []
    for sub in submissions:
        if sub.superseded:
            continue  # quarantined whole as superseded, not judged: a newer file of the region-year is
        shrink = measured.get(sub.landed.uri) or no_shrink.Shrink()
        rejected = [*sub.parsed.rejected_initiatives, *sub.parsed.rejected_services] if sub.accepted else []
        findings.append(
            verdict.Findings(
                sub.landed.uri,
                TABLES,
                refused_whole="; ".join(shrink.refused) or None,
                values_lost=shrink.values_lost,
                lost_detail=shrink.lost_line,
                rows_removed=shrink.rows_removed,
                removed_detail=shrink.removed_detail,
                rows_unreadable=shrink.rows_unreadable,
                unreadable_detail=shrink.unreadable_detail,
                rejected=rejected,
            )
        )
    # Judged by the delivery suite (expectations/delivery.json): a block with rows to publish is a
    # person's call (approvable); a report refused whole is not.
    judged = verdict.judge(
        findings, {s.landed.uri: s.landed.sha256 for s in submissions}, approvals.approved(warehouse, PIPELINE)
    )
    for uri, decision in judged.released.items():
        log.warning("%s", approvals.release_note(uri, decision))
        for batch in batches:
            if uri in batch.source_keys:
                batch.warnings.append(approvals.release_note(uri, decision))
    return batches, judged


def delivery_id(key: tuple[str, int]) -> str:
    """A county report's delivery: its region and report year (``01-2019``), whatever the file is called."""
    return f"{key[0]}-{key[1]}"


def legacy_committed(warehouse: str):
    """Per region-year, the content last committed to all three tables (for deliveries the record lacks)."""

    def committed() -> dict[str, str]:
        published = publish.read_table(warehouse, REPORT).select(["region_code", "report_year", "source_file"])
        by_path = {
            delivery_path(r["source_file"]): delivery_id((r["region_code"], r["report_year"]))
            for r in published.to_pylist()
        }

        def delivery_of(uri: str):
            delivery = by_path.get(delivery_path(uri))
            return None if delivery is None else (delivery, TABLES)

        return last_committed(warehouse, PIPELINE, delivery_of)

    return committed


def _current_deliveries(landed: list[storage.LandedFile], record: DeliveryRecord):
    """(current file per delivery id, parsed submissions by URI, files not loaded).

    A file whose content was seen before keeps the delivery it was found to
    be; only new or changed files are parsed. Files not loaded are those
    refused whole and new files superseded by a newer one for the same
    region-year (quarantined whole, not blocked).
    """
    parsed: dict[str, Submission] = {}
    by_delivery: dict[str, list[storage.LandedFile]] = defaultdict(list)
    refused: list[Submission] = []
    to_read = sum(1 for f in landed if record.known_delivery(f)[1] is None)
    progress = Progress(PIPELINE, to_read, "files") if to_read else None  # reading a workbook takes a while
    for f in landed:
        known, did = record.known_delivery(f)
        if not known or did is None:
            sub = read_submission(f)
            if progress:
                progress.step(note=f.name)
            parsed[f.uri] = sub
            did = delivery_id(sub.key) if sub.accepted else None
            record.remember_file(f, did)
            if did is None:
                refused.append(sub)
                continue
        by_delivery[did].append(f)
    current = {}
    for did, files in by_delivery.items():
        # The latest arrival counts; files that arrived together (a first load) go by modification time,
        # then by name, never by listing order.
        files.sort(key=lambda f: (record.arrived(f), f.modified or 0.0, f.name))
        current[did] = files[-1]
        for older in files[:-1]:
            older_sub = parsed.get(older.uri)
            if older_sub is not None:  # new in landing: quarantined whole once, with the reason
                key = older_sub.key
                older_sub.superseded = True
                older_sub.parsed.reject(
                    f"superseded by {files[-1].name} (a later file for region {key[0]}, "
                    f"{key[1]} in landing): not loaded"
                )
                refused.append(older_sub)
    return current, parsed, refused


def current_file(
    warehouse: str, landed: list[storage.LandedFile], file: storage.LandedFile
) -> tuple[str | None, storage.LandedFile | None]:
    """(delivery id, the file in ``landed`` a run takes as that delivery's report) for ``file``.

    The delivery order a run applies (:func:`_current_deliveries`: the
    latest arrival counts, new files parsed); ``file`` itself when it is the
    current one, ``(None, None)`` when ``file`` is no county report. Reads
    only: the delivery record is not saved.
    """
    record = DeliveryRecord.load(warehouse, PIPELINE)
    current, _, _ = _current_deliveries(landed, record)
    did = record.files.get(file.name, {}).get("delivery")
    return (None, None) if did is None else (did, current.get(did))


def replaced_by(
    warehouse: str, landed: list[storage.LandedFile], file: storage.LandedFile, arriving_names: AbstractSet[str]
) -> str | None:
    """Why ``file`` (in ``landed``) is not what the next run would judge for its region-year, or None.

    For an approval (:func:`etl.pipelines.approved.check_publishable`): the delivery
    order of :func:`current_file`, and a region-year whose published file is
    being written again waits. Reads only: the delivery record is not saved.
    """
    did, newer = current_file(warehouse, landed, file)
    if did is None:
        return f"{file.name} is no county report a run would load"
    if DeliveryRecord.load(warehouse, PIPELINE).published.get(did, {}).get("file") in arriving_names:
        return f"the published file of {did} is being written again in landing; decide once it is left alone"
    if newer is not None and newer.name != file.name:
        return (
            f"{newer.name} arrived later for the same region and year and is its report now; approving "
            f"{file.name} would change nothing (the next run judges {newer.name})"
        )
    return None


@records_unexpected_failures(PIPELINE)
def run(settings: Settings) -> RunReport:
    """Load every county report delivery whose file in landing is not what is published; one batch.

    Raises :class:`ValidationFailed` after publishing the rest when a file is
    refused whole or blocked by the no-shrink check (naming each), and
    :class:`BadInput` when landing holds entries that cannot be taken in.
    """
    report = start_run(settings.warehouse_uri, PIPELINE)
    return skeleton.execute(settings, report, plan(settings, report))


def plan(settings: Settings, report: RunReport) -> skeleton.Plan:
    """One step for every pending county report (they validate and publish together), or nothing new."""
    warehouse = settings.warehouse_uri
    intake = take_in(settings, PREFIX, SUFFIXES, report)
    landed = intake.landed
    record = DeliveryRecord.load(warehouse, PIPELINE, legacy_committed=legacy_committed(warehouse))
    current, parsed, not_loaded = _current_deliveries(landed, record)
    # A region-year whose published file is being written again (re-uploaded, touched) waits with it:
    # judged without that file, an older one would look current and be republished for a run.
    waiting = {did for did, entry in record.published.items() if entry.get("file") in intake.arriving_names}
    current = {did: f for did, f in current.items() if did not in waiting}
    pending = {did: f for did, f in current.items() if not record.is_published(did, f)}
    submissions = [parsed.get(f.uri) or read_submission(f) for f in pending.values()] + not_loaded
    the_plan = skeleton.Plan(skipped=intake.skipped, record=record, landing_names={f.name for f in landed})
    if not submissions:
        the_plan.nothing_new = (
            f"nothing new loaded: {len(intake.arriving)} county report file(s) still arriving (named above)"
            if intake.arriving
            else f"nothing new: {len(landed)} county report file(s) in landing, all already loaded"
        )
        return the_plan
    new = [s.landed for s in submissions]

    def judge_reports(step: skeleton.Step) -> skeleton.Judgement:
        batches, decided = judge(submissions, warehouse, step.batch_id)
        blocked = decided.blocked
        judged = skeleton.Judgement(
            blocked=blocked,
            short=decided.short,
            verdict=decided,
            landed={f.uri: f for f in new},
            held={uri: sum(b.source_rows(uri) for b in batches) for uri in blocked},
            delivered={did: [f] for did, f in pending.items()},
        )
        sources = [f for f in new if f.uri not in blocked]
        judged.batches = [(batch, sources) for batch in no_shrink.without_blocked(batches, blocked)]
        superseded = [s for s in submissions if s.superseded]
        report.messages.append(
            f"{PIPELINE}: {len(new)} file(s): {len(new) - len(blocked) - len(superseded)} report(s) loaded, "
            f"{len(blocked)} blocked, {len(superseded)} superseded"
        )
        report.messages += [f"  quarantined {s.landed.name}: {s.parsed.error}" for s in superseded]
        return judged

    the_plan.steps = [skeleton.Step("county reports", report.batch_id, judge_reports, sources=new)]
    return the_plan
