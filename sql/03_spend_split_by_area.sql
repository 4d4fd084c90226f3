-- Question 3: How did each region split the money across the three priority areas?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/03_spend_split_by_area.sql
--
-- One row per reporting region and year: the grant, spend per area in kronor and as a
-- percentage of the grant (1 IT support and e-health processes, 2 smarter use of staff
-- competence, 3 long-term competence supply), and the total. NULL = the region did not
-- state that area (the total is then NULL too). Up to 101 % of the grant is accepted.
-- Add e.g. `and year = 2024` to the where clause for one year.
select
    region_name,
    year,
    grant_sek,
    spend_it_support_sek,
    spend_competence_use_sek,
    spend_competence_supply_sek,
    round(100 * share_it_support, 1)        as pct_it_support,
    round(100 * share_competence_use, 1)    as pct_competence_use,
    round(100 * share_competence_supply, 1) as pct_competence_supply,
    round(100 * share_spent, 1)             as pct_spent
from followup_region_year
where reported
order by year, region_code;
