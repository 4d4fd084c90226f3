"""``python -m etl check FILE…``: judge delivery files as a run would, without loading them.

For senders (a region checking its report before sending it) and for
engineers (a file a region says is fixed). Each file is parsed, validated
with its table's expectation suite and judged by the no-shrink check
against the published warehouse by the code a run uses
(:func:`etl.pipelines.county_reports.judge`,
:func:`etl.pipelines.ehealth_adoption.judge_month`), but nothing is
written: no table, quarantine, load log, delivery record or validation
result changes.

Which pipeline a file belongs to follows from its name: an e-health export
name (``journalen_2019-03.csv``, ``webbtidbok_enheter_2019-03.csv``) is a
monthly export, any other ``.xlsx``/``.xls``/``.ods``/``.json`` a county
report (docs/input-formats.md). Files given together are judged together,
as if they had landed together (two reports for one region-year: the newer
one counts). A file checked where it lies in landing is judged among the
files there, as the run judges it: an older report of a region-year whose
newer report is in landing is superseded, and an export with a second file
of its kind and month beside it is refused.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from etl import approvals, no_shrink, privacy, publish, storage, validation
from etl.config import Settings
from etl.deliveries import DeliveryRecord, display_name
from etl.errors import BadInput, EtlError, ValidationFailed

MAX_REASONS = 3

# Verdicts, from good to bad; exit 0 only when every file's verdict is one of OK.
LOADS, UNCHANGED, QUARANTINE, SUPERSEDED, BLOCKED, REFUSED = (
    "would load",
    "already published as it is",
    "would load, rows quarantined",
    "superseded",
    "blocked",
    "refused",
)
OK = frozenset({LOADS, UNCHANGED})


@dataclass
class Verdict:
    """What a run would do with one file: the verdict and the lines that explain it."""

    name: str  # the file's name, NFC
    verdict: str
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict in OK


def check(uris: list[str], settings: Settings) -> list[Verdict]:
    """One :class:`Verdict` per file in ``uris`` (local paths or fsspec URIs), in the order given.

    Reads the published warehouse at ``settings.warehouse_uri`` (an empty or
    missing warehouse: every file replaces nothing) and writes nothing.
    Raises :class:`EtlError` only for failures outside the files (the
    warehouse unreadable).
    """
    from etl.pipelines import county_reports
    from etl.sources import ehealth_exports as exports

    verdicts: dict[str, Verdict] = {}
    county: list[storage.LandedFile] = []
    ehealth: defaultdict[str, defaultdict[str, list[storage.LandedFile]]] = defaultdict(lambda: defaultdict(list))
    judged_as: dict[str, str] = {}  # URI given → the location its verdict is filed under (the file's real path)
    for uri in uris:
        name = display_name(posixpath.basename(uri.rstrip("/")))
        try:
            landed = storage.landed_file(uri)
            storage.safe_name(landed.name)
        except BadInput as exc:
            verdicts[uri] = Verdict(name, REFUSED, [privacy.mask_personal_data(privacy.redact_uri(str(exc)))])
            continue
        personal = storage.personal_name_refusal(landed.name)
        if personal is not None:  # as a run refuses it in landing
            verdicts[uri] = Verdict(name, REFUSED, [personal])
            continue
        try:
            export = exports.parse_file_name(landed.name)
        except BadInput as exc:
            if landed.name.lower().endswith(county_reports.SUFFIXES):
                county.append(landed)
                judged_as[uri] = landed.location
            else:
                verdicts[uri] = Verdict(
                    name,
                    REFUSED,
                    [f"not a file any pipeline takes: {exc}; county reports are {', '.join(county_reports.SUFFIXES)}"],
                )
            continue
        ehealth[export.period][export.kind].append(landed)
        judged_as[uri] = landed.location
    with validation.not_persisted():
        if county:
            verdicts.update(_check_county(county, settings))
        for period in sorted(ehealth):
            verdicts.update(_check_month(period, ehealth[period], settings))
    in_landing = _landing_verdicts(
        county, [f for kinds in ehealth.values() for files in kinds.values() for f in files], settings
    )
    for location, verdict in in_landing.items():
        if verdicts[location].verdict not in (REFUSED, SUPERSEDED):
            verdicts[location] = verdict
    return [verdicts[judged_as.get(uri, uri)] for uri in uris]


def _landing_verdicts(
    county: list[storage.LandedFile], ehealth: list[storage.LandedFile], settings: Settings
) -> dict[str, Verdict]:
    """Verdicts, by location, for the files checked in landing that a run would not take as their delivery.

    A run judges what is in landing together: of two reports for one
    region-year the later arrival counts (the other is superseded), and two
    exports of one kind and month refuse the month. A file checked outside
    landing (a sender's copy) is judged as if it landed now, alone.
    """
    from etl.pipelines import county_reports, ehealth_adoption
    from etl.sources import ehealth_exports

    out: dict[str, Verdict] = {}
    for module, files in ((county_reports, county), (ehealth_adoption, ehealth)):
        folder = _landing_folder(settings.landing_uri, module.PREFIX)
        mine = [f for f in files if posixpath.dirname(f.location.rstrip("/")) == folder]
        if not mine:
            continue
        where = privacy.redact_uri(storage.join(settings.landing_uri, module.PREFIX))
        try:
            landed = storage.list_landed(settings.landing_uri, module.PREFIX, module.SUFFIXES, skipped=[])
        except EtlError as exc:
            for f in mine:  # judged alone above; say that its neighbours in landing could not be seen
                out[f.location] = Verdict(
                    f.name, REFUSED, [f"{where} could not be listed to judge it as a run would: {exc}"]
                )
            continue
        for f in mine:
            there = next((g for g in landed if g.name == f.name), None)
            if there is None:
                continue  # not listed (hidden, still arriving): judged as it is
            if module is county_reports:
                _, current = county_reports.current_file(settings.warehouse_uri, landed, there)
                if current is not None and current.name != f.name:
                    out[f.location] = Verdict(
                        f.name,
                        SUPERSEDED,
                        [
                            f"superseded by {current.name}, a later file for the same region and year in {where}: "
                            "a run does not load it"
                        ],
                    )
                continue
            wanted = ehealth_exports.parse_file_name(f.name)
            others = []
            for g in landed:
                try:
                    name = ehealth_exports.parse_file_name(g.name)
                except BadInput:
                    continue
                if g.name != f.name and (name.kind, name.period) == (wanted.kind, wanted.period):
                    others.append(g.name)
            if others:
                out[f.location] = Verdict(
                    f.name,
                    REFUSED,
                    [
                        f"{', '.join(others)} is in {where} for the same kind and month: a run refuses the month "
                        "until all but one are removed"
                    ],
                )
    return out


def _landing_folder(landing_uri: str, prefix: str) -> str:
    """``<landing>/<prefix>`` spelt as :func:`storage.landed_file` spells a location in it (locally a real path)."""
    fs, path = storage.filesystem(storage.join(landing_uri, prefix))
    if storage.is_local(fs):
        return os.path.realpath(path)
    return storage.join(landing_uri, prefix).rstrip("/")


def _check_county(landed: list[storage.LandedFile], settings: Settings) -> dict[str, Verdict]:
    from etl.pipelines import county_reports as pipeline

    warehouse = settings.warehouse_uri
    record = DeliveryRecord.load(warehouse, pipeline.PIPELINE, legacy_committed=pipeline.legacy_committed(warehouse))
    submissions = [pipeline.read_submission(f) for f in landed]
    try:
        batches, decided = pipeline.judge(submissions, warehouse, publish.new_batch_id())
        blocked = decided.blocked
    except ValidationFailed as exc:  # a batch-level rule over all the files given
        return {f.location: Verdict(f.name, BLOCKED, [str(exc)]) for f in landed}
    out = {}
    for sub in submissions:
        f = sub.landed
        if sub.superseded:
            out[f.location] = Verdict(f.name, SUPERSEDED, [sub.reason])
        elif not sub.accepted:
            out[f.location] = Verdict(f.name, REFUSED, [sub.reason])
        else:
            did = pipeline.delivery_id(sub.key)
            out[f.location] = _verdict(
                f, batches, blocked, warehouse, unchanged=record.is_published(did, f), delivery=f"region {did}"
            )
    return out


def _check_month(period: str, month_files: dict[str, list], settings: Settings) -> dict[str, Verdict]:
    from etl.pipelines import ehealth_adoption as pipeline

    files = [f for kind in month_files for f in month_files[kind]]
    record = DeliveryRecord.load(
        settings.warehouse_uri, pipeline.PIPELINE, legacy_committed=pipeline.legacy_committed(settings)
    )
    try:
        judged = pipeline.judge_month(
            settings, period, month_files, publish.new_batch_id(), decisions=pipeline.approved_now(settings, record)
        )
    except BadInput as exc:  # two files of one kind for the month
        return {f.location: Verdict(f.name, REFUSED, [str(exc)]) for f in files}
    out = {}
    for kind, kind_files in month_files.items():
        f = kind_files[0]
        did = pipeline.delivery_id(kind, period)
        out[f.location] = _verdict(
            f,
            judged.candidates,
            judged.blocked,
            settings.warehouse_uri,
            unchanged=record.is_published(did, f),
            delivery=did,
        )
    return out


def _verdict(
    f: storage.LandedFile,
    batches: list[publish.TableBatch],
    blocked: dict[str, str],
    warehouse: str,
    *,
    unchanged: bool,
    delivery: str,
) -> Verdict:
    """The verdict on one accepted file from its table batches (blocked ones included)."""
    lines, quarantined = [], 0
    for batch in batches:
        if f.uri not in batch.source_keys and not batch.source_rows(f.uri):
            continue
        rows = int((batch.rows["source_file"] == f.uri).sum()) if len(batch.rows) else 0
        held, reasons = no_shrink.quarantine_reasons(batch, f.uri, limit=MAX_REASONS, lines=True)
        quarantined += held
        line = f"{batch.table}: {rows} row(s) to load"
        keys = batch.source_keys.get(f.uri) or []
        if batch.merge_keys and keys:
            published = publish.read_published_keys(warehouse, batch.table, batch.merge_keys, set(keys)).num_rows
            line += f", replacing {published} published row(s) of {delivery}" if published else " (new)"
        if held:
            line += f"; {held} row(s) would be quarantined: {reasons}"
        lines.append(line)
    for batch in batches:
        if f.uri not in batch.source_keys:
            continue
        alone = set(batch.source_keys) == {f.uri}  # else only the warnings that name this file are its own
        for warning in batch.warnings:
            if alone or f.name in warning or delivery in warning:
                lines.append(f"warning: {privacy.mask_personal_data(warning)}")
    lines = list(dict.fromkeys(lines))
    if f.uri in blocked:
        # The file as judged: nothing of it would load now, so its rows are said to load only once approved.
        line = _without_name(blocked[f.uri], f.name)
        # Only a block a person may approve says what an approval would load; a refused file, or a block no
        # approval can release (the sender replaces the file), says it as judged.
        approvable = approvals.is_approvable(blocked[f.uri], f.uri)
        said = "if approved: " if approvable else "as judged (none of it loads): "
        details = [f"{said}{detail}" for detail in lines]
        if line.startswith("blocked, refused whole: "):
            return Verdict(f.name, REFUSED, [line.removeprefix("blocked, refused whole: "), *details])
        return Verdict(f.name, BLOCKED, [line.removeprefix("blocked, "), *details])
    if unchanged and not quarantined:
        return Verdict(f.name, UNCHANGED, [f"the published {delivery} comes from this exact content"])
    return Verdict(f.name, QUARANTINE if quarantined else LOADS, lines)


def _without_name(line: str, name: str) -> str:
    prefix = f"{name}: "
    return line[len(prefix) :] if line.startswith(prefix) else line


def render(verdicts: list[Verdict]) -> list[str]:
    """Output lines: per file ``name: verdict`` and its indented details, then one summary line."""
    out = []
    for v in verdicts:
        out.append(f"{privacy.mask_personal_data(v.name)}: {v.verdict}")  # a name may hold personal data too
        out.extend(f"  {line}" for line in v.lines)
    counts = Counter(v.verdict for v in verdicts)
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    out.append(f"{len(verdicts)} file(s) checked: {summary} (nothing was written)")
    return out
