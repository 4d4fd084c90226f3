"""The one run skeleton every pipeline fills in: plan, judge each step, publish, record, end.

A pipeline's ``run`` checks its options, works out what this run has to do
(a :class:`Plan`: its steps, or why there is nothing new) and hands it to
:func:`execute`. What every run must do the same way lives here once:

* a plan without steps ends as *nothing new*: its load-log row, the views
  refreshed, entries in landing that could not be taken in refused;
* each :class:`Step` is judged first (parse, validate, no-shrink, approvals:
  the pipeline's :class:`Judgement`, nothing written), then its blocked
  files get their ``blocked`` load-log rows and the rest is published, one
  publish per table in the order judged; published rows a correction
  removes are named (:func:`etl.no_shrink.removals`: a warning in the
  table's load-log row, a line of the run's output);
* a step that raises leaves a ``failed`` load-log row naming its table and
  sources; its deliveries are marked published in the delivery record only
  once every table of the step is published;
* the delivery record is saved and the analysts' views refreshed whether
  the run succeeds or not;
* the run then fails — after publishing everything else — naming each
  blocked file or failed step and every landing entry it could not take in.

What differs between pipelines is only what they plan and how a step is
judged: the e-health run has one independent step per month (a failing
month is recorded and the next one goes on), the county run one step for
all pending reports, the reference run the region dimension then the API
tables, the follow-up run the two marts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from etl import approvals, no_shrink, publish, storage, validation
from etl import verdict as verdict_
from etl.config import Settings
from etl.deliveries import DeliveryRecord
from etl.errors import EtlError, ValidationFailed
from etl.pipelines.common import (
    Progress,
    RunReport,
    record_blocked,
    record_failure,
    record_nothing_new,
    record_skipped,
    refresh_views,
    refuse_skipped,
)

log = logging.getLogger(__name__)

# Independent steps wait for one verdict together while they hold fewer rows than this (a month of
# monthly exports holds a few hundred rows: they wait together; a month of unit-level rows, ~124 000,
# is published alone as before), and at most this many steps.
HOLD_ROWS = 100_000
HOLD_STEPS = 60


@dataclass
class Judgement:
    """One step judged, before anything is written.

    ``batches``: (table batch, the sources its load-log row names), in
    publish order, blocked files already removed; ``blocked``: file URI →
    one line saying why; ``held``: file URI → its rows in (for the blocked
    row); ``landed``: file URI → the landed file (blocked ones at least);
    ``approved``: file URI → the approval that released its block;
    ``delivered``: delivery id → its files, marked published in the
    delivery record once every batch of the step is published (blocked
    files excepted).
    """

    batches: list[tuple[publish.TableBatch, list]] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    landed: dict[str, storage.LandedFile] = field(default_factory=dict)
    approved: dict[str, approvals.Decision] = field(default_factory=dict)
    delivered: dict[str, list[storage.LandedFile]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)  # set by the skeleton: no_shrink.removals of the batches
    # The delivery suite's verdict on the step's files (etl.verdict), stored with the tables' results;
    # ``short``: file URI → its block line cut for the terminal (the load log keeps ``blocked``'s whole line).
    verdict: verdict_.Verdict | None = None
    short: dict[str, str] = field(default_factory=dict)
    # A judge may leave the verdict to the skeleton, which then judges the files of the steps it holds with
    # one validation (verdict.judge_steps): it sets ``findings`` (its files measured), ``sha256`` and
    # ``decisions`` (the approvals in force) and ``settle``, which applies the verdict to this judgement.
    findings: list[verdict_.Findings] | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, approvals.Decision] = field(default_factory=dict)
    settle: Callable[[verdict_.Verdict], None] | None = None
    unsettled: EtlError | None = None  # set when the delivery suite could not judge this step

    def line(self, source: str) -> str:
        """``source``'s block line for the terminal and the task log: cause first, under 300 characters."""
        return self.short.get(source) or verdict_.short_line(self.blocked[source])


@dataclass
class Step:
    """One all-or-nothing piece of a run (a month, the pending county reports, the marts).

    ``judge(step)`` returns the step's :class:`Judgement`; as it goes it may
    set ``table``, ``sources`` and ``rows_in``, which a ``failed`` load-log
    row names if it raises. ``batch_id`` is the run's, or the run's with a
    suffix when steps are published apart (``<batch>-2019-03``).
    """

    label: str
    batch_id: str
    judge: Callable[[Step], Judgement]
    sources: list = field(default_factory=list)
    table: str | None = None
    rows_in: int = 0


@dataclass
class Plan:
    """What one run has to do.

    ``steps`` in order; without any, ``nothing_new`` is the run's message.
    ``unit`` names independent steps (``"month"``): a step that fails is
    recorded and the run goes on with the next, counting them in its
    progress lines; without a unit a failing step ends the run at once.
    ``skipped``: landing entries the run could not take in (the run fails
    naming them, after the rest). ``record`` is saved at the end, keeping
    ``landing_names`` when given. ``context`` is entered around the steps
    (a read-ahead thread). ``finish`` runs after a run that got through its
    steps and returns whether it refreshed the views itself (the follow-up
    run builds all analyst access there, views included); else the skeleton does.
    """

    steps: list[Step] = field(default_factory=list)
    nothing_new: str = ""
    unit: str = ""
    skipped: list[str] = field(default_factory=list)
    record: DeliveryRecord | None = None
    landing_names: set[str] | None = None
    context: contextlib.AbstractContextManager[Any] | None = None
    finish: Callable[[RunReport], bool] | None = None


def execute(settings: Settings, report: RunReport, plan: Plan) -> RunReport:
    """Run ``plan``'s steps (see the module doc); returns ``report`` with every publish result.

    Raises :class:`ValidationFailed` naming every blocked file when that is
    all that went wrong, :class:`EtlError` (or the step's own error, for a
    plan without a unit) when a step failed, and :class:`BadInput` when
    landing holds entries the run could not take in — each after the rest
    is published and logged.
    """
    # Size: the one run loop every pipeline shares; its bookkeeping of blocked, partly published and failed
    # steps stays in one place so the failure names all of it.
    warehouse = settings.warehouse_uri
    if not plan.steps:
        if plan.record is not None:
            plan.record.save(plan.landing_names)
        record_nothing_new(warehouse, report.pipeline, report.batch_id, plan.nothing_new)
        report.messages.append(plan.nothing_new)
        _finish(settings, report, plan)
        refuse_skipped(warehouse, report, plan.skipped)
        return report

    failures: list[tuple[Step, EtlError]] = []
    blocked_files = partly = 0  # partly: blocked steps whose other files did publish
    # Every run says what it has done (issue 25 §2); a plan without a unit counts its steps.
    progress = Progress(report.pipeline, len(plan.steps), f"{plan.unit or 'step'}s")
    finished = False

    def failed(step: Step, exc: EtlError) -> None:
        if not exc.in_load_log:
            record_failure(warehouse, report.pipeline, step.batch_id, step.table, step.sources, str(exc), step.rows_in)
        if not plan.unit:
            raise exc
        log.error("%s", exc)
        named = exc if str(exc).startswith(step.label) else type(exc)(f"{step.label}: {exc}")
        failures.append((step, named))
        progress.step(note=f"{step.label} failed")

    def published(step: Step, judged: Judgement, results: list[publish.PublishResult]) -> None:
        nonlocal blocked_files, partly
        progress.step(sum(r.rows_in for r in results), note=step.label)
        if plan.unit:  # a run of months publishes each table once per month: the lines say which
            results = [dataclasses.replace(r, scope=step.label) for r in results]
        report.results.extend(results)
        report.messages += judged.removed
        if judged.blocked:
            blocked_files += len(judged.blocked)
            if any(r.outcome == "published" for r in results):
                partly += 1
            prefix = f"{step.label}: " if plan.unit else ""
            # Not logged again here: _publish_step logged each blocked file's line, and the run's error repeats it.
            failure = ValidationFailed(prefix + " | ".join(judged.line(s) for s in judged.blocked))
            failures.append((step, failure))

    # Judged steps waiting for their verdict: independent steps (a unit) are held while they hold few rows,
    # so that the delivery suite validates their files at once; each is then published in order.
    held: list[tuple[Step, Judgement, list[validation.Pending]]] = []

    def publish_held() -> None:
        waiting, held[:] = list(held), []
        _settle_all(waiting)
        while waiting:
            step, judged, pending = waiting.pop(0)  # each step's rows are let go once it is published
            try:
                results = _publish_step(warehouse, report.pipeline, step, judged, pending, plan.record)
            except EtlError as exc:
                failed(step, exc)
                continue
            published(step, judged, results)

    try:
        with plan.context or contextlib.nullcontext():
            for step in plan.steps:
                try:
                    judged, pending = _judge_step(warehouse, step)
                except EtlError as exc:
                    failed(step, exc)
                    continue
                held.append((step, judged, pending))
                deferred = judged.settle is not None and judged.verdict is None
                del judged, pending  # held only in ``held``: a published month's rows are freed with it
                rows = sum(n for _, j, _ in held for n in j.held.values())  # rows in of every file held
                if not plan.unit or not deferred or rows >= HOLD_ROWS or len(held) >= HOLD_STEPS:
                    publish_held()
            publish_held()
        finished = True
    finally:
        if plan.record is not None:
            plan.record.save(plan.landing_names)
        if finished:
            _finish(settings, report, plan)
        else:
            refresh_views(warehouse, report)
    if failures:
        for line in report.lines():  # the raise would hide what the run did publish
            log.info("%s", line)
        summary = " | ".join(str(exc) for _, exc in failures)
        not_loaded = record_skipped(warehouse, report, plan.skipped)
        if not_loaded:
            summary += " | " + not_loaded
        every_blocked = all(isinstance(exc, ValidationFailed) for _, exc in failures)
        if plan.unit:
            processed = len(plan.steps) - len(failures)
            what = (
                f"{len(failures)} {plan.unit}(s) {'blocked' if every_blocked else 'failed or blocked'}, "
                f"{processed} processed"
            )
            if partly:
                what += f" ({partly} of the blocked published their other files)"
        else:
            what = f"{blocked_files} file(s) blocked"
        raise (ValidationFailed if every_blocked else EtlError)(f"{report.pipeline}: {what}: {summary}")
    refuse_skipped(warehouse, report, plan.skipped)
    return report


def _judge_step(warehouse: str, step: Step) -> tuple[Judgement, list[validation.Pending]]:
    """Judge ``step``; its validation results are held (returned) until its verdict is known."""
    with validation.collecting() as pending:
        try:
            judged = step.judge(step)
        except BaseException:
            verdict_.persist_step(warehouse, step.batch_id, pending, None)
            raise
    return judged, pending


def _settle_all(waiting: list[tuple[Step, Judgement, list[validation.Pending]]]) -> None:
    """Give every waiting judgement that left its verdict to the skeleton its verdict: one validation for all."""
    open_ = [j for _, j, _ in waiting if j.settle is not None and j.verdict is None]
    if not open_:
        return
    try:
        verdicts = verdict_.judge_steps([(j.findings or [], j.sha256, j.decisions) for j in open_])
    except EtlError:
        verdicts = None  # judged one by one below, so that a step that cannot be judged fails alone
    for i, judged in enumerate(open_):
        try:
            decided = (
                verdicts[i]
                if verdicts is not None
                else verdict_.judge(judged.findings or [], judged.sha256, judged.decisions)
            )
        except EtlError as exc:
            judged.unsettled = exc
            continue
        assert judged.settle is not None
        judged.settle(decided)
        # The closure refers back to its judgement: dropped, a published month's rows are freed at once
        # rather than by the cycle collector some time later (peak memory over a backfill).
        judged.settle, judged.verdict = None, decided


def _publish_step(
    warehouse: str,
    pipeline: str,
    step: Step,
    judged: Judgement,
    pending: list[validation.Pending],
    record: DeliveryRecord | None,
) -> list[publish.PublishResult]:
    """Store the step's results with its verdict, record its blocked files, publish the rest, mark its deliveries."""
    if judged.unsettled is not None:
        verdict_.persist_step(warehouse, step.batch_id, pending, None)
        raise judged.unsettled
    verdict_.persist_step(warehouse, step.batch_id, pending, judged.verdict)
    for source, decision in judged.approved.items():
        log.warning("%s", approvals.release_note(source, decision))
    for source, line in judged.blocked.items():
        log.error("%s", judged.line(source))
        record_blocked(warehouse, pipeline, step.batch_id, judged.landed[source], line, judged.held.get(source, 0))
    # Published rows a correction removes are named, one line per table and file: a warning in the
    # publish's load-log row, and (once published) a line of the run's output (report.lines()).
    for batch, _ in judged.batches:
        lines = no_shrink.removals(warehouse, batch)
        batch.warnings.extend(lines)
        judged.removed += lines
    results = []
    # Everything validated and judged: only now publish, one publish per table.
    for batch, sources in judged.batches:
        # A failed write's row names this table and its rows in, and still every file of the step:
        # none of them is published as a whole until the step is.
        step.table, step.rows_in = batch.table, batch.rows_in
        results.append(publish.publish(warehouse, pipeline, batch, step.batch_id, sources))
    if record is not None:
        for delivery, files in judged.delivered.items():
            for f in files:
                if f.uri not in judged.blocked:
                    record.mark_published(delivery, f)
    return results


def _finish(settings: Settings, report: RunReport, plan: Plan) -> None:
    if plan.finish is None or not plan.finish(report):
        refresh_views(settings.warehouse_uri, report)
