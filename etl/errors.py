"""The exceptions the pipeline raises on purpose.

Each carries a one-line message meant for a person: the CLI prints it
without a traceback, Airflow tasks fail with it as the log's last line.
"""


class EtlError(Exception):
    """Base class: an expected failure with a readable one-line message."""

    # True when whoever raised it already wrote its ``failed`` load-log row (the run must not write a second).
    in_load_log: bool = False


class ConfigError(EtlError):
    """The configuration (flags, environment, Airflow Variables) is unusable."""


class BadInput(EtlError):
    """An input value, row or file breaks the input contract."""


class ValidationFailed(EtlError):
    """A critical expectation failed: the batch is not published."""


class AccountingError(EtlError):
    """Rows in != rows loaded + rows quarantined: something was lost or doubled."""


class SourceUnavailable(EtlError):
    """An outside source (HTTP API, landing storage) failed after all retries."""


class SourceRefused(SourceUnavailable):
    """The source answered, and asking again would bring the same answer (an HTTP 4xx, JSON nested too
    deeply, pagination that loops or never ends): a task fails at once instead of being retried."""


class NotReady(EtlError):
    """What a step builds on is not published yet (the follow-up marts before ``dim_region``): the command
    fails saying which, while a scheduled task is skipped, as the table's publication schedules it again."""


def one_line(text: str) -> str:
    """``text`` as one printable line: control characters (a newline, ESC of a terminal escape, a
    carriage return) and Unicode line and paragraph separators are written as escapes (``\\n``,
    ``\\x1b``), so that a file name or a sender's text inside a message can neither split the one
    error line nor move the cursor or recolour a terminal. Tabs become spaces."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\t":
            out.append(" ")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or ch in "\u2028\u2029":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)
