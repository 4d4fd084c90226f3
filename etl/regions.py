"""The 21 Swedish regions and the one way to resolve a region from input.

``region_code`` is the two-digit SCB county code as a string. Resolution is
exact after normalisation (case, whitespace, "Region", "Landstinget (i)",
"län(s landsting)" and code prefixes are stripped); there is deliberately no
fuzzy matching, because a typo silently mapped to the wrong region is worse
than a quarantined row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl import swedish
from etl.errors import BadInput


@dataclass(frozen=True)
class Region:
    code: str
    county_name: str  # län
    region_name: str  # the organisation's name today
    other_names: tuple[str, ...] = ()

    @property
    def kolada_id(self) -> str:
        return "00" + self.code


REGIONS: tuple[Region, ...] = (
    Region("01", "Stockholms län", "Region Stockholm", ("Stockholms läns landsting", "SLL")),
    Region("03", "Uppsala län", "Region Uppsala", ("Landstinget i Uppsala län",)),
    Region("04", "Södermanlands län", "Region Sörmland", ("Landstinget Sörmland",)),
    Region("05", "Östergötlands län", "Region Östergötland"),
    Region("06", "Jönköpings län", "Region Jönköpings län"),
    Region("07", "Kronobergs län", "Region Kronoberg", ("Landstinget Kronoberg",)),
    Region("08", "Kalmar län", "Region Kalmar län", ("Landstinget i Kalmar län",)),
    Region("09", "Gotlands län", "Region Gotland"),
    Region("10", "Blekinge län", "Region Blekinge", ("Landstinget Blekinge",)),
    Region("12", "Skåne län", "Region Skåne"),
    Region("13", "Hallands län", "Region Halland"),
    Region("14", "Västra Götalands län", "Västra Götalandsregionen", ("VGR", "Region Västra Götaland")),
    Region("17", "Värmlands län", "Region Värmland", ("Landstinget i Värmland",)),
    Region("18", "Örebro län", "Region Örebro län"),
    Region("19", "Västmanlands län", "Region Västmanland", ("Landstinget Västmanland",)),
    Region("20", "Dalarnas län", "Region Dalarna", ("Landstinget Dalarna",)),
    Region("21", "Gävleborgs län", "Region Gävleborg"),
    Region("22", "Västernorrlands län", "Region Västernorrland", ("Landstinget Västernorrland",)),
    Region("23", "Jämtlands län", "Region Jämtland Härjedalen", ("Jämtlands läns landsting",)),
    Region("24", "Västerbottens län", "Region Västerbotten", ("Västerbottens läns landsting",)),
    Region("25", "Norrbottens län", "Region Norrbotten", ("Norrbottens läns landsting",)),
)

REGION_CODES: tuple[str, ...] = tuple(r.code for r in REGIONS)
BY_CODE: dict[str, Region] = {r.code: r for r in REGIONS}

NATIONAL_CODE = "00"
NATIONAL_NAMES = ("riket", "hela landet", "totalt", "sverige", "hela riket")

# Words that surround the distinctive part of a name in the variants seen
# in files; stripped in this order, longest first.
_PREFIXES = ("landstinget i ", "landstinget ", "region ")
_SUFFIXES = (" läns landsting", " läns", " län", "regionen", " landsting")
_CODE = re.compile(r"^(?:se-?)?(\d{1,4})$")


def _clean(text: str) -> str:
    return swedish.normalise_label(text)


def _core(name: str) -> str:
    """The distinctive part of a name: 'Landstinget i Kalmar län' → 'kalmar'."""
    text = _clean(name)
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix):
                text, changed = text[len(prefix) :].strip(), True
        for suffix in _SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text, changed = text[: -len(suffix)].strip(), True
    # Genitive -s of county names ("Stockholms", "Hallands") is dropped so
    # "Region Halland" and "Hallands län" meet; the table below keeps names
    # that genuinely end in s unambiguous.
    return text


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for region in REGIONS:
        names = (region.county_name, region.region_name, *region.other_names)
        for name in names:
            for key in {_clean(name), _core(name), _core(name).removesuffix("s")}:
                other = index.setdefault(key, region.code)
                if other != region.code:
                    raise AssertionError(f"ambiguous region key {key!r}: {other} and {region.code}")
    return index


_INDEX = _build_index()


def is_national(value: object) -> bool:
    """True for the national total row ('Riket', 'Hela landet', 'Totalt', code 00/0000)."""
    if value is None:
        return False
    text = _clean(str(value))
    match = _CODE.match(text)
    if match:
        return int(match.group(1)) == 0
    return text in NATIONAL_NAMES


def resolve_region(value: object) -> str:
    """The two-digit region code for a code or name; :class:`BadInput` if unknown.

    Accepts ``14``, ``0014``, ``SE-14``, ``1`` (→ ``01``), ``Västra Götalandsregionen``,
    ``VGR``, ``landstinget i uppsala län`` … The national total is not a region.
    """
    if value is None or (isinstance(value, float) and value != value):
        raise BadInput("region is missing")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _clean(str(value))
    if not text:
        raise BadInput("region is missing")
    match = _CODE.match(text)
    if match:
        code = f"{int(match.group(1)):02d}"
        if code in BY_CODE:
            return code
        if code == NATIONAL_CODE:
            raise BadInput(f"{value!r} is the national total, not a region")
        raise BadInput(f"unknown region code {value!r}")
    for key in (text, _core(text), _core(text).removesuffix("s")):
        if key in _INDEX:
            return _INDEX[key]
    if text in NATIONAL_NAMES:
        raise BadInput(f"{value!r} is the national total, not a region")
    raise BadInput(f"unknown region {str(value)[:80]!r}")
