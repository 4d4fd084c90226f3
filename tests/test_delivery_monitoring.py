"""Issue 15 §4: a late month never blocks a run; overdue exports are listed (and notified) instead."""

from __future__ import annotations

import datetime as dt

from etl.pipelines import ehealth_adoption as pipeline
from etl.sources import ehealth_spec as spec
from tests.export_support import declared_exports
from tests.export_support import write_export as _write


def test_overdue_exports_are_those_due_that_neither_landed_nor_were_loaded(settings, landing):
    january = dt.date(2016, 1, 1)
    _write(landing, "journalen", month=january)
    _write(landing, "webbtidbok", month=january)
    _write(landing, "webbtidbok", month=dt.date(2016, 3, 1))
    landed = frozenset({"journalen_2016-01", "webbtidbok_2016-01", "webbtidbok_2016-03"})
    # Every kind the spec declares for those months, not only the two landed here.
    assert pipeline.overdue_deliveries(settings, "2016-03", today=dt.date(2016, 4, 10)) == declared_exports(
        ["2016-01", "2016-02"], landed
    )  # March's exports are not due until 15 April
    assert pipeline.overdue_deliveries(settings, "2016-03", today=dt.date(2016, 5, 1)) == declared_exports(
        ["2016-01", "2016-02", "2016-03"], landed
    )
    assert "journalen_2016-02" in declared_exports(["2016-02"])  # the helper is no empty list


def test_a_month_without_files_is_nothing_new_not_a_wait(settings, landing):
    _write(landing, "journalen", month=dt.date(2016, 1, 1))
    report = pipeline.run(settings, period="2016-02", catch_up_late=True)  # what a scheduled run does
    assert report.outcome == "published"  # January's late file is loaded by February's run
    assert pipeline.run(settings, period="2016-03", catch_up_late=True).outcome == "nothing_new"


def test_loaded_deliveries_count_as_received_after_their_files_are_archived(settings, landing):
    january = dt.date(2016, 1, 1)
    paths = [_write(landing, kind, month=january) for kind in spec.kinds_expected("2016-01")]
    pipeline.run(settings)
    for path in paths:
        path.unlink()  # moved to an archive after loading
    assert pipeline.overdue_deliveries(settings, "2016-01", today=dt.date(2016, 6, 1)) == []
