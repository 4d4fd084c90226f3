"""Where the pipeline reads from and writes to: the one place settings live.

Precedence: explicit values (CLI flags, Airflow Variables passed in by a
DAG) > environment (``ETL_LANDING_URI``, ``ETL_WAREHOUSE_URI``) > defaults
(``./landing`` and ``./warehouse`` under the current directory).

A URI is a local path or any fsspec URL (``s3://bucket/prefix``,
``memory://x``); both go through :mod:`etl.storage`, so no code elsewhere
needs to know which it got.

A URL's password must be percent-encoded where URLs reserve a character
(``#`` as ``%23``, ``?`` as ``%3F``, ``/`` as ``%2F``, a space as ``%20``):
:func:`check_url` refuses one typed as it is, with a one-line
:class:`ConfigError` that shows the URL with its credentials redacted.
A landing or warehouse URI holds no query string or fragment (``?``,
``#``): :func:`check_store_location` refuses one the same way, and one
holding a percent-escape (``%3F``, ``%20``) outside its credentials, which
the storage libraries do not agree on decoding.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from etl.errors import ConfigError
from etl.privacy import redact_uri, userinfo_spans

ENV_LANDING = "ETL_LANDING_URI"
ENV_WAREHOUSE = "ETL_WAREHOUSE_URI"
ENV_SCB_URL = "ETL_SCB_BASE_URL"
ENV_KOLADA_URL = "ETL_KOLADA_BASE_URL"
ENV_KOLADA_KPIS = "ETL_KOLADA_KPIS"
ENV_SETTLE = "ETL_LANDING_SETTLE_SECONDS"

# A landed file modified more recently than this is taken to be still
# arriving and is left for the next run (docs/input-formats.md, "Sending a
# file"). A minute covers an upload that stalls briefly; an upload that
# stalls longer should use the hidden-name convention (.name, then rename).
DEFAULT_SETTLE_SECONDS = 60.0

SCB_DEFAULT_URL = "https://statistikdatabasen.scb.se/api/v2"
KOLADA_DEFAULT_URL = "https://api.kolada.se/v3"

# Key figures pulled when nothing is configured: SKR's cost of health care
# per inhabitant and the share of residents with a listed care contact are
# examples; an empty list is a valid configuration too.
DEFAULT_KOLADA_KPIS: tuple[str, ...] = ("N17473", "N17461")


def _normalise_uri(value: str, name: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ConfigError(f"{name} is empty: give a local path or an fsspec URL such as s3://bucket/prefix")
    if "://" in value:
        scheme = value.split("://", 1)[0]
        if not scheme.isidentifier() and not scheme.replace("-", "").isalnum():
            raise ConfigError(f"{name} has an unreadable URL scheme: {redact_uri(value)!r}")
        check_url(value, name)
        check_store_location(value, name)
        return value.rstrip("/")
    check_store_location(value, name)
    # Local paths are made absolute so Airflow workers, the CLI and tests
    # agree on them whatever their working directory.
    path = Path(value).expanduser().resolve()
    # A store is a folder: a file on the way (the path itself or a parent) would fail later as an
    # unexpected NotADirectoryError, after a run has started.
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{name} {str(path)!r}: {str(existing)!r} is a file, not a folder")
    return str(path)


# Characters a user name or password must not hold as they are: a URL parser ends the userinfo (or
# the whole authority) at them, so the rest of the password is read as host, port, path or fragment.
_MUST_ENCODE = {" ": "%20", "#": "%23", "?": "%3F", "/": "%2F"}
# fsspec chains URLs with "::" (zip://a.csv::s3://bucket/a.zip); only the first one is checked here.
_CHAIN = re.compile(r"::(?=[A-Za-z][\w+.\-]*://)")


# "%" and two hex digits: a percent-escape, refused in a store location (check_store_location). A "%" not
# followed by two hex digits (wh_100%, wh%zz) is no escape to any of the libraries and is kept as it is.
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

OBJECT_STORE_SCHEMES = ("s3", "s3a")  # credentials come from the environment or a Connection, never the URL


def check_url(value: str, name: str) -> None:
    """Refuse, with a :class:`ConfigError`, a ``scheme://`` URL whose credentials would not survive parsing.

    A password typed as it is (``http://alice:S3c#ret@host/landing``) is cut at the "#" by every URL
    parser: the request goes to the wrong host, or fails deep inside a library with the password in
    its message. So a URL whose userinfo holds whitespace, "#", "?" or "/", holds a control character,
    or does not parse (bad port, unclosed IPv6 bracket) is a configuration error, named in one line with
    the credentials redacted and the fix (percent-encode the password). So is any user name or password
    in an ``s3://`` URL, which the object-store libraries would take for the bucket name.
    """
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        # Not shown: a line break would split the URI, and the redaction works line by line.
        raise ConfigError(
            f"{name} holds a line break, tab or other control character: remove it "
            "(percent-encode it, e.g. a tab as %09, if it belongs in the password)"
        )
    first = _CHAIN.split(value, 1)[0]
    netloc, parse_error = None, None
    try:
        parts = urlsplit(first)
        netloc = parts.netloc
        parts.port  # noqa: B018  (the port is parsed lazily: a bad one raises only here)
    except ValueError as exc:
        parse_error = exc
    # The userinfo as the redaction reads it in text, and as a URL parser reads it (the same, unless the
    # password looks like a port: http://alice:1234 5@host/).
    userinfos = [value[start:end] for start, end in userinfo_spans(value)[:1]]
    if netloc and "@" in netloc:
        userinfos.append(netloc.rpartition("@")[0])
    # A refused URL is shown with everything up to its last "@" hidden: where the password ends is
    # exactly what is in doubt, so this hides too much rather than too little.
    scheme, _, rest = value.partition("://")
    shown = redact_uri(f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else value)
    bad = sorted({ch if ch in _MUST_ENCODE else " " for ch in "".join(userinfos) if ch in _MUST_ENCODE or ch.isspace()})
    if bad:
        names = ["a space" if ch == " " else repr(ch) for ch in bad]
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        how = ", ".join(f"{'a space' if ch == ' ' else repr(ch)} as {_MUST_ENCODE[ch]}" for ch in bad)
        raise ConfigError(
            f"{name} {shown!r}: its user name or password holds {listed}, which a URL cannot hold "
            f"as it is: percent-encode the password ({how}; a literal '%' as %25)"
        )
    if parse_error is not None:
        # The parser's own message can quote a piece of the password (as the "port"): not shown.
        reason = (
            "an unclosed [IPv6] bracket"
            if "IPv6" in str(parse_error)
            else "a port that is not a number from 0 to 65535"
        )
        raise ConfigError(
            f"{name} {shown!r} is not a valid URL ({reason}); if it has a password, percent-encode "
            "the characters in it that URLs reserve (e.g. ':' as %3A, '#' as %23, '@' as %40)"
        )
    if scheme.lower() in OBJECT_STORE_SCHEMES and netloc and "@" in netloc:
        # s3fs and delta-rs read the whole authority as the bucket name: the key would not be used, and the
        # store's error would quote it without the scheme, where no redaction recognises it as a URL.
        raise ConfigError(
            f"{name} {shown!r}: an {scheme}:// URL takes no user name or password (they would be read as "
            "the bucket name); give the credentials as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or in "
            "Airflow as the Connection etl_object_store"
        )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_as_of(text: str, name: str = "--as-of", now: dt.datetime | None = None) -> dt.datetime:
    """``YYYY-MM-DD`` (the end of that day, UTC) or an ISO timestamp (UTC unless it says) → an aware datetime.

    :class:`ConfigError`, one line, for text that is neither, and for a
    moment still to come: the tables have no version from the future, and a
    report "as of" next year built from today's would say what nobody knew
    then. Today's date is accepted (its versions so far).
    """
    text = (text or "").strip()
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name} must be a date (YYYY-MM-DD) or an ISO timestamp, not {text!r}") from None
    now = now or _utcnow()
    try:
        dt.date.fromisoformat(text)  # a date in any ISO form (2026-03-31, 20260331): the end of that day
    except ValueError:
        pass
    else:
        if when.date() > now.date():
            raise ConfigError(f"{name} {text} is in the future (today is {now:%Y-%m-%d} UTC): give a date up to today")
        return (when + dt.timedelta(days=1) - dt.timedelta(microseconds=1)).replace(tzinfo=dt.UTC)
    # In UTC, whatever offset it was written with: every line that states the moment says UTC.
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    if when > now:
        raise ConfigError(
            f"{name} {text} is in the future (now {now:%Y-%m-%d %H:%M} UTC): give a moment that has passed"
        )
    return when


def check_month_begun(period: str, name: str = "--period", now: dt.datetime | None = None) -> None:
    """:class:`ConfigError` when ``period`` (YYYY-MM) is a month that has not begun: no delivery can be for it."""
    now = now or _utcnow()
    if period > f"{now:%Y-%m}":
        raise ConfigError(
            f"{name} {period} is a month that has not begun (this month is {now:%Y-%m}, UTC): give a month up to it"
        )


def check_year_begun(year: int, name: str = "--year", now: dt.datetime | None = None) -> None:
    """:class:`ConfigError` when ``year`` has not begun: there are no figures for it."""
    now = now or _utcnow()
    if int(year) > now.year:
        raise ConfigError(f"{name} {year} is in the future (this year is {now.year}): give a year up to it")


def check_store_location(value: str, name: str) -> None:
    """Refuse, with a one-line :class:`ConfigError`, a store location (landing, warehouse, an output folder)
    holding ``?`` or ``#``.

    A store is a folder or a bucket prefix; a query string or fragment is no
    part of either. The storage libraries disagree on it — fsspec drops it
    from some paths and keeps it in others, a local path keeps it as a name —
    so tables, the load log and the delivery record would not all land in
    one place (``s3://bucket/wh?x=1`` wrote the load log into the bucket's
    root). Run after :func:`check_url`, which explains a ``#`` or ``?`` typed
    in a password; the value is shown with its credentials redacted.

    A percent-escape (``%`` and two hex digits: ``wq%3Fz``, ``w%20h``) outside
    the userinfo is refused too: delta-rs decodes it (the tables and the load
    log land under ``wq?z/``) while s3fs and local paths keep it (the state,
    the data docs under ``wq%3Fz/``). Write the character itself (a space, an
    ``å``) or rename the folder. A ``%`` not followed by two hex digits
    (``wh_100%``) is no escape to any of them and is allowed.
    """
    found = [f"{what} ({ch!r})" for ch, what in (("?", "a query string"), ("#", "a fragment")) if ch in value]
    if found:
        raise ConfigError(
            f"{name} {redact_uri(value)!r} holds {' and '.join(found)}: a store location is a folder or bucket "
            "prefix only; remove it (and rename a folder whose name holds '?' or '#')"
        )
    # A password is percent-encoded on purpose (check_url asks for it): only the rest is looked at.
    spans = userinfo_spans(value)
    outside = value[: spans[0][0]] + value[spans[0][1] :] if spans else value
    escapes = sorted(set(_PERCENT_ESCAPE.findall(outside)), key=outside.index)
    if escapes:
        listed = ("the percent-escapes " if len(escapes) > 1 else "the percent-escape ") + ", ".join(
            repr(e) for e in escapes
        )
        raise ConfigError(
            f"{name} {redact_uri(value)!r} holds {listed}: the storage libraries disagree about decoding it "
            "(delta-rs does, s3fs and local paths do not), so the tables and the rest would land in two places; "
            "write the character itself, or rename the folder"
        )


def parse_kpi_list(value: str | None) -> tuple[str, ...]:
    """``"N17473, N17461"`` → ``("N17473", "N17461")``; ``""`` → ``()``."""
    if value is None:
        return DEFAULT_KOLADA_KPIS
    ids = tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    for kpi in ids:
        if not kpi.isalnum():
            raise ConfigError(f"Kolada KPI id {kpi!r} is not alphanumeric")
    return ids


@dataclass(frozen=True)
class Settings:
    landing_uri: str
    warehouse_uri: str
    scb_base_url: str = SCB_DEFAULT_URL
    kolada_base_url: str = KOLADA_DEFAULT_URL
    kolada_kpis: tuple[str, ...] = field(default=DEFAULT_KOLADA_KPIS)
    landing_settle_seconds: float = DEFAULT_SETTLE_SECONDS

    @classmethod
    def resolve(
        cls,
        landing: str | None = None,
        warehouse: str | None = None,
        scb_base_url: str | None = None,
        kolada_base_url: str | None = None,
        kolada_kpis: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        landing = landing or env.get(ENV_LANDING) or "landing"
        warehouse = warehouse or env.get(ENV_WAREHOUSE) or "warehouse"
        kpis = kolada_kpis if kolada_kpis is not None else env.get(ENV_KOLADA_KPIS)
        landing_uri = _normalise_uri(landing, "landing URI")
        warehouse_uri = _normalise_uri(warehouse, "warehouse URI")
        scb_url = (scb_base_url or env.get(ENV_SCB_URL) or SCB_DEFAULT_URL).rstrip("/")
        kolada_url = (kolada_base_url or env.get(ENV_KOLADA_URL) or KOLADA_DEFAULT_URL).rstrip("/")
        check_url(scb_url, "SCB base URL")
        check_url(kolada_url, "Kolada base URL")
        return cls(
            landing_uri=landing_uri,
            warehouse_uri=warehouse_uri,
            scb_base_url=scb_url,
            kolada_base_url=kolada_url,
            kolada_kpis=parse_kpi_list(kpis),
            landing_settle_seconds=_parse_settle(env.get(ENV_SETTLE)),
        )


def _parse_settle(value: str | None) -> float:
    if value is None or not value.strip():
        return DEFAULT_SETTLE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{ENV_SETTLE} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 86_400:
        raise ConfigError(f"{ENV_SETTLE} must be between 0 and 86400 seconds, not {value!r}")
    return seconds
