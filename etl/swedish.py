"""Parsing values as Swedish senders write them: the one implementation.

Amounts (``1 234 567 kr``, ``159 mnkr``, ``850 tkr``, ``1,5 mnkr``), counts
with Swedish thousands separators, yes/no in its many spellings, months
(``2017-03``, ``mars 2017``, ``2017M03``), dates, Excel date serials (the
day numbers a spreadsheet stores behind a date, which surface as ``43525``
when a date column is exported as a number) and the markers for suppressed
or missing cells, and the one text normaliser every label, header, enum
and region name is compared with (:func:`normalise_label`). Every parsing function raises :class:`BadInput` with a short reason
for a value outside the contract, and returns ``None`` for "unknown".

Whole numbers are bounded here, once, by the integer column they are stored
in (``etl/schemas``: amounts and counts are ``int64``): a number the column
cannot hold — ``10**30``, ``99999999999999999999 mnkr``, a JSON ``1e400`` —
is bad input ("number too large"), like any other unreadable number, never
an ``OverflowError`` further on. Callers storing into a narrower column pass
``bits=16`` or ``bits=32``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation

from etl.errors import BadInput

# Characters used as thousands separators: space, no-break space, thin
# space, narrow no-break space, figure space.
_SPACES = "\u0020\u00a0\u2009\u202f\u2007"
_SPACE_RE = re.compile(f"[{_SPACES}]")

SUPPRESSED_MARKERS = frozenset({"..", "–", "—", "-", ""})
_WHITESPACE = re.compile(r"\s+")  # \s covers the no-break and thin spaces too


def normalise_label(text: object, *, separators: str = "", fold_accents: bool = False) -> str:
    """A label, header, enum spelling or name as a comparison key: ``" Månad: "`` → ``"månad"``.

    Unicode NFC (a name typed on a Mac, NFD, meets the same name typed on
    Windows), any run of whitespace (no-break and thin spaces included) as
    one space, trailing ``:`` dropped, case folded. Each character of
    ``separators`` counts as a space (``"_-"``: ``web_booking`` meets ``web
    booking``). ``fold_accents`` also drops diacritics (``"Manad"`` meets
    ``"Månad"``): for machine-written headers only, never for names a person
    chose. ``None`` is ``""``.
    """
    value = unicodedata.normalize("NFC", "" if text is None else str(text))
    for char in separators:
        value = value.replace(char, " ")
    if fold_accents:
        value = "".join(ch for ch in unicodedata.normalize("NFKD", value) if not unicodedata.combining(ch))
    value = _WHITESPACE.sub(" ", value).strip()
    while value.endswith(":"):
        value = value[:-1].rstrip()
    return value.casefold()


_UNITS = {
    "kr": 1,
    "sek": 1,
    "kronor": 1,
    "tkr": 1_000,
    "tsek": 1_000,
    "mkr": 1_000_000,
    "mnkr": 1_000_000,
    "msek": 1_000_000,
    "miljoner kronor": 1_000_000,
    "mdkr": 1_000_000_000,
}
_AMOUNT_RE = re.compile(r"^(?P<sign>[-−+]?)\s*(?P<number>\d[\d., ]*?)\s*(?P<unit>[a-zåäö][a-zåäö ]*)?\.?$")


# Signed integer column widths (pyarrow int16 / int32 / int64); amounts and counts are int64.
INT64_BITS = 64


def int_range(bits: int = INT64_BITS) -> tuple[int, int]:
    """The smallest and largest value a signed ``bits``-bit integer column holds."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _text(value: object) -> str:
    """``str(value)``, also for an int too long for ``str`` (Python refuses ints of over 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(Decimal(value))
    return str(value)


def _within(number: Decimal, original: object, bits: int) -> int:
    """``number`` rounded to a whole number, if a signed ``bits``-bit column holds it; :class:`BadInput` otherwise.

    Compared as a Decimal before any conversion, so that no size of number
    (``10**30``, ``1E+400``) reaches ``int()`` or a column as an overflow.
    """
    if not number.is_finite():
        raise BadInput(f"not a number: {_text(original)[:60]!r}")
    low, high = int_range(bits)
    if number > high + 1 or number < low - 1:  # far out: never rounded (a huge exponent would overflow the context)
        raise BadInput(f"number too large: {_text(original)[:40]!r}")
    whole = number.to_integral_value()
    if not low <= whole <= high:
        raise BadInput(f"number too large: {_text(original)[:40]!r}")
    return int(whole)


def _decimal(value: int | float | Decimal) -> Decimal:
    """A number cell (int, float or Decimal) as a Decimal: exact for ints, the shortest repr for floats."""
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(value)
    return Decimal(value)


def _strip(value: object) -> str:
    return str(value).strip()


def is_suppressed(value: object) -> bool:
    """True for the markers that mean "suppressed / not available" (never zero)."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    if isinstance(value, (int, Decimal)):
        return False  # a number, never a marker (and an int of 5000 digits has no str())
    return _strip(value) in SUPPRESSED_MARKERS


def _to_decimal(number: str, original: object) -> Decimal:
    """Digits with Swedish separators → Decimal.

    ``1 234`` / ``1.234.567`` are thousands; ``1,5`` is a decimal comma.
    A single ``.`` followed by exactly three digits is a thousands separator
    (``1.234``); otherwise a dot is a decimal point (``1.5``).
    """
    text = _SPACE_RE.sub("", number)
    if not text or not re.fullmatch(r"[\d.,]+", text):
        raise BadInput(f"not a number: {str(original)[:60]!r}")
    if "," in text and "." in text:
        # 1.234,5 (Swedish/German) — dots group, comma is decimal.
        if text.rfind(",") < text.rfind("."):
            raise BadInput(f"ambiguous number: {str(original)[:60]!r}")
        text = text.replace(".", "").replace(",", ".")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    elif text.count(",") > 1:
        raise BadInput(f"not a number: {str(original)[:60]!r}")
    elif text.count(".") > 1 or re.fullmatch(r"\d{1,3}\.\d{3}", text):
        if not re.fullmatch(r"\d{1,3}(\.\d{3})+", text):
            raise BadInput(f"not a number: {str(original)[:60]!r}")
        text = text.replace(".", "")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - guarded by the regex above
        raise BadInput(f"not a number: {str(original)[:60]!r}") from None


def parse_amount(value: object, *, allow_negative: bool = False, bits: int = INT64_BITS) -> int | None:
    """An amount in whole kronor, or None when empty.

    :class:`BadInput` for an amount the ``bits``-bit column (int64) cannot hold.

    >>> parse_amount("159 mnkr")
    159000000
    >>> parse_amount("1,5 mnkr")
    1500000
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        raise BadInput(f"not an amount: {value!r}")
    if isinstance(value, (int, float, Decimal)):
        amount = _decimal(value)
        if not amount.is_finite():
            raise BadInput(f"not a number: {_text(value)[:60]!r}")
    else:
        text = _strip(value).casefold()
        if text in {"", "-", "–", ".."}:
            return None
        text = _SPACE_RE.sub(" ", text)
        match = _AMOUNT_RE.match(text)
        if not match:
            raise BadInput(f"not an amount: {str(value)[:60]!r}")
        unit = (match.group("unit") or "").strip().rstrip(".")
        if unit and unit not in _UNITS:
            raise BadInput(f"unknown amount unit {unit!r} in {str(value)[:60]!r}")
        amount = _to_decimal(match.group("number"), value)
        # Bounded before the unit is applied: multiplying a number of a million digits would
        # overflow the Decimal context instead of saying what is wrong.
        _within(amount, value, bits)
        amount = amount * _UNITS.get(unit, 1)
        if match.group("sign") in {"-", "−"}:
            amount = amount.copy_negate()
    if amount < 0 and not allow_negative:
        raise BadInput(f"negative amount: {_text(value)[:60]!r}")
    return _within(amount, value, bits)


def parse_count(value: object, *, bits: int = INT64_BITS) -> int | None:
    """A non-negative whole count (logins, bookings…); None when suppressed.

    :class:`BadInput` for a count the ``bits``-bit column (int64) cannot hold.
    """
    if is_suppressed(value):
        return None
    if isinstance(value, bool):
        raise BadInput(f"not a count: {value!r}")
    if isinstance(value, (int, float, Decimal)):
        number = _decimal(value)
    else:
        text = _strip(value)
        number = _to_decimal(text.lstrip("-−+").strip(), value)
        if text[:1] in {"-", "−"}:
            number = number.copy_negate()  # exact, unlike "* -1", which rounds in the context
    if not number.is_finite():
        raise BadInput(f"not a number: {_text(value)[:60]!r}")
    if number < 0:
        raise BadInput(f"negative value: {_text(value)[:60]!r}")
    low, high = int_range(bits)
    if number > high:
        raise BadInput(f"number too large: {_text(value)[:40]!r}")
    if number != number.to_integral_value():
        raise BadInput(f"not a whole number: {_text(value)[:60]!r}")
    return int(number)


_YES = {"ja", "j", "yes", "y", "x", "1", "true", "sant"}
_NO = {"nej", "n", "no", "0", "false", "falskt"}


def parse_yes_no(value: object) -> bool | None:
    """Ja/Nej, J/N, Yes/No, x, 1/0 in any case; empty means unknown (None), not no."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = _strip(value).casefold().rstrip(".")
    if text == "":
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise BadInput(f"not yes/no: {str(value)[:60]!r}")


MONTHS_SV = {
    "januari": 1,
    "jan": 1,
    "februari": 2,
    "feb": 2,
    "mars": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "maj": 5,
    "juni": 6,
    "jun": 6,
    "juli": 7,
    "jul": 7,
    "augusti": 8,
    "aug": 8,
    "september": 9,
    "sep": 9,
    "sept": 9,
    "oktober": 10,
    "okt": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
_MONTH_PATTERNS = (
    re.compile(r"^(?P<y>\d{4})\s*[-/ M]\s*(?P<m>\d{1,2})$", re.IGNORECASE),
    re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})$"),
)


# Excel's day 0 in its 1900 date system (the Windows default; day 60 is Excel's phantom 29 February
# 1900, so counting from 30 December 1899 is right for every serial after it). Serials are taken
# as dates only within 1990-01-01 .. 2099-12-31, so a count or a year is never read as a date.
EXCEL_EPOCH = dt.date(1899, 12, 30)
EXCEL_SERIAL_RANGE = ((dt.date(1990, 1, 1) - EXCEL_EPOCH).days, (dt.date(2099, 12, 31) - EXCEL_EPOCH).days)
_SERIAL_TEXT = re.compile(r"^\d{5}(?:[.,]\d+)?$")


def excel_serial_date(value: object) -> dt.date | None:
    """The date an Excel date serial stands for (``43525`` or ``"43525"`` → 2019-03-01), else None.

    Accepts a number or its text, a fraction being the time of day (dropped);
    only serials of 1990–2099 (32874–73050) are dates, anything else is None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _SERIAL_TEXT.match(text):
            return None
        value = float(text.replace(",", "."))
    if not isinstance(value, (int, float, Decimal)) or value != value:
        return None
    if not EXCEL_SERIAL_RANGE[0] <= value < EXCEL_SERIAL_RANGE[1] + 1:  # also infinity: never int()'d
        return None
    day = int(value)
    if not EXCEL_SERIAL_RANGE[0] <= day <= EXCEL_SERIAL_RANGE[1]:
        return None
    return EXCEL_EPOCH + dt.timedelta(days=day)


def parse_month(value: object) -> dt.date:
    """The first day of the month for ``2017-03``, ``2017-3``, ``mars 2017``, ``2017M03``, a date or an Excel date serial."""
    if isinstance(value, dt.datetime):
        return dt.date(value.year, value.month, 1)
    if isinstance(value, dt.date):
        return value.replace(day=1)
    serial = excel_serial_date(value)
    if serial is not None:
        return serial.replace(day=1)
    text = _SPACE_RE.sub(" ", _strip(value)).casefold()
    year = month = None
    for pattern in _MONTH_PATTERNS:
        match = pattern.match(text)
        if match:
            year, month = int(match.group("y")), int(match.group("m"))
            break
    else:
        match = re.match(r"^([a-zåäö]+)\.?\s+(\d{4})$", text)
        if match and match.group(1) in MONTHS_SV:
            year, month = int(match.group(2)), MONTHS_SV[match.group(1)]
        else:
            match = re.match(r"^(\d{4})-(\d{1,2})-01$", text)
            if match:
                year, month = int(match.group(1)), int(match.group(2))
    if year is None or month is None or not 1 <= month <= 12 or not 1900 <= year <= 2100:
        raise BadInput(f"not a month: {str(value)[:40]!r}")
    return dt.date(year, month, 1)


def parse_date(value: object) -> dt.date | None:
    """An ISO date (``2017-03-14``, also ``2017-03-14 00:00``) or an Excel date serial (``43538``); None when empty."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    serial = excel_serial_date(value)
    if serial is not None:
        return serial
    text = _strip(value)
    if not text:
        return None
    match = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?$", text)
    if not match:
        raise BadInput(f"not a date (YYYY-MM-DD): {text[:40]!r}")
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        raise BadInput(f"not a valid date: {text[:40]!r}") from None


def format_amount(amount: int, unit: str = "kr") -> str:
    """Render an amount the way senders write it (used by the sample generator)."""
    if unit == "mnkr":
        text = f"{amount / 1_000_000:.1f}".replace(".", ",").removesuffix(",0")
        return f"{text} mnkr"
    if unit == "tkr":
        return f"{amount // 1000:,}".replace(",", "\u00a0") + " tkr"
    return f"{amount:,}".replace(",", " ") + (" kr" if unit == "kr" else "")
