"""The CLI as a person uses it: exit codes and one clear line on stderr, no tracebacks."""

import datetime as dt
import sys
from pathlib import Path

import pytest

from tests.cli_support import SETTLED, run_etl

ROOT = Path(__file__).resolve().parent.parent


def etl(*args, cwd=None):
    return run_etl(*args, cwd=cwd)


def test_run_reference_then_status(tmp_path):
    from etl.sample import reference as reference_sample

    reference_sample.write(tmp_path / "l", 2016, 2025, units=1, unit_months=0, seed=1)
    wh = tmp_path / "wh"
    out = etl(
        "run",
        "reference",
        "--landing",
        str(tmp_path / "l"),
        "--warehouse",
        str(wh),
        "--kolada-kpis",
        "",
        "--offline-snapshot",
    )
    assert out.returncode == 0, out.stderr
    assert "dim_region: published, 21 in = 21 loaded + 0 quarantined" in out.stdout
    status = etl("status", "--warehouse", str(wh))
    assert status.returncode == 0
    assert any(line.split()[:2] == ["dim_region", "21"] for line in status.stdout.splitlines())


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["run", "ehealth-adoption", "--period", "2017-3"], 2, "--period must be YYYY-MM"),
        (["run", "ehealth-adoption", "--period", "2017-13"], 2, "--period must be YYYY-MM"),
        (["sample", "--out", "x", "--years", "twenty"], 2, "--years must look like 2016-2025"),
        (["run", "reference", "--warehouse", " "], 2, "warehouse URI is empty"),
        (["run", "reference", "--kolada-kpis", "N1,bad id"], 2, "not alphanumeric"),
        # A wrong --warehouse (a typo: nothing there) is said, not read as an empty warehouse with all clear.
        *(
            (
                [command, "--warehouse", "typo/wh"],
                2,
                "/typo/wh: it has no load log (a wrong --warehouse or ETL_WAREHOUSE_URI, or no run yet?)",
            )
            for command in ("status", "approve", "maintain")
        ),
        (
            ["approve", "x.csv", "--reason", "Gotland did not report", "--warehouse", "typo/wh"],
            2,
            "/typo/wh: it has no load log",
        ),
    ],
)
def test_bad_configuration_is_one_line_without_traceback(args, code, message, tmp_path):
    out = etl(*args, cwd=tmp_path)
    assert out.returncode == code
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")


def test_unknown_command_is_a_usage_error():
    out = etl("fly")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_docs_are_generated_from_the_registry(tmp_path):
    out = etl("docs", "--out", str(tmp_path / "tables.md"))
    assert out.returncode == 0 and out.stdout.splitlines()[0] == f"wrote {tmp_path / 'tables.md'}"
    text = (tmp_path / "tables.md").read_text()
    for table in ("dim_region", "population", "county_report", "ehealth_adoption", "ehealth_unit_daily"):
        assert f"## `{table}`" in text
    # Run again: nothing changed, nothing rewritten, and it says so (helper-29: "wrote" every time, the file's
    # modification time moving).
    before = (tmp_path / "tables.md").stat().st_mtime_ns
    again = etl("docs", "--out", str(tmp_path / "tables.md"))
    assert again.stdout.splitlines()[0] == f"{tmp_path / 'tables.md'}: up to date"
    assert (tmp_path / "tables.md").stat().st_mtime_ns == before


def test_committed_docs_are_up_to_date():
    from etl import schemas

    assert (ROOT / "docs" / "tables.md").read_text(encoding="utf-8") == schemas.render_markdown() + "\n", (
        "docs/tables.md is stale: run `make docs`"
    )


def test_the_generated_sections_of_the_docs_follow_the_declarations(tmp_path):
    """Issue 26 §1: the contract's field and export lists come from the declarations, and say when stale."""
    import shutil

    from etl import generated_docs
    from etl.errors import ConfigError
    from etl.sources import county_template as tpl

    assert generated_docs.stale(ROOT) == [], "the docs' generated sections are stale: run `make docs`"
    contract = (ROOT / "docs" / "input-formats.md").read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "county-report-guide.md").read_text(encoding="utf-8")
    for field in tpl.REPORT_FIELDS:
        assert f"| {field.label} | {field.meaning} |" in contract and f"| {field.label} |" in guide
    # A hand edit inside a generated section is found stale; `etl docs` puts the declaration back.
    for name in generated_docs.SECTIONS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    edited = contract.replace("| Uppgiftsväxling |", "| Uppgiftsväxlingen |")
    (tmp_path / "docs" / "input-formats.md").write_text(edited, encoding="utf-8")
    assert generated_docs.stale(tmp_path) == ["docs/input-formats.md"]
    assert generated_docs.write(tmp_path) == [tmp_path / "docs" / "input-formats.md"]  # only what changed
    assert (tmp_path / "docs" / "input-formats.md").read_text(encoding="utf-8") == contract
    assert generated_docs.write(tmp_path) == []  # current: nothing rewritten
    # Markers removed: said, not silently skipped.
    (tmp_path / "docs" / "county-report-guide.md").write_text(
        guide.replace("<!-- end generated", "<!-- end"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="county-report-fields, county-report-json not found"):
        generated_docs.stale(tmp_path)


def test_run_all_carries_on_past_a_failing_pipeline_and_exits_1_naming_it(tmp_path):
    from etl.sample import reference as reference_sample

    landing, wh = tmp_path / "l", tmp_path / "wh"
    reference_sample.write(landing, 2016, 2025, units=1, unit_months=0, seed=1)
    (landing / "county_reports").mkdir(exist_ok=True)
    (landing / "county_reports" / "gone_2017.json").symlink_to(tmp_path / "nowhere.json")  # county-reports fails
    out = etl(
        "run", "all", "--landing", str(landing), "--warehouse", str(wh), "--kolada-kpis", "", "--offline-snapshot"
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "county-reports: failed in" in out.stderr and "'gone_2017.json' is a symbolic link" in out.stderr
    assert out.stderr.strip().splitlines()[-1] == "error: 1 of 4 pipelines failed: county-reports (reasons above)"
    # The pipelines after it still ran: e-health (no files here) and the follow-up mart.
    assert "ehealth-adoption: nothing_new in" in out.stdout and "followup: published in" in out.stdout


# ---------------------------------------------------------------- credentials (issue 13 §5)

SECRET = "s3cr3t-Pa55"


def test_credentials_in_a_landing_uri_never_reach_stderr_or_stdout(tmp_path):
    # A landing URI with userinfo and presigned-style parameters: refused (a store takes no query string,
    # issue 22 §5), and the line naming it shows where, without the secrets, with and without --debug.
    landing = f"http://etl-user:{SECRET}@127.0.0.1:9/landing?X-Amz-Signature={SECRET}x&token={SECRET}y"
    for extra in ((), ("--debug",)):
        out = etl(*extra, "run", "county-reports", "--landing", landing, "--warehouse", str(tmp_path / "wh"))
        assert out.returncode == 2 and SECRET not in out.stdout + out.stderr
        assert "landing URI 'http://***@127.0.0.1:9/landing?X-Amz-Signature=***&token=***' holds a query" in out.stderr
    # Without the query, the log line naming the landing shows where, without the password.
    out = etl(
        "run",
        "county-reports",
        "--landing",
        f"http://etl-user:{SECRET}@127.0.0.1:9/landing",
        "--warehouse",
        str(tmp_path / "wh"),
    )
    assert SECRET not in out.stdout + out.stderr
    assert "landing http://***@127.0.0.1:9/landing" in out.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_the_error_line_and_the_debug_traceback_are_redacted(monkeypatch, capsys, debug):
    from etl import cli
    from etl.errors import EtlError

    def boom(args):
        raise EtlError(f"cannot read s3://AKIA:{SECRET}@bucket/wh?X-Amz-Security-Token={SECRET}")

    monkeypatch.setitem(cli.COMMANDS, "status", boom)
    code = cli.main([*(["--debug"] if debug else []), "status", "--warehouse", "wh"])
    err = capsys.readouterr().err
    assert code == 1 and SECRET not in err
    assert "cannot read s3://***@bucket/wh?X-Amz-Security-Token=***" in err
    assert ("Traceback" in err) is debug


def test_the_log_filter_redacts_messages_arguments_and_tracebacks():
    import logging

    from etl.cli import RedactingFilter

    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "reading %s failed", (f"s3://AK:{SECRET}@b/k",), None)
    try:
        raise OSError(f"cannot open https://h/x?sig={SECRET}")
    except OSError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert SECRET not in text
    assert "reading s3://***@b/k failed" in text and "https://h/x?sig=***" in text


def test_an_option_a_pipeline_does_not_take_is_refused(tmp_path):
    """Issue 16: `run(settings, **_)` swallowed mistyped options; now each pipeline declares its own."""

    from etl import pipelines

    assert pipelines.options_of("ehealth-adoption") == ("period", "catch_up_late")
    assert pipelines.options_of("county-reports") == ()
    out = etl(
        "run",
        "county-reports",
        "--period",
        "2019-03",
        "--landing",
        str(tmp_path / "l"),
        "--warehouse",
        str(tmp_path / "w"),
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("error: run county-reports: --period not taken here (options: none)")


def test_a_long_run_shows_progress_without_a_line_per_month(tmp_path):
    """Issue 16: months done of how many and rows per second, throttled (ETL_PROGRESS_SECONDS)."""
    from etl.sample import ehealth as sample

    landing = tmp_path / "landing"
    sample.write(landing, 2017, 2018, units=0, unit_months=0, seed=3)
    out = run_etl(
        "run",
        "ehealth-adoption",
        "--landing",
        str(landing),
        "--warehouse",
        str(tmp_path / "w"),
        env={**SETTLED, "ETL_PROGRESS_SECONDS": "3600"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if "ehealth_adoption: " in line and " months (" in line]
    # The first and the last month only (an hour between lines): never one line per month.
    assert len(lines) == 2, lines
    assert "1/24 months (4 %), 2017-01" in lines[0] and "rows/s" in lines[0] and "s left" in lines[0]
    assert "24/24 months (100 %), 2018-12" in lines[1] and "s in all" in lines[1]


def test_an_out_of_the_wrong_kind_is_one_line(tmp_path):
    (tmp_path / "export.csv").write_text("not a folder\n")
    template = etl("template", "--out", str(tmp_path), cwd=tmp_path)
    assert template.returncode == 2 and template.stderr.strip().splitlines() == [
        f"error: --out {str(tmp_path)!r} is a folder: give the file to write, e.g. {str(tmp_path / 'blank.xlsx')!r}"
    ]
    sample = etl("sample", "--out", "export.csv", "--years", "2019-2019", cwd=tmp_path)
    assert sample.returncode == 2 and sample.stderr.strip().splitlines() == [
        "error: --out 'export.csv' is a file: give the landing folder to write into"
    ]


def test_a_warehouse_or_landing_that_is_a_file_is_one_line_before_anything_runs(tmp_path):
    (tmp_path / "export.csv").write_text("not a folder\n")
    for flag in ("--warehouse", "--landing"):
        for place in ("export.csv", "export.csv/wh"):
            out = etl("run", "ehealth-adoption", flag, place, cwd=tmp_path)
            name = "warehouse URI" if flag == "--warehouse" else "landing URI"
            assert out.returncode == 2, out.stderr
            assert out.stderr.strip().splitlines() == [
                f"error: {name} {str(tmp_path / place)!r}: {str(tmp_path / 'export.csv')!r} is a file, not a folder"
            ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-03-31", "2026-03-31T23:59:59.999999+00:00"),  # a date: the end of that day, UTC
        ("20260331", "2026-03-31T23:59:59.999999+00:00"),  # the same date in ISO's basic form
        ("2026-03-31T12:00:00", "2026-03-31T12:00:00+00:00"),  # no offset: UTC
        ("2026-03-31T12:00:00+05:00", "2026-03-31T07:00:00+00:00"),  # an offset: the same moment, in UTC
    ],
)
def test_as_of_is_the_moment_meant_and_in_utc(text, expected):
    """Every line that states the moment says UTC: a timestamp with an offset is turned to UTC, not relabelled."""
    from etl.config import parse_as_of

    now = dt.datetime(2026, 12, 7, 22, 0, tzinfo=dt.UTC)
    when = parse_as_of(text, now=now)
    assert when.isoformat() == expected and when.utcoffset() == dt.timedelta(0)


def test_check_against_a_place_with_no_load_log_says_so(tmp_path):
    """'would load (new)' is true of an empty place, and a mistyped --warehouse reads the same: a note says which."""
    out = etl(
        "sample",
        "--out",
        str(tmp_path / "l"),
        "--years",
        "2019-2019",
        "--units",
        "1",
        "--unit-months",
        "0",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    export = tmp_path / "l" / "ehealth" / "journalen_2019-03.csv"
    checked = etl("check", str(export), "--warehouse", "typo/wh", cwd=tmp_path)
    assert checked.returncode == 0 and "would load" in checked.stdout
    assert checked.stderr.strip().splitlines()[-1] == (
        f"note: nothing is published in {tmp_path / 'typo' / 'wh'} (no load log): judged as for a first delivery "
        "(a wrong --warehouse or ETL_WAREHOUSE_URI?)"
    )
