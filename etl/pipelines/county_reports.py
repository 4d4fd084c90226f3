"""County reports pipeline: the regions' annual follow-up reports → ``county_report``,
``county_initiative`` and ``county_ehealth_service``.

Reads new ``<landing>/county_reports/*.xlsx|*.json`` (files whose SHA-256 is
not yet committed), parses them with :mod:`etl.sources.county_reports`,
decides which submission counts for each region and year, validates the
three tables with their suites and publishes them.

Which submission counts (a correction replaces, it never adds):

* one submission per region and year is current: the one with the newest
  file timestamp (``submitted_at``). All three tables merge on
  ``(region_code, report_year)``, so a correction replaces every initiative
  and service row of that region-year, even when it has none.
* two files for the same region-year in one delivery: the newer wins, the
  older is quarantined whole ("superseded by …").
* a file older than the submission already published for its region-year
  is quarantined whole: a late-arriving old version must not undo a
  correction.
* a re-delivery with the same content changes nothing: identical bytes
  are skipped by SHA-256, and identical content under new bytes keeps the
  published ``submitted_at``, so the tables stay unchanged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from etl import publish, schemas, storage
from etl.config import Settings
from etl.errors import BadInput, EtlError
from etl.pipelines.common import RunReport, checked_batch, record_failure, record_nothing_new, refuse_skipped
from etl.sources import county_reports as source
from etl.sources.county_reports import ParsedReport

log = logging.getLogger(__name__)

PIPELINE = "county_reports"
PREFIX = "county_reports"  # folder under the landing URI
SUFFIXES = (".xlsx", ".json")
REPORT, INITIATIVE, SERVICE = "county_report", "county_initiative", "county_ehealth_service"
TABLES = (REPORT, INITIATIVE, SERVICE)
MERGE_KEYS = ("region_code", "report_year")
ORIGIN = ("source_file", "row_number", "raw")
SPEND_SHARE = "_check_spend_share"


@dataclass
class Submission:
    landed: storage.LandedFile
    parsed: ParsedReport
    submitted_at: "pandas.Timestamp"  # noqa: F821

    @property
    def accepted(self) -> bool:
        return self.parsed.error is None


# --------------------------------------------------------------------------- what is new


def _timestamp(modified: float | None):
    import pandas as pd

    if modified is None:
        # Every fsspec store we use reports a modification time; if one does
        # not, the arrival time is the best stand-in for the submission time.
        return pd.Timestamp(publish.utcnow()).floor("us")
    return pd.Timestamp(modified, unit="s", tz="UTC").floor("us")


def read_submission(landed: storage.LandedFile) -> Submission:
    try:
        data = storage.read_bytes(landed.uri, max_bytes=source.MAX_FILE_BYTES)
    except BadInput as exc:
        parsed = ParsedReport(source_file=landed.uri, file_name=landed.name).reject(str(exc))
    else:
        parsed = source.parse_report(data, landed.name, source_file=landed.uri)
    return Submission(landed, parsed, _timestamp(landed.modified))


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
    """Reject, in place, the submissions that do not count (superseded or older than published)."""
    import pandas as pd

    groups: dict[tuple, list[Submission]] = defaultdict(list)
    for sub in submissions:
        if sub.accepted:
            groups[sub.parsed.key].append(sub)
    winners: dict[tuple, Submission] = {}
    for key, group in groups.items():
        # Equal timestamps are broken by file name so the outcome never depends on listing order.
        group.sort(key=lambda s: (s.submitted_at, s.landed.name))
        winners[key] = group[-1]
        for older in group[:-1]:
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
            sub.parsed.header, sub.parsed.initiatives, sub.parsed.services
        )
        if same:
            # Nothing was corrected: keep the time the content was first
            # submitted, so the publish finds nothing to change.
            sub.submitted_at = old_time
        elif sub.submitted_at < old_time:
            sub.parsed.reject(
                f"older than the published submission {old['source_file'].rsplit('/', 1)[-1]} for region "
                f"{key[0]}, {key[1]} (file time {sub.submitted_at:%Y-%m-%d %H:%M:%S} < "
                f"{old_time:%Y-%m-%d %H:%M:%S} UTC): not loaded; send a correction as a new file"
            )


# --------------------------------------------------------------------------- rows and batches


_DTYPES = {"string": "string", "int16": "Int16", "int32": "Int32", "int64": "Int64", "bool": "boolean"}


def _frame(table: str, records: list[dict], extra: tuple[str, ...] = ()):
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
        else:
            frame[col.name] = frame[col.name].astype(_DTYPES[str(col.type)])
    frame["source_file"] = frame["source_file"].astype("string")
    frame["row_number"] = frame["row_number"].astype("Int64")
    frame["raw"] = frame["raw"].astype("string")
    if SPEND_SHARE in frame:
        frame[SPEND_SHARE] = frame[SPEND_SHARE].astype("Float64")
    return frame


def _whole(sub: Submission, reason: str, rows_held: int, raw: str) -> dict:
    return {"source_file": sub.landed.uri, "row_number": 0, "raw": raw, "reason": reason,
            "rows_held": rows_held, "source_sha256": sub.landed.sha256}


def _row_rejects(sub: Submission, rejected: list[dict]) -> list[dict]:
    return [{**r, "source_file": sub.landed.uri, "rows_held": 1, "source_sha256": sub.landed.sha256}
            for r in rejected]


def _report_batch(submissions: list[Submission], warehouse_uri: str, batch_id: str):
    rows, rejected = [], []
    for sub in submissions:
        parsed = sub.parsed
        if sub.accepted:
            rows.append({**parsed.header, "submitted_at": sub.submitted_at, "source_file": sub.landed.uri,
                         "row_number": 1, "raw": parsed.header_raw, SPEND_SHARE: source.spend_share(parsed.header)})
        else:
            rejected.append(_whole(sub, parsed.error, 1, parsed.header_raw))
    warnings = [w for sub in submissions for w in sub.parsed.warnings]
    return checked_batch(
        REPORT, _frame(REPORT, rows, (SPEND_SHARE,)), rejected, len(submissions), MERGE_KEYS,
        warehouse_uri=warehouse_uri, batch_id=batch_id,
        quarantine_sources=[s.landed.uri for s in submissions], extra_warnings=warnings,
    )


def _drop_rejected_headers(submissions: list[Submission], report_batch) -> None:
    """A report whose header row failed validation takes its initiatives and services with it."""
    loaded = set(report_batch.rows["source_file"])
    reasons = {}
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
                rejected.append(_whole(sub, parsed.error, held, f"{held} {what} row(s) of the rejected report"))
            continue
        good = parsed.initiatives if table == INITIATIVE else parsed.services
        bad = parsed.rejected_initiatives if table == INITIATIVE else parsed.rejected_services
        rows += [{**r, "submitted_at": sub.submitted_at, "source_file": sub.landed.uri} for r in good]
        rejected += _row_rejects(sub, bad)
    # Every accepted report replaces its region-year, also when it lists no rows.
    replace = sorted({sub.parsed.key for sub in submissions if sub.accepted})
    return checked_batch(
        table, _frame(table, rows), rejected, rows_in, MERGE_KEYS, warehouse_uri=warehouse_uri,
        batch_id=batch_id, replace_keys=replace, quarantine_sources=[s.landed.uri for s in submissions],
    )


# --------------------------------------------------------------------------- the run


def run(settings: Settings, **_: object) -> RunReport:
    """Load every new county report file; one batch for the three tables."""
    batch_id = publish.new_batch_id()
    report = RunReport(PIPELINE, batch_id)
    warehouse = settings.warehouse_uri
    skipped: list[str] = []
    landed = storage.list_landed(settings.landing_uri, PREFIX, SUFFIXES, skipped=skipped,
                                 hash_cache=storage.hash_cache_uri(settings.warehouse_uri, PREFIX))
    for note in skipped:
        log.warning("not loaded: %s", note)
    done = publish.loaded_sha256(warehouse, PIPELINE, tables=TABLES)
    new = [f for f in landed if f.sha256 not in done]
    if not new:
        message = f"nothing new: {len(landed)} county report file(s) in landing, all already loaded"
        record_nothing_new(warehouse, PIPELINE, batch_id, message)
        report.messages.append(message)
        refuse_skipped(warehouse, report, skipped)
        return report

    submissions = [read_submission(f) for f in new]
    table = None
    try:
        settle(submissions, warehouse)
        # All three batches are validated before anything is published, so
        # a blocking validation failure leaves every table as it was.
        report_batch = _report_batch(submissions, warehouse, batch_id)
        _drop_rejected_headers(submissions, report_batch)
        batches = [
            report_batch,
            _detail_batch(INITIATIVE, submissions, warehouse, batch_id),
            _detail_batch(SERVICE, submissions, warehouse, batch_id),
        ]
        for batch in batches:
            table = batch.table
            report.results.append(publish.publish(warehouse, PIPELINE, batch, batch_id, new))
    except EtlError as exc:
        record_failure(warehouse, PIPELINE, batch_id, table, new, str(exc))
        raise
    rejected = [s for s in submissions if not s.accepted]
    report.messages.append(
        f"{PIPELINE}: {len(new)} new file(s): {len(new) - len(rejected)} report(s) accepted, "
        f"{len(rejected)} quarantined whole"
    )
    for sub in rejected:
        log.warning("quarantined %s whole: %s", sub.landed.name, sub.parsed.error)
        report.messages.append(f"  quarantined {sub.landed.name}: {sub.parsed.error}")
    refuse_skipped(warehouse, report, skipped)
    return report
