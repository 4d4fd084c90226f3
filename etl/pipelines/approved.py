"""Deciding on a blocked delivery and, on approval, publishing it at once by running its pipeline.

:mod:`etl.approvals` records decisions and the pipelines release approved
blocks when they judge a file; this module sits above both: it checks that
an approval can publish (the file still in landing, unchanged, its
delivery's current file), records the decision and runs the file's
pipeline. Used by ``python -m etl approve FILE`` and the Airflow DAG
``approve_blocked_delivery``.
"""

from __future__ import annotations

from typing import NoReturn

from etl import approvals, storage
from etl.approvals import Blocked
from etl.errors import BadInput, EtlError, ValidationFailed
from etl.pipelines import county_reports, ehealth_adoption
from etl.pipelines.common import RunReport
from etl.privacy import redact_uri
from etl.sources import ehealth_exports


def decide(settings, blocked: Blocked, approve: bool, by: str, reason: str):
    """Record a person's decision on ``blocked`` (:func:`record_decision`); on approval publish the file now
    (:func:`publish_decision`). Returns (the decision, the run's report or None after a rejection).

    For ``python -m etl approve FILE``; the Airflow DAG records in its
    ``decide`` task and publishes in the next, so each is its own try.
    """
    decision = record_decision(settings, blocked, approve, by, reason)
    return decision, publish_decision(settings, blocked, decision)


def record_decision(
    settings, blocked: Blocked, approve: bool, by: str, reason: str, batch_id: str | None = None
) -> approvals.Decision:
    """Check what the decision needs, then write it (:func:`etl.approvals.record`); returns it.

    Everything is checked before anything is recorded — the reason
    (:func:`etl.approvals.who_and_why`) and, for an approval, that publishing
    the file now can happen (:func:`check_publishable`) — so a refused
    decision leaves no load-log row. Raises :class:`BadInput` naming what
    is wrong.
    """
    approvals.who_and_why(blocked, by, reason)
    if approve:
        check_publishable(settings, blocked)
    return approvals.record(settings.warehouse_uri, blocked, approve, by, reason, batch_id)


def publish_decision(settings, blocked: Blocked, decision: approvals.Decision) -> RunReport | None:
    """Publish ``blocked`` now when ``decision`` approves it; returns the run's report (None after a rejection).

    A publish that fails (the store unreachable) says so: the approval
    stands and the pipeline's next run publishes the file. Raises
    :class:`BadInput` when an approval published nothing all the same (a
    newer file replaced it in between), so nobody believes an approval did
    what it did not. Another file the run finds blocked does not fail a
    decision whose file published: the returned report's message names it.
    """
    if not decision.approved:
        return None
    still_blocked = None
    try:
        report = publish_approved(settings, blocked)
    except ValidationFailed as exc:
        still_blocked = exc
    except EtlError as exc:
        raise type(exc)(
            f"{blocked.name}: approval recorded ({decision.note()}), but publishing it failed: {exc}; "
            f"the next {blocked.pipeline} run publishes it"
        ) from exc
    if not approvals.published_since(settings.warehouse_uri, decision):
        if still_blocked is not None:
            raise still_blocked
        raise BadInput(
            f"{blocked.name}: approval recorded, but the run did not publish the file: it is no longer the "
            "current file of its delivery (a newer one replaced it), so nothing changed"
        )
    if still_blocked is not None:
        # The approved file did publish; other files the run found blocked stay blocked, each with its
        # own load-log row and hint, and must not make this approval look failed.
        report = RunReport(blocked.pipeline, "", messages=[f"{blocked.name} published; still blocked: {still_blocked}"])
    return report


def check_publishable(settings, blocked: Blocked) -> None:
    """Raise, writing nothing, when approving ``blocked`` now could not publish it (:func:`decide` asks first).

    An approval publishes the file from landing at once, so before it is
    recorded: the landing can be listed (a missing root — a forgotten
    ``--landing`` — or an unreadable store fails here, as the run would);
    the file is there under its name, not being written again, with the
    content that was blocked; and it is still its delivery's current file
    (no later report for the same region and year, no second export of its
    kind and month). Each failure is one line ending in what to do;
    :class:`BadInput` unless the landing itself fails (its own error class).
    """

    def refuse(why: str) -> NoReturn:
        raise BadInput(f"{blocked.name}: approval not recorded: {why}")

    ehealth = blocked.pipeline == ehealth_adoption.PIPELINE
    module = ehealth_adoption if ehealth else county_reports
    where = redact_uri(storage.join(settings.landing_uri, module.PREFIX))
    if ehealth:
        try:
            wanted = ehealth_exports.parse_file_name(blocked.name)
        except BadInput as exc:
            refuse(str(exc))
    arriving: set[str] = set()
    try:
        landed = storage.list_landed(
            settings.landing_uri,
            module.PREFIX,
            module.SUFFIXES,
            skipped=[],
            hash_cache=storage.hash_cache_uri(settings.warehouse_uri, module.PREFIX),
            settle_seconds=settings.landing_settle_seconds,
            arriving_names=arriving,
        )
    except EtlError as exc:
        raise type(exc)(f"{blocked.name}: approval not recorded: publishing reads it from landing, and {exc}") from None
    if blocked.name in arriving:
        refuse(f"it is being written again in {where} (modified moments ago); decide once it is left alone")
    mine = next((f for f in landed if f.name == blocked.name), None)
    if mine is None:
        refuse(f"it is not in {where} (removed since it was blocked, or a wrong landing URI?)")
    if mine.sha256 != blocked.sha256:
        refuse(f"the file in {where} changed since it was blocked; the next run judges the new content")
    if ehealth:
        others = []
        for f in landed:
            try:
                name = ehealth_exports.parse_file_name(f.name)
            except BadInput:
                continue
            if f.name != mine.name and (name.kind, name.period) == (wanted.kind, wanted.period):
                others.append(f.name)
        if others:
            refuse(
                f"{', '.join(others)} is in {where} for the same kind and month; the run refuses the month "
                "until all but one are removed"
            )
    else:
        newer = county_reports.replaced_by(settings.warehouse_uri, landed, mine, arriving)
        if newer:
            refuse(newer)


def publish_approved(settings, blocked: Blocked):
    """Run ``blocked``'s pipeline so that the approved file publishes now; returns the run's report.

    An e-health export runs its month only; a county report runs the county
    pipeline (which loads every pending report). Raises what the run raises
    (another file of the run may still be blocked).
    """
    if blocked.pipeline == "ehealth_adoption":
        period = ehealth_exports.parse_file_name(blocked.name).period
        return ehealth_adoption.run(settings, period=period, catch_up_late=False)
    return county_reports.run(settings)
