"""Follow-up marts: what analysts query, one row per region and year and one per year for the country.

Built by ``etl.pipelines.followup`` from the published source tables only
(dim_region, population, county_*, ehealth_adoption*), never from raw input.
Null means *not known* throughout: a region that did not report has null
flags and counts, not ``false``/0; suppressed months are left out of means
and counted in ``*_months``.

Every column is described twice, once for the data dictionary (English) and
once for analysts (``description_sv``, the workbook's Kolumner sheet);
``*_SV`` phrases sit beside their English ones.
"""

import pyarrow as pa

from etl.schemas.declaration import Column, TableSchema, table
from etl.schemas.reference import REGION_CODE
from etl.sources.county_template import OFFER_FIELDS, YES_NO_FIELDS
from etl.sources.ehealth_spec import SERIES

YEAR = Column(
    "year",
    pa.int16(),
    "Calendar / report year (every year present in any source, 2016 on).",
    False,
    "Kalenderår / rapportår (varje år som finns i någon källa, från 2016).",
)

AREAS = ("it_support", "competence_use", "competence_supply")
AREA_TEXT = {
    "it_support": "priority area 1, IT support and e-health processes",
    "competence_use": "priority area 2, smarter use of staff competence",
    "competence_supply": "priority area 3, long-term competence supply",
}
AREA_TEXT_SV = {
    "it_support": "prioriterat område 1, IT-stöd och e-hälsoprocesser",
    "competence_use": "prioriterat område 2, smartare användning av personalens kompetens",
    "competence_supply": "prioriterat område 3, långsiktig kompetensförsörjning",
}
# The county template's yes/no fields (etl/sources/county_template.py): the offers, and every yes/no
# field the marts count per region (earmarked too), with their phrases. (Every yes/no field has a
# column; ``if f.column`` only says so to the type checker.)
FLAGS = tuple(f.column for f in OFFER_FIELDS if f.column)
COUNTED_FLAGS = tuple(f.column for f in YES_NO_FIELDS if f.column)
FLAG_TEXT = {f.column: f.en for f in YES_NO_FIELDS if f.column}
FLAG_TEXT_SV = {f.column: f.sv for f in YES_NO_FIELDS if f.column}
SERVICES = ("web_booking", "patient_journal_online", "remote_care", "self_check_in")
SERVICE_TEXT = {
    "web_booking": "web booking",
    "patient_journal_online": "the patient journal online",
    "remote_care": "remote care",
    "self_check_in": "self check-in",
}
SERVICE_TEXT_SV = {
    "web_booking": "webbtidbok",
    "patient_journal_online": "Journal via nätet",
    "remote_care": "vård på distans",
    "self_check_in": "självincheckning",
}


def _population_columns(level: str, level_sv: str) -> tuple[Column, ...]:
    national = level == "sum of the 21 regions"
    return (
        Column(
            "population",
            pa.int64(),
            f"Population on 31 December of the year ({level}); null when SCB has not "
            "published it" + (" for every region." if national else "."),
            True,
            f"Folkmängd 31 december året ({level_sv}); tom när SCB inte har publicerat den"
            + (" för alla regioner." if national else "."),
        ),
        Column(
            "population_change",
            pa.int64(),
            "Population minus the previous year's; null when either is null.",
            True,
            "Folkmängd minus föregående års; tom när någon av dem saknas.",
        ),
        Column(
            "population_year_used",
            pa.int16(),
            "Year of the population count used as denominator for per-inhabitant figures: the year itself, or "
            "the latest earlier year when that year's count is not published yet; null when none is.",
            True,
            "År för den folkmängd som är nämnare i värdena per invånare: året självt, eller senaste tidigare år "
            "när årets folkmängd inte är publicerad ännu; tom när ingen finns.",
        ),
    )


def _spend_columns(how: str, how_sv: str, share_how: str = "", share_how_sv: str = "") -> tuple[Column, ...]:
    cols = []
    for area in AREAS:
        cols.append(
            Column(
                f"spend_{area}_sek",
                pa.int64(),
                f"Spent on {AREA_TEXT[area]}, kronor{how}.",
                True,
                f"Använt till {AREA_TEXT_SV[area]}, kronor{how_sv}.",
            )
        )
    cols.append(
        Column(
            "spend_total_sek",
            pa.int64(),
            f"Spent on the three areas together, kronor{how}; null when any area is null.",
            True,
            f"Använt till de tre områdena tillsammans, kronor{how_sv}; tom när något område saknas.",
        )
    )
    for area in AREAS:
        cols.append(
            Column(
                f"share_{area}",
                pa.float64(),
                f"Spend on {AREA_TEXT[area]} as a share of the grant (0–1.01){share_how}.",
                True,
                f"Använt till {AREA_TEXT_SV[area]} som andel av erhållna medel (0–1,01){share_how_sv}.",
            )
        )
    cols.append(
        Column(
            "share_spent",
            pa.float64(),
            f"Total spend as a share of the grant (0–1.01){share_how}.",
            True,
            f"Använt totalt som andel av erhållna medel (0–1,01){share_how_sv}.",
        )
    )
    return tuple(cols)


def _adoption_columns() -> tuple[Column, ...]:
    """Per analysts' series of the e-health exports (etl/sources/ehealth_spec.py SERIES): mean, December,
    months and, where declared, the change from the previous year; then the web-booking units share."""
    mean = "monthly mean over the months with a value (suppressed months left out)"
    dec = "December value; null when December is missing or suppressed"
    mean_sv = "månadsmedel över månaderna med värde (skyddade månader ingår inte)"
    dec_sv = "decembervärdet; tomt när december saknas eller är skyddad"
    change_sv = "per 1 000 invånare mot föregående år; tom när något av dem saknas."
    columns: list[Column] = []
    for series in SERIES:
        export, metric = series.export, series.export.metric(series.metric)
        title, title_sv = f"{export.title_en}: {metric.en}", f"{export.service_sv}: {metric.sv}"
        columns += [
            Column(
                f"{series.prefix}_per_1000_mean",
                pa.float64(),
                f"{title} per 1 000 inhabitants, {mean}.",
                True,
                f"{title_sv} per 1 000 invånare, {mean_sv}.",
            ),
            Column(
                f"{series.prefix}_per_1000_dec",
                pa.float64(),
                f"{title} per 1 000 inhabitants, {dec}.",
                True,
                f"{title_sv} per 1 000 invånare, {dec_sv}.",
            ),
            Column(
                f"{series.prefix}_months",
                pa.int16(),
                f"Months with a (non-suppressed) {metric.en} value that year: what the mean is over.",
                True,
                f"Månader med ett (ej skyddat) värde för {metric.sv} det året: det månadsmedlet bygger på.",
            ),
        ]
        if series.change:
            columns.append(
                Column(
                    f"{series.prefix}_per_1000_change",
                    pa.float64(),
                    f"Change of the {metric.en} monthly mean per 1 000 from the previous year; null when either is null.",
                    True,
                    f"Förändring av månadsmedlet för {metric.sv} {change_sv}",
                )
            )
    return (
        *columns,
        Column(
            "web_booking_units_connected_share_dec",
            pa.float64(),
            "Share of care units offering web booking in December (units connected / units in total); null when "
            "either is missing, suppressed or the total is 0.",
            True,
            "Andel vårdenheter som erbjuder webbtidbok i december (anslutna enheter / alla enheter); tom när "
            "någon av siffrorna saknas eller är skyddad, eller när alla enheter är 0.",
        ),
    )


def _derived(column: str, reason: str, **bounds) -> dict:
    return {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": column, **bounds},
        "severity": "critical",
        "meta": {"reason": f"{column}: {reason}", "derived_from": "etl/sources"},
    }


# Ranges that follow from what a column is (business rules, like "more users than inhabitants", stay in the
# reviewed JSON suites): every series' per-1 000 figures are >= 0 and its months 0-12.
SERIES_EXPECTATIONS = tuple(
    e
    for series in SERIES
    for e in (
        _derived(f"{series.prefix}_per_1000_mean", "a per-1 000 figure below 0", min_value=0),
        _derived(f"{series.prefix}_per_1000_dec", "a per-1 000 figure below 0", min_value=0),
        _derived(f"{series.prefix}_months", "months used must be 0-12", min_value=0, max_value=12),
    )
)


def _initiative_columns(how: str, how_sv: str) -> tuple[Column, ...]:
    cols = [
        Column(
            f"initiatives_{area}",
            pa.int32(),
            f"Initiatives in {AREA_TEXT[area]}{how}.",
            True,
            f"Insatser inom {AREA_TEXT_SV[area]}{how_sv}.",
        )
        for area in AREAS
    ]
    cols.append(
        Column(
            "initiatives_total",
            pa.int32(),
            f"Initiatives in all areas{how}.",
            True,
            f"Insatser inom alla områden{how_sv}.",
        )
    )
    cols += [
        Column(
            f"initiatives_new_{area}",
            pa.int32(),
            f"Initiatives in {AREA_TEXT[area]} that were new thanks to the grant{how}.",
            True,
            f"Insatser inom {AREA_TEXT_SV[area]} som var nya tack vare medlen{how_sv}.",
        )
        for area in AREAS
    ]
    cols.append(
        Column(
            "initiatives_new_due_to_grant",
            pa.int32(),
            f"Initiatives (all areas) that would not have happened without the grant{how}.",
            True,
            f"Insatser (alla områden) som inte hade blivit av utan medlen{how_sv}.",
        )
    )
    cols.append(
        Column(
            "initiatives_new_unknown",
            pa.int32(),
            f"Initiatives whose 'new thanks to the grant' answer was left empty{how}.",
            True,
            f"Insatser där frågan om de är nya tack vare medlen lämnats obesvarad{how_sv}.",
        )
    )
    return tuple(cols)


_NOT_REPORTED = "; null when the region did not report that year"
_NOT_REPORTED_SV = "; tom när regionen inte rapporterat det året"
_STATUS_SV = (
    "Införd, Delvis införd, Planerad eller Ej påbörjad (i databasen implemented, partly_implemented, "
    "planned, not_started)"
)

FOLLOWUP_REGION_YEAR = table(
    TableSchema(
        name="followup_region_year",
        domain="followup",
        description=(
            "The follow-up mart: one row per region and year with population, the grant and its use per priority "
            "area, the four programme offers, e-health service status, adoption per 1 000 inhabitants, "
            "year-on-year changes and the initiatives. Every one of the 21 regions has a row every year; "
            "columns are null where the region did not report."
        ),
        columns=(
            REGION_CODE,
            YEAR,
            Column(
                "region_name",
                pa.string(),
                "The region's name (from dim_region).",
                False,
                "Regionens namn (från dim_region).",
            ),
            Column(
                "reported",
                pa.bool_(),
                "The region sent a county report for the year.",
                False,
                "Regionen skickade en regionrapport för året.",
            ),
            *_population_columns("the region", "regionen"),
            Column(
                "grant_sek",
                pa.int64(),
                "Grant received that year, kronor" + _NOT_REPORTED + ".",
                True,
                "Erhållna medel det året, kronor" + _NOT_REPORTED_SV + ".",
            ),
            Column(
                "grant_per_inhabitant",
                pa.float64(),
                "Grant per inhabitant, kronor (population of population_year_used).",
                True,
                "Erhållna medel per invånare, kronor (folkmängden det år som kolumnen 'Folkmängd från år' anger).",
            ),
            Column(
                "earmarked",
                pa.bool_(),
                "Funds earmarked for specific initiatives; null = not stated / not reported.",
                True,
                "Medlen öronmärkta för särskilda insatser; tom = ej angivet eller ej rapporterat.",
            ),
            *_spend_columns("", ""),
            *(
                Column(
                    flag,
                    pa.bool_(),
                    f"Does the region {FLAG_TEXT[flag]}; null = not stated / not reported.",
                    True,
                    f"Om regionen {FLAG_TEXT_SV[flag]}; tom = ej angivet eller ej rapporterat.",
                )
                for flag in FLAGS
            ),
            *(
                col
                for service in SERVICES
                for col in (
                    Column(
                        f"{service}_status",
                        pa.string(),
                        f"Status of {SERVICE_TEXT[service]}: implemented | partly_implemented | planned | not_started"
                        + _NOT_REPORTED
                        + " or did not list the service.",
                        True,
                        f"Status för {SERVICE_TEXT_SV[service]}: {_STATUS_SV}"
                        + _NOT_REPORTED_SV
                        + " eller inte angett tjänsten.",
                    ),
                    Column(
                        f"{service}_implemented_on",
                        pa.date32(),
                        f"Date {SERVICE_TEXT[service]} was introduced, as reported that year.",
                        True,
                        f"Datum då {SERVICE_TEXT_SV[service]} infördes, enligt årets rapport.",
                    ),
                )
            ),
            *_adoption_columns(),
            *_initiative_columns(
                " (0 when the region reported none; null when it did not report)",
                " (0 när regionen inte rapporterat några; tom när den inte rapporterat)",
            ),
        ),
        key=("region_code", "year"),
        expectations=SERIES_EXPECTATIONS,
    )
)

FOLLOWUP_NATIONAL_YEAR = table(
    TableSchema(
        name="followup_national_year",
        domain="followup",
        description=(
            "The follow-up mart for the whole country: one row per year. Counts of regions that offer each "
            "programme (and that answered at all), sums of grants and spend over the reporting regions, and "
            "national adoption per 1 000 inhabitants from the national totals (Riket) of the e-health exports."
        ),
        columns=(
            YEAR,
            Column("regions_total", pa.int16(), "Regions in dim_region (21).", False, "Regioner i dim_region (21)."),
            Column(
                "regions_reported",
                pa.int16(),
                "Regions that sent a county report for the year.",
                False,
                "Regioner som skickat en regionrapport för året (0: inga rapporter det året).",
            ),
            *_population_columns("sum of the 21 regions", "summan för de 21 regionerna"),
            Column(
                "grant_sek",
                pa.int64(),
                "Sum of the grants of the reporting regions, kronor; null when none reported.",
                True,
                "Summan av de rapporterande regionernas erhållna medel, kronor; tom när ingen rapporterat.",
            ),
            Column(
                "grant_per_inhabitant",
                pa.float64(),
                "Grant per inhabitant over the regions that reported a grant and have a population, kronor.",
                True,
                "Erhållna medel per invånare över de regioner som rapporterat medel och har en folkmängd, kronor.",
            ),
            *_spend_columns(
                " (sum over the reporting regions)",
                " (summa över de rapporterande regionerna)",
                ", over the regions that reported both that spend and the grant",
                ", över de regioner som rapporterat både den användningen och medlen",
            ),
            *(
                col
                for flag in COUNTED_FLAGS
                for col in (
                    Column(
                        f"regions_{flag}",
                        pa.int16(),
                        f"Regions that {FLAG_TEXT[flag]}; null when no region answered.",
                        True,
                        f"Regioner som {FLAG_TEXT_SV[flag]}; tom när ingen region svarat.",
                    ),
                    Column(
                        f"regions_answered_{flag}",
                        pa.int16(),
                        f"Regions that answered whether they {FLAG_TEXT[flag]} (yes or no).",
                        False,
                        f"Regioner som svarat (ja eller nej) på om de {FLAG_TEXT_SV[flag]}.",
                    ),
                )
            ),
            *(
                col
                for service in SERVICES
                for col in (
                    Column(
                        f"regions_{service}_implemented",
                        pa.int16(),
                        f"Regions reporting {SERVICE_TEXT[service]} as implemented (fully); null when none reported it.",
                        True,
                        f"Regioner som rapporterat {SERVICE_TEXT_SV[service]} som (helt) införd; tom när ingen "
                        "rapporterat den.",
                    ),
                    Column(
                        f"regions_{service}_reported",
                        pa.int16(),
                        f"Regions that reported a status for {SERVICE_TEXT[service]}.",
                        False,
                        f"Regioner som rapporterat en status för {SERVICE_TEXT_SV[service]}.",
                    ),
                )
            ),
            *_adoption_columns(),
            *_initiative_columns(
                " (sum over the reporting regions; null when none reported)",
                " (summa över de rapporterande regionerna; tom när ingen rapporterat)",
            ),
        ),
        key=("year",),
        # A count of regions per yes/no field of the template is 0–21, whichever fields it declares.
        expectations=(
            *SERIES_EXPECTATIONS,
            *(
                _derived(column, "a count of regions outside 0-21", min_value=0, max_value=21)
                for flag in COUNTED_FLAGS
                for column in (f"regions_{flag}", f"regions_answered_{flag}")
            ),
        ),
    )
)
