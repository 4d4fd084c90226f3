"""Keeping personal data and credentials out of outputs.

* :func:`mask_personal_data` masks e-mail addresses, Swedish personal
  identity numbers (personnummer, also samordningsnummer) and telephone
  numbers in free text. Applied by the publisher to every quarantine row,
  by parsers to free text that reaches a table, and to what a person types
  (an approval's reason) where it is recorded.
* :func:`redact_uri` removes credentials from URIs wherever they appear in
  a text: the userinfo of ``scheme://user:password@host``, and the values
  of query/fragment parameters that carry secrets (``token``, ``key``,
  ``password``, ``secret``, ``signature``, AWS/GCS presign parameters,
  Azure SAS ``sig`` …). The project's one credential redaction: the API
  client, the CLI's messages and log lines, and every stored lineage
  column (``source_file``, the load log) use it.

A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@``, a tab or CR first) is the workbook's to guard, where it writes cells:
:func:`etl.marts.exports.set_text`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TypeVar, overload

_T = TypeVar("_T")

# The lookbehind lets a match start only where a run of address characters starts: without it
# a long run with no "@" (a 100 kB description) is re-scanned from every position, which is
# quadratic (minutes for 100 kB). Matches are the same, as the leftmost start always wins.
EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@[\w.\-]+\.[A-Za-z]{2,}")
# An address written so a harvester misses it: anna(at)region.se, anna [at] region.se, anna {AT} region.se.
EMAIL_AT = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+ ?[(\[{] ?(?i:at) ?[)\]}] ?[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}")
# YYMMDD-NNNN, YYMMDD+NNNN, YYYYMMDDNNNN, YYYYMMDD-NNNN, with the "-"/"+" spaced (800101 - 1234); with a
# century also a space (19800101 1234) or the date written with hyphens (1980-01-01-1234, not inside a
# word or file name). Day 61–91 = samordningsnummer. The month (01–12) and day keep an organisationsnummer
# out (its third digit is 2 or more: 232100-0016), and a date alone (2017-03-01) has no four digits after it.
PERSONNUMMER = re.compile(
    r"(?<!\d)(?:"
    r"(?:19|20)?\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])(?: ?[-+] ?)?\d{4}"
    r"|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01]) \d{4}"
    r"|(?<![\w\-/.])(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])-\d{4}(?![\w\-]|\.\w)"
    r")(?!\d)"
)
# A telephone number: Swedish (0 and an area code that never starts with 0: 070-123 45 67, 08-123 456 78,
# 0701234567, 031-12 34 56, (08) 123 456 78, 08/12345678, 070.123.45.67) or international (+46 70 123 45 67,
# +46 (0)8-123 456 78, 0046 70 …, +1 (555) 123-4567), in groups separated by one space, a hyphen (spaced or
# not), a dot or a slash; 8–10 digits nationally, 8–15 after "+"/"00" (_phone). The lookbehind keeps it
# from starting inside a word, a number, a decimal, a date or a path (SE2321000016-1234, 0.0701234567,
# 2017-03-01, /a/0701234567): only a run that starts a number. _phone leaves dates and mixed dots alone.
PHONE = re.compile(
    r"(?<![\w.,/+\-])(?<!\d )"
    r"(?:(?:\+|00)[1-9]\d{0,2}[ \-]?(?:\(\d{1,4}\)[ \-]?)?|\(0[1-9]\d{0,2}\)[ \-]?|0(?=[1-9]))"
    r"\d{1,4}(?:(?: ?- ?|[ ./])?\d{1,4}){1,5}(?!\w|[.,]\d|[ \-./]\d)"
)
# 01-09-2025, 01.02.2025, 01/02/2025, 31.05.25: a date, not a number to call.
_DATE = re.compile(r"[0-3]?\d([-./])[0-3]?\d\1(?:19|20)?\d\d")
_SEPARATOR = re.compile(r"(?<=\d)[^\d]+(?=\d)")
# What "looks the same" to a reader is matched the same: dash variants (en/em dash, minus, non-breaking
# hyphen: autocorrect), any space (no-break, thin, full-width), full-width digits and punctuation (０７０,
# ＠, （）), other decimal digits. One character for one, so the masks go back into the text as it was.
_FULLWIDTH = range(0xFF01, 0xFF5F)
EMAIL_MASK = "[e-post borttagen]"
PNR_MASK = "[personnummer borttaget]"
PHONE_MASK = "[telefonnummer borttaget]"
NAME_MASK = "[namn borttaget]"


def _normalised(text: str) -> str:
    """``text`` with each character as it reads (see _FULLWIDTH above); the same length."""
    if text.isascii():
        return text
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if category == "Nd":
            out.append(str(unicodedata.decimal(ch)))
        elif category == "Pd" or ch == "\u2212":
            out.append("-")
        elif category == "Zs":
            out.append(" ")
        elif ord(ch) in _FULLWIDTH:
            out.append(unicodedata.normalize("NFKC", ch))
        else:
            out.append(ch)
    return "".join(out)


def _phone(match: re.Match) -> str | None:
    """The mask for a telephone number PHONE found, or None when it is not one (a date, a version, too short)."""
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    international = text.startswith(("+", "00"))
    if _DATE.fullmatch(text) or not (8 <= digits <= (15 if international else 10)):
        return None
    body = text.split(")")[-1].lstrip(" -")
    separators = _SEPARATOR.findall(body)
    if any("." in sep for sep in separators) and set(separators) != {"."}:
        return None  # dots only between every group (070.123.45.67), not 08.00-17.00
    slashes = [i for i, sep in enumerate(separators) if "/" in sep]
    if slashes and (slashes != [0] or separators[0] != "/" or "(" in text):
        return None  # one slash, right after the area code (08/123 45 67)
    return PHONE_MASK


def _sub(pattern: re.Pattern, mask: Callable[[re.Match], str | None], text: str, seen: str) -> tuple[str, str]:
    """Replace what ``pattern`` finds in ``seen`` (``text`` normalised) by ``mask(match)``, in both."""
    parts, seen_parts, pos = [], [], 0
    for match in pattern.finditer(seen):
        replacement = mask(match)
        if replacement is None:
            continue
        parts += [text[pos : match.start()], replacement]
        seen_parts += [seen[pos : match.start()], replacement]
        pos = match.end()
    if not parts:
        return text, seen
    return "".join(parts) + text[pos:], "".join(seen_parts) + seen[pos:]


@overload
def mask_personal_data(text: str, names: tuple[str, ...] = ()) -> str: ...
@overload
def mask_personal_data(text: _T, names: tuple[str, ...] = ()) -> _T: ...
def mask_personal_data(text: object, names: tuple[str, ...] = ()) -> object:
    """``text`` with e-mail addresses, personnummer and telephone numbers replaced; non-strings (``None``) pass through.

    ``names`` (a contact person's name and its parts, longest first) are
    replaced too, as whole words in any case: the one masking rule for
    every output, with the names a source knows to be personal — sender
    text, and the free text a person types (an approval's reason and
    approver: :func:`etl.approvals.who_and_why`).
    """
    if not isinstance(text, str) or not text:
        return text
    # Matched on the text as it reads (en dash as "-", ０７０ as 070: _normalised), masked in the text as it is.
    seen = _normalised(text)
    text, seen = _sub(EMAIL, lambda _: EMAIL_MASK, text, seen)
    text, seen = _sub(EMAIL_AT, lambda _: EMAIL_MASK, text, seen)
    text, seen = _sub(PERSONNUMMER, lambda _: PNR_MASK, text, seen)
    text, seen = _sub(PHONE, _phone, text, seen)
    for name in names:
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", NAME_MASK, text, flags=re.IGNORECASE)
    return text


def contains_email(text: str) -> bool:
    """Whether ``text`` holds an e-mail address (``anna@region.se``, ``anna(at)region.se``, full-width too)."""
    return mask_personal_data(text).count(EMAIL_MASK) > text.count(EMAIL_MASK)


def contains_personal_data(text: str) -> bool:
    return mask_personal_data(text) != text


# ``scheme://userinfo@host``. A password may hold anything a person can type — spaces, "#", "?", "%",
# ":", "@", quotes, non-ASCII — so the userinfo is not one character class; _userinfo_end() reads it:
#
# * it starts right after a "://" and ends at an "@" that is followed by a host (a name or [IPv6]
#   literal, an optional :port, then a character that cannot continue a host, such as "@");
# * the user name (before the first ":") has no whitespace, "/", "?", "#", "[", "]", "<", ">" or
#   quotes: "http://host/path@x", "http://host and mail anna@example.se" and "http://[::1]/" have none;
# * after the first ":", digits followed by the end, whitespace, "/", "?", "#" or a closing quote or
#   bracket are a port ("http://host:8080 by anna@example.se"), not a password;
# * otherwise the password runs to the last such "@" (a raw "@" in it is covered: user:p@ss@host), but
#   not on past a host followed by "/" (a path: s3://k:s@bucket/a@b.csv keeps its path) nor across
#   whitespace once an "@host" has been seen (an e-mail address in prose after the URI is not
#   userinfo) — unless that "@host" had no path and the next one has (user:p@ss word@host/landing);
# * it never spans a line break or another "://" (two URIs on one line are two matches).
#
# Erring towards hiding: when the text is ambiguous (``http://u:p@host?mail=a@b.se``), more is masked.
# What stays ambiguous the other way: "user:p@ss word@host" with no path reads as a URI followed by an
# e-mail address (only "user:p" is masked), and a password of digits then "/", "?", "#", a space or a
# quote reads as a port. etl.config.check_url refuses such URLs in the settings (a space, "#", "?", "/"
# must be percent-encoded), so these reach a log line only from elsewhere.
_URI_STOP = re.compile(r"[\r\n]|://")
_HOST_AFTER_AT = re.compile(r"(?:\[[0-9A-Za-z:.%\-]*\]|[\w.\-]+)(?::\d*)?(?![\w.\-@%])")
_NOT_IN_USER = re.compile(r"[\s/?#\[\]<>'\"`]")
_PORT = re.compile(r"\d+(?=[\s/?#'\"`)\]}>,;]|$)|(?=[\s/]|$)")
_WHITESPACE = re.compile(r"\s")


def _userinfo_end(text: str, start: int, stop: int) -> int:
    """Index of the "@" ending the userinfo that starts at ``start`` (right after "://"), or -1."""
    colon = text.find(":", start, stop)
    bad = _NOT_IN_USER.search(text, start, colon if colon != -1 else stop)
    if bad:
        limit = bad.start()
    elif colon != -1 and _PORT.match(text, colon + 1):
        limit = colon
    else:
        limit = stop
    best, best_has_path = -1, False
    at = text.find("@", start, limit)
    while at != -1:
        host = _HOST_AFTER_AT.match(text, at + 1)
        if host:
            has_path = text.startswith("/", host.end())
            if best != -1 and _WHITESPACE.search(text, best, at):
                # Past whitespace after an "@host": prose (an e-mail address), unless the earlier "@host"
                # had no path and this one has (user:p@ss word@host/landing).
                return at if has_path and not best_has_path else best
            best, best_has_path = at, has_path
            if has_path:
                break  # a path has begun
        at = text.find("@", at + 1, limit)
    return best


def userinfo_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the userinfo of every ``scheme://`` URI in ``text`` (the "@" not included)."""
    spans = []
    sep = text.find("://") if "@" in text else -1
    while sep != -1:
        start = sep + 3
        stop_match = _URI_STOP.search(text, start)
        stop = stop_match.start() if stop_match else len(text)
        end = _userinfo_end(text, start, stop)
        if end != -1:
            spans.append((start, end))
        sep = text.find("://", start)
    return spans


# A parameter in a query string or fragment (``?a=1&token=x#access_token=y``; ``;`` also covers
# ``&amp;`` in HTML and matrix parameters). The value ends where the URL or the quoted text ends.
_PARAM = re.compile(r"(?<=[?&#;])([A-Za-z0-9_.\-\[\]%]+)=([^&#;\s'\"<>]*)")
# A JSON member or ``name: value`` pair naming a secret, as an error body may echo one back.
_JSON_MEMBER = re.compile(r'("([A-Za-z0-9_.\-]+)"\s*:\s*")((?:[^"\\]|\\.)*)(")')
# A parameter is secret when its name, lower-cased without ``-``/``_``/``.``, contains one of these
# (``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``X-Goog-Signature``,
# ``AWSAccessKeyId``, ``api_key``, ``subscription-key``, ``access_token``, ``client_secret`` …)
# or is one of the short names (Azure SAS ``sig``). Erring towards hiding: a harmless ``keyword=``
# shown as ``***`` costs nothing, a token shown once is leaked for good.
_SECRET_PARTS = ("token", "key", "passw", "pwd", "secret", "signature", "credential", "auth", "session", "cookie")
_SECRET_NAMES = frozenset({"sig", "pass", "pw", "code"})
MASK = "***"


def _is_secret_name(name: str) -> bool:
    flat = re.sub(r"[-_.\[\]]|%5[bBdD]", "", name).lower()
    return flat in _SECRET_NAMES or any(part in flat for part in _SECRET_PARTS)


@overload
def redact_uri(text: str) -> str: ...
@overload
def redact_uri(text: _T) -> _T: ...
def redact_uri(text: object) -> object:
    """``text`` with the credentials of every URI in it replaced by ``***``; non-strings pass through.

    Works on a bare URI (``https://u:p@host/x?token=t`` → ``https://***@host/x?token=***``)
    and on any text that contains URIs (a log line, an exception message, an
    error body echoing the request), so it can be applied to whatever is
    about to be shown or stored without knowing where the URI is:

    * the userinfo (``user:password@``, ``token@``, ``:password@``) of any
      ``scheme://`` URI becomes ``***@``; host, port, path and the rest stay,
      so the message still says where. The password may hold whatever a
      person types, unencoded: spaces, ``#``, ``?``, ``%``, ``:``, ``@``,
      quotes, non-ASCII (``http://alice:S3c ret#PW@host/landing`` →
      ``http://***@host/landing``); see :func:`userinfo_spans`;
    * the value of a query or fragment parameter whose name carries a secret
      (see ``_SECRET_PARTS``: token, key, password, secret, signature,
      credential, auth…, which covers AWS SigV2/SigV4 and GCS presigned URLs,
      plus Azure SAS ``sig``) becomes ``***``; the name stays;
    * a JSON member with such a name (``"access_token": "…"``) in an echoed
      body has its value replaced the same way.

    Idempotent (``redact_uri(redact_uri(x)) == redact_uri(x)``), and it
    leaves text without credentials unchanged. It does not undo percent
    encoding: a URI embedded percent-encoded inside another URI's query is
    covered only through the outer parameter's name.
    """
    if not isinstance(text, str) or not text:
        return text
    # Hiding a secret parameter can remove what ended a userinfo ("?", "/") and the other way round, so the
    # passes repeat until nothing changes (once more, in practice): that keeps redact_uri idempotent.
    for _ in range(8):
        redacted = _redact_once(text)
        if redacted == text:
            break
        text = redacted
    return text


def _redact_once(text: str) -> str:
    if "@" in text and "://" in text:
        spans = userinfo_spans(text)
        if spans:
            parts, pos = [], 0
            for start, end in spans:
                parts += [text[pos:start], MASK]
                pos = end
            text = "".join(parts) + text[pos:]
    if "=" in text:
        text = _PARAM.sub(
            lambda m: f"{m.group(1)}={MASK}" if _is_secret_name(m.group(1)) and m.group(2) else m.group(0), text
        )
    if '"' in text:
        text = _JSON_MEMBER.sub(
            lambda m: m.group(1) + MASK + m.group(4) if _is_secret_name(m.group(2)) and m.group(3) else m.group(0), text
        )
    return text


def shareable(text: str) -> str:
    """``text`` fit to store or show: credentials of every URI redacted (:func:`redact_uri`), then personal
    data masked (:func:`mask_personal_data`)."""
    return mask_personal_data(redact_uri(text))
