import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.errors import BadInput
from etl.swedish import format_amount, is_suppressed, parse_amount, parse_count, parse_date, parse_month, parse_yes_no

NBSP, THIN = "\u00a0", "\u2009"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 234 567", 1_234_567),
        ("1 234 567 kr", 1_234_567),
        ("1.234.567", 1_234_567),
        ("159 mnkr", 159_000_000),
        ("159 mkr", 159_000_000),
        ("850 tkr", 850_000),
        ("1,5 mnkr", 1_500_000),
        (f"1{NBSP}234{THIN}567", 1_234_567),
        ("12345", 12_345),
        (1234, 1234),
        (1234.0, 1234),
        ("0", 0),
        ("159 MNKR", 159_000_000),
        ("1 234,50 kr", 1234),
        ("", None),
        (None, None),
    ],
)
def test_amounts(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize("bad", ["-5 kr", "−5", "abc", "1,2,3", "12 foo", "kr", "1.23.4", True])
def test_bad_amounts(bad):
    with pytest.raises(BadInput):
        parse_amount(bad)


@given(st.integers(min_value=0, max_value=10**12))
def test_amount_round_trip_in_kronor(n):
    assert parse_amount(format_amount(n, "kr")) == n
    assert parse_amount(format_amount(n, "")) == n


@given(st.integers(min_value=0, max_value=10**7))
def test_amount_round_trip_in_tkr_and_mnkr(k):
    assert parse_amount(format_amount(k * 1000, "tkr")) == k * 1000
    assert parse_amount(format_amount(k * 100_000, "mnkr")) == k * 100_000


@given(st.integers(min_value=0, max_value=10**10), st.sampled_from([" ", NBSP, THIN, ""]))
def test_count_round_trip_with_any_thousands_separator(n, sep):
    text = f"{n:,}".replace(",", sep)
    assert parse_count(text) == n


@pytest.mark.parametrize("marker", ["..", "–", "-", "", "  ", None, float("nan")])
def test_suppressed_markers_are_null_never_zero(marker):
    assert is_suppressed(marker)
    assert parse_count(marker) is None


@pytest.mark.parametrize("bad", ["-3", "12a", "1,5", "abc"])
def test_bad_counts(bad):
    with pytest.raises(BadInput):
        parse_count(bad)


@pytest.mark.parametrize("yes", ["Ja", "ja", "J", "Yes", "YES", "x", "X", "1", 1, True])
def test_yes(yes):
    assert parse_yes_no(yes) is True


@pytest.mark.parametrize("no", ["Nej", "N", "no", "0", 0, False])
def test_no(no):
    assert parse_yes_no(no) is False


@pytest.mark.parametrize("unknown", ["", "  ", None])
def test_empty_yes_no_is_unknown_not_no(unknown):
    assert parse_yes_no(unknown) is None


def test_bad_yes_no():
    with pytest.raises(BadInput):
        parse_yes_no("kanske")


@pytest.mark.parametrize("text", ["2017-03", "2017-3", "mars 2017", "Mars 2017", "2017M03", "2017m3", "201703"])
def test_months(text):
    assert parse_month(text) == dt.date(2017, 3, 1)


@given(st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2099, 12, 31)))
def test_month_round_trip(day):
    assert parse_month(f"{day.year}-{day.month:02d}") == day.replace(day=1)
    assert parse_month(f"{day.year}M{day.month:02d}") == day.replace(day=1)


@pytest.mark.parametrize("bad", ["2017-13", "march 2017", "17-03", "", "2017"])
def test_bad_months(bad):
    with pytest.raises(BadInput):
        parse_month(bad)


def test_dates():
    assert parse_date("2017-03-14") == dt.date(2017, 3, 14)
    assert parse_date("") is None
    with pytest.raises(BadInput):
        parse_date("2017-02-30")


def test_excel_date_serials_in_months_and_dates():
    """Spreadsheets store a date as a day number; exported as a number it reads 43525 (2019-03-01)."""
    import datetime as _dt

    from etl import swedish as _sv

    assert _sv.excel_serial_date(43525) == _dt.date(2019, 3, 1)
    assert _sv.excel_serial_date("43525") == _sv.excel_serial_date(43525.75) == _dt.date(2019, 3, 1)
    assert _sv.parse_month("43538") == _dt.date(2019, 3, 1) and _sv.parse_month(43538.0) == _dt.date(2019, 3, 1)
    assert _sv.parse_date(43538) == _dt.date(2019, 3, 14) and _sv.parse_date(" 43538,5 ") == _dt.date(2019, 3, 14)
    # Only 1990–2099 are dates: a year, a count or a YYYYMM is never read as a serial.
    for value in (2017, "201703", 12345, 99999, True, "4352x", None):
        assert _sv.excel_serial_date(value) is None
    assert _sv.parse_month("201703") == _dt.date(2017, 3, 1)


def test_one_normaliser_for_labels_enums_names_and_headers():
    from etl.swedish import normalise_label

    nfd = "Ma\u030anad"  # "Månad" typed on a Mac (decomposed)
    assert normalise_label(f"  {nfd}\u00a0: ") == normalise_label("MÅNAD") == "månad"
    assert normalise_label("Unika\u202fanvändare::") == "unika användare"
    assert normalise_label("web_booking", separators="_-") == normalise_label("Web-Booking", separators="_-")
    assert normalise_label("Manad", fold_accents=True) == normalise_label("Månad", fold_accents=True) == "manad"
    assert normalise_label("Manad") != normalise_label("Månad")  # names a person chose keep their letters
    assert normalise_label(None) == ""
