"""Issue 13 §1–§3: deliveries as senders really send them.

A refused or shrinking correction never removes published rows (blocked,
previous version kept, run failed naming the file); nothing in landing is
silent; corrections follow delivery order (a re-sent earlier version undoes
a correction); one delivery under two paths or two spellings is one. The
property test drives random sequences of deliveries through the e-health
pipeline and checks the warehouse after each.
"""

from __future__ import annotations

import os
import time
import unicodedata

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from etl import publish, regions
from etl.errors import BadInput, EtlError, ValidationFailed
from etl.pipelines import county_reports as county
from etl.pipelines import ehealth_adoption as pipeline
from tests.county_support import DAY, T0, builders
from tests.export_support import journal_logins as _journal
from tests.export_support import pipeline_lines as _lines
from tests.export_support import set_cell as _set
from tests.export_support import write_export as _write
from tests.settings_support import local_settings

LOGINS = 2  # column of Inloggningar in the journal export's PLAIN style


def _blocked_rows(warehouse) -> int:
    log = publish.read_load_log(str(warehouse)).to_pandas()
    return int((log.outcome == "blocked").sum())


# --------------------------------------------------------------------------- §1 no silent shrink


def test_correction_with_a_broken_row_rule_is_blocked_and_the_region_stays(settings, landing, warehouse):
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    before = _journal(warehouse)
    lines = _set(_lines("journalen"), "08", 3, before["08"] + 1)  # Unika användare above Inloggningar
    _write(landing, "journalen", lines=lines)
    with pytest.raises(ValidationFailed) as error:
        pipeline.run(settings)
    assert "journalen_2017-03.csv: blocked" in str(error.value)
    assert "08 Region Kalmar län" in str(error.value)
    assert _journal(warehouse) == before  # the region's month is still there
    assert _blocked_rows(warehouse) == 1


def test_correction_with_no_recognisable_region_is_blocked(settings, landing, warehouse):
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    before = _journal(warehouse)
    lines = [
        ";".join([c[0], f"Okänd {i}", *c[2:]]) if c[1] != "Riket" and i else line
        for i, (line, c) in enumerate((line, line.split(";")) for line in _lines("journalen"))
    ]
    _write(landing, "journalen", lines=lines)
    with pytest.raises(ValidationFailed, match="journalen_2017-03.csv: blocked"):
        pipeline.run(settings)
    assert _journal(warehouse) == before


def test_county_json_with_capitalised_keys_does_not_wipe_the_region_year(settings, landing):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    county.run(settings)
    initiatives = publish.read_table(settings.warehouse_uri, "county_initiative").num_rows
    services = publish.read_table(settings.warehouse_uri, "county_ehealth_service").num_rows
    assert initiatives and services
    doc = builders.doc()
    doc["Initiatives"] = doc.pop("initiatives")
    doc["Ehealth_services"] = doc.pop("ehealth_services")
    builders.land(landing, "uppsala_rattelse.json", builders.json_bytes(doc), T0 + DAY)
    with pytest.raises(ValidationFailed) as error:
        county.run(settings)
    message = str(error.value)
    assert (
        "uppsala_rattelse.json: blocked, refused whole: unknown key(s), not produced by the web form: "
        "'Initiatives' (did you mean 'initiatives'?), 'Ehealth_services' (did you mean 'ehealth_services'?)"
    ) in message
    assert publish.read_table(settings.warehouse_uri, "county_initiative").num_rows == initiatives
    assert publish.read_table(settings.warehouse_uri, "county_ehealth_service").num_rows == services
    # Left out (as the web form leaves an empty list out) rather than misspelt: blocked, not a withdrawal.
    del doc["Initiatives"]
    doc["ehealth_services"] = doc.pop("Ehealth_services")
    builders.land(landing, "uppsala_rattelse.json", builders.json_bytes(doc), T0 + 2 * DAY)
    with pytest.raises(
        ValidationFailed, match="blocked, the file has no rows for county_initiative; would remove 3 rows"
    ):
        county.run(settings)
    assert publish.read_table(settings.warehouse_uri, "county_initiative").num_rows == initiatives


def test_county_explicit_withdrawal_is_honoured(settings, landing):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    county.run(settings)
    doc = builders.doc()
    doc["initiatives"] = []
    builders.land(landing, "uppsala_rattelse.json", builders.json_bytes(doc), T0 + DAY)
    county.run(settings)
    assert publish.read_table(settings.warehouse_uri, "county_initiative").num_rows == 0
    assert publish.read_table(settings.warehouse_uri, "county_ehealth_service").num_rows > 0


def test_unit_file_still_being_written_waits_and_a_truncated_correction_is_blocked(landing, warehouse):
    from etl.sample import ehealth as sample

    sample.write(landing, 2017, 2017, units=40, unit_months=1)
    for path in (landing / "ehealth").iterdir():
        if not path.name.startswith("webbtidbok_enheter"):
            path.unlink()
    unit = next((landing / "ehealth").iterdir())
    waiting = local_settings(landing, warehouse, environ={"ETL_LANDING_SETTLE_SECONDS": "60"})
    report = pipeline.run(waiting)
    assert report.outcome == "nothing_new"
    assert any("still being written" in m and unit.name in m for m in report.messages)
    old = time.time() - 120
    os.utime(unit, (old, old))
    pipeline.run(waiting)
    loaded = publish.read_table(str(warehouse), "ehealth_unit_daily").num_rows
    assert loaded > 100
    # A copy cut mid-line (as a half-written upload is): refused whole, the published month stays.
    data = unit.read_bytes()
    unit.write_bytes(data[: len(data) // 2])
    os.utime(unit, (old + 1, old + 1))
    with pytest.raises(
        ValidationFailed, match=rf"{unit.name}: blocked, refused whole: .*the last line .* is cut short"
    ):
        pipeline.run(waiting)
    assert publish.read_table(str(warehouse), "ehealth_unit_daily").num_rows == loaded


def test_a_unit_file_cut_at_a_line_boundary_is_blocked_by_the_regional_bookings(settings, landing, warehouse):
    """``head -n 1500`` of a unit file parses cleanly; its days no longer add up to the regional bookings."""
    from etl.sample import ehealth as sample

    sample.write(landing, 2017, 2017, units=40, unit_months=1)
    unit = next((landing / "ehealth").glob("webbtidbok_enheter_*.csv"))
    period = unit.stem.rsplit("_", 1)[-1]
    for path in (landing / "ehealth").iterdir():
        if period not in path.name:
            path.unlink()
    pipeline.run(settings)
    loaded = publish.read_table(str(warehouse), "ehealth_unit_daily").num_rows
    lines = unit.read_bytes().splitlines(keepends=True)
    unit.write_bytes(b"".join(lines[: len(lines) // 2]))
    (landing / "ehealth" / f"webbtidbok_{period}.csv").unlink()  # the unit file alone: judged by what is published
    with pytest.raises(
        ValidationFailed,
        match=rf"{unit.name}: blocked, unit bookings off in \d+ region\(s\): 01 \(units "
        r"[\d,]+ vs region [\d,]+\).*; would remove \d+ rows",
    ):
        pipeline.run(settings)
    assert publish.read_table(str(warehouse), "ehealth_unit_daily").num_rows == loaded


# --------------------------------------------------------------------------- §2 nothing silent in landing


def test_a_folder_named_like_a_delivery_fails_the_run_naming_it(settings, landing):
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    (landing / "ehealth" / "webbtidbok_2019-03.csv").mkdir()
    (landing / "ehealth" / ".upload-in-progress.csv").write_text("hidden: not a delivery")
    with pytest.raises(BadInput, match=r"'webbtidbok_2019-03.csv' is a folder"):
        pipeline.run(settings)
    assert publish.read_table(settings.warehouse_uri, "ehealth_adoption").num_rows == 168  # the rest loaded


def test_a_file_of_a_type_no_reader_takes_fails_the_run_naming_it(settings, landing):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    builders.land(landing, "uppsala.pdf", b"%PDF-1.4", T0)
    with pytest.raises(BadInput, match=r"'uppsala.pdf': not a file type this folder takes"):
        county.run(settings)
    assert publish.read_table(settings.warehouse_uri, "county_report").num_rows == 1


# --------------------------------------------------------------------------- §3 delivery order


def test_resending_the_earlier_version_undoes_a_correction(settings, landing, warehouse):
    _write(landing, "webbtidbok")
    original = _lines("journalen")
    _write(landing, "journalen", lines=original)
    pipeline.run(settings)
    first = _journal(warehouse)
    journal = {c.split(";")[1]: c for c in original}
    corrected = _set(
        _set(original, "01", LOGINS, first["01"] + 10), "Riket", LOGINS, int(journal["Riket"].split(";")[LOGINS]) + 10
    )
    _write(landing, "journalen", lines=corrected)
    pipeline.run(settings)
    assert _journal(warehouse)["01"] == first["01"] + 10
    _write(landing, "journalen", lines=original)  # the sender takes the correction back
    report = pipeline.run(settings)
    assert report.outcome == "published"
    assert _journal(warehouse) == first


def test_county_resending_the_earlier_version_undoes_a_correction(settings, landing):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0)
    county.run(settings)
    builders.land(landing, "uppsala_v2.json", builders.json_bytes(builders.doc(grant_sek="22 mnkr")), T0 + DAY)
    county.run(settings)
    grant = lambda: publish.read_table(settings.warehouse_uri, "county_report").column("grant_sek").to_pylist()  # noqa: E731
    assert grant() == [22_000_000]
    builders.land(
        landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0 + 2 * DAY
    )  # re-sent: now the newest delivery for Uppsala 2017
    county.run(settings)
    assert grant() == [20_000_000]


def test_a_resent_county_report_counts_by_arrival_even_with_its_old_modification_time(settings, landing):
    """``cp -p`` / rsync ``-a`` / WinSCP keep a file's old time: arrival, not mtime, decides the delivery."""

    def grant() -> list[int]:
        return publish.read_table(settings.warehouse_uri, "county_report").column("grant_sek").to_pylist()

    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0)
    county.run(settings)
    builders.land(landing, "uppsala_rattelse.json", builders.json_bytes(builders.doc(grant_sek="22 mnkr")), T0 + DAY)
    county.run(settings)
    assert grant() == [22_000_000]
    # The first version sent again as a copy that kept its original time (older than the correction's).
    builders.land(landing, "uppsala_igen.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0)
    county.run(settings)
    assert grant() == [20_000_000]
    # A file stamped far in the future does not shadow a later correction either.
    builders.land(
        landing, "uppsala_framtid.json", builders.json_bytes(builders.doc(grant_sek="21 mnkr")), T0 + 10_000 * DAY
    )
    county.run(settings)
    assert grant() == [21_000_000]
    builders.land(landing, "uppsala_sista.json", builders.json_bytes(builders.doc(grant_sek="23 mnkr")), T0 + 2 * DAY)
    county.run(settings)
    assert grant() == [23_000_000]


def test_one_delivery_through_two_mount_points_and_two_spellings(tmp_path, warehouse):
    host, worker = tmp_path / "host", tmp_path / "worker"
    name = "Region Jönköpings län.json"
    doc = builders.doc(region="Region Jönköpings län")
    builders.land(host, unicodedata.normalize("NFD", name), builders.json_bytes(doc), T0)
    (worker).symlink_to(host, target_is_directory=True)
    report = county.run(local_settings(host, warehouse))
    assert report.outcome == "published"
    assert any(unicodedata.is_normalized("NFC", m) for m in report.lines())
    source = publish.read_table(str(warehouse), "county_report").column("source_file").to_pylist()[0]
    assert source.endswith(unicodedata.normalize("NFC", name))
    # The worker sees the same files under another path: nothing new.
    again = county.run(local_settings(worker, warehouse))
    assert again.outcome == "nothing_new"


def test_stale_quarantine_rows_of_another_mount_point_do_not_linger(tmp_path, warehouse):
    host, worker = tmp_path / "host", tmp_path / "worker"
    doc = builders.doc()
    doc["initiatives"][1]["status"] = "Kanske"  # an unknown value: that initiative row is quarantined
    builders.land(host, "uppsala.json", builders.json_bytes(doc), T0)
    county.run(local_settings(host, warehouse))
    quarantined = publish.read_quarantine(str(warehouse), "county_initiative").column("source_file").to_pylist()
    assert quarantined == [str(host / "county_reports" / "uppsala.json")]
    # Corrected, and now read by a worker that mounts the landing volume elsewhere (a symlink would be
    # resolved away by the settings, so the worker's view is a second folder with the same file).
    builders.land(worker, "uppsala.json", builders.json_bytes(builders.doc()), T0 + DAY)
    county.run(local_settings(worker, warehouse))
    assert publish.read_quarantine(str(warehouse), "county_initiative").num_rows == 0
    assert publish.read_table(str(warehouse), "county_initiative").num_rows == 3


# --------------------------------------------------------------------------- property: sequences of deliveries


GOOD, CORRECTED, REVERTED, BROKEN_ROW, TRUNCATED, REFUSED = range(6)


def _journal_lines(variant: int) -> tuple[list[str], dict[str, int] | None]:
    """Lines of one journal delivery and the logins it should publish (None: it must be blocked)."""
    lines = _lines("journalen")
    values = {c.split(";")[1]: int(c.split(";")[LOGINS]) for c in lines[1:]}
    if variant == CORRECTED:
        lines = _set(_set(lines, "01", LOGINS, values["01"] + 7), "Riket", LOGINS, values["Riket"] + 7)
        values["01"] += 7
    elif variant == BROKEN_ROW:
        return _set(lines, "08", LOGINS, 0), None  # unique users above logins: row quarantined → blocked
    elif variant == TRUNCATED:
        return lines[:12], None
    elif variant == REFUSED:
        return [line.replace("2017-03", "2017-04") for line in lines], None
    values.pop("Riket")
    return lines, values


@pytest.mark.slow
@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([GOOD, CORRECTED, REVERTED, BROKEN_ROW, TRUNCATED, REFUSED]), min_size=1, max_size=5))
def test_published_keys_disappear_only_by_withdrawal_and_the_latest_good_delivery_wins(tmp_path_factory, sequence):
    base = tmp_path_factory.mktemp("seq")
    landing, warehouse = base / "landing", base / "warehouse"
    settings = local_settings(landing, warehouse)
    _write(landing, "webbtidbok")
    published: dict[str, int] = {}
    for step, variant in enumerate(sequence):
        lines, expected = _journal_lines(GOOD if variant == REVERTED else variant)
        path = _write(landing, "journalen", lines=lines)
        os.utime(path, (1_700_000_000 + step, 1_700_000_000 + step))
        try:
            pipeline.run(settings)
            failed = False
        except EtlError:
            failed = True
        assert failed == (expected is None), (sequence, step)
        if expected is not None:
            published = expected
        now = _journal(warehouse) if (warehouse / "ehealth_adoption").exists() else {}
        assert now == published, (sequence, step)  # the latest good delivery, never a shrunk one
        if published:
            assert set(now) == set(regions.REGION_CODES)


def test_an_export_without_its_national_total_line_keeps_the_published_national_rows(settings, landing, warehouse):
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    national = publish.read_table(str(warehouse), "ehealth_adoption_national").num_rows
    _write(landing, "journalen", lines=[line for line in _lines("journalen") if ";Riket;" not in line])
    with pytest.raises(
        ValidationFailed,
        match=r"journalen_2017-03.csv: blocked, the national row \(Riket\) is missing "
        r"or unreadable \(no line for it\): the month cannot be reconciled",
    ):
        pipeline.run(settings)
    assert publish.read_table(str(warehouse), "ehealth_adoption_national").num_rows == national


def test_a_county_json_correction_leaving_a_field_out_keeps_the_published_value(settings, landing):
    """Found by review: a left-out ``grant_sek`` (not null, absent) used to null the published grant, exit 0."""
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0)
    county.run(settings)
    doc = builders.doc(grant_sek="20 mnkr")
    del doc["grant_sek"]
    builders.land(landing, "uppsala_v2.json", builders.json_bytes(doc), T0 + DAY)
    with pytest.raises(
        ValidationFailed,
        match="uppsala_v2.json: blocked, refused whole: key.s. the web form always writes are missing .*'grant_sek'",
    ):
        county.run(settings)
    assert publish.read_table(settings.warehouse_uri, "county_report").column("grant_sek").to_pylist() == [20_000_000]


def test_a_published_correction_written_again_is_not_undone_while_it_settles(landing, warehouse):
    """Found by review: touching (re-uploading) the published correction made the older file current for a run."""
    settled = local_settings(landing, warehouse, environ={"ETL_LANDING_SETTLE_SECONDS": "60"})

    def grant() -> list[int]:
        return publish.read_table(str(warehouse), "county_report").column("grant_sek").to_pylist()

    old = time.time() - 3600
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), old)
    county.run(settled)
    correction = builders.land(
        landing, "uppsala_v2.json", builders.json_bytes(builders.doc(grant_sek="22 mnkr")), old + 60
    )
    county.run(settled)
    assert grant() == [22_000_000]
    os.utime(correction)  # written again just now: settling for 60 s
    report = county.run(settled)
    assert grant() == [22_000_000]
    assert report.results == [] and any("uppsala_v2.json" in m for m in report.messages)


def test_the_views_follow_runs_with_nothing_new_and_maintenance(settings, landing, warehouse):
    import duckdb

    from etl import maintenance

    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    county.run(settings)

    def logged() -> int:
        with duckdb.connect(str(warehouse / "followup.duckdb"), read_only=True) as con:
            return con.execute("select count(*) from load_log").fetchall()[0][0]

    before = logged()
    county.run(settings)  # nothing new: still a load-log row, and the view shows it
    assert logged() == before + 1 == publish.read_load_log(str(warehouse)).num_rows
    maintenance.maintain(str(warehouse), retention=0)  # compaction + vacuum of the files no version needs
    assert logged() == before + 1  # the views name the compacted files, not the vacuumed ones
