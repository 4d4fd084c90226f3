"""Keeping personal data out of outputs, and exported cells inert.

* :func:`mask_personal_data` masks e-mail addresses and Swedish personal
  identity numbers (personnummer, also samordningsnummer) in free text.
  Applied by the publisher to every quarantine row and by parsers to free
  text that reaches a table.
* :func:`redact_uri` removes credentials from URIs wherever they appear in
  a text: the userinfo of ``scheme://user:password@host``, and the values
  of query/fragment parameters that carry secrets (``token``, ``key``,
  ``password``, ``secret``, ``signature``, AWS/GCS presign parameters,
  Azure SAS ``sig`` …). The project's one credential redaction: the API
  client, the CLI's messages and log lines, and every stored lineage
  column (``source_file``, the load log) use it.
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


# ``scheme://userinfo@``: everything between "//" and the last "@" before the host ends. Greedy, so
# a password with a raw "@" in it is still covered; no whitespace, so in free text the match
# cannot run on into a later e-mail address.
_USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")
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


def redact_uri(text: object) -> object:
    """``text`` with the credentials of every URI in it replaced by ``***``; non-strings pass through.

    Works on a bare URI (``https://u:p@host/x?token=t`` → ``https://***@host/x?token=***``)
    and on any text that contains URIs (a log line, an exception message, an
    error body echoing the request), so it can be applied to whatever is
    about to be shown or stored without knowing where the URI is:

    * the userinfo (``user:password@``, ``token@``, ``:password@``) of any
      ``scheme://`` URI becomes ``***@``; host, port, path and the rest stay,
      so the message still says where;
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
    if "@" in text:
        text = _USERINFO.sub(MASK + "@", text)
    if "=" in text:
        text = _PARAM.sub(lambda m: f"{m.group(1)}={MASK}" if _is_secret_name(m.group(1)) and m.group(2) else m.group(0),
                          text)
    if '"' in text:
        text = _JSON_MEMBER.sub(
            lambda m: m.group(1) + MASK + m.group(4) if _is_secret_name(m.group(2)) and m.group(3) else m.group(0), text
        )
    return text


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """Prefix a text that a spreadsheet would evaluate with an apostrophe-like guard."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
