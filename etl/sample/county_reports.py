"""Synthetic county reports (docs/input-formats.md §1) for demos and tests: ``<out>/county_reports/``.

One report per region for each year of the requested range from 2016 (the
first agreement year) on — the years the e-health sample covers too — a
seeded mix of the Excel template and web-form JSON,
written with the variety the contract allows: old region names, amounts as
``159 mnkr`` / ``850 tkr`` / ``1 234 567 kr`` with no-break spaces, ``x`` for
yes, odd label spacing and trailing colons, sheet names in other case,
English enum values in some JSON. One report is sent twice, the second a
correction with a later file time: a deliberate defect (the original is
superseded, its rows quarantined), named in ``sample-defects.json`` beside
the folder so the demo can say so (:data:`DEFECTS_FILE`).

E-health services follow one history per region and service
(:func:`service_history`): planned, then introduced on one date (the same in
every later report; the patient journal's is the month the e-health sample's
journal goes live), then fully implemented — never back.

Grants follow the agreements' national totals (950 MSEK in 2016, 976 MSEK in
2017–2018 and, invented here, 976 MSEK every later year) split by population share; spend is close to but
never above the grant. Contact persons are fake names with ``example.se``
addresses, there to prove the pipeline drops them. Everything is invented:
see the README-county_reports.txt written beside their folder.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import re
import unicodedata
from pathlib import Path

from etl import regions, swedish
from etl.sample import ehealth as ehealth_sample
from etl.sample.workbook import fixed_times
from etl.sources import county_template as tpl

FOLDER = "county_reports"
FIRST_YEAR = 2016  # the first agreement year: no report before it
NATIONAL_GRANT_SEK = {2016: 950_000_000, 2017: 976_000_000, 2018: 976_000_000, 2019: 976_000_000}
LATER_GRANT_SEK = 976_000_000  # invented: the sample's national grant after 2019
DEFECTS_FILE = "sample-defects.json"  # beside the source folders: the defects planted on purpose

# Inhabitants per region, approximately SCB's count of 31 December 2015 —
# used only to split the national grant (Västra Götaland ≈ 16.7 % → ≈ 159 MSEK in 2016).
POPULATION_2015 = {
    "01": 2_231_439,
    "03": 354_164,
    "04": 287_253,
    "05": 445_661,
    "06": 347_837,
    "07": 191_369,
    "08": 241_208,
    "09": 57_255,
    "10": 156_776,
    "12": 1_303_627,
    "13": 314_784,
    "14": 1_648_682,
    "17": 277_237,
    "18": 294_880,
    "19": 264_276,
    "20": 281_028,
    "21": 281_815,
    "22": 244_193,
    "23": 127_376,
    "24": 265_881,
    "25": 250_570,
}

NBSP = "\u00a0"
FIRST_NAMES = ("Karin", "Lars", "Eva", "Per", "Maria", "Johan", "Anna", "Erik", "Sara", "Mikael")
LAST_NAMES = ("Provsson", "Exempelberg", "Testlund", "Fiktivsson", "Påhittsdotter", "Demosson", "Låtsasgren")

TITLES = {
    "it_support": (
        "Digitala vårdbesök i primärvården",
        "Webbtidbok för fler mottagningar",
        "Journal via nätet för vårdnadshavare",
        "Självincheckning på akutmottagningen",
        "Taligenkänning för journalföring",
        "Digital remisshantering",
        "Mobil dokumentation i hemsjukvården",
    ),
    "competence_use": (
        "Vårdnära service på vårdavdelningar",
        "Uppgiftsväxling mellan sjuksköterskor och undersköterskor",
        "Administrativa vårdkoordinatorer",
        "Läkemedelsassistenter på avdelning",
        "Teambaserat arbetssätt på akuten",
    ),
    "competence_supply": (
        "Kliniskt introduktionsår för nya sjuksköterskor",
        "Studielön för specialistsjuksköterskeutbildning",
        "Karriärtrappa för sjuksköterskor",
        "Handledarutbildning för kliniska handledare",
        "Rekryteringsinsats för barnmorskor",
    ),
}
DESCRIPTIONS = (
    "Insatsen startade under våren och omfattar samtliga sjukhus i regionen.",
    "Pilot på två vårdcentraler som ska spridas till hela länet.",
    "Genomförs tillsammans med kommunerna i länet.",
    "Finansieras delvis även av regionens egna medel.",
    None,
    None,
)
# Swedish and English spellings, as different senders write them.
AREA_SPELLINGS = {
    "it_support": ("IT-stöd och processer", "IT-stöd", "e-hälsa", "IT"),
    "competence_use": ("Kompetensanvändning", "smartare användning av medarbetarnas kompetens"),
    "competence_supply": ("Kompetensförsörjning", "planering av långsiktig kompetensförsörjning"),
}
SERVICE_SPELLINGS = {
    "web_booking": ("Webbtidbok",),
    "patient_journal_online": ("Journal via nätet", "Journalen", "Journal på nätet"),
    "remote_care": ("Vård på distans",),
    "self_check_in": ("Självincheckning",),
}
INITIATIVE_STATUS_SV = {"planned": "Planerad", "ongoing": "Pågående", "completed": "Genomförd", "cancelled": "Avbruten"}
SERVICE_STATUS_SV = {
    "implemented": "Införd",
    "partly_implemented": "Delvis införd",
    "planned": "Planerad",
    "not_started": "Ej påbörjad",
}
YES = ("Ja", "ja", "J", "x", "X", "Yes", 1)
NO = ("Nej", "nej", "N", "NEJ", "No", 0)

README = """SYNTHETIC SAMPLE DATA — NOT REAL REPORTS

Every file in this folder was generated by `python -m etl sample`
(etl/sample/county_reports.py, seed {seed}). Region names and the national
grant totals up to 2019 follow the public agreements, but all amounts, later
grants, initiatives, statuses and dates are invented. The contact persons are
fake names with example.se addresses, included only to show that the pipeline
drops them. One report is sent twice on purpose, the second a correction: the
original is superseded and its rows quarantined — a planted defect, not bad
data (sample-defects.json beside this file names it).
"""


def grants(year: int) -> dict[str, int]:
    """The national grant of ``year`` split by population share, in whole kronor, summing exactly to the total."""
    total = NATIONAL_GRANT_SEK.get(year, LATER_GRANT_SEK)
    people = sum(POPULATION_2015.values())
    exact = {code: total * n / people for code, n in POPULATION_2015.items()}
    shares = {code: int(value) for code, value in exact.items()}
    # Largest remainder: the kronor lost to rounding go to the largest fractions.
    for code in sorted(exact, key=lambda c: exact[c] - shares[c], reverse=True)[: total - sum(shares.values())]:
        shares[code] += 1
    return shares


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _region_spelling(rng: random.Random, code: str, year: int) -> object:
    region = regions.BY_CODE[code]
    # Before the 2019 reform many regions still called themselves landsting.
    if region.other_names and year <= 2018 and rng.random() < 0.6:
        return rng.choice(region.other_names)
    return rng.choice((region.region_name, region.region_name, region.county_name, code, f"SE-{code}", f"00{code}"))


def _grant_text(rng: random.Random, amount: int, code: str = "") -> tuple[object, int]:
    """How a sender writes the grant, and the kronor that text means.

    A region's finance office writes it the same way every year (the style is the region's), so a
    grant that did not change does not seem to change by its rounding.
    """
    style = random.Random(f"grant-style/{code}").choice(("mnkr", "tkr", "kr", "number", "dots"))
    text: object
    if style == "mnkr":
        text = swedish.format_amount(amount, "mnkr")
    elif style == "tkr":
        text = swedish.format_amount(amount, "tkr")
    elif style == "kr":
        text = f"{amount:,}".replace(",", NBSP) + " kr"
    elif style == "dots":
        text = f"{amount:,}".replace(",", ".")
    else:
        text = amount
    meant = swedish.parse_amount(text)
    assert meant is not None  # every style writes the amount
    return text, meant


def _spend_text(rng: random.Random, amount: int) -> tuple[object, int]:
    """Spend is never rounded up, so it stays at or below the grant."""
    style = rng.choice(("tkr", "kr", "kr_plain", "number"))
    if style == "tkr":
        amount -= amount % 1000
        return f"{amount // 1000:,}".replace(",", NBSP) + " tkr", amount
    if style == "kr":
        return f"{amount:,}".replace(",", NBSP) + " kr", amount
    if style == "kr_plain":
        return f"{amount:,}".replace(",", " "), amount
    return amount, amount


def _fit(spend: list[int], grant: int) -> list[int]:
    """Scale spend down when the written grant came out lower than the allocation (rounded text)."""
    total = sum(spend)
    if total <= grant:
        return spend
    return [s * grant // total for s in spend]


def _yes_no(rng: random.Random, value: bool | None, as_json: bool) -> object:
    if value is None:
        return None if as_json else ""
    if as_json and rng.random() < 0.5:
        return value
    return rng.choice(YES if value else NO)


def _odd_label(rng: random.Random, label: str) -> str:
    choice = rng.random()
    if choice < 0.15:
        return f"  {label}:"
    if choice < 0.25:
        return label.upper()
    if choice < 0.35:
        return f"{label} : "
    return label


def _contact(rng: random.Random, code: str) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    mail = f"{_slug(first)}.{_slug(last)}@{_slug(regions.BY_CODE[code].region_name)}.example.se"
    return rng.choice((f"{first} {last}, {mail}", f"{first} {last} <{mail}>", f"{first} {last} ({mail})"))


def _day_in(rng: random.Random, year: int, month: int) -> dt.date:
    return dt.date(year, month, rng.randint(1, 28))


def _months_after(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, min(day.day, 28))


def service_history(seed: int, code: str, service: str) -> tuple[dt.date, dt.date, dt.date]:
    """(planned from, introduced on, fully implemented from) of one region's service: one history for every report.

    Web booking was introduced everywhere before 2016 (the e-health sample's
    units share starts at 45 %) and is fully implemented between 2019 and
    2022; the patient journal goes live in the month the e-health sample's
    journal does; the others at some point 2015–2026 (some still to come in 2025).
    """
    rng = random.Random(f"{seed}/{code}/{service}")
    if service == "web_booking":
        introduced = _day_in(rng, rng.randint(2012, 2015), rng.randint(1, 12))
        full = _day_in(rng, rng.randint(2019, 2022), rng.randint(1, 12))
    elif service == "patient_journal_online":
        live = ehealth_sample.JOURNAL_LIVE.get(code, ehealth_sample.DEFAULT_LIVE)
        introduced = _day_in(rng, live.year, live.month)
        full = _months_after(introduced, rng.randint(6, 30))
    else:
        introduced = _day_in(rng, rng.randint(2015, 2026), rng.randint(1, 12))
        full = _months_after(introduced, rng.randint(9, 48))
    planned = _months_after(introduced, -rng.randint(6, 30))
    return planned, introduced, full


def service_status(history: tuple[dt.date, dt.date, dt.date], year: int) -> tuple[str, dt.date | None]:
    """(status, introduced on) as a report for ``year`` states it, at the end of that year."""
    planned, introduced, full = history
    end = dt.date(year, 12, 31)
    if full <= end:
        return "implemented", introduced
    if introduced <= end:
        return "partly_implemented", introduced
    return ("planned" if planned <= end else "not_started"), None


def offer_since(seed: int, code: str, key: str) -> int | None:
    """The year region ``code`` starts to offer the programme ``key`` (a JSON key), or None: not by 2027.

    A programme once offered stays offered, so the yearly counts grow the way such offers spread (a
    quarter of the regions had one before the agreement), instead of flipping from year to year.
    """
    rng = random.Random(f"{seed}/{code}/{key}")
    drawn = rng.random()
    if drawn < 0.25:
        return FIRST_YEAR - 1
    if drawn < 0.85:
        return rng.randint(FIRST_YEAR, 2027)
    return None


def build_report(rng: random.Random, code: str, year: int, grant: int, *, seed: int = 2016) -> dict:
    """One report's content, in canonical values (formatting comes later); ``seed`` picks the service histories."""
    spend_share = rng.uniform(0.88, 1.0)
    # The region's own split of the money over the three areas, drifting a little from year to year.
    base = random.Random(f"{seed}/{code}/spend")
    weights = [base.uniform(0.3, 1.0) * rng.uniform(0.9, 1.1) for _ in range(3)]
    total = int(grant * spend_share)
    spend = [int(total * w / sum(weights)) for w in weights]
    progress = min(3, max(0, year - FIRST_YEAR))
    initiatives = []
    pool = [(area, title) for area, titles in TITLES.items() for title in titles]
    for area, title in rng.sample(pool, rng.randint(3, 7)):
        status = rng.choices(
            ("planned", "ongoing", "completed", "cancelled"), weights=(3 - progress * 0.6, 4, 1 + progress * 1.5, 0.3)
        )[0]
        description = rng.choice(DESCRIPTIONS)
        if description and rng.random() < 0.15:
            # A colleague's address in free text: the pipeline must mask it.
            description += f" Kontakt: {_slug(rng.choice(FIRST_NAMES))}.{_slug(rng.choice(LAST_NAMES))}@example.se"
        initiatives.append(
            {
                "title": title,
                "area": area,
                "status": status,
                "new_due_to_grant": rng.choice((True, True, False, None)),
                "cost_sek": rng.choice((None, rng.randrange(200, 8000) * 1000)),
                "description": description,
            }
        )
    services = []
    for service in SERVICE_SPELLINGS:
        status, implemented_on = service_status(service_history(seed, code, service), year)
        services.append({"service": service, "status": status, "implemented_on": implemented_on})
    return {
        "region_code": code,
        "report_year": year,
        "grant_sek": grant,
        "spend": spend,
        # The region's practice, kept from year to year; some years a question is left unanswered.
        "earmarked": random.Random(f"{seed}/{code}/earmarked").random() < 0.55 if rng.random() > 0.15 else None,
        # One value per offer the template declares (json key → True/False/None): offered from the year the
        # region started (offer_since), and kept.
        "offers": {
            f.json_key: (since := offer_since(seed, code, f.json_key)) is not None and year >= since
            if rng.random() > 0.1
            else None
            for f in tpl.OFFER_FIELDS
            if f.asked_in(year)  # a field added later is not on an earlier year's template
        },
        "contact": _contact(rng, code),
        "initiatives": initiatives,
        "services": services,
    }


def _nested(values: dict[str, object]) -> dict[str, object]:
    """``{"offers.task_shifting": v}`` → ``{"offers": {"task_shifting": v}}``: the web form's shape of dotted keys."""
    out: dict[str, object] = {}
    for key, value in values.items():
        parent, _, child = key.rpartition(".")
        if parent:
            group = out.setdefault(parent, {})
            assert isinstance(group, dict)  # a dotted key's parent holds only the group
            group[child] = value
        else:
            out[key] = value
    return out


def _as_json(rng: random.Random, report: dict, year: int) -> bytes:
    grant_text, grant = _grant_text(rng, report["grant_sek"], report["region_code"])
    spend_texts = [_spend_text(rng, s)[0] for s in _fit(report["spend"], grant)]
    english = rng.random() < 0.4
    document = {
        "region": _region_spelling(rng, report["region_code"], year),
        "report_year": year,
        "grant_sek": grant_text,
        "earmarked": _yes_no(rng, report["earmarked"], True),
        "spend_sek": dict(zip(("it_support", "competence_use", "competence_supply"), spend_texts, strict=True)),
        **_nested({key: _yes_no(rng, value, True) for key, value in report["offers"].items()}),
        "contact_person": report["contact"],
        "initiatives": [
            {
                "title": item["title"],
                "area": item["area"] if english else rng.choice(AREA_SPELLINGS[item["area"]]),
                "status": item["status"] if english else INITIATIVE_STATUS_SV[item["status"]],
                "new_due_to_grant": _yes_no(rng, item["new_due_to_grant"], True),
                "cost_sek": item["cost_sek"]
                if item["cost_sek"] is None or rng.random() < 0.5
                else swedish.format_amount(item["cost_sek"], "tkr"),
                "description": item["description"],
            }
            for item in report["initiatives"]
        ],
        "ehealth_services": [
            {
                "service": item["service"] if english else rng.choice(SERVICE_SPELLINGS[item["service"]]),
                "status": item["status"] if english else SERVICE_STATUS_SV[item["status"]],
                "implemented_on": item["implemented_on"].isoformat() if item["implemented_on"] else None,
            }
            for item in report["services"]
        ],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _as_xlsx(rng: random.Random, report: dict, year: int) -> bytes:
    # Size: one sender's workbook, sheet by sheet, with the quirks real senders' tools write.
    from openpyxl import Workbook

    grant_text, grant = _grant_text(rng, report["grant_sek"], report["region_code"])
    spend_texts = [_spend_text(rng, s)[0] for s in _fit(report["spend"], grant)]
    values = {
        "region": _region_spelling(rng, report["region_code"], year),
        "report_year": year if rng.random() < 0.7 else str(year),
        "grant_sek": grant_text,
        "earmarked": _yes_no(rng, report["earmarked"], False),
        "spend_sek.it_support": spend_texts[0],
        "spend_sek.competence_use": spend_texts[1],
        "spend_sek.competence_supply": spend_texts[2],
        "contact_person": report["contact"],
    }
    for key, value in report["offers"].items():
        values[key] = _yes_no(rng, value, False)

    def sheet_name(name: str) -> str:
        return rng.choice((name, name, name.lower(), name.upper()))

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook has its one sheet active
    sheet.title = sheet_name(tpl.SHEET_REPORT)
    sheet.append(list(tpl.REPORT_HEADER))
    for fld in tpl.REPORT_FIELDS:
        if fld.asked_in(year):  # an earlier year's template lacks a field added later
            sheet.append([_odd_label(rng, fld.label), values.get(fld.json_key)])

    initiatives = workbook.create_sheet(sheet_name(tpl.SHEET_INITIATIVES))
    initiatives.append([_odd_label(rng, f.label) for f in tpl.INITIATIVE_FIELDS])
    for item in report["initiatives"]:
        cost = item["cost_sek"]
        initiatives.append(
            [
                item["title"],
                rng.choice(AREA_SPELLINGS[item["area"]]),
                INITIATIVE_STATUS_SV[item["status"]],
                _yes_no(rng, item["new_due_to_grant"], False),
                None
                if cost is None
                else rng.choice((cost, swedish.format_amount(cost, "tkr"), f"{cost:,}".replace(",", NBSP) + " kr")),
                item["description"],
            ]
        )

    services = workbook.create_sheet(sheet_name(tpl.SHEET_SERVICES))
    services.append([_odd_label(rng, f.label) for f in tpl.SERVICE_FIELDS])
    for item in report["services"]:
        day = item["implemented_on"]
        services.append(
            [
                rng.choice(SERVICE_SPELLINGS[item["service"]]),
                SERVICE_STATUS_SV[item["status"]],
                None if day is None else rng.choice((day.isoformat(), dt.datetime(day.year, day.month, day.day))),
            ]
        )
    workbook.properties.creator = "synthetic sample (etl/sample/county_reports.py)"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return fixed_times(buffer.getvalue(), dt.datetime(year + 1, 2, 1))


def _submitted(rng: random.Random, year: int) -> dt.datetime:
    """Reports are due in the spring after the report year."""
    start = dt.datetime(year + 1, 2, 15, 8, tzinfo=dt.UTC)
    return start + dt.timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 9 * 60))


def write(out: Path, first_year: int, last_year: int, *, units: int = 0, unit_months: int = 0, seed: int = 2016) -> int:
    """Write the sample reports under ``<out>/county_reports/``; returns the number of reports written there.

    (Its README and ``sample-defects.json`` go beside the folder and are not counted: they are no deliveries.)"""
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    years = list(range(max(first_year, FIRST_YEAR), last_year + 1))
    rng = random.Random(seed)
    written = 0
    correction = (rng.choice(regions.REGION_CODES), rng.choice(years)) if years else None
    defects = []
    for year in years:
        split = grants(year)
        for code in regions.REGION_CODES:
            report = build_report(rng, code, year, split[code], seed=seed)
            name = f"arsrapport_{year}_{code}_{_slug(regions.BY_CODE[code].region_name)}"
            versions = [(name, report, _submitted(rng, year))]
            if (code, year) == correction:
                # The region found an error and sent the report again a few weeks later.
                fixed = dict(report, spend=[int(s * 0.97) for s in report["spend"]])
                versions.append((name + "_rattelse", fixed, versions[0][2] + dt.timedelta(days=rng.randint(10, 40))))
            paths = []
            for file_stem, content, when in versions:
                if rng.random() < 0.5:
                    path, data = folder / f"{file_stem}.xlsx", _as_xlsx(rng, content, year)
                else:
                    path, data = folder / f"{file_stem}.json", _as_json(rng, content, year)
                path.write_bytes(data)
                os.utime(path, (when.timestamp(), when.timestamp()))
                paths.append(path)
                written += 1
            if len(paths) > 1:
                defects.append(
                    {
                        "file": f"{FOLDER}/{paths[0].name}",
                        "defect": "superseded original",
                        "why": f"sent again as a correction ({paths[1].name}): the correction loads, the original's "
                        "rows are quarantined as superseded, as they should be",
                    }
                )
    # Beside the folder, not in it: every file in landing/county_reports/ is taken as a delivery.
    (folder.parent / f"README-{folder.name}.txt").write_text(README.format(seed=seed), encoding="utf-8")
    # Beside it, what the sample got wrong on purpose: the demo names these, so no one takes them for bad data.
    manifest = {"synthetic": True, "seed": seed, "defects": defects}
    (folder.parent / DEFECTS_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return written
