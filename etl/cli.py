"""``python -m etl``: run pipelines, make sample data, show status, write docs.

Exit 0 on success. On bad configuration or input: exit 2 (usage/config) or
1 (a run failed) with one clear line on stderr; a traceback only with
``--debug``. ``run`` exits 3 when it did everything else but found files
still being written (modified less than ``ETL_LANDING_SETTLE_SECONDS`` ago):
they are not judged, and a line on stderr names them and says when to run
again (:data:`EXIT_ARRIVING`).

Nothing the CLI shows carries credentials: a URI given on the command line
or in the environment (``--landing http://user:password@host/…``, a
presigned S3 URL, an API base with a token) may reach an exception message
or a log line from any library. :class:`RedactingFilter`, installed on the
log handlers, passes every log record (message, traceback) through
:func:`etl.privacy.redact_uri`, and so does every line the CLI prints
itself — the one-line error, ``--debug``'s traceback, a run's report.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path

from etl import native_panics
from etl.errors import ConfigError, EtlError, one_line
from etl.privacy import redact_uri

log = logging.getLogger("etl")

SAMPLE_MODULES = ("etl.sample.reference", "etl.sample.county_reports", "etl.sample.ehealth")
# `run` judged everything but files still being written: no clean run, and no failure either (run again later).
EXIT_ARRIVING = 3


class RedactingFilter(logging.Filter):
    """Redacts credentials in URIs from each record's message, traceback and stack (see :func:`redact_uri`).

    A handler filter, so it sees the records of every logger (httpx's
    "HTTP Request: …", fsspec, pyarrow errors) that reach the CLI's output.
    The message is rendered here, once, and the redacted text replaces
    ``msg``/``args``; the traceback is formatted and cached in ``exc_text``,
    which formatters use as it is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as it would
            return True
        record.msg, record.args = redact_uri(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact_uri(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_uri(record.stack_info)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactingFilter` on every handler of ``logger`` (the root logger), once each."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def say(text: object, *, err: bool = False) -> None:
    """Print one line of the CLI's own output, credentials redacted."""
    print(redact_uri(str(text)), file=sys.stderr if err else sys.stdout)


def _version() -> str:
    """The installed distribution's version (the wheel the image runs); the source's when not installed."""
    from importlib import metadata

    from etl import __version__

    try:
        return metadata.version("etl-followup")
    except metadata.PackageNotFoundError:
        return f"{__version__} (not installed)"


def _parser() -> argparse.ArgumentParser:
    # The console script `etl` (pyproject.toml) and `python -m etl` are the same program.
    # Size: one argparse declaration per command and option, read top to bottom; no logic.
    prog = "etl" if Path(sys.argv[0]).name == "etl" else "python -m etl"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="the installed library's version"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def locations(p: argparse.ArgumentParser, landing: bool = True) -> None:
        if landing:
            p.add_argument("--landing", help="landing URI (path or fsspec URL); env ETL_LANDING_URI; default ./landing")
        p.add_argument("--warehouse", help="warehouse URI; env ETL_WAREHOUSE_URI; default ./warehouse")

    run = sub.add_parser(
        "run", help="run a pipeline (or all, in dependency order); exit 3 if files were still arriving, not judged"
    )
    run.add_argument("pipeline", choices=["reference", "county-reports", "ehealth-adoption", "followup", "all"])
    locations(run)
    run.add_argument("--period", help="month YYYY-MM (ehealth-adoption); default: every month found")
    run.add_argument("--year", type=int, help="year (reference: population years up to it)")
    run.add_argument("--kolada-kpis", help="comma-separated Kolada KPI ids ('' for none); env ETL_KOLADA_KPIS")
    run.add_argument("--scb-url", help="SCB PxWeb v2 base URL; env ETL_SCB_BASE_URL")
    run.add_argument("--kolada-url", help="Kolada v3 base URL; env ETL_KOLADA_BASE_URL")
    run.add_argument(
        "--offline-snapshot",
        action="store_true",
        help="reference: read the bundled API snapshot from <landing>/api_snapshot instead of HTTP",
    )

    sample = sub.add_parser("sample", help="write synthetic sample input in the exact input formats")
    sample.add_argument("--out", required=True, help="folder (landing root) to write into")
    sample.add_argument("--years", default="2016-2025", help="year range, e.g. 2016-2025")
    sample.add_argument(
        "--units",
        type=int,
        default=4000,
        help="care units in the last unit-level file (the exports' connected units, scaled to match)",
    )
    sample.add_argument(
        "--unit-months", type=int, default=12, help="months (counting back from the last) that get unit-level files"
    )
    sample.add_argument("--seed", type=int, default=2016)

    report = sub.add_parser("report", help="rebuild the HTML report and workbook from the table versions of a date")
    report.add_argument(
        "--as-of",
        required=True,
        metavar="DATE",
        help="YYYY-MM-DD (end of that day, UTC) or an ISO timestamp: the tables as published by then (not a data "
        "year; today for a fresh demo)",
    )
    report.add_argument(
        "--out",
        help="folder to write the report and workbook into (default: <warehouse>/exports/as-of/, beside the current ones)",
    )
    locations(report, landing=True)

    maintain = sub.add_parser("maintain", help="compact, checkpoint and vacuum every table (env ETL_RETENTION_DAYS)")
    locations(maintain, landing=False)

    check = sub.add_parser(
        "check", help="judge delivery files as a run would, without loading them (exit 1 if any would not load whole)"
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="monthly exports and/or county reports (paths or URIs)")
    locations(check, landing=False)

    approve = sub.add_parser(
        "approve",
        help="list blocked deliveries, or approve/reject publishing one as it is (who and why to the load log)",
    )
    approve.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="the blocked file's name as the failure names it; omit to list what is blocked now",
    )
    approve.add_argument("--reason", help="why (at least 10 characters); required with FILE")
    approve.add_argument("--by", help="who decides (default: the login name)")
    approve.add_argument("--reject", action="store_true", help="reject: the block stays (recorded all the same)")
    locations(approve)

    status = sub.add_parser("status", help="tables, row counts, last loads and failures")
    locations(status, landing=False)

    docs = sub.add_parser(
        "docs",
        help="write docs/tables.md from the schema registry, and the field and export lists of the docs beside it",
    )
    docs.add_argument(
        "--out",
        default=str(Path("docs") / "tables.md"),
        help="file to write (default: docs/tables.md under the current folder, the checkout's root under `make docs`)",
    )

    template = sub.add_parser("template", help="write the blank county report template (.xlsx)")
    template.add_argument("--out", required=True)
    return parser


def _years(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{4})\s*(?:-\s*(\d{4}))?\s*", text or "")
    if not match:
        raise ConfigError(f"--years must look like 2016-2025, not {text!r}")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if not 2000 <= first <= last <= 2100:
        raise ConfigError(f"--years out of range: {text!r}")
    return first, last


def _settings(args):
    from etl.config import Settings

    return Settings.resolve(
        landing=getattr(args, "landing", None),
        warehouse=getattr(args, "warehouse", None),
        scb_base_url=getattr(args, "scb_url", None),
        kolada_base_url=getattr(args, "kolada_url", None),
        kolada_kpis=getattr(args, "kolada_kpis", None),
    )


def cmd_run(args) -> int:
    from etl import pipelines
    from etl.config import check_month_begun, check_year_begun

    settings = _settings(args)
    if args.period and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.period):
        raise ConfigError(f"--period must be YYYY-MM, not {args.period!r}")
    if args.period:
        check_month_begun(args.period)
    if args.year is not None:
        check_year_begun(args.year)
    names = pipelines.ORDER if args.pipeline == "all" else (args.pipeline,)
    given = {
        k: v
        for k, v in {"period": args.period, "year": args.year, "offline_snapshot": args.offline_snapshot}.items()
        if v not in (None, False)
    }
    # Each pipeline gets the options it takes; an option no pipeline of the run takes is a mistake.
    taken = {name: {k: v for k, v in given.items() if k in pipelines.options_of(name)} for name in names}
    unused = set(given) - {k for options in taken.values() for k in options}
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(unused))
        takes = (
            ", ".join(
                "--" + k.replace("_", "-")
                for name in names
                for k in pipelines.options_of(name)
                if k in ("period", "year", "offline_snapshot")
            )
            or "none"
        )
        raise ConfigError(f"run {args.pipeline}: {flags} not taken here (options: {takes})")
    failed: list[str] = []
    arriving: list[str] = []  # per pipeline, the files still being written it would judge: not judged now
    for name in names:
        module = pipelines.get(name)
        started = time.monotonic()
        log.info("running %s (landing %s, warehouse %s)", name, settings.landing_uri, settings.warehouse_uri)
        try:
            report = module.run(settings, **taken[name])
        except ConfigError:
            raise  # the same settings would fail every pipeline
        except EtlError as exc:
            if len(names) == 1:
                raise
            # `run all`: like the DAGs, one pipeline's failure does not keep the others from running.
            say(f"{name}: failed in {time.monotonic() - started:.1f} s: {exc}", err=True)
            failed.append(name)
            continue
        for line in report.lines() or [f"{name}: nothing new"]:
            say(line)
        say(f"{name}: {report.outcome} in {time.monotonic() - started:.1f} s (batch {report.batch_id})")
        if report.arriving:
            arriving.append(_arriving_line(name, report))
    for line in arriving:  # last on stderr, after every pipeline's own lines (the README's promise)
        say(line, err=True)
    if failed:
        raise EtlError(f"{len(failed)} of {len(names)} pipelines failed: {', '.join(failed)} (reasons above)")
    return EXIT_ARRIVING if arriving else 0


def _arriving_line(name: str, report) -> str:
    """``county_reports: 2 file(s) still arriving, not judged: 'a.xlsx', 'b.json'; run again after … UTC``."""
    import datetime as dt

    shown = ", ".join(map(repr, report.arriving[:10])) + (
        f" and {len(report.arriving) - 10} more" if len(report.arriving) > 10 else ""
    )
    after = dt.datetime.fromtimestamp(report.settled_by or time.time(), dt.UTC) + dt.timedelta(seconds=1)
    return (
        f"{name}: {len(report.arriving)} file(s) still arriving, not judged: {shown}; "
        f"run again after {after:%Y-%m-%d %H:%M:%S} UTC"
    )


def cmd_sample(args) -> int:
    import tempfile

    from etl.sample import landing as sample_landing

    first, last = _years(args.years)
    if args.units < 1:
        raise ConfigError("--units must be at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a file: give the landing folder to write into")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    # Written aside first, so that a landing holding real deliveries is refused before anything in it changes.
    with tempfile.TemporaryDirectory(prefix="etl-sample-") as staging:
        said = []
        for module_name in SAMPLE_MODULES:
            module = importlib.import_module(module_name)
            written = module.write(
                Path(staging), first, last, units=args.units, unit_months=args.unit_months, seed=args.seed
            )
            said.append(f"{module_name.rsplit('.', 1)[-1]}: {written} file(s) under {out}")  # deliveries or answers
        moved = sample_landing.move_in(Path(staging), out)
    for line in said:
        say(line)
    _as_delivered_earlier(moved, started)
    return 0


def _as_delivered_earlier(written: list[Path], since: float, hours: float = 1.0) -> None:
    """Date the files just written an hour back, order kept: a run right after ``sample`` takes them.

    Runs leave a file modified less than ``ETL_LANDING_SETTLE_SECONDS`` ago
    for the next run (it may still be being written); sample files are
    complete when written, so they are stamped as delivered earlier. Only the
    sample's own files: another file being written beside them stays as it is.
    """
    shift = hours * 3600
    for path in written:
        stat = path.stat()
        if stat.st_mtime >= since - 1:
            os.utime(path, (stat.st_atime - shift, stat.st_mtime - shift))


def cmd_report(args) -> int:
    from etl import storage
    from etl.config import check_store_location, parse_as_of
    from etl.pipelines import followup

    when = parse_as_of(args.as_of)  # a date still to come is refused: no table has a version from then
    if args.out:
        check_store_location(args.out, "--out")  # a folder or prefix, as the warehouse: no '?' or '#'
    settings = _settings(args)
    out = args.out or storage.join(settings.warehouse_uri, "exports", "as-of")
    for kind, uri in followup.build_as_of(settings, when, out).items():
        say(f"{kind}: {uri}")
    return 0


def cmd_maintain(args) -> int:
    from etl import maintenance
    from etl.publish import require_load_log

    retention = maintenance.retention_days()
    warehouse = _settings(args).warehouse_uri
    require_load_log(warehouse)  # typed by a person: a wrong --warehouse must not read "0 table(s) maintained"
    results = maintenance.maintain(warehouse, retention)
    for result in results:
        say(result.line())
    say(f"{len(results)} table(s) maintained; files older than {retention} day(s) that no version needs removed")
    return 0


def cmd_check(args) -> int:
    """Exit 0 when every row of every file would load (or is already published); 1 otherwise."""
    from etl import check, publish

    settings = _settings(args)
    verdicts = check.check(args.files, settings)
    for line in check.render(verdicts):
        say(line)
    if not publish.has_load_log(settings.warehouse_uri):
        # Judged against nothing published: true of that place, but a mistyped --warehouse reads the same.
        say(
            f"note: nothing is published in {redact_uri(settings.warehouse_uri)} (no load log): judged as for a "
            "first delivery (a wrong --warehouse or ETL_WAREHOUSE_URI?)",
            err=True,
        )
    return 0 if all(v.ok for v in verdicts) else 1


def cmd_approve(args) -> int:
    """Without FILE: what is blocked now. With FILE: the decision recorded, and on approval the file published."""
    import getpass

    from etl import approvals, publish
    from etl.pipelines import approved

    settings = _settings(args)
    if not args.file:
        given = [
            flag for flag, value in (("--reason", args.reason), ("--by", args.by), ("--reject", args.reject)) if value
        ]
        if given:
            # Without FILE nothing is decided: a flag that says otherwise must not be ignored.
            raise ConfigError(
                f"approve: {', '.join(given)} need(s) FILE, the blocked file to decide on; nothing recorded"
            )
        publish.require_load_log(settings.warehouse_uri)  # a wrong --warehouse must not read "0 blocked"
        blocked = approvals.blocked_now(settings.warehouse_uri)
        for b in blocked:
            decided = f" [{b.decision.note()}]" if b.decision else ""
            say(
                f"{b.name} ({b.pipeline}, blocked {b.blocked_at:%Y-%m-%d %H:%M} UTC"
                f"{', approvable' if b.approvable else ', replace the file'}){decided}: {b.message}"
            )
        say(f"{len(blocked)} delivery(ies) blocked")
        return 0
    if not args.reason:
        raise ConfigError("approve FILE needs --reason (who reads the load log later must see why)")
    publish.require_load_log(settings.warehouse_uri)
    delivery = approvals.find(settings.warehouse_uri, args.file)
    decision, report = approved.decide(settings, delivery, not args.reject, args.by or getpass.getuser(), args.reason)
    say(f"{delivery.name}: {decision.note()}")
    if report is None:
        say(f"{delivery.name}: stays blocked until a new file replaces it")
        return 0
    for line in report.lines():
        say(line)
    return 0


def cmd_status(args) -> int:
    from etl import status
    from etl.publish import require_load_log

    settings = _settings(args)
    require_load_log(settings.warehouse_uri)  # a wrong --warehouse must not read "blocked now: 0, failures: 0"
    say(status.render(settings.warehouse_uri))
    return 0


def cmd_docs(args) -> int:
    """docs/tables.md whole, then the generated sections of the docs and queries of the same checkout
    (:mod:`etl.generated_docs`)."""
    from etl import generated_docs, schemas

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = schemas.render_markdown() + "\n"
    # Written only when it changes (a file rewritten with the same text would look changed to make and editors).
    if out.is_file() and out.read_text(encoding="utf-8") == text:
        print(f"{args.out}: up to date")
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    root = out.resolve().parents[1]  # docs/tables.md in a checkout: the other generated files are under its root
    if all((root / name).is_file() for name in generated_docs.SECTIONS):
        changed = generated_docs.write(root)
        for name in generated_docs.SECTIONS:
            path = root / name
            shown = os.path.relpath(path)
            print(f"wrote the generated sections of {shown}" if path in changed else f"{shown}: up to date")
    return 0


def cmd_template(args) -> int:
    from etl.sources import county_template

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a folder: give the file to write, e.g. {str(out / 'blank.xlsx')!r}")
    county_template.write_blank_template(out)
    print(f"wrote {args.out}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "sample": cmd_sample,
    "check": cmd_check,
    "approve": cmd_approve,
    "report": cmd_report,
    "maintain": cmd_maintain,
    "status": cmd_status,
    "docs": cmd_docs,
    "template": cmd_template,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_redaction()
    native_panics.install()  # a delta-rs worker thread's panic text is no line for a person (see the module)
    for noisy in ("great_expectations", "fsspec", "httpx", "httpcore", "filelock"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.debug else logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        return _fail(exc, 2, args.debug)
    except EtlError as exc:
        return _fail(exc, 1, args.debug)
    except KeyboardInterrupt:
        say("error: interrupted", err=True)
        return 130
    except BrokenPipeError:
        # The reader went away (`etl check … | head -3`): what it read is all it wanted. Python's own
        # recipe: point stdout at devnull so that flushing it at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a command killed by SIGPIPE (128 + 13): no line on stderr
    except Exception as exc:  # an unexpected bug: still one line unless --debug
        from etl.storage import store_error

        known = store_error(exc)  # a store refusing or unreachable is no bug: say what to fix
        if known is not None:
            code = 2 if isinstance(known, ConfigError) else 1
            return _fail(exc if args.debug else known, code, args.debug)  # --debug: the original traceback
        return _fail(exc, 1, args.debug, unexpected=True)


def _fail(exc: BaseException, code: int, debug: bool, unexpected: bool = False) -> int:
    """The one error line (or, with ``--debug``, the traceback), redacted; the exit code."""
    if debug:
        # Printed here rather than re-raised, so the traceback passes the same redaction.
        say("".join(traceback.format_exception(exc)).rstrip("\n"), err=True)
        return code
    # one_line: a file name or sender text inside the message never splits the line or drives the terminal.
    if unexpected:
        say(
            f"error: unexpected {type(exc).__name__}: {one_line(str(exc))} (rerun with --debug for the traceback)",
            err=True,
        )
    else:
        say(f"error: {one_line(str(exc))}", err=True)
    return code
