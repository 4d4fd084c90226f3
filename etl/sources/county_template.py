"""The county report template: the one definition of its fields, enums and blank workbook.

Every field of the regions' annual follow-up report (docs/input-formats.md §1) is
declared once here — Swedish label in the Excel template, key in the web
form's JSON, value kind and output column. The parser
(:mod:`etl.sources.county_reports`), the blank template
(:func:`write_blank_template`, ``python -m etl template``), the sample
generator and the tests read these definitions, so a label changed here
changes everywhere; the field tables and the web form's example in the input
contract and the senders' guide, the summary rules and ``sql/06_summary_counts.sql``
are written from them by ``make docs``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from etl import swedish
from etl.errors import BadInput

# Value kinds a field can have; the parser has one interpretation per kind.
REGION = "region"
YEAR = "year"
AMOUNT = "amount"
YES_NO = "yes_no"
TEXT = "text"  # free text: personal data in it is masked
DATE = "date"
PERSONAL = "personal"  # personal data: read only to be dropped, never output
AREA = "area"
INITIATIVE_STATUS = "initiative_status"
SERVICE = "service"
SERVICE_STATUS = "service_status"

FIRST_YEAR, LAST_YEAR = 2016, 2100


@dataclass(frozen=True)
class Field:
    """One field of the template and the web form, declared once.

    A yes/no field (``kind`` :data:`YES_NO`) also carries the phrases the
    tables' docs and the analysts' outputs are built from: ``en`` completes
    "Does the region …?" / "Regions that …", ``sv`` "Om regionen …" /
    "Regioner som …"; its ``label`` is the Swedish heading analysts see. An
    ``offer`` is one of the measures the marts count per region and year
    (``regions_<column>``). From these come the ``county_report`` column, its
    expectation, the follow-up mart columns, their suite's ranges, the
    workbook's headers, the report's charts and the sample generator's
    values, and the field tables of the input contract and the senders' guide, the
    summary rules and ``sql/06`` (``python -m etl docs``): adding a yes/no field is this declaration and ``make docs``
    (tests/test_county_spec.py proves it on a copy of the checkout).

    Every field is in every report, blank where unanswered: a row or key left out is refused, since it would
    publish null as if answered blank. A field added later says so in ``asked_from``, the first report year
    whose template and web form ask it: reports of earlier years (the landing's history, a late correction
    on last year's template) may lack it, and publish null there ("not asked").
    """

    label: str  # as written in the Excel template
    json_key: str  # in the web form's JSON; "a.b" is key b inside object a
    kind: str
    column: str | None  # output column; None = never output (personal data)
    required: bool = False
    aliases: tuple[str, ...] = ()  # other accepted labels (compared after normalise_label)
    help: str = ""
    en: str = ""  # yes/no fields: "offer a clinical introduction year for newly graduated nurses"
    sv: str = ""  # yes/no fields: "erbjuder ett kliniskt introduktionsår för nyutexaminerade sjuksköterskor"
    offer: bool = False  # one of the grant's measures, counted per region and year in the marts
    about: str = ""  # what the field means, in English, for the input contract and the senders' guide
    asked_from: int | None = None  # the first report year whose template asks it; None: every year

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)

    def asked_in(self, year: int | None) -> bool:
        """Whether a report of ``year`` must hold this field (an unknown year: yes, judged strictly)."""
        return self.asked_from is None or year is None or year >= self.asked_from

    @property
    def meaning(self) -> str:
        """What the field means (English): ``about``, or for a yes/no field its question from ``en``; for a
        field added later, from which report year it is asked."""
        text = self.about or (f"does the region {self.en}?" if self.en else "")
        if self.asked_from is not None:
            text += f" (asked from report year {self.asked_from} on; earlier reports may leave it out)"
        return text


SHEET_REPORT = "Uppgifter"
SHEET_INITIATIVES = "Insatser"
SHEET_SERVICES = "E-tjänster"
REPORT_HEADER = ("Fält", "Värde")
JSON_INITIATIVES = "initiatives"
JSON_SERVICES = "ehealth_services"

# Sheet Uppgifter / the JSON top level. The "(kr)" unit in a label is
# optional: senders drop it, and it carries no information the kind lacks.
REPORT_FIELDS: tuple[Field, ...] = (
    Field(
        "Region",
        "region",
        REGION,
        "region_code",
        True,
        help="Regionens namn eller länskod, t.ex. Region Uppsala eller 03",
        about="the reporting region, by name or county code: `Region Uppsala`, `Landstinget i Uppsala län`, "
        "`03`, `SE-03`, `VGR`, `SLL`…",
    ),
    Field(
        "Redovisningsår",
        "report_year",
        YEAR,
        "report_year",
        True,
        help="Året rapporten gäller, t.ex. 2017",
        about="the report year, e.g. `2017` (2016 or later)",
    ),
    Field(
        "Erhållna medel (kr)",
        "grant_sek",
        AMOUNT,
        "grant_sek",
        aliases=("Erhållna medel",),
        help="Belopp, t.ex. 159 mnkr, 850 tkr eller 1 234 567 kr",
        about="the grant received that year",
    ),
    Field(
        "Öronmärkta medel",
        "earmarked",
        YES_NO,
        "earmarked",
        help="Ja/Nej: medlen öronmärktes för särskilda insatser (inte utspridda i den allmänna budgeten)",
        about="were the funds earmarked for specific initiatives (vs. spread over the general budget)?",
        en="earmark the funds for specific initiatives",
        sv="har öronmärkt medlen för särskilda insatser",
    ),
    Field(
        "Använt IT-stöd och processer (kr)",
        "spend_sek.it_support",
        AMOUNT,
        "spend_it_support_sek",
        aliases=("Använt IT-stöd och processer",),
        help="Belopp använt inom område 1, IT-stöd och processer",
        about="spent on priority area 1 (IT support and e-health)",
    ),
    Field(
        "Använt kompetensanvändning (kr)",
        "spend_sek.competence_use",
        AMOUNT,
        "spend_competence_use_sek",
        aliases=("Använt kompetensanvändning",),
        help="Belopp använt inom område 2, smartare kompetensanvändning",
        about="spent on priority area 2 (smarter use of staff competence)",
    ),
    Field(
        "Använt kompetensförsörjning (kr)",
        "spend_sek.competence_supply",
        AMOUNT,
        "spend_competence_supply_sek",
        aliases=("Använt kompetensförsörjning",),
        help="Belopp använt inom område 3, långsiktig kompetensförsörjning",
        about="spent on priority area 3 (long-term competence supply)",
    ),
    Field(
        "Kliniskt introduktionsår",
        "offers.clinical_intro_year",
        YES_NO,
        "offers_clinical_intro_year",
        help="Ja/Nej: erbjuder kliniskt introduktionsår för nyutexaminerade sjuksköterskor",
        offer=True,
        en="offer a clinical introduction year for newly graduated nurses",
        sv="erbjuder ett kliniskt introduktionsår för nyutexaminerade sjuksköterskor",
    ),
    Field(
        "Studielön specialistsjuksköterska",
        "offers.specialist_nurse_study_salary",
        YES_NO,
        "offers_specialist_nurse_study_salary",
        help="Ja/Nej: erbjuder studielön under specialistutbildning",
        offer=True,
        en="offer paid study salary for specialist-nurse training",
        sv="erbjuder studielön under specialistsjuksköterskeutbildning",
    ),
    Field(
        "Vårdnära service",
        "offers.care_near_service",
        YES_NO,
        "has_care_near_service",
        help="Ja/Nej: vårdnära servicepersonal tar över icke-kliniska uppgifter",
        offer=True,
        en="have care-near service staff taking over non-clinical tasks",
        sv="har vårdnära servicepersonal",
    ),
    Field(
        "Uppgiftsväxling",
        "offers.task_shifting",
        YES_NO,
        "has_task_shifting",
        help="Ja/Nej: uppgiftsväxling mellan yrkesgrupper",
        offer=True,
        en="run task shifting between staff groups",
        sv="arbetar med uppgiftsväxling mellan personalgrupper",
    ),
    Field(
        "Kontaktperson",
        "contact_person",
        PERSONAL,
        None,
        help="Namn och e-post till den som fyllt i (lagras inte)",
        about="who to ask about the report (name, e-mail)",
    ),
)

# The report's yes/no fields (what the marts count per region: earmarked and the offers), and the offers alone.
YES_NO_FIELDS: tuple[Field, ...] = tuple(f for f in REPORT_FIELDS if f.kind == YES_NO and f.column)
OFFER_FIELDS: tuple[Field, ...] = tuple(f for f in YES_NO_FIELDS if f.offer)

# Sheet Insatser / JSON "initiatives".
INITIATIVE_FIELDS: tuple[Field, ...] = (
    Field("Insats", "title", TEXT, "title", True),
    Field("Område", "area", AREA, "area", True),
    Field("Status", "status", INITIATIVE_STATUS, "status", True),
    Field("Ny tack vare medlen", "new_due_to_grant", YES_NO, "new_due_to_grant"),
    Field("Kostnad (kr)", "cost_sek", AMOUNT, "cost_sek", aliases=("Kostnad",)),
    Field("Beskrivning", "description", TEXT, "description"),
)

# Sheet E-tjänster / JSON "ehealth_services".
SERVICE_FIELDS: tuple[Field, ...] = (
    Field("Tjänst", "service", SERVICE, "service", True),
    Field("Status", "status", SERVICE_STATUS, "status", True),
    Field("Införd datum", "implemented_on", DATE, "implemented_on", aliases=("Införd",)),
)

# Enum value → accepted spellings (Swedish first: the first is what the
# template offers). Compared after normalise_enum, so case, '-', '_' and
# spacing do not matter; the canonical English value is always accepted.
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    AREA: {
        "it_support": ("IT-stöd och processer", "IT-stöd", "e-hälsa", "IT", "IT support", "IT support and processes"),
        "competence_use": (
            "Kompetensanvändning",
            "smartare användning av medarbetarnas kompetens",
            "competence use",
            "smarter use of staff competence",
        ),
        "competence_supply": (
            "Kompetensförsörjning",
            "planering av långsiktig kompetensförsörjning",
            "competence supply",
            "long-term competence supply",
        ),
    },
    INITIATIVE_STATUS: {
        "planned": ("Planerad",),
        "ongoing": ("Pågående", "in progress"),
        "completed": ("Genomförd",),
        "cancelled": ("Avbruten", "canceled"),
    },
    SERVICE: {
        "web_booking": ("Webbtidbok", "web booking"),
        "patient_journal_online": ("Journal via nätet", "Journalen", "Journal på nätet", "patient journal online"),
        "remote_care": ("Vård på distans", "remote care", "digital visits"),
        "self_check_in": ("Självincheckning", "self check-in"),
    },
    SERVICE_STATUS: {
        "implemented": ("Införd",),
        "partly_implemented": ("Delvis införd", "partly implemented"),
        "planned": ("Planerad",),
        "not_started": ("Ej påbörjad", "not started"),
    },
}
ENUM_NAMES = {AREA: "area", INITIATIVE_STATUS: "status", SERVICE: "service", SERVICE_STATUS: "service status"}


def _json_shape() -> dict[str, tuple[str, ...]]:
    """Where each web-form JSON key belongs: ``""`` is the top level, ``"spend_sek"`` an object's
    members, ``"initiatives[]"`` the members of each item of a list."""
    shape: dict[str, list[str]] = {"": []}
    for fld in REPORT_FIELDS:
        parent, _, child = fld.json_key.rpartition(".")
        if parent and parent not in shape[""]:
            shape[""].append(parent)
        shape.setdefault(parent, []).append(child)
    shape[""] += [JSON_INITIATIVES, JSON_SERVICES]
    shape[JSON_INITIATIVES + "[]"] = [f.json_key for f in INITIATIVE_FIELDS]
    shape[JSON_SERVICES + "[]"] = [f.json_key for f in SERVICE_FIELDS]
    return {where: tuple(keys) for where, keys in shape.items()}


# Every key the web form produces, by where it may appear; any other key is refused
# (docs/input-formats.md §1b): a misspelt key would otherwise silently null a published value.
JSON_KEYS: dict[str, tuple[str, ...]] = _json_shape()


def _key_form(key: str) -> str:
    return swedish.normalise_label(key, separators="_-.").replace(" ", "")


def resembling_json_key(key: object, where: str = "") -> str | None:
    """The web-form key an unknown ``key`` at ``where`` (see :data:`JSON_KEYS`) resembles, ignoring case,
    spaces, ``-``, ``_`` and ``.`` (``"Offers"`` → ``offers``, ``"Cost_SEK"`` → ``cost_sek``); at the top level also a
    key that belongs one level down (``"it_support"`` → ``spend_sek.it_support``). None when none does."""
    return _key_forms(where).get(_key_form(str(key)))


@functools.cache
def _key_forms(where: str) -> dict[str, str]:
    """Normalised form → the known key at ``where`` it is (the first in the declaration's order wins)."""
    candidates = list(JSON_KEYS.get(where, ()))
    if where == "":
        candidates += [
            f"{parent}.{child}"
            for parent, children in JSON_KEYS.items()
            if parent and not parent.endswith("[]")
            for child in children
        ]
    forms: dict[str, str] = {}
    for candidate in candidates:
        for form in (_key_form(candidate), _key_form(candidate.rpartition(".")[2])):
            forms.setdefault(form, candidate)
    return forms


def normalise_label(text: object) -> str:
    """Field label / header / sheet name for comparison: any case, spacing, trailing ':' (:func:`swedish.normalise_label`)."""
    return swedish.normalise_label(text)


def normalise_enum(text: object) -> str:
    """An enum spelling for comparison: as a label, with ``_`` and ``-`` as spaces, a trailing ``.`` dropped."""
    return swedish.normalise_label(text, separators="_-").rstrip(".")


def _enum_index() -> dict[str, dict[str, str]]:
    index: dict[str, dict[str, str]] = {}
    for kind, values in ENUMS.items():
        table: dict[str, str] = {}
        for canonical, spellings in values.items():
            for spelling in (canonical, *spellings):
                key = normalise_enum(spelling)
                if table.setdefault(key, canonical) != canonical:
                    raise AssertionError(f"{kind}: spelling {spelling!r} maps to two values")
        index[kind] = table
    return index


_ENUM_INDEX = _enum_index()


def resolve_enum(kind: str, value: object) -> str:
    """The canonical enum value for any accepted spelling; :class:`BadInput` otherwise."""
    if value is None or not str(value).strip():
        raise BadInput(f"{ENUM_NAMES[kind]} is empty")
    key = normalise_enum(value)
    try:
        return _ENUM_INDEX[kind][key]
    except KeyError:
        accepted = ", ".join(spellings[0] for spellings in ENUMS[kind].values())
        raise BadInput(f"unknown {ENUM_NAMES[kind]} {str(value)[:60]!r} (accepted: {accepted})") from None


def label_index(fields: tuple[Field, ...]) -> dict[str, Field]:
    """Normalised label (and alias) → field."""
    return {normalise_label(label): field for field in fields for label in field.labels}


# --------------------------------------------------------------------------- blank template

_YES_NO_LIST = '"Ja,Nej"'


def _list_formula(kind: str) -> str:
    return '"' + ",".join(spellings[0] for spellings in ENUMS[kind].values()) + '"'


def write_blank_template(path: Path) -> Path:
    """Write the blank report template (.xlsx) that regions fill in."""
    # Size: the template's sheets one after another, as a sender sees them.
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    bold = Font(bold=True)
    shade = PatternFill("solid", fgColor="DDEBF7")
    workbook = Workbook()

    sheet = workbook.active
    assert sheet is not None  # a new workbook has its one sheet active
    sheet.title = SHEET_REPORT
    # Column C holds guidance for the person filling in; the parser reads columns A and B only.
    sheet.append([*REPORT_HEADER, "Anvisning"])
    for field in REPORT_FIELDS:
        sheet.append([field.label, None, field.help])
    sheet.column_dimensions["A"].width = 38
    sheet.column_dimensions["B"].width = 44
    sheet.column_dimensions["C"].width = 60
    for cell in sheet[1]:
        cell.font, cell.fill = bold, shade
    yes_no = DataValidation(type="list", formula1=_YES_NO_LIST, allow_blank=True)
    sheet.add_data_validation(yes_no)
    for row, field in enumerate(REPORT_FIELDS, start=2):
        sheet.cell(row=row, column=1).font = bold
        if field.kind == YES_NO:
            yes_no.add(f"B{row}")

    def table_sheet(title: str, fields: tuple[Field, ...], rows: int = 200) -> None:
        ws = workbook.create_sheet(title)
        ws.append([f.label for f in fields])
        for col, field in enumerate(fields, start=1):
            cell = ws.cell(row=1, column=col)
            cell.font, cell.fill = bold, shade
            letter = cell.column_letter
            ws.column_dimensions[letter].width = 48 if field.kind == TEXT else 24
            formula = (
                _YES_NO_LIST if field.kind == YES_NO else _list_formula(field.kind) if field.kind in ENUMS else None
            )
            if formula:
                check = DataValidation(type="list", formula1=formula, allow_blank=not field.required)
                ws.add_data_validation(check)
                check.add(f"{letter}2:{letter}{rows + 1}")
        ws.freeze_panes = "A2"

    table_sheet(SHEET_INITIATIVES, INITIATIVE_FIELDS)
    table_sheet(SHEET_SERVICES, SERVICE_FIELDS)

    guide = workbook.create_sheet("Anvisningar")
    guide.append(["Anvisningar"])
    guide["A1"].font = bold
    lines = [
        "Fyll i bladen Uppgifter, Insatser och E-tjänster. Byt inte namn på bladen eller fälten.",
        "Belopp: siffror eller t.ex. 1 234 567 kr, 850 tkr, 159 mnkr, 1,5 mnkr. Aldrig negativa.",
        "Ja/Nej: Ja, Nej, J, N, x (= ja) eller 1/0. Tom ruta = uppgift saknas.",
        "Använda medel får inte överstiga erhållna medel med mer än 1 %.",
        "En ny inlämning för samma region och år ersätter den tidigare (rättelse).",
        "Kontaktperson används bara för frågor om inlämningen och lagras inte.",
        "",
        "Tillåtna värden:",
    ]
    for kind in (AREA, INITIATIVE_STATUS, SERVICE, SERVICE_STATUS):
        lines.append(f"{ENUM_NAMES[kind]}: " + " | ".join(s[0] for s in ENUMS[kind].values()))
    for line in lines:
        guide.append([line])
    guide.column_dimensions["A"].width = 110

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path
