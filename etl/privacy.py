"""Keeping personal data out of outputs, and exported cells inert.

* :func:`mask_personal_data` masks e-mail addresses and Swedish personal
  identity numbers (personnummer, also samordningsnummer) in free text.
  Applied by the publisher to every quarantine row and by parsers to free
  text that reaches a table.
* :func:`neutralise_formula` keeps a text cell that starts with ``=``,
  ``+``, ``-``, ``@`` (or a tab/CR) from being run as a formula by
  Excel/LibreOffice when analysts open an export.
"""

from __future__ import annotations

import re

# The lookbehind lets a match start only where a run of address characters starts: without it
# a long run with no "@" (a 100 kB description) is re-scanned from every position, which is
# quadratic (minutes for 100 kB). Matches are the same, as the leftmost start always wins.
EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@[\w.\-]+\.[A-Za-z]{2,}")
# YYMMDD-NNNN, YYMMDD+NNNN, YYYYMMDDNNNN, YYYYMMDD-NNNN; day 61–91 = samordningsnummer.
PERSONNUMMER = re.compile(
    r"(?<!\d)(?:19|20)?\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])[-+]?\d{4}(?!\d)"
)
EMAIL_MASK = "[e-post borttagen]"
PNR_MASK = "[personnummer borttaget]"


def mask_personal_data(text: object) -> object:
    """``text`` with e-mail addresses and personnummer replaced; non-strings pass through."""
    if not isinstance(text, str) or not text:
        return text
    return PERSONNUMMER.sub(PNR_MASK, EMAIL.sub(EMAIL_MASK, text))


def contains_personal_data(text: str) -> bool:
    return bool(EMAIL.search(text) or PERSONNUMMER.search(text))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """Prefix a text that a spreadsheet would evaluate with an apostrophe-like guard."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
