-- Question 6: The figures behind the report's Sammanfattning — per report year, how many
-- regions said yes to each question, how many answered, and how many did not?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/06_summary_counts.sql
--
-- One row per year with any region's report and per question: reported (sent a county
-- report), earmarked, the four programmes (offers_clinical_intro_year,
-- offers_specialist_nurse_study_salary, has_care_near_service, has_task_shifting), and
-- web booking / the patient journal online implemented (status 'implemented'). yes = regions
-- answering yes; answered = regions that answered (yes or no; any status for a service;
-- every region for "reported"); not_answered = regions - answered, unknown and never
-- counted as "no". The report's summary sentence for a question quotes the row of its year
-- ("10 av 21" = yes of answered) and words it by the table in docs/summary-rules.md.
with answers as (
    select year, 1 as ord, 'reported' as question, reported as answer, true as asked
    from followup_region_year
    union all select year, 2, 'earmarked', earmarked, earmarked is not null from followup_region_year
    union all select year, 3, 'offers_clinical_intro_year', offers_clinical_intro_year,
        offers_clinical_intro_year is not null from followup_region_year
    union all select year, 4, 'offers_specialist_nurse_study_salary', offers_specialist_nurse_study_salary,
        offers_specialist_nurse_study_salary is not null from followup_region_year
    union all select year, 5, 'has_care_near_service', has_care_near_service,
        has_care_near_service is not null from followup_region_year
    union all select year, 6, 'has_task_shifting', has_task_shifting,
        has_task_shifting is not null from followup_region_year
    union all select year, 7, 'web_booking_implemented', web_booking_status = 'implemented',
        web_booking_status is not null from followup_region_year
    union all select year, 8, 'patient_journal_online_implemented', patient_journal_online_status = 'implemented',
        patient_journal_online_status is not null from followup_region_year
)
select
    year,
    question,
    count(*) filter (where asked and answer)  as yes,
    count(*) filter (where asked)             as answered,
    count(*) filter (where not asked)         as not_answered,
    count(*)                                  as regions
from answers
where year in (select year from followup_region_year where reported)
group by year, ord, question
order by year, ord;
