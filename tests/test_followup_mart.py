"""The follow-up marts: values computed by hand from small hand-made source tables.

The source tables are published with ``etl.publish.publish`` exactly as the
source pipelines would, into a temporary warehouse; the expected numbers
below are worked out by hand from those inputs (see the comments), never by
calling mart code.
The inputs: ``tests/followup_support.py``.
"""

from __future__ import annotations

import pytest

from etl import publish
from etl.errors import NotReady, ValidationFailed
from tests.followup_support import (
    COUNTY_REPORTS,
    D,
    build_sources,
    dim_region_rows,
    population_rows,
    publish_rows,
)
from tests.settings_support import local_settings, settings_in

# --------------------------------------------------------------------------- the marts


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    from etl.pipelines import followup

    settings = settings_in(tmp_path_factory.mktemp("followup_mart"))
    build_sources(settings.warehouse_uri)
    report = followup.build_marts(settings)
    region = publish.read_table(settings.warehouse_uri, "followup_region_year").to_pylist()
    national = publish.read_table(settings.warehouse_uri, "followup_national_year").to_pylist()
    return {
        "settings": settings,
        "report": report,
        "region": {(r["region_code"], r["year"]): r for r in region},
        "national": {r["year"]: r for r in national},
    }


def test_one_row_per_region_and_year_for_the_union_of_years(marts):
    assert len(marts["region"]) == 21 * 3
    assert sorted({y for _, y in marts["region"]}) == [2019, 2020, 2021]
    assert sorted(marts["national"]) == [2019, 2020, 2021]
    assert {r.table: (r.outcome, r.rows_in, r.rows_loaded, r.rows_quarantined) for r in marts["report"].results} == {
        "followup_region_year": ("published", 63, 63, 0),
        "followup_national_year": ("published", 3, 3, 0),
    }


def test_population_change_and_denominator_year(marts):
    r = marts["region"]
    assert (r["01", 2019]["population"], r["01", 2019]["population_change"]) == (2_000_000, None)
    assert (r["01", 2020]["population"], r["01", 2020]["population_change"]) == (2_100_000, 100_000)
    assert r["03", 2020]["population_change"] == -20_000
    assert r["09", 2020]["population_change"] == 0
    # 2021 has no count yet: population stays null, per-1 000 figures use the 2020 count.
    assert (r["01", 2021]["population"], r["01", 2021]["population_year_used"]) == (None, 2020)
    assert r["01", 2020]["population_year_used"] == 2020


def test_grant_spend_and_shares_per_region(marts):
    r = marts["region"]
    s19 = r["01", 2019]
    assert s19["reported"] is True and s19["grant_sek"] == 10_000_000 and s19["earmarked"] is True
    assert s19["grant_per_inhabitant"] == pytest.approx(5.0)
    assert (s19["share_it_support"], s19["share_competence_use"], s19["share_competence_supply"]) == pytest.approx(
        (0.2, 0.3, 0.4)
    )
    assert s19["spend_total_sek"] == 9_000_000 and s19["share_spent"] == pytest.approx(0.9)
    s20 = r["01", 2020]
    assert s20["grant_per_inhabitant"] == pytest.approx(12_000_000 / 2_100_000)
    assert (s20["share_it_support"], s20["share_competence_use"], s20["share_competence_supply"]) == pytest.approx(
        (0.5, 0.25, 0.255)
    )
    assert s20["share_spent"] == pytest.approx(1.005)  # within the 1 % tolerance
    # Uppsala 2019 did not state the third area: that share and the totals are unknown, not 0.
    u19 = r["03", 2019]
    assert u19["share_it_support"] == pytest.approx(0.25) and u19["share_competence_supply"] is None
    assert u19["spend_total_sek"] is None and u19["share_spent"] is None
    assert u19["earmarked"] is False
    assert r["03", 2020]["earmarked"] is None  # left empty in the report: unknown, not "no"


def test_a_region_that_did_not_report_is_null_not_no(marts):
    g = marts["region"]["09", 2020]
    assert g["reported"] is False and g["region_name"] == "Region Gotland"
    for column in (
        "grant_sek",
        "earmarked",
        "offers_clinical_intro_year",
        "offers_specialist_nurse_study_salary",
        "has_care_near_service",
        "has_task_shifting",
        "share_it_support",
        "web_booking_status",
        "initiatives_total",
        "initiatives_new_due_to_grant",
        "initiatives_it_support",
        "journal_unique_users_per_1000_mean",
        "journal_unique_users_months",
    ):
        assert g[column] is None, column
    assert g["population"] == 60_000  # population is known whether or not the region reported


def test_offers_and_ehealth_statuses(marts):
    r = marts["region"]
    assert [
        r["01", 2019][c]
        for c in (
            "offers_clinical_intro_year",
            "offers_specialist_nurse_study_salary",
            "has_care_near_service",
            "has_task_shifting",
        )
    ] == [True, False, None, True]
    assert r["01", 2019]["web_booking_status"] == "implemented"
    assert r["01", 2019]["web_booking_implemented_on"] == D(2017, 5, 1)
    assert r["01", 2019]["patient_journal_online_implemented_on"] == D(2018, 3, 15)
    assert (r["01", 2019]["remote_care_status"], r["01", 2019]["remote_care_implemented_on"]) == ("planned", None)
    assert r["01", 2019]["self_check_in_status"] is None  # not listed that year
    assert r["01", 2020]["self_check_in_status"] == "not_started"
    assert r["03", 2019]["web_booking_status"] == "partly_implemented"


def test_adoption_per_1000_means_december_and_suppressed_months(marts):
    r = marts["region"]
    s = r["01", 2019]
    assert s["journal_unique_users_per_1000_mean"] == pytest.approx(105.0)
    assert s["journal_unique_users_per_1000_dec"] == pytest.approx(110.0)
    assert s["journal_unique_users_months"] == 2
    # December logins suppressed: left out of the mean, counted out of the months, no December figure.
    assert (s["journal_logins_per_1000_mean"], s["journal_logins_months"], s["journal_logins_per_1000_dec"]) == (
        pytest.approx(250.0),
        1,
        None,
    )
    assert s["web_booking_bookings_per_1000_mean"] == pytest.approx(25.0)
    assert s["web_booking_bookings_per_1000_dec"] == pytest.approx(30.0)
    assert s["web_booking_units_connected_share_dec"] == pytest.approx(0.75)
    assert r["01", 2020]["journal_unique_users_per_1000_mean"] == pytest.approx(150.0)
    assert r["01", 2020]["journal_unique_users_per_1000_change"] == pytest.approx(45.0)
    assert r["01", 2021]["journal_unique_users_per_1000_mean"] == pytest.approx(160.0)
    assert r["01", 2021]["journal_unique_users_per_1000_dec"] is None
    assert r["01", 2021]["journal_unique_users_per_1000_change"] == pytest.approx(10.0)
    u = r["03", 2019]
    assert (u["journal_unique_users_per_1000_mean"], u["journal_unique_users_months"]) == (None, 0)
    u20 = r["03", 2020]
    assert u20["journal_unique_users_per_1000_mean"] == pytest.approx(125.0)
    assert u20["journal_unique_users_per_1000_change"] is None  # 2019 unknown
    assert u20["web_booking_units_connected_share_dec"] is None  # total suppressed
    assert r["05", 2019]["journal_unique_users_months"] is None  # no rows at all for the region


def test_initiative_counts_per_area_and_new_thanks_to_grant(marts):
    r = marts["region"]
    s = r["01", 2019]
    assert [s[f"initiatives_{a}"] for a in ("it_support", "competence_use", "competence_supply")] == [1, 1, 1]
    assert (s["initiatives_total"], s["initiatives_new_due_to_grant"], s["initiatives_new_unknown"]) == (3, 1, 1)
    assert r["01", 2020]["initiatives_new_it_support"] == 2
    # Uppsala reported 2019 with no initiatives at all: zeros, not nulls.
    u = r["03", 2019]
    assert (u["initiatives_total"], u["initiatives_new_due_to_grant"], u["initiatives_competence_supply"]) == (0, 0, 0)


def test_national_counts_of_regions(marts):
    n = marts["national"]
    assert (n[2019]["regions_total"], n[2019]["regions_reported"], n[2020]["regions_reported"]) == (21, 3, 2)
    # 2019: clinical year yes 01, no 03 and 09; study salary no 01 and 09, 03 left it empty.
    assert (n[2019]["regions_offers_clinical_intro_year"], n[2019]["regions_answered_offers_clinical_intro_year"]) == (
        1,
        3,
    )
    assert (
        n[2019]["regions_offers_specialist_nurse_study_salary"],
        n[2019]["regions_answered_offers_specialist_nurse_study_salary"],
    ) == (0, 2)
    assert (n[2020]["regions_offers_clinical_intro_year"], n[2020]["regions_offers_specialist_nurse_study_salary"]) == (
        2,
        2,
    )
    assert (n[2019]["regions_earmarked"], n[2019]["regions_answered_earmarked"]) == (2, 3)
    assert (n[2020]["regions_earmarked"], n[2020]["regions_answered_earmarked"]) == (1, 1)
    # Nobody reported 2021: the count is unknown, not 0.
    assert (n[2021]["regions_offers_clinical_intro_year"], n[2021]["regions_answered_offers_clinical_intro_year"]) == (
        None,
        0,
    )
    assert (n[2019]["regions_web_booking_implemented"], n[2019]["regions_web_booking_reported"]) == (1, 3)
    assert (n[2020]["regions_web_booking_implemented"], n[2020]["regions_self_check_in_reported"]) == (2, 1)


def test_national_money_population_and_adoption(marts):
    n = marts["national"]
    assert (n[2019]["population"], n[2020]["population"], n[2021]["population"]) == (4_260_000, 4_340_000, None)
    assert n[2020]["population_change"] == 80_000 and n[2021]["population_year_used"] == 2020
    assert n[2019]["grant_sek"] == 12_300_000 and n[2021]["grant_sek"] is None
    assert n[2019]["grant_per_inhabitant"] == pytest.approx(12_300_000 / 2_460_000)
    assert n[2020]["grant_per_inhabitant"] == pytest.approx(13_900_000 / 2_480_000)
    # Shares over the regions that reported both the area and the grant: Uppsala has no 2019 area-3 figure.
    assert n[2019]["share_it_support"] == pytest.approx(2_600_000 / 12_300_000)
    assert n[2019]["share_competence_supply"] == pytest.approx(4_100_000 / 10_300_000)
    assert n[2019]["spend_competence_supply_sek"] == 4_100_000
    assert n[2019]["journal_unique_users_per_1000_mean"] == pytest.approx(225.0)
    assert n[2019]["journal_unique_users_per_1000_dec"] == pytest.approx(250.0)
    assert n[2020]["journal_unique_users_per_1000_change"] == pytest.approx(75.0)
    assert n[2021]["journal_unique_users_per_1000_mean"] == pytest.approx(310.0)
    assert n[2019]["journal_logins_per_1000_mean"] == pytest.approx(500.0)
    assert (n[2019]["initiatives_total"], n[2019]["initiatives_new_due_to_grant"], n[2021]["initiatives_total"]) == (
        4,
        2,
        None,
    )


def test_rebuild_with_the_same_sources_is_unchanged(marts):
    from etl.pipelines import followup

    again = followup.build_marts(marts["settings"])
    # Same source versions: not even recomputed, and the load log says so.
    assert again.outcome == "nothing_new" and again.results == []
    assert "current source table versions" in again.messages[0]


# --------------------------------------------------------------------------- bad input


def test_missing_dim_region_is_one_clear_error_and_logged(tmp_path):
    from etl.pipelines import followup

    settings = settings_in(tmp_path)
    with pytest.raises(NotReady, match="dim_region is not published: run the reference pipeline first"):
        followup.build_marts(settings)
    log = publish.read_load_log(settings.warehouse_uri).to_pylist()
    # Nothing to build on yet, not a failure of the marts (issue 24: the follow-up DAG's first try was red).
    assert [(r["pipeline"], r["outcome"]) for r in log] == [("followup", "nothing_new")]
    assert log[0]["message"].startswith("not built: dim_region is not published")


def test_a_region_missing_from_the_dimension_blocks_thepublish_rows(tmp_path):
    from etl.pipelines import followup

    settings = settings_in(tmp_path)
    build_sources(settings.warehouse_uri, dim_region=dim_region_rows(drop="25"))
    with pytest.raises(ValidationFailed, match="21 regions"):
        followup.build_marts(settings)
    assert not (tmp_path / "warehouse" / "followup_region_year").exists()
    failed = [r for r in publish.read_load_log(settings.warehouse_uri).to_pylist() if r["pipeline"] == "followup"]
    assert [(r["table_name"], r["outcome"]) for r in failed] == [("followup_region_year", "failed")]


def test_source_rows_for_an_unknown_region_are_reported_in_the_load_log(tmp_path):
    from etl.pipelines import followup

    settings = settings_in(tmp_path)
    build_sources(settings.warehouse_uri)
    publish_rows(
        settings.warehouse_uri,
        "population",
        [{"region_code": "99", "year": 2019, "population": 5}],
        merge_keys=("region_code", "year"),
    )
    followup.build_marts(settings)
    log = [r for r in publish.read_load_log(settings.warehouse_uri).to_pylist() if r["pipeline"] == "followup"]
    assert {r["validation"] for r in log} == {"warning"}
    assert all(
        "population: 1 row(s) for region code(s) not in dim_region left out of the mart: ['99']" in r["warnings"]
        for r in log
    )
    assert len(publish.read_table(settings.warehouse_uri, "followup_region_year")) == 63


def test_spend_far_above_the_grant_blocks_thepublish_rows(tmp_path):
    from etl.pipelines import followup

    settings = settings_in(tmp_path)
    bad = [dict(COUNTY_REPORTS[0], spend_it_support_sek=20_000_000)] + COUNTY_REPORTS[1:]
    build_sources(settings.warehouse_uri, county_reports=bad)
    with pytest.raises(ValidationFailed, match=r"share of the grant.*01/2019"):
        followup.build_marts(settings)
    assert not (tmp_path / "warehouse" / "followup_national_year").exists()


def test_sources_not_published_yet_give_null_columns_not_a_crash(tmp_path):
    from etl.pipelines import followup

    settings = settings_in(tmp_path)
    publish_rows(settings.warehouse_uri, "dim_region", dim_region_rows())
    first = followup.run(settings)
    assert first.outcome == "nothing_new" and "no years in any source table: nothing to build" in first.messages
    publish_rows(settings.warehouse_uri, "population", population_rows())
    second = followup.run(settings)
    assert second.outcome == "published"
    assert any(m.startswith("not published yet, their columns are null: county_report") for m in second.messages)
    rows = publish.read_table(settings.warehouse_uri, "followup_region_year").to_pylist()
    assert len(rows) == 42 and not any(r["reported"] for r in rows)
    assert all(r["grant_sek"] is None and r["initiatives_total"] is None for r in rows)
    national = {r["year"]: r for r in publish.read_table(settings.warehouse_uri, "followup_national_year").to_pylist()}
    assert (national[2019]["regions_reported"], national[2019]["regions_offers_clinical_intro_year"]) == (0, None)
    # The access files are still built (charts say there is nothing to show yet).
    assert (tmp_path / "warehouse" / "exports" / "followup_report.html").exists()


def test_sources_rewritten_in_another_row_order_leave_the_marts_unchanged(tmp_path):
    """Found by a reviewer: after `etl maintain` compacted a source table, a rebuild published a new mart
    version differing only in the last digit of float means (rows summed in another order)."""
    import pyarrow as pa

    from etl.pipelines import ehealth_adoption, followup, reference
    from etl.sample import ehealth as ehealth_sample
    from etl.sample import reference as reference_sample

    landing = tmp_path / "landing"
    settings = local_settings(landing, tmp_path / "wh")
    for module in (reference_sample, ehealth_sample):
        module.write(landing, 2018, 2019, units=1, unit_months=0, seed=5)
    reference.run(settings, offline_snapshot=True)
    ehealth_adoption.run(settings)
    assert followup.build_marts(settings).outcome == "published"
    before = publish.read_table(settings.warehouse_uri, "followup_region_year")

    def shuffled_rows(rows: pa.Table) -> pa.Table:  # as a compaction may lay them out (unsorted: 17 means differ)
        import random

        listed = rows.to_pylist()
        random.Random(0).shuffle(listed)
        return pa.Table.from_pylist(listed, schema=rows.schema)

    for table in ("ehealth_adoption", "population"):
        assert publish.rewrite(settings.warehouse_uri, table, lambda _: True, shuffled_rows, "rows shuffled")
    again = followup.build_marts(settings)
    assert again.outcome == "unchanged", [(r.table, r.outcome) for r in again.results]
    assert {r.outcome for r in again.results} == {"unchanged"}
    assert publish.read_table(settings.warehouse_uri, "followup_region_year").equals(before)
