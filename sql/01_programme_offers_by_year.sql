-- Question 1: How many regions offer a clinical introduction year for newly graduated
-- nurses, or paid study salary for specialist-nurse training — and how did that change
-- year by year?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/01_programme_offers_by_year.sql
--
-- Reads followup_region_year (one row per region and year). Only regions that answered
-- are counted: a region that did not report, or left the field empty, is unknown, not
-- "no" — the *_answered columns say how many answered. A count is NULL when nobody
-- answered that year. *_change compares with the year before (NULL when that year has
-- no count). "either" = offers at least one of the two (SQL: TRUE OR NULL is TRUE).
with per_year as (
    select
        year,
        count(*) filter (where reported)                                          as regions_reported,
        count(offers_clinical_intro_year)                                          as clinical_intro_year_answered,
        count(*) filter (where offers_clinical_intro_year)                         as clinical_intro_year_yes,
        count(offers_specialist_nurse_study_salary)                                as study_salary_answered,
        count(*) filter (where offers_specialist_nurse_study_salary)               as study_salary_yes,
        count(*) filter (where offers_clinical_intro_year or offers_specialist_nurse_study_salary) as either_yes
    from followup_region_year
    group by year
),
counted as (
    select
        year,
        regions_reported,
        case when clinical_intro_year_answered > 0 then clinical_intro_year_yes end as clinical_intro_year,
        clinical_intro_year_answered,
        case when study_salary_answered > 0 then study_salary_yes end             as study_salary,
        study_salary_answered,
        case when clinical_intro_year_answered + study_salary_answered > 0 then either_yes end as either_programme
    from per_year
)
select
    c.year,
    c.regions_reported,
    c.clinical_intro_year,
    c.clinical_intro_year_answered,
    c.clinical_intro_year - p.clinical_intro_year as clinical_intro_year_change,
    c.study_salary,
    c.study_salary_answered,
    c.study_salary - p.study_salary               as study_salary_change,
    c.either_programme
from counted c
left join counted p on p.year = c.year - 1
order by c.year;
