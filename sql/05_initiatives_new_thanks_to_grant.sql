-- Question 5: Which initiatives were new thanks to the grant (would not have happened
-- without it)?
--
-- Run: .venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/05_initiatives_new_thanks_to_grant.sql
--
-- Lists the initiatives the regions marked "Ny tack vare medlen = Ja", from the
-- county_initiative table with region names from dim_region. Initiatives where the
-- answer was left empty are not listed (followup_region_year.initiatives_new_unknown
-- counts them); the per-region totals are in followup_region_year
-- (initiatives_new_due_to_grant of initiatives_total).
select
    r.region_name,
    i.report_year,
    case i.area
        when 'it_support' then 'IT-stöd och processer'
        when 'competence_use' then 'Kompetensanvändning'
        when 'competence_supply' then 'Kompetensförsörjning'
        else i.area
    end as area,
    i.title,
    i.status,
    i.cost_sek
from county_initiative i
join dim_region r using (region_code)
where i.new_due_to_grant
order by i.report_year, i.region_code, i.initiative_no;
