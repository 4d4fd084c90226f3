"""What every pipeline does between parsing and publishing.

Parsers hand over rows with their origin (``source_file``, ``row_number``,
``raw``) plus the rows they rejected; :func:`checked_batch` validates the
rows with the table's GX suite, moves row-level failures to quarantine and
returns a :class:`~etl.publish.TableBatch` whose accounting adds up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from etl import expectation_suites, migrations, privacy, publish, schemas, validation
from etl.errors import BadInput, EtlError, one_line

log = logging.getLogger(__name__)

ORIGIN = ("source_file", "row_number", "raw")


@dataclass
class RunReport:
    pipeline: str
    batch_id: str
    results: list[publish.PublishResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # Files this run would judge but found still being written (names, NFC), and when (epoch seconds) every
    # one of them will have been left alone for the settle interval unless written again: the run has not
    # judged them, so it is no clean run (the DAG task waits for them, the CLI exits 3).
    arriving: list[str] = field(default_factory=list)
    settled_by: float | None = None

    @property
    def outcome(self) -> str:
        if not self.results:
            return "nothing_new"
        return "published" if any(r.outcome == "published" for r in self.results) else "unchanged"

    def lines(self) -> list[str]:
        return [*(r.summary() for r in self.results), *self.messages]

    def to_dict(self) -> dict:
        """Small and JSON-safe: what an Airflow task returns through XCom."""
        return {
            "pipeline": self.pipeline,
            "batch_id": self.batch_id,
            "outcome": self.outcome,
            "tables": {
                r.name: {
                    "outcome": r.outcome,
                    "rows_in": r.rows_in,
                    "rows_loaded": r.rows_loaded,
                    "rows_quarantined": r.rows_quarantined,
                    "table_rows": r.table_rows,
                    "warnings": len(r.warnings),
                }
                for r in self.results
            },
            "messages": self.messages,
        }


def start_run(warehouse_uri: str, pipeline: str, batch_id: str | None = None) -> RunReport:
    """A run's report (under ``batch_id`` or a new one), once the warehouse is at the registry's schemas.

    :func:`etl.migrations.ensure_current` first — columns a declaration gained are added, pending
    rewrites applied, each with its load-log row and a line in the report — so that a warehouse of an
    older version is read and written in today's shape by every pipeline.
    """
    report = RunReport(pipeline, batch_id or publish.new_batch_id())
    report.messages += migrations.ensure_current(warehouse_uri)
    return report


class Progress:
    """Progress of long work as log lines: the first item, then at most one every ``every`` seconds, and the last.

    ``"ehealth_adoption: 37/120 months (31 %), 2017-01, 45 210 rows, 1 540 rows/s, about 50 s left"``:
    what a person watching ``make demo``, the CLI or a task log needs, without one line per item
    flooding CI logs (work that counts no rows — files parsed, reports written — leaves the rows out). ``every`` defaults to ``ETL_PROGRESS_SECONDS`` (5 s).
    """

    def __init__(self, what: str, total: int, unit: str = "items", every: float | None = None):
        import os
        import time

        self.what, self.total, self.unit = what, total, unit
        self.every = float(os.environ.get("ETL_PROGRESS_SECONDS", "5")) if every is None else every
        self.done = self.rows = 0
        self._clock = time.monotonic
        self._started = self._clock()
        self._last = float("-inf")  # the first item is always shown: a person sees that work has started

    def step(self, rows: int = 0, note: str = "") -> str | None:
        """One item done (``rows`` rows in it); returns the line logged, or None when throttled."""
        self.done += 1
        self.rows += rows
        now = self._clock()
        if now - self._last < self.every and self.done < self.total:
            return None
        self._last = now
        elapsed = max(now - self._started, 1e-9)
        left = (self.total - self.done) * elapsed / self.done
        line = (
            f"{self.what}: {self.done}/{self.total} {self.unit} ({100 * self.done // max(self.total, 1)} %)"
            + (f", {note}" if note else "")
            + (f", {self.rows:,} rows, {self.rows / elapsed:,.0f} rows/s" if self.rows else "")
            + (f", about {left:.0f} s left" if self.done < self.total else f", {elapsed:.1f} s in all")
        )
        log.info("%s", line)
        return line


def rejected_frame(rejected: list[dict]):
    """Quarantine rows (dicts with source_file, row_number, raw, reason) → DataFrame."""
    import pandas as pd

    columns = ["source_file", "row_number", "raw", "reason", "source_sha256", "rows_held"]
    frame = pd.DataFrame(rejected, columns=columns)
    frame["rows_held"] = frame["rows_held"].fillna(1).astype("int64")  # an entry stands for one row unless it says more
    return frame


def numbered(rows):
    """``rows`` (a DataFrame) renumbered 0…n-1 with the ``_row`` column validation reports failing rows by."""
    rows = rows.reset_index(drop=True).copy()
    rows[expectation_suites.ROW_ID] = range(len(rows))
    return rows


def checked_batch(
    table: str,
    rows,
    rejected: list[dict],
    rows_in: int,
    *,
    warehouse_uri: str,
    batch_id: str,
    replace_keys: Iterable[tuple] = (),
    quarantine_sources: Iterable[str] = (),
    extra_warnings: Iterable[str] = (),
    prevalidated: validation.Validation | None = None,
) -> publish.TableBatch:
    """Validate ``rows`` and split them into what is published and what is quarantined.

    ``prevalidated``: the result of ``numbered(rows)`` already validated with
    others (:func:`etl.validation.validate_many`); it is used as is and not
    stored here (the caller stores it in its step, :func:`etl.validation.keep`).
    Raises :class:`ValidationFailed` when a batch-level critical expectation fails.
    """
    import pandas as pd

    schema = schemas.get(table)
    rows = numbered(rows)
    result = prevalidated or validation.validate(table, rows, warehouse_uri=warehouse_uri, batch_id=batch_id)
    result.raise_if_blocked()
    failed = rows[expectation_suites.ROW_ID].isin(result.failed_rows.keys())
    quarantined = rows.loc[failed, list(ORIGIN) + [expectation_suites.ROW_ID]].copy()
    quarantined["reason"] = quarantined[expectation_suites.ROW_ID].map(lambda r: "; ".join(result.failed_rows[r]))
    quarantined["rows_held"] = 1
    quarantine = pd.concat(
        [rejected_frame(rejected), quarantined.drop(columns=[expectation_suites.ROW_ID])], ignore_index=True
    )
    quarantine["rows_held"] = quarantine["rows_held"].fillna(1).astype("int64")
    keep = [c for c in schema.column_names if c in rows.columns]
    missing = [c.name for c in schema.columns if c.name not in rows.columns and not c.nullable]
    if missing:
        raise EtlError(f"{table}: parser produced no column(s) {missing}")
    good = rows.loc[~failed, keep].reset_index(drop=True)
    return publish.TableBatch(
        table=table,
        rows=good,
        quarantine=quarantine,
        rows_in=rows_in,
        merge_keys=schema.replaced_by,  # the table's declared merge key
        replace_keys=list(replace_keys),
        quarantine_sources=list(quarantine_sources),
        warnings=[*extra_warnings, *result.warnings],
        validation=result.outcome,
    )


def fold_quarantine_by_line(batch: publish.TableBatch) -> publish.TableBatch:
    """Make the quarantine count long rows, as rows_in does: one entry per input line (long-format sources).

    A line quarantined by an expectation arrives as one entry per long row
    (one per metric) sharing that line number. The publisher keeps one
    quarantine row per (file, line) — taking the largest ``rows_held`` — so
    the entries are folded here into one per line whose ``rows_held`` is the
    number of long rows it stands for; left apart, the stored quarantine
    would say 1 where the load log counts 3 (journal) or 5 (web booking).
    """
    quarantine = batch.quarantine
    if not len(quarantine):
        return batch
    quarantine = quarantine.copy()
    quarantine["rows_held"] = quarantine["rows_held"].fillna(1) if "rows_held" in quarantine.columns else 1
    quarantine["rows_held"] = quarantine["rows_held"].astype("int64")

    def join_reasons(values) -> str:
        return "; ".join(dict.fromkeys(str(v) for v in values if isinstance(v, str)))

    how = {
        column: "sum" if column == "rows_held" else join_reasons if column == "reason" else "first"
        for column in quarantine.columns
        if column not in ("source_file", "row_number")
    }
    batch.quarantine = quarantine.groupby(["source_file", "row_number"], as_index=False, sort=False).agg(how)
    return batch


def combine(parts: list[publish.TableBatch]) -> publish.TableBatch | None:
    """One batch of one table from per-file batches (validated apart so that one file can be blocked alone)."""
    import pandas as pd

    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    order = ("failed", "warning", "passed")
    return publish.TableBatch(
        table=first.table,
        rows=pd.concat([p.rows for p in parts], ignore_index=True),
        quarantine=pd.concat([p.quarantine for p in parts if p.quarantine is not None], ignore_index=True),
        rows_in=sum(p.rows_in for p in parts),
        merge_keys=first.merge_keys,
        replace_keys=list(dict.fromkeys(k for p in parts for k in p.replace_keys)),
        quarantine_sources=list(dict.fromkeys(s for p in parts for s in p.quarantine_sources)),
        warnings=[w for p in parts for w in p.warnings],
        validation=min((p.validation for p in parts), key=lambda v: order.index(v) if v in order else 0),
        source_keys={s: k for p in parts for s, k in p.source_keys.items()},
        refused={s: r for p in parts for s, r in p.refused.items()},
        unstated={s for p in parts for s in p.unstated},
        doubts={s: d for p in parts for s, d in p.doubts.items()},
    )


def record_blocked(warehouse_uri: str, pipeline: str, batch_id: str, source, message: str, rows_in: int) -> None:
    """A blocked delivery's load-log row: its rows were held back, none loaded, none quarantined.

    ``outcome`` is ``blocked``: the delivery is not committed, so every later
    run tries it again (and fails naming it) until a good file replaces it
    or a person approves it (:mod:`etl.approvals`; the hint that says so
    ends the message and survives shortening).
    """
    from etl.approvals import HINT

    tail = f"; {HINT}" if message.endswith(HINT) else ""
    if len(message) > 2000:
        message = message[: 2000 - len(tail) - 2] + " …" + tail
    publish.append_load_log(
        warehouse_uri,
        publish.LoadLogEntry(
            pipeline,
            batch_id,
            "blocked",
            "failed",
            publish.utcnow(),
            sources=[source],
            rows_in=rows_in,
            message=message,
        ),
    )


def record_failure(
    warehouse_uri: str, pipeline: str, batch_id: str, table: str | None, sources, message: str, rows_in: int = 0
) -> None:
    """A failed batch still leaves its trace in the load log."""
    publish.append_load_log(
        warehouse_uri,
        publish.LoadLogEntry(
            pipeline, batch_id, "failed", "failed", publish.utcnow(), table, sources, rows_in, message=message[:2000]
        ),
    )


def records_unexpected_failures(pipeline: str) -> Callable[[Callable[..., RunReport]], Callable[..., RunReport]]:
    r"""Decorate a pipeline's ``run``: an error that is not one of the project's (a library's, a bug) still
    leaves a ``failed`` load-log row before it propagates, so ``etl status`` and the data-quality pages
    count the failed run instead of showing nothing. The row's message is one line, URIs redacted and
    personal data masked; the traceback stays with the caller (the task log). :class:`EtlError`\ s record
    their own rows where they happen and pass through untouched.
    """

    def decorate(run: Callable[..., RunReport]) -> Callable[..., RunReport]:
        @functools.wraps(run)
        def guarded(settings, *args, **kwargs) -> RunReport:
            try:
                return run(settings, *args, **kwargs)
            except EtlError:
                raise
            except Exception as exc:
                message = f"{pipeline}: unexpected {type(exc).__name__}: {one_line(str(exc))}"
                try:
                    record_failure(
                        settings.warehouse_uri, pipeline, publish.new_batch_id(), None, [], privacy.shareable(message)
                    )
                except Exception as unrecorded:  # noqa: BLE001 - the store itself may be what failed: the original matters
                    # A warning, one line: the error itself is the caller's one error line (a full disk is
                    # "no space left", once); its traceback stays with the caller (--debug, the task log).
                    log.warning(
                        "%s: the failure is not in the load log either: %s: %s",
                        pipeline,
                        type(unrecorded).__name__,
                        privacy.shareable(one_line(str(unrecorded))),
                    )
                raise

        return guarded

    return decorate


def record_skipped(warehouse_uri: str, report: RunReport, skipped: list[str]) -> str | None:
    """Landing entries that could not be taken in: a load-log row naming them; returns its message.

    Their rows are in no table and no quarantine, so a quiet success would be
    a silent loss; the failure row keeps them in view until someone renames
    or removes them.
    """
    if not skipped:
        return None
    message = f"{report.pipeline}: {len(skipped)} file(s) in landing not loaded (rename or remove them): " + "; ".join(
        skipped
    )
    record_failure(warehouse_uri, report.pipeline, report.batch_id, None, [], message)
    return message


def refuse_skipped(warehouse_uri: str, report: RunReport, skipped: list[str]) -> None:
    """What was loaded stands, but a run that skipped landing entries fails naming them."""
    message = record_skipped(warehouse_uri, report, skipped)
    if message:
        for line in report.lines():  # the raise would hide what the run did load
            log.info("%s", line)
        raise BadInput(message)


def record_nothing_new(warehouse_uri: str, pipeline: str, batch_id: str, message: str) -> None:
    publish.append_load_log(
        warehouse_uri,
        publish.LoadLogEntry(pipeline, batch_id, "nothing_new", "skipped", publish.utcnow(), message=message),
    )


def refresh_views(warehouse_uri: str, report: RunReport | None = None) -> None:
    """At the end of every run: ``followup.duckdb``'s views move to the current table versions.

    Every run changes at least the load log (a row per run), and maintenance
    rewrites files, so the views are rebuilt each time, not only after a
    publish. Until then they keep showing the versions they name, whole
    (their files stay until vacuum). A failure here is a warning, not a
    failed run: the tables are committed and the next run refreshes the views.
    On an object store too: DuckDB reads ``s3://`` with the httpfs extension
    shipped in the venv, never a download (:mod:`etl.marts.access`).
    """
    from etl.marts import access

    try:
        access.build_duckdb(warehouse_uri)
    except Exception as exc:  # noqa: BLE001 - the data is published; the catalogue is a convenience on top
        log.warning("could not refresh the analysts' views (%s): %s: %s", access.DUCKDB_FILE, type(exc).__name__, exc)


# --------------------------------------------------------------------------- a landing-fed run's intake


@dataclass
class Intake:
    """What a landing-fed run found under its prefix: the files ready to judge, the entries it cannot take
    in (``skipped``: named in a failed run), and the files still being written (``arriving``: judged once they
    have settled, see :attr:`RunReport.arriving`)."""

    landed: list
    skipped: list[str]
    arriving: list[str]
    arriving_names: set[str]


def take_in(settings, prefix: str, suffixes: tuple[str, ...], report: RunReport) -> Intake:
    """List ``<landing>/<prefix>/`` once (hash cache, settle interval: :func:`etl.storage.list_landed`).

    Entries that cannot be taken in are logged as warnings; files still
    arriving are logged and noted in ``report`` (its messages, and
    :attr:`RunReport.arriving` / ``settled_by``). Raises what listing raises
    (:class:`SourceUnavailable` when the landing cannot be read).
    """
    from etl import storage

    intake = Intake([], [], [], set())
    intake.landed = storage.list_landed(
        settings.landing_uri,
        prefix,
        suffixes,
        skipped=intake.skipped,
        hash_cache=storage.hash_cache_uri(settings.warehouse_uri, prefix),
        settle_seconds=settings.landing_settle_seconds,
        arriving=intake.arriving,
        arriving_names=intake.arriving_names,
    )
    for note in intake.skipped:
        log.warning("not loaded: %s", note)
    for note in intake.arriving:
        log.warning("not yet loaded: %s", note)
        report.messages.append(f"not yet loaded: {note}")
    if intake.arriving_names:
        import time

        report.arriving = sorted(intake.arriving_names)
        report.settled_by = time.time() + settings.landing_settle_seconds
    return intake


def last_committed(warehouse_uri: str, pipeline: str, delivery_of) -> dict[str, str]:
    """Delivery id → SHA-256 of the content last committed to *every* table it feeds, from the load log.

    ``delivery_of(uri)`` names the delivery of a source file and the tables
    it feeds (``(id, tables)``), or ``None``. A delivery whose tables last
    committed different contents (a run killed between two publishes) is
    left out, so it counts as pending. The load log is read once.
    """
    log_rows = (
        publish.read_load_log(warehouse_uri)
        .select(["pipeline", "outcome", "table_name", "source_files", "source_sha256", "started_at"])
        .to_pylist()
    )
    last: dict[str, dict[str, str]] = {}
    feeds: dict[str, tuple[str, ...]] = {}
    for row in sorted(log_rows, key=lambda r: r["started_at"]):
        if row["pipeline"] != pipeline or row["outcome"] not in {"published", "unchanged"}:
            continue
        for uri, sha in zip(row["source_files"] or [], row["source_sha256"] or [], strict=True):
            found = delivery_of(uri)
            if found is None or row["table_name"] not in found[1]:
                continue
            delivery, feeds[delivery] = found
            last.setdefault(delivery, {})[row["table_name"]] = sha
    out = {}
    for delivery, by_table in last.items():
        shas = set(by_table.values())
        if len(by_table) == len(feeds[delivery]) and len(shas) == 1:
            out[delivery] = shas.pop()
    return out
