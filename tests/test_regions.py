import pytest

from etl.errors import BadInput
from etl.regions import BY_CODE, REGION_CODES, REGIONS, is_national, resolve_region


def test_there_are_21_regions_with_scb_codes():
    assert len(REGIONS) == 21
    assert REGION_CODES == (
        "01",
        "03",
        "04",
        "05",
        "06",
        "07",
        "08",
        "09",
        "10",
        "12",
        "13",
        "14",
        "17",
        "18",
        "19",
        "20",
        "21",
        "22",
        "23",
        "24",
        "25",
    )
    assert BY_CODE["14"].kolada_id == "0014"


@pytest.mark.parametrize("code", REGION_CODES)
def test_every_code_form_resolves(code):
    for form in (code, "00" + code, f"SE-{code}", f"se{code}", f" {code} ", str(int(code))):
        assert resolve_region(form) == code
    assert resolve_region(int(code)) == code


@pytest.mark.parametrize("region", REGIONS, ids=lambda r: r.code)
def test_every_listed_name_resolves_in_any_case(region):
    for name in (region.county_name, region.region_name, *region.other_names):
        assert resolve_region(name) == region.code
        assert resolve_region(name.upper()) == region.code
        assert resolve_region(f"  {name.lower()}: ") == region.code


@pytest.mark.parametrize(
    "text, code",
    [
        ("Landstinget i Uppsala län", "03"),
        ("Uppsala", "03"),
        ("VGR", "14"),
        ("Västra Götaland", "14"),
        ("Region Jönköpings län", "06"),
        ("Jämtland Härjedalen", "23"),
        ("Norrbottens läns landsting", "25"),
        ("Region\u00a0Skåne", "12"),
        ("Gotland", "09"),
        ("Sörmland", "04"),
        ("Södermanlands län", "04"),
    ],
)
def test_variants_seen_in_files(text, code):
    assert resolve_region(text) == code


@pytest.mark.parametrize("bad", ["Regoin Skåne", "Götaland", "Stockholm stad", "99", "02", "11", "", None, "Uppsal"])
def test_unknown_or_misspelt_is_bad_input_not_a_guess(bad):
    with pytest.raises(BadInput):
        resolve_region(bad)


@pytest.mark.parametrize("national", ["Riket", "Hela landet", "TOTALT", "00", "0000"])
def test_national_total_is_not_a_region(national):
    assert is_national(national)
    with pytest.raises(BadInput, match="national"):
        resolve_region(national)


def test_regions_are_not_national():
    assert not any(is_national(code) for code in REGION_CODES)
    assert not is_national("Region Skåne")
