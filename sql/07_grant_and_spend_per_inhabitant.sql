-- Question 7: How much did each region receive and spend on each priority area, in kronor
-- and per inhabitant, year by year — and the country as a whole?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/07_grant_and_spend_per_inhabitant.sql
--
-- One row per reporting region and year, then a row 'Riket' per year: the grant and the
-- spend per area (1 IT support and e-health processes, 2 smarter use of staff competence,
-- 3 long-term competence supply) in kronor and per inhabitant. Per inhabitant divides by
-- the population of population_year_used (the year itself, or the latest earlier year SCB
-- has published): the denominator of grant_per_inhabitant. NULL = unknown (the area not
-- stated, or no population). Riket sums the regions that stated the figure, and divides
-- by the population of those same regions. The report's tables "per region och år" show
-- these figures; add e.g. `where year = 2024` at the end for one year.
with regions as (
    select
        f.region_code,
        f.region_name,
        f.year,
        p.population as population_used,
        f.grant_sek,
        f.spend_it_support_sek,
        f.spend_competence_use_sek,
        f.spend_competence_supply_sek
    from followup_region_year f
    left join followup_region_year p on p.region_code = f.region_code and p.year = f.population_year_used
    where f.reported
),
rows as (
    select
        region_code,
        region_name,
        year,
        grant_sek,
        grant_sek / population_used                   as grant_per_inhabitant,
        spend_it_support_sek,
        spend_it_support_sek / population_used        as it_support_per_inhabitant,
        spend_competence_use_sek,
        spend_competence_use_sek / population_used    as competence_use_per_inhabitant,
        spend_competence_supply_sek,
        spend_competence_supply_sek / population_used as competence_supply_per_inhabitant
    from regions
    union all
    select
        '00',
        'Riket',
        year,
        sum(grant_sek)::bigint,
        sum(grant_sek) filter (where population_used is not null)
            / sum(population_used) filter (where grant_sek is not null),
        sum(spend_it_support_sek)::bigint,
        sum(spend_it_support_sek) filter (where population_used is not null)
            / sum(population_used) filter (where spend_it_support_sek is not null),
        sum(spend_competence_use_sek)::bigint,
        sum(spend_competence_use_sek) filter (where population_used is not null)
            / sum(population_used) filter (where spend_competence_use_sek is not null),
        sum(spend_competence_supply_sek)::bigint,
        sum(spend_competence_supply_sek) filter (where population_used is not null)
            / sum(population_used) filter (where spend_competence_supply_sek is not null)
    from regions
    group by year
)
select
    region_name,
    year,
    grant_sek,
    round(grant_per_inhabitant, 2)             as grant_per_inhabitant,
    spend_it_support_sek,
    round(it_support_per_inhabitant, 2)        as it_support_per_inhabitant,
    spend_competence_use_sek,
    round(competence_use_per_inhabitant, 2)    as competence_use_per_inhabitant,
    spend_competence_supply_sek,
    round(competence_supply_per_inhabitant, 2) as competence_supply_per_inhabitant
from rows
order by year, region_code = '00', region_code;
