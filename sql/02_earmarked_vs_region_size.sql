-- Question 2: Which regions earmarked the funds for specific initiatives (rather than
-- spreading them over the general budget), and does that relate to region size?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/02_earmarked_vs_region_size.sql
--
-- One row per year and answer (yes / no / not stated) among the regions that reported:
-- how many, which (by name), and their median and mean population and grant per
-- inhabitant — compare the medians of "yes" and "no" to see whether large or small
-- regions earmark. Regions that did not report that year are left out.
select
    year,
    case earmarked when true then 'yes' when false then 'no' else 'not stated' end as earmarked_answer,
    count(*)                                                    as regions,
    string_agg(region_name, ', ' order by region_code)          as region_names,
    median(population)                                          as median_population,
    round(avg(population))                                      as mean_population,
    round(median(grant_per_inhabitant), 2)                      as median_grant_per_inhabitant
from followup_region_year
where reported
group by year, earmarked
order by year, earmarked desc nulls last;
