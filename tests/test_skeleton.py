"""The one run skeleton: what every pipeline's run does the same way, asserted on the warehouse it leaves.

Each test fills a :class:`~etl.pipelines.skeleton.Plan` with small
population batches and reads back the tables, the load log and the
delivery record — the same things an engineer reads after a real run.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from etl import publish
from etl.deliveries import DeliveryRecord, record_uri
from etl.errors import BadInput, EtlError, ValidationFailed
from etl.pipelines import PIPELINES, skeleton
from etl.pipelines.common import RunReport, rejected_frame
from etl.storage import LandedFile


def _file(name: str) -> LandedFile:
    return LandedFile(f"/landing/{name}", name, 10, 1.0, name.encode().hex().ljust(64, "0")[:64])


def _batch(year: int, value: int, source: str, rows_in: int | None = None) -> publish.TableBatch:
    rows = pd.DataFrame(
        {"region_code": ["01", "03"], "year": [year, year], "population": [value, value + 1], "source_file": source}
    )
    return publish.TableBatch(
        "population", rows, rejected_frame([]), 2 if rows_in is None else rows_in, ("year",), replace_keys=[(year,)]
    )


def _log(settings) -> list[dict]:
    return sorted(publish.read_load_log(settings.warehouse_uri).to_pylist(), key=lambda r: r["finished_at"])


def _years(settings) -> list[int]:
    return sorted(set(publish.read_table(settings.warehouse_uri, "population").column("year").to_pylist()))


def _published(settings, pipeline="test") -> dict:
    path = Path(record_uri(settings.warehouse_uri, pipeline))
    return json.loads(path.read_text())["published"] if path.exists() else {}


def _step(label: str, judge) -> skeleton.Step:
    return skeleton.Step(label, f"b-{label}", lambda step: judge(step))


def test_nothing_new_is_a_load_log_row_and_the_record_is_saved(settings):
    report = RunReport("test", "b1")
    record = DeliveryRecord.load(settings.warehouse_uri, "test")
    record.remember_file(_file("a.csv"), "a")
    out = skeleton.execute(settings, report, skeleton.Plan(nothing_new="nothing new in landing", record=record))
    assert out.outcome == "nothing_new" and out.messages == ["nothing new in landing"]
    assert [(r["outcome"], r["message"]) for r in _log(settings)] == [("nothing_new", "nothing new in landing")]
    assert "a.csv" in json.loads(Path(record_uri(settings.warehouse_uri, "test")).read_text())["files"]


def test_nothing_new_with_entries_it_could_not_take_in_fails_naming_them(settings):
    plan = skeleton.Plan(nothing_new="nothing new", skipped=["bad name.txt: not an export"])
    with pytest.raises(BadInput, match=r"1 file\(s\) in landing not loaded .*bad name.txt"):
        skeleton.execute(settings, RunReport("test", "b1"), plan)
    assert [r["outcome"] for r in _log(settings)] == ["nothing_new", "failed"]


def test_a_failing_month_is_recorded_and_the_next_month_still_publishes(settings):
    files = {m: _file(f"x_{m}.csv") for m in ("2019-01", "2019-02")}

    def broken(step):
        step.table, step.rows_in = "population", 7
        raise BadInput("x_2019-01.csv: not a CSV file")

    def good(step):
        f = files["2019-02"]
        return skeleton.Judgement(batches=[(_batch(2019, 5, f.uri), [f])], delivered={"x-2019-02": [f]})

    record = DeliveryRecord.load(settings.warehouse_uri, "test")
    plan = skeleton.Plan(
        steps=[
            skeleton.Step("2019-01", "b-2019-01", broken, sources=[files["2019-01"]]),
            _step("2019-02", good),
        ],
        unit="month",
        record=record,
    )
    with pytest.raises(
        EtlError,
        match=r"^test: 1 month\(s\) failed or blocked, 1 processed: "
        r"2019-01: x_2019-01.csv: not a CSV file$",
    ) as err:
        skeleton.execute(settings, RunReport("test", "b"), plan)
    assert not isinstance(err.value, ValidationFailed)  # a broken file is not a block a person can approve
    failed, published = _log(settings)
    assert (failed["outcome"], failed["batch_id"], failed["table_name"], failed["rows_in"]) == (
        "failed",
        "b-2019-01",
        "population",
        7,
    )
    assert failed["source_files"] == ["/landing/x_2019-01.csv"]
    assert (published["outcome"], published["batch_id"]) == ("published", "b-2019-02")
    assert _years(settings) == [2019]
    assert set(_published(settings)) == {"x-2019-02"}  # the failed month is tried again next run


def test_a_blocked_file_gets_its_row_and_the_month_s_other_file_publishes(settings):
    good, bad = _file("a_2019-03.csv"), _file("b_2019-03.csv")

    def judge(step):
        return skeleton.Judgement(
            batches=[(_batch(2019, 9, good.uri), [good])],
            blocked={bad.uri: "b_2019-03.csv: blocked, the rows that would be published lack 1 region(s)"},
            held={bad.uri: 20},
            landed={bad.uri: bad},
            delivered={"a-2019-03": [good], "b-2019-03": [bad]},
        )

    plan = skeleton.Plan(
        steps=[_step("2019-03", judge)], unit="month", record=DeliveryRecord.load(settings.warehouse_uri, "test")
    )
    with pytest.raises(ValidationFailed) as err:
        skeleton.execute(settings, RunReport("test", "b"), plan)
    assert str(err.value) == (
        "test: 1 month(s) blocked, 0 processed (1 of the blocked published their other files): "
        "2019-03: b_2019-03.csv: blocked, the rows that would be published lack 1 region(s)"
    )
    blocked, published = _log(settings)
    assert (blocked["outcome"], blocked["rows_in"], blocked["rows_loaded"]) == ("blocked", 20, 0)
    assert published["outcome"] == "published" and _years(settings) == [2019]
    assert set(_published(settings)) == {"a-2019-03"}  # the blocked delivery stays pending


def test_without_a_unit_a_failing_step_ends_the_run_with_its_own_error(settings):
    ran = []

    def first(step):
        ran.append("first")
        return skeleton.Judgement(batches=[(_batch(2018, 1, "regions"), [])])

    def second(step):
        step.table, step.sources = "kolada_kpi", [("https://api.example/kpi", None)]
        raise ValidationFailed("kolada_kpi: validation failed")

    def third(step):
        ran.append("third")
        return skeleton.Judgement()

    plan = skeleton.Plan(steps=[_step("a", first), _step("b", second), _step("c", third)])
    with pytest.raises(ValidationFailed, match=r"^kolada_kpi: validation failed$"):
        skeleton.execute(settings, RunReport("test", "b"), plan)
    assert ran == ["first"]
    assert [(r["outcome"], r["table_name"]) for r in _log(settings)] == [
        ("published", "population"),
        ("failed", "kolada_kpi"),
    ]


def test_a_publish_that_logs_its_own_failure_is_not_logged_twice(settings):
    def judge(step):
        return skeleton.Judgement(batches=[(_batch(2019, 1, "x.csv", rows_in=3), [])])  # 3 in, 2 rows: accounting

    with pytest.raises(EtlError, match="row accounting failed"):
        skeleton.execute(settings, RunReport("test", "b"), skeleton.Plan(steps=[_step("x", judge)]))
    assert [r["outcome"] for r in _log(settings)] == ["failed"]


def test_blocked_files_without_a_unit_are_counted_as_files(settings):
    bad1, bad2 = _file("r01.xlsx"), _file("r03.xlsx")

    def judge(step):
        lines = {f.uri: f"{f.name}: blocked, refused whole: not a report" for f in (bad1, bad2)}
        return skeleton.Judgement(blocked=lines, landed={bad1.uri: bad1, bad2.uri: bad2})

    with pytest.raises(ValidationFailed, match=r"^test: 2 file\(s\) blocked: r01.xlsx: blocked, .* \| r03.xlsx: "):
        skeleton.execute(settings, RunReport("test", "b"), skeleton.Plan(steps=[_step("reports", judge)]))


@pytest.mark.parametrize("module", sorted(PIPELINES.values()))
def test_every_pipeline_publishes_only_through_the_skeleton(module):
    """One skeleton for all four: no pipeline module publishes, or writes a blocked row, on its own."""
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(module))
    assert "skeleton.execute(" in source
    for own in ("publish.publish(", "record_blocked(", "refresh_views(", "refuse_skipped("):
        assert own not in source, f"{module} calls {own} itself"


def test_a_failed_write_names_its_table_and_rows_in_and_every_file_of_the_step(settings):
    """Found by review: the row named only the failing table's files, and the rows in of the step's judge."""
    files = [_file("journalen_2019-05.csv"), _file("webbtidbok_2019-05.csv")]

    def judge(step):
        broken = _batch(2019, 1, files[1].uri)
        broken.rows.loc[0, "year"] = None  # a null merge key: publish refuses the batch
        return skeleton.Judgement(
            batches=[(_batch(2018, 1, files[0].uri), [files[0]]), (broken, [files[1]])],
            delivered={"j": [files[0]], "w": [files[1]]},
        )

    plan = skeleton.Plan(
        steps=[skeleton.Step("2019-05", "b-2019-05", judge, sources=files)],
        unit="month",
        record=DeliveryRecord.load(settings.warehouse_uri, "test"),
    )
    with pytest.raises(EtlError, match=r"^test: 1 month\(s\) failed or blocked, 0 processed: 2019-05: "):
        skeleton.execute(settings, RunReport("test", "b"), plan)
    published, failed = _log(settings)
    assert published["outcome"] == "published"
    assert (failed["outcome"], failed["table_name"], failed["rows_in"]) == ("failed", "population", 2)
    assert failed["source_files"] == [f.uri for f in files]
    assert _published(settings) == {}  # neither delivery counts as published: the step is tried again


def test_a_run_that_changes_nothing_does_not_write_the_delivery_record(settings):
    path = Path(record_uri(settings.warehouse_uri, "test"))

    def run():
        skeleton.execute(
            settings,
            RunReport("test", "b"),
            skeleton.Plan(nothing_new="nothing new", record=DeliveryRecord.load(settings.warehouse_uri, "test")),
        )

    run()
    assert not path.exists()  # an empty record is not worth a write
    record = DeliveryRecord.load(settings.warehouse_uri, "test")
    record.mark_published("x", _file("x.csv"))
    record.save()
    written = path.stat().st_mtime_ns
    inode = path.stat().st_ino  # a write replaces the file (write a temporary file, rename): a new inode
    run()
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, written)
