"""Credentials in URIs, table-driven: every password shape a person types is redacted in any text.

:func:`etl.privacy.redact_uri` is the one redaction for log lines, stored messages and ``source_file``
columns; :func:`etl.config.check_url` refuses a landing/warehouse/API URL whose password is typed
unencoded (a space, ``#``, ``?``, ``/``), in one line that shows the URL redacted.
"""

import functools
import http.server
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from etl.config import Settings, check_url
from etl.errors import ConfigError
from etl.privacy import redact_uri

ROOT = Path(__file__).resolve().parent.parent

# Passwords as typed, unencoded. (A password made of digits followed by "/", "?", "#", whitespace or a
# quote reads as a port — "http://host:8080 by anna@x.se" — and is not among these.)
PASSWORDS = [
    "S3c retPW",  # the reported space
    "S3c#retPW",  # the reported "#"
    "p@ss",
    "pa:ss",
    "pä55",
    '"quoted"',
    "S3c%23retPW",  # already percent-encoded
    "S3c?retPW",
    "100%",
    "it's",
    "a b  c",
    "p@ss word",
    "p@ss#w?rd:x",
    "::@@",
    "#start",
    "?start",
    "(paren)",
    "<angle>",
    "semi;colon,comma",
    "tab-free\u00a0nbsp",
    "ünïcødé pass",
    "密码 pass",
    "trailing space ",
    "@lead",
    "a/b/c",
    "x=1&token=2",
    "eq=",
]

# (URI with the password in, the same URI as it must be shown)
URIS = [
    ("http://alice:{pw}@127.0.0.1:8080/landing", "http://***@127.0.0.1:8080/landing"),
    ("s3://AKIAEXAMPLE:{pw}@bucket/prefix/a.csv", "s3://***@bucket/prefix/a.csv"),
    ("ftp://alice:{pw}@ftp.example.se/in/2017", "ftp://***@ftp.example.se/in/2017"),
    ("https://alice:{pw}@[::1]:8443/x?page=2", "https://***@[::1]:8443/x?page=2"),
    ("https://anna@example.se:{pw}@host.example.se/x", "https://***@host.example.se/x"),  # an e-mail as the user
]

# Texts a URI turns up in.
CONTEXTS = [
    "{uri}",
    "2024-01-01 12:00:00,000 INFO etl: running county-reports (landing {uri}, warehouse /tmp/wh)",
    "error: unexpected ValueError: Invalid URL '{uri}' (rerun with --debug for the traceback)",
    'error: cannot read "{uri}": 403 Forbidden',
    "landing storage: cannot read {uri}/county_reports: ClientConnectorError: Cannot connect to host",
    "OSError: [Errno 111] Connection refused ({uri})",
    "('{uri}', 403)",
    "<{uri}>",
    "{uri}: 403 Forbidden; contact anna@example.se",
    'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: {uri}\n',
    "source_files: ['{uri}/county_reports/a.xlsx', '{uri}/county_reports/b.xlsx']",
]

CASES = [
    pytest.param(
        context.format(uri=uri.format(pw=pw)), context.format(uri=shown), pw, id=f"{pw!r}-{uri.split(':', 1)[0]}-{n}"
    )
    for pw in PASSWORDS
    for uri, shown in URIS
    for n, context in enumerate(CONTEXTS)
]


def _secret_pieces(pw: str) -> list[str]:
    """The password and the pieces of it that would give it away (its words, its halves around the "@"…)."""
    pieces = {pw.strip()} | {
        part for part in pw.replace("@", " ").replace("#", " ").replace("?", " ").split() if len(part) >= 3
    }
    return [p for p in pieces if p and p not in {"***"}]


@pytest.mark.parametrize(("text", "expected", "pw"), CASES)
def test_every_password_shape_is_redacted_in_any_text(text, expected, pw):
    shown = redact_uri(text)
    assert shown == expected
    assert redact_uri(shown) == shown  # idempotent
    for piece in _secret_pieces(pw):
        assert piece not in shown.replace("ftp.example.se", "").replace("host.example.se", "")


@pytest.mark.parametrize("pw", PASSWORDS)
def test_two_uris_in_one_line(pw):
    text = (
        f"copy http://alice:{pw}@127.0.0.1:8080/landing/a.csv to s3://AKIA:{pw}@bucket/wh/a.csv "
        f"and ftp://bob:{pw}@ftp.example.se/x, then mail anna@example.se"
    )
    assert redact_uri(text) == (
        "copy http://***@127.0.0.1:8080/landing/a.csv to s3://***@bucket/wh/a.csv "
        "and ftp://***@ftp.example.se/x, then mail anna@example.se"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # no path: the password still runs to the "@" before the host
        ("http://alice:S3c retPW@127.0.0.1:8080", "http://***@127.0.0.1:8080"),
        ("http://alice:S3c#retPW@host: Connection refused", "http://***@host: Connection refused"),
        ("GET https://user:p@ss@host:8443/api?x=1#f failed", "GET https://***@host:8443/api?x=1#f failed"),
        ("redis://:pw d@redis:6379/0", "redis://***@redis:6379/0"),
        ("https://ghp_token123@github.com/o/r", "https://***@github.com/o/r"),
        ("http://u:S3c ret@h\nhttp://v:S3c#ret@h2/x", "http://***@h\nhttp://***@h2/x"),
        # an "@" in the path after the host is the path's
        ("s3://AKIA:S3c ret@bucket/folder@2024/a.csv", "s3://***@bucket/folder@2024/a.csv"),
        # an e-mail address in prose after a URI with credentials stays as it is
        ("http://u:p@host mail anna@example.se", "http://***@host mail anna@example.se"),
        ("http://u:S3c ret@host/landing, contact anna@example.se", "http://***@host/landing, contact anna@example.se"),
        # query secrets and userinfo together
        ("http://alice:S3c ret@h/x?token=abc&page=2", "http://***@h/x?token=***&page=2"),
        # already redacted
        ("http://***@127.0.0.1:8080/landing", "http://***@127.0.0.1:8080/landing"),
    ],
)
def test_redaction_in_context(text, expected):
    assert redact_uri(text) == expected
    assert redact_uri(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "mail anna@example.se via http://host/x",
        "see http://host and mail anna@example.se",
        "see http://host:8080 by anna@example.se",
        "'http://host:8080' for anna@example.se",
        "http://host:8080/files (anna@example.se)",
        "ftp://ftp.example.se/pub and anna@example.se",
        "http://host/path@x",
        "s3://bucket/folder@2024/report.csv",
        "http://[::1]:8080/x from anna@example.se",
        "http://host?email=anna@example.se",
        "http://host:8080/x?mail=a@b.se",
        "<http://host>, <mailto:anna@example.se>",
        "'http://host', 'anna@example.se'",
        "http://host\nanna@example.se",
        "Kontakt: anna.svensson@regionuppsala.se, tel 018-611 00 00",
        "an e-mail address in prose: anna@example.se, bo@example.com (fråga @ kontoret)",
        "2017-03-01 12:00:00,000 INFO etl: running county-reports (landing /tmp/l, warehouse /tmp/wh)",
        "C:\\Users\\anna@example.se\\landing",
        "file:///tmp/landing/a@b.csv",
        "https://api.kolada.se/v3/data/kpi/N00001/year/2020?page=2&per_page=5000",
        "a: b @ c :// d",
        "://",
        "@",
        "",
    ],
)
def test_text_without_credentials_is_unchanged(text):
    assert redact_uri(text) == text


def test_a_log_record_naming_the_landing_uri_is_redacted():
    from etl.cli import RedactingFilter

    uri = "http://alice:S3c retPW@127.0.0.1:8080/landing"
    record = logging.LogRecord(
        "etl",
        logging.INFO,
        __file__,
        1,
        "running %s (landing %s, warehouse %s)",
        ("county-reports", uri, "/tmp/wh"),
        None,
    )
    assert RedactingFilter().filter(record)
    assert (
        record.getMessage() == "running county-reports (landing http://***@127.0.0.1:8080/landing, warehouse /tmp/wh)"
    )


# ---------------------------------------------------------------- configuration: refused early, one line


@pytest.mark.parametrize(
    ("uri", "secret", "advice"),
    [
        ("http://alice:S3c retPW@127.0.0.1:8080/landing", "retPW", "%20"),
        ("http://alice:S3c#retPW@127.0.0.1:8080/landing", "retPW", "%23"),
        ("http://alice:S3c?retPW@127.0.0.1:8080/landing", "retPW", "%3F"),
        ("http://alice:S3c/retPW@127.0.0.1:8080/landing", "retPW", "%2F"),
        ("s3://AKIAEXAMPLE:wJalr SECRET@bucket/landing", "SECRET", "%20"),
        ("ftp://alice:p@ss #wOrd@ftp.example.se/in", "wOrd", "%23"),
        ("http://alice:S3c#retPW@127.0.0.1:8080", "retPW", "%23"),
        ("http://alice:1234 5678@127.0.0.1:8080/landing", "5678", "%20"),  # the password looks like a port
        ("http://127.0.0.1:99999/landing", None, "percent-encode"),  # does not parse: port out of range
        ("http://alice:S3cretPW@127.0.0.1:port/landing", "S3cretPW", "percent-encode"),  # nor here: a bad port
        ("http://alice:12 3S3cret@[::1/landing", "S3cret", "percent-encode"),  # nor here: an unclosed bracket
        ("http://[::1/landing", None, "percent-encode"),  # does not parse: unclosed bracket
    ],
)
def test_a_url_with_an_unencoded_password_is_a_one_line_config_error(uri, secret, advice):
    with pytest.raises(ConfigError) as error:
        Settings.resolve(landing=uri, warehouse="/tmp/wh", kolada_kpis="", environ={})
    message = str(error.value)
    assert "\n" not in message and message.startswith("landing URI '")
    assert "percent-encode" in message and advice in message
    if secret:
        assert secret not in message and "alice" not in message and "***@" in message


@pytest.mark.parametrize(
    "uri",
    ["s3://user:secret@nohost.invalid/bucket", "s3://AKIAUSER:secret@bucket/path", "S3A://AKIAUSER:secret@bucket"],
)
def test_credentials_in_an_object_store_url_are_refused_without_being_shown(uri, tmp_path):
    """Found by a reviewer: s3fs read 'user:secret@host' as the bucket and botocore's error quoted it, unredacted."""
    for kwargs in ({"landing": uri, "warehouse": "/tmp/wh"}, {"landing": "/tmp/l", "warehouse": uri}):
        with pytest.raises(ConfigError, match="takes no user name or password") as error:
            Settings.resolve(**kwargs, kolada_kpis="", environ={})
        assert "secret" not in str(error.value) and "AWS_ACCESS_KEY_ID" in str(error.value)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "--debug",
            "run",
            "ehealth-adoption",
            "--landing",
            uri,
            "--warehouse",
            str(tmp_path / "wh"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "secret" not in out.stdout + out.stderr, out.stderr[-1000:]


def test_the_password_is_checked_wherever_the_url_comes_from():
    bad = "http://alice:S3c#retPW@127.0.0.1:8080/x"
    for kwargs, name in [
        ({"warehouse": bad}, "warehouse URI"),
        ({"scb_base_url": bad}, "SCB base URL"),
        ({"kolada_base_url": bad}, "Kolada base URL"),
    ]:
        with pytest.raises(ConfigError, match=f"^{name} 'http://\\*\\*\\*@127.0.0.1:8080/x'.*%23"):
            Settings.resolve(**{"landing": "/tmp/l", "warehouse": "/tmp/wh", **kwargs}, kolada_kpis="", environ={})
    with pytest.raises(ConfigError, match="^landing URI 'http://\\*\\*\\*@"):
        Settings.resolve(kolada_kpis="", environ={"ETL_LANDING_URI": bad})
    with pytest.raises(ConfigError, match="control character") as error:
        check_url("http://alice:S3c\nretPW@h/x", "landing URI")
    assert "retPW" not in str(error.value)


@pytest.mark.parametrize(
    "uri",
    [
        "http://alice:p@ss@127.0.0.1:8080/landing",
        "http://alice:pa:ss@127.0.0.1:8080/landing",
        "http://alice:pä55@127.0.0.1:8080/landing",
        'http://alice:"quoted"@127.0.0.1:8080/landing',
        "http://alice:S3c%23retPW@127.0.0.1:8080/landing",
        "http://alice:S3c%20retPW@127.0.0.1:8080/landing",
        "s3://bucket/landing",
        "s3://bucket/folder@2024",
        "memory://wh",
        "zip://a.csv::s3://bucket/a.zip",
        "https://statistikdatabasen.scb.se/api/v2",
    ],
)
def test_a_url_that_parses_is_accepted_as_it_is(uri):
    settings = Settings.resolve(landing=uri, warehouse=uri, scb_base_url=uri, kolada_kpis="", environ={})
    assert settings.landing_uri == settings.warehouse_uri == settings.scb_base_url == uri


# ---------------------------------------------------------------- lineage and the CLI, over real HTTP


@pytest.fixture
def served(tmp_path):
    """``tmp_path/landing`` (county sample reports) served over HTTP as ``http://127.0.0.1:PORT/landing``."""
    from etl.sample import county_reports

    county_reports.write(tmp_path / "landing", 2017, 2017, seed=3)

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # the server's request lines: not this test's output
            pass

    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_landed_file_uris_carry_no_password_with_a_space(served):
    # The lineage path below the configuration check: a URI that reaches storage anyway (an old
    # setting, a caller that skips Settings) still lands redacted in source_file.
    from etl import storage

    uri = f"http://alice:S3c retPW@127.0.0.1:{served}/landing"
    files = storage.list_landed(uri, "county_reports", (".xlsx", ".csv", ".json"))
    assert files
    for landed in files:
        assert landed.uri.startswith(f"http://***@127.0.0.1:{served}/landing/county_reports/"), landed.uri
        assert "retPW" not in landed.uri and "alice" not in landed.uri


@pytest.mark.parametrize("password", ["S3c retPW", "S3c#retPW"])
@pytest.mark.parametrize("debug", [False, True])
def test_the_cli_refuses_an_unencoded_password_without_showing_it(served, tmp_path, password, debug):
    uri = f"http://alice:{password}@127.0.0.1:{served}/landing"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            *(["--debug"] if debug else []),
            "run",
            "county-reports",
            "--landing",
            uri,
            "--warehouse",
            str(tmp_path / "wh"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    for secret in (password, "retPW", "S3c", "alice"):
        assert secret not in text
    last = out.stderr.strip().splitlines()[-1]
    # Without --debug the one line "error: …"; with it, the (redacted) traceback ending in the exception.
    prefix = "etl.errors.ConfigError: " if debug else "error: "
    assert (
        last.startswith(f"{prefix}landing URI 'http://***@127.0.0.1:{served}/landing': ") and "percent-encode" in last
    )
    assert ("%23" if "#" in password else "%20") in last
    if not debug:
        assert "Traceback" not in text and out.stderr.strip().count("\n") == 0  # one line
    assert not (tmp_path / "wh").exists() or not any((tmp_path / "wh").rglob("*.parquet"))  # nothing loaded
