-- Question 4: When did each region implement web booking and the patient journal online,
-- and how has adoption per 1 000 inhabitants developed since?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/04_ehealth_implementation_and_adoption.sql
--
-- Implementation dates are the earliest "införd datum" the region has reported for the
-- service in any year. Then one row per year from the year of the earlier of the two
-- dates: journal unique users and web bookings per 1 000 inhabitants (monthly mean over
-- the months with a value — suppressed months are left out; months_used says how many),
-- the change of journal users from the year before, and the share of care units
-- offering web booking in December. Regions that reported no date are not listed.
with implemented as (
    select
        region_code,
        min(web_booking_implemented_on)            as web_booking_implemented_on,
        min(patient_journal_online_implemented_on) as journal_implemented_on
    from followup_region_year
    group by region_code
)
select
    f.region_name,
    i.web_booking_implemented_on,
    i.journal_implemented_on,
    f.year,
    round(f.journal_unique_users_per_1000_mean, 1)   as journal_users_per_1000,
    f.journal_unique_users_months                    as months_used,
    round(f.journal_unique_users_per_1000_change, 1) as journal_users_per_1000_change,
    round(f.web_booking_bookings_per_1000_mean, 1)   as bookings_per_1000,
    round(100 * f.web_booking_units_connected_share_dec, 1) as pct_units_connected_dec
from followup_region_year f
join implemented i using (region_code)
where coalesce(i.web_booking_implemented_on, i.journal_implemented_on) is not null
  and f.year >= year(least(i.web_booking_implemented_on, i.journal_implemented_on))
order by f.region_code, f.year;
