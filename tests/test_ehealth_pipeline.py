"""The e-health adoption pipeline end to end on real files: loads, replaces, reconciles, blocks, accounts."""

from __future__ import annotations

import datetime as dt

import pytest

from etl import approvals, publish, regions
from etl.errors import BadInput, ConfigError, EtlError, ValidationFailed
from etl.pipelines import ehealth_adoption as pipeline
from etl.sample import ehealth as sample
from tests.delta_support import arrow as _arrow
from tests.export_support import MARCH, set_cell
from tests.export_support import PIPELINE_SEED as SEED
from tests.export_support import pipeline_lines as _lines
from tests.export_support import write_export as _write
from tests.settings_support import local_settings


def _table(warehouse, name):
    return publish.read_table(str(warehouse), name).to_pandas()


def _quarantine(warehouse, name):
    return publish.read_quarantine(str(warehouse), name).to_pandas()


def _log(warehouse):
    return publish.read_load_log(str(warehouse)).to_pandas()


def _value(frame, region, metric, month=MARCH):
    hit = frame[(frame.region_code == region) & (frame.metric == metric) & (frame.month == month)]
    assert len(hit) == 1, (region, metric)
    value = hit.value.iloc[0]
    return None if value != value or value is None else int(value)


def _accounting_holds(warehouse) -> None:
    log = _log(warehouse)
    done = log[log.outcome.isin(["published", "unchanged"])]
    assert len(done)
    assert (done.rows_in == done.rows_loaded + done.rows_quarantined).all()


# --------------------------------------------------------------------------- loading


def test_month_loads_regions_and_national_apart(settings, landing, warehouse):
    suppressed = {("09", "first_time_users"), ("23", "rebookings")}
    _write(landing, "journalen", lines=_lines("journalen", suppressed=suppressed))
    _write(landing, "webbtidbok", lines=_lines("webbtidbok", suppressed=suppressed))
    report = pipeline.run(settings)
    assert {r.table: (r.outcome, r.rows_in, r.rows_loaded) for r in report.results} == {
        "ehealth_adoption": ("published", 21 * 8, 21 * 8),
        "ehealth_adoption_national": ("published", 8, 8),
    }
    journal, web, _ = sample.month_values(MARCH, SEED)
    adoption = _table(warehouse, "ehealth_adoption")
    assert sorted(adoption.region_code.unique()) == sorted(regions.REGION_CODES)
    assert _value(adoption, "01", "logins") == journal["01"]["logins"]
    assert _value(adoption, "14", "units_total") == web["14"]["units_total"]
    gotland = adoption[(adoption.region_code == "09") & (adoption.metric == "first_time_users")].iloc[0]
    assert gotland.value is None or gotland.value != gotland.value
    assert bool(gotland.suppressed) is True
    assert not adoption[adoption.metric != "first_time_users"].query("region_code == '09'").suppressed.any()
    assert set(adoption.service) == {"patient_journal_online", "web_booking"}
    assert set(adoption.year) == {2017}
    national = _table(warehouse, "ehealth_adoption_national")
    assert dict(zip(national.metric, national.value, strict=False)) == {
        **{m: sum(v[m] for v in journal.values()) for m in sample.JOURNAL_METRICS},
        **{m: sum(v[m] for v in web.values()) for m in sample.WEB_BOOKING_METRICS},
    }
    assert _quarantine(warehouse, "ehealth_adoption").empty
    _accounting_holds(warehouse)


def test_rerun_is_nothing_new_and_the_same_period_is_unchanged(settings, landing, warehouse):
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    before = _table(warehouse, "ehealth_adoption")
    again = pipeline.run(settings)
    assert again.outcome == "nothing_new" and again.results == []
    assert _log(warehouse).outcome.iloc[-1] == "nothing_new"
    forced = pipeline.run(settings, period="2017-03")
    assert [r.outcome for r in forced.results] == ["unchanged", "unchanged"]
    after = _table(warehouse, "ehealth_adoption")
    assert after.equals(before)  # not even lineage changed


def pa_count(log, table: str) -> int:
    return sum(1 for name in _arrow(log).column("table_name").to_pylist() if name == table)


def test_sweep_redoes_a_month_whose_second_table_never_committed(settings, landing, warehouse):
    """A run killed between the adoption and the national publish: the sweep must redo that month."""
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    from deltalake import DeltaTable

    log = DeltaTable(str(warehouse / "_load_log"))
    assert pa_count(log, "ehealth_adoption_national") == 1
    log.delete("table_name = 'ehealth_adoption_national'")  # as if the process died before that load-log row
    # ... and so before the delivery record, which a run writes last
    (warehouse / "_state" / "deliveries" / "ehealth_adoption.json").unlink()
    again = pipeline.run(settings)
    assert {r.table: r.outcome for r in again.results} == {
        "ehealth_adoption": "unchanged",
        "ehealth_adoption_national": "unchanged",
    }
    assert pipeline.run(settings).outcome == "nothing_new"


def test_republished_file_replaces_its_month_and_service(settings, landing, warehouse):
    first = _lines("journalen")
    first.insert(3, "2017-03;Region Atlantis;5;5;5")  # one bad line in the first delivery
    _write(landing, "journalen", lines=first)
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    assert list(_quarantine(warehouse, "ehealth_adoption").row_number) == [4]
    web_before = _table(warehouse, "ehealth_adoption").query("service == 'web_booking'")

    journal, _, _ = sample.month_values(MARCH, SEED)
    corrected = set_cell(_lines("journalen"), "01", 2, journal["01"]["logins"] + 1000)
    corrected = set_cell(corrected, "Riket", 2, sum(v["logins"] for v in journal.values()) + 1000)
    _write(landing, "journalen", lines=corrected)
    report = pipeline.run(settings)
    assert [r.outcome for r in report.results] == ["published", "published"]
    adoption = _table(warehouse, "ehealth_adoption")
    assert len(adoption) == 21 * 8
    assert _value(adoption, "01", "logins") == journal["01"]["logins"] + 1000
    web_after = adoption.query("service == 'web_booking'")
    assert (
        web_after.drop(columns=["batch_id", "loaded_at"])
        .reset_index(drop=True)
        .equals(web_before.drop(columns=["batch_id", "loaded_at"]).reset_index(drop=True))
    )
    assert _quarantine(warehouse, "ehealth_adoption").empty  # the corrected file's old quarantine is gone
    _accounting_holds(warehouse)


def test_republished_file_refused_whole_is_blocked_and_the_month_stays(settings, landing, warehouse):
    """Issue 13 §1: a correction refused whole never deletes the published month (it used to, exit 0)."""
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    before = _table(warehouse, "ehealth_adoption")
    _write(landing, "journalen", lines=_lines("journalen", dt.date(2017, 4, 1)))  # every line says 2017-04
    with pytest.raises(
        ValidationFailed,
        match=r"journalen_2017-03.csv: blocked, refused whole: .*differs from the "
        r"file's month 2017-03",
    ):
        pipeline.run(settings)
    after = _table(warehouse, "ehealth_adoption")
    assert set(after.service) == {"web_booking", "patient_journal_online"}
    assert (
        after.sort_values(["service", "region_code", "metric"]).value.tolist()
        == before.sort_values(["service", "region_code", "metric"]).value.tolist()
    )
    log = _log(warehouse)
    last = log[log.outcome == "blocked"].iloc[-1]
    assert (last.rows_in, last.rows_loaded, last.rows_quarantined) == (22 * 3, 0, 0)
    with pytest.raises(ValidationFailed):  # not committed: every run says so until a good file replaces it
        pipeline.run(settings)
    _write(landing, "journalen")  # the original again
    pipeline.run(settings)


def test_undecodable_file_is_refused_whole_and_fails_the_run(settings, landing, warehouse):
    """A file refused whole fails the run even when it replaces nothing; the month's other file publishes."""
    _write(landing, "journalen", data=b"M\xe5nad;Region\n2017-03;\x81\x8d\x8f\n")
    _write(landing, "webbtidbok")
    with pytest.raises(
        ValidationFailed, match="journalen_2017-03.csv: blocked, refused whole: neither UTF-8 nor Windows-1252 text"
    ):
        pipeline.run(settings)
    assert set(_table(warehouse, "ehealth_adoption").service) == {"web_booking"}
    log = _log(warehouse)
    blocked = log[log.outcome == "blocked"]
    assert len(blocked) == 1 and blocked.source_files.iloc[0][0].endswith("journalen_2017-03.csv")
    assert len(blocked.source_sha256.iloc[0][0]) == 64
    _accounting_holds(warehouse)


# --------------------------------------------------------------------------- blocked months


def test_missing_region_blocks_that_month_only(settings, landing, warehouse):
    _write(landing, "journalen", lines=[line for line in _lines("journalen") if ";12;" not in line])
    _write(landing, "webbtidbok")
    april = dt.date(2017, 4, 1)
    _write(landing, "journalen", april)
    _write(landing, "webbtidbok", april)
    with pytest.raises(ValidationFailed) as error:
        pipeline.run(settings)
    message = str(error.value)
    assert "1 month(s) blocked, 1 processed" in message
    assert (
        "journalen_2017-03.csv: blocked, 1 of 21 regions missing (12 Region Skåne); a person may approve publishing it"
    ) in message
    adoption = _table(warehouse, "ehealth_adoption")
    assert set(adoption.month) == {MARCH, april}
    assert set(adoption[adoption.month == MARCH].service) == {"web_booking"}  # nothing of March's journal file
    log = _log(warehouse)
    failed = log[log.outcome == "blocked"]
    assert len(failed) == 1 and "lack 1 region(s)" in failed.message.iloc[0]
    assert any(s.endswith("journalen_2017-03.csv") for s in failed.source_files.iloc[0])
    with pytest.raises(ValidationFailed):  # not committed: the next run tries March again
        pipeline.run(settings)


@pytest.mark.parametrize("national_extra,blocked", [(0.02, True), (0.004, False), (-0.006, True)])
def test_national_row_must_reconcile_within_half_a_percent(settings, landing, warehouse, national_extra, blocked):
    journal, _, _ = sample.month_values(MARCH, SEED)
    total = sum(v["logins"] for v in journal.values())
    wrong = round(total * (1 + national_extra))
    _write(landing, "journalen", lines=set_cell(_lines("journalen"), "Riket", 2, wrong))
    _write(landing, "webbtidbok")
    if blocked:
        with pytest.raises(ValidationFailed) as error:
            pipeline.run(settings)
        assert (
            f"regions do not sum to the national total within 0.5%: journalen_2017-03 logins: regions sum to "
            f"{total:,} vs national {wrong:,}"
        ) in str(error.value)
        assert set(_table(warehouse, "ehealth_adoption").service) == {"web_booking"}
    else:
        pipeline.run(settings)
        national = _table(warehouse, "ehealth_adoption_national")
        assert national.query("metric == 'logins'").value.iloc[0] == wrong


def test_suppressed_cells_relax_reconciliation_but_known_cells_may_not_exceed(settings, landing, warehouse):
    journal, _, _ = sample.month_values(MARCH, SEED)
    lines = _lines("journalen", suppressed={("09", "logins")})  # national still includes Gotland's logins
    _write(landing, "journalen", lines=lines)
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    assert _value(_table(warehouse, "ehealth_adoption"), "09", "logins") is None

    too_low = round(sum(v["logins"] for c, v in journal.items() if c != "09") * 0.99)
    _write(landing, "journalen", lines=set_cell(lines, "Riket", 2, too_low))
    with pytest.raises(ValidationFailed, match="1 suppressed cell"):
        pipeline.run(settings)


@pytest.mark.parametrize("huge", [2**53 + 1, 2**62 + 3, 2**63 - 1])
def test_a_count_beyond_floats_exactness_is_published_exactly_beside_a_suppressed_cell(
    settings, landing, warehouse, huge
):
    """With a suppressed cell in the run, pandas held the values as float64: 2**53 + 1 was published as
    2**53 (exit 0), and int64's top failed the run with a TypeError naming no file (helper-26)."""
    journal, _, _ = sample.month_values(MARCH, SEED)
    lines = _lines("journalen", suppressed={("09", "logins")})
    others = sum(v["logins"] for c, v in journal.items() if c not in ("01", "09"))
    riket = huge if huge == 2**63 - 1 else huge + others + journal["09"]["logins"]  # the national row may not wrap
    lines = set_cell(set_cell(lines, "01", 2, huge), "Riket", 2, riket)
    _write(landing, "journalen", lines=lines)
    _write(landing, "webbtidbok")
    try:
        pipeline.run(settings)
    except ValidationFailed:
        assert huge == 2**63 - 1  # the regions exceed the national total: blocked, as any such file
        return
    rows = publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()  # as Arrow holds it, not as floats
    assert [r["value"] for r in rows if r["region_code"] == "01" and r["metric"] == "logins"] == [huge]


# --------------------------------------------------------------------------- row-level rules


def test_duplicate_region_lines_block_the_file(settings, landing, warehouse):
    """Both lines of a duplicated region are quarantined, so the region would be missing: the file is blocked."""
    lines = _lines("webbtidbok")
    dup = next(line for line in lines if line.split(";")[1] == "05")
    lines.insert(10, dup)
    _write(landing, "webbtidbok", lines=lines)
    _write(landing, "journalen")
    with pytest.raises(
        ValidationFailed,
        match=r"webbtidbok_2017-03.csv: blocked, 1 of 21 regions missing \(05 Region Östergötland\); 2 line\(s\) quarantined, first line 5: "
        r"the region appears on more than one line",
    ):
        pipeline.run(settings)
    assert set(_table(warehouse, "ehealth_adoption").service) == {"patient_journal_online"}
    _accounting_holds(warehouse)


def test_cross_metric_rules_quarantine_the_whole_line(settings, landing, warehouse):
    journal, web, _ = sample.month_values(MARCH, SEED)
    web_lines = set_cell(_lines("webbtidbok"), "07", 5, web["07"]["units_total"] + 1)  # connected > total
    total_connected = (
        sum(v["units_connected"] for v in web.values()) + web["07"]["units_total"] + 1 - web["07"]["units_connected"]
    )
    web_lines = set_cell(web_lines, "Riket", 5, total_connected)
    journal_lines = set_cell(_lines("journalen"), "08", 3, journal["08"]["logins"] + 1)  # unique users > logins
    journal_lines = set_cell(
        journal_lines,
        "Riket",
        3,
        sum(v["unique_users"] for v in journal.values()) + journal["08"]["logins"] + 1 - journal["08"]["unique_users"],
    )
    journal_lines = set_cell(journal_lines, "10", 4, journal["10"]["unique_users"] + 1)  # first-time > unique: warning
    journal_lines = set_cell(
        journal_lines,
        "Riket",
        4,
        sum(v["first_time_users"] for v in journal.values())
        + journal["10"]["unique_users"]
        + 1
        - journal["10"]["first_time_users"],
    )
    _write(landing, "webbtidbok", lines=web_lines)
    _write(landing, "journalen", lines=journal_lines)
    with pytest.raises(ValidationFailed) as error:
        pipeline.run(settings)
    message = str(error.value)
    # Cause first (issue 23 §4): the rule, the first quarantined line and why; a format error is not approvable.
    assert (
        "journalen_2017-03.csv: blocked, 1 of 21 regions missing (08 Region Kalmar län); 1 line(s) quarantined, "
        "first line 8: Unika användare (unique_users) exceeds Inloggningar (logins) on this line"
    ) in message
    assert (
        "webbtidbok_2017-03.csv: blocked, 1 of 21 regions missing (07 Region Kronoberg); 1 line(s) quarantined, "
        "first line 7: Anslutna enheter (units_connected) exceeds Enheter totalt (units_total)"
    ) in message
    assert approvals.HINT not in message
    assert not (warehouse / "ehealth_adoption").exists()
    # First-time users above unique users is only a warning: the line is loaded, the load log says so.
    only_warning = set_cell(_lines("journalen"), "10", 4, journal["10"]["unique_users"] + 1)
    only_warning = set_cell(
        only_warning,
        "Riket",
        4,
        sum(v["first_time_users"] for v in journal.values())
        + journal["10"]["unique_users"]
        + 1
        - journal["10"]["first_time_users"],
    )
    _write(landing, "journalen", lines=only_warning)
    _write(landing, "webbtidbok")
    report = pipeline.run(settings)
    regional = next(r for r in report.results if r.table == "ehealth_adoption")
    assert (regional.rows_loaded, regional.rows_quarantined) == (168, 0)
    assert [w.split(":")[0] for w in regional.warnings] == [
        "Förstagångsinloggningar (first_time_users) exceeds Unika användare (unique_users)"
    ]
    log = _log(warehouse)
    assert log[log.table_name == "ehealth_adoption"].validation.iloc[-1] == "warning"
    assert _value(_table(warehouse, "ehealth_adoption"), "10", "first_time_users") == journal["10"]["unique_users"] + 1


def test_bad_cells_quarantine_the_line_and_the_incomplete_file_is_blocked(settings, landing, warehouse):
    """Issue 13 §1: the 21-regions rule is judged on the rows that would be published, after row quarantine."""
    lines = set_cell(_lines("journalen"), "06", 2, "många")
    lines = set_cell(lines, "13", 4, "-4")
    lines.insert(5, "2017-03;Region Atlantis;1;1;1")
    lines = set_cell(lines, "17", 0, "2017-04")
    _write(landing, "journalen", lines=lines)
    _write(landing, "webbtidbok")
    with pytest.raises(ValidationFailed) as error:
        pipeline.run(settings)
    message = str(error.value)
    assert (
        "journalen_2017-03.csv: blocked, 3 of 21 regions missing (06 Region Jönköpings län, 13 Region Halland, "
        "+1 more); 4 line(s) quarantined, first line 6: unknown region 'Region Atlantis'"
    ) in message
    assert len(message.split(": ", 2)[2]) < 300  # the terminal line; the load log keeps the whole list
    blocked_row = _log(warehouse).query("outcome == 'blocked'").iloc[0]
    assert "17 Region Värmland" in blocked_row.message and "Värde" not in blocked_row.message[:40]
    assert set(_table(warehouse, "ehealth_adoption").service) == {"web_booking"}
    _accounting_holds(warehouse)


def test_truncated_file_blocks_the_month(settings, landing, warehouse):
    text = ("\n".join(_lines("journalen")) + "\n").encode()
    _write(landing, "journalen", data=text[: text.index(b"\n2017-03;13;") + 14])
    _write(landing, "webbtidbok")
    # Cut short, the file has no national row (issue 23 §3): a sender's error, blocked without approval.
    with pytest.raises(
        ValidationFailed,
        match=r"journalen_2017-03.csv: blocked, the national row \(Riket\) is missing or "
        r"unreadable \(no line for it; line 12 was not read: 4 fields, expected 5",
    ):
        pipeline.run(settings)
    assert set(_table(warehouse, "ehealth_adoption").service) == {"web_booking"}


# --------------------------------------------------------------------------- which files, which months


def test_two_files_for_one_export_block_the_month(settings, landing, warehouse):
    journal, _, _ = sample.month_values(MARCH, SEED)
    _write(landing, "journalen")
    _write(
        landing,
        "journalen",
        ext="xlsx",
        data=sample.render_xlsx(sample.export_rows("journalen", MARCH, journal, sample.PLAIN)),
    )
    _write(landing, "webbtidbok")
    with pytest.raises(EtlError, match=r"2 files for journalen \(journalen_2017-03.csv, journalen_2017-03.xlsx\)"):
        pipeline.run(settings)


def test_period_catch_up_and_sweep(settings, landing, warehouse):
    months = [dt.date(2017, m, 1) for m in (1, 2, 3)]
    for month in months:
        _write(landing, "journalen", month)
        _write(landing, "webbtidbok", month)
    (landing / "ehealth" / "journalen_mars.csv").write_text("x")
    # A file that is no export's name is never silent: the run loads the rest, then fails naming it.
    with pytest.raises(BadInput, match="journalen_mars.csv"):
        pipeline.run(settings, period="2017-02", catch_up_late=True)
    assert set(_table(warehouse, "ehealth_adoption").month) == set(months[:2])  # January late, March not yet
    (landing / "ehealth" / "journalen_mars.csv").unlink()
    pipeline.run(settings)
    assert set(_table(warehouse, "ehealth_adoption").month) == set(months)
    assert pipeline.run(settings, period="2017-05").outcome == "nothing_new"
    landed = {pipeline.delivery_id(kind, period) for kind, period in pipeline.landed_exports(settings.landing_uri)}
    assert {"journalen_2017-05", "webbtidbok_2017-05"}.isdisjoint(landed)
    assert {"journalen_2017-03", "webbtidbok_2017-03"} <= landed
    with pytest.raises(ConfigError):
        pipeline.run(settings, period="2017-13")


def test_a_month_whose_file_is_still_being_written_is_not_called_without_files(landing, warehouse):
    """Found by review: with the month's file inside the settle window the run said "no e-health files for …"."""

    settling = local_settings(landing, warehouse, environ={"ETL_LANDING_SETTLE_SECONDS": "60"})
    _write(landing, "journalen")  # written just now: inside the 60 s settle window
    report = pipeline.run(settling, period="2017-03")
    assert report.results == []
    assert any("not yet loaded: " in m and "journalen_2017-03.csv" in m for m in report.messages)
    assert "1 file(s) for 2017-03 still arriving" in report.messages[-1]
    assert not any("no e-health files" in m for m in report.messages)
    assert "no e-health files for 2017-04" in pipeline.run(settling, period="2017-04").messages[-1]


def test_a_run_of_several_months_names_the_month_of_each_publish(settings, landing):
    """One run publishes each table once per month: every output line and XCom entry names its month
    (helper-29 counted twelve 'ehealth_adoption: published' lines that did not say which month each was)."""
    from etl.sources import ehealth_spec as spec

    april = dt.date(2017, 4, 1)
    for month in (MARCH, april):
        for kind in spec.kinds_expected(f"{month:%Y-%m}"):
            _write(landing, kind, month)
    report = pipeline.run(settings)
    lines = [line for line in report.lines() if line.startswith("ehealth_adoption ")]
    assert [line.split(":")[0] for line in lines] == ["ehealth_adoption 2017-03", "ehealth_adoption 2017-04"]
    assert all(": published, " in line for line in lines)
    tables = report.to_dict()["tables"]
    assert {"ehealth_adoption 2017-03", "ehealth_adoption 2017-04", "ehealth_adoption_national 2017-04"} <= set(tables)
    assert tables["ehealth_adoption 2017-04"]["rows_loaded"] == tables["ehealth_adoption 2017-03"]["rows_loaded"] > 0
