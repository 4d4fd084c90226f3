"""Validation with Great Expectations: suites in ``expectations/``, a severity policy.

``expectations/<table>.json`` is the reviewed source of truth (GX Core 1.x
suite JSON), installed as the package data ``etl.expectations`` and read
with :mod:`importlib.resources` (see pyproject.toml). Each expectation
carries GX's own ``severity``:

* ``critical`` + row-level (a map expectation, which reports the failing
  rows): those rows go to quarantine with the expectation's reason; the
  rest of the batch is published.
* ``critical`` + batch-level (row counts, sets of values, sums): the batch
  is blocked — :class:`ValidationFailed` names the expectation and examples.
* ``warning``: recorded in the load log, data published.

Pipelines may add derived ``_check_*`` columns (e.g. spend as a share of the
grant) so that a cross-column rule is a plain GX expectation on one column.
Results are written as JSON under ``<warehouse>/_validation/<table>/`` and
rendered as Data Docs pages under ``<warehouse>/_data_docs/`` (self-contained HTML, see
``_render_docs``).

GX is imported lazily and one ephemeral context is reused per process:
building a context costs seconds, validating a batch milliseconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import hashlib
import html
import importlib.resources
import json
import logging
import os
import posixpath
import re
import string
import urllib.parse
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Any

from etl import storage
from etl.errors import EtlError, ValidationFailed
from etl.privacy import mask_personal_data

log = logging.getLogger(__name__)

SUITES_PACKAGE = "etl.expectations"  # the top-level expectations/ folder, installed as package data
ROW_ID = "_row"
DELIVERY_SUITE = "delivery"  # the one suite that is no table's: every file of a step, judged (etl/verdict.py)

# Off while ``python -m etl check`` judges files: a check leaves no trace in the warehouse.
_PERSIST = contextvars.ContextVar("persist_validation_results", default=True)
# Set while a pipeline step is judged (:func:`collecting`): results wait there for the step's delivery
# verdict, which is stored with them, instead of being written as each batch is validated.
_PENDING: contextvars.ContextVar[list | None] = contextvars.ContextVar("pending_validation_results", default=None)


@contextlib.contextmanager
def not_persisted():
    """Validate without writing results or Data Docs into the warehouse (for checks that load nothing)."""
    token = _PERSIST.set(False)
    try:
        yield
    finally:
        _PERSIST.reset(token)


# GX phones home and draws progress bars unless told not to; neither belongs in task logs.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TQDM_DISABLE", "1")


def persisting() -> bool:
    """Whether results are stored (not inside :func:`not_persisted`, i.e. ``python -m etl check``)."""
    return _PERSIST.get()


@contextlib.contextmanager
def collecting():
    """Hold the results validated inside the block (a list of :class:`Pending`) instead of storing them.

    A pipeline step validates its tables, then decides each file's fate with
    the delivery suite (:mod:`etl.verdict`); :func:`persist_step` stores each
    table's result with that verdict in it, so a blocked file's table result
    says "Failed" like the run.
    """
    pending: list[Pending] = []
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


@dataclass
class Pending:
    """One validation result waiting for its step's verdict: GX's result JSON and the frame validated."""

    table: str
    batch_id: str
    data: dict
    frame: Any  # pandas.DataFrame with the _row column


@dataclass
class Validation:
    table: str
    failed_rows: dict[int, list[str]] = field(default_factory=dict)  # row id → reasons (critical, row-level)
    warnings: list[str] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)  # batch-level critical failures
    result_uri: str | None = None
    # row id → the failing expectations' configurations (type, kwargs, meta), critical and row-level
    failed_expectations: dict[int, list[dict]] = field(default_factory=dict)
    data: dict | None = None  # GX's result as JSON, when asked for (keep_result; always from validate_many)
    frame: Any = None  # the frame validated (validate_many), stored with its result by keep()

    @property
    def outcome(self) -> str:
        if self.critical:
            return "failed"
        return "warning" if self.warnings else "passed"

    def raise_if_blocked(self) -> None:
        if self.critical:
            raise ValidationFailed(f"{self.table}: validation failed: " + " | ".join(self.critical))


def suites_dir() -> Traversable:
    """The installed expectation suites (package data ``etl.expectations``)."""
    return importlib.resources.files(SUITES_PACKAGE)


def suite_names() -> list[str]:
    """The tables that have a suite, sorted."""
    return sorted(
        entry.name[: -len(".json")]
        for entry in suites_dir().iterdir()
        if entry.name.endswith(".json") and entry.is_file()
    )


def suite_path(table: str) -> Traversable:
    return suites_dir() / f"{table}.json"


@functools.cache
def load_suite_json(table: str) -> dict:
    """The table's suite: its reviewed JSON, plus the expectations its schema derives from a source's
    declaration (``TableSchema.expectations``: a yes/no field is boolean, a count of regions 0–21)."""
    path = suite_path(table)
    if not path.is_file():
        raise EtlError(f"no expectation suite for {table}: {path} is missing")
    with path.open(encoding="utf-8") as handle:
        suite = json.load(handle)
    from etl import schemas

    # Every other suite is a registry table's (tests/test_validation.py).
    derived = () if table == DELIVERY_SUITE else schemas.get(table).expectations
    suite["expectations"] = [*suite.get("expectations", []), *(json.loads(json.dumps(e)) for e in derived)]
    return suite


@functools.lru_cache(maxsize=1)
def _context():
    # GX logs chatter at INFO during import and context creation, and one of
    # its modules pins its own logger to INFO; quiet both before they speak.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    # GX fingerprints every pandas batch under 1 GB (an MD5 over pandas' row
    # hashes) just to label it in the result's batch markers. For a month of
    # unit-level rows that is a third of the validation time, and the label
    # is not needed: a load is traced by its source files' SHA-256 and batch id.
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    with_progress = getattr(context.variables, "progress_bars", None)
    if with_progress is not None or hasattr(context.variables, "progress_bars"):
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        except Exception:  # pragma: no cover - depends on GX internals; TQDM_DISABLE covers it too
            pass
    return context


@functools.cache
def _batch_definition(table: str):
    context = _context()
    source = context.data_sources.add_pandas(f"etl_{table}")
    asset = source.add_dataframe_asset(table)
    return asset.add_batch_definition_whole_dataframe("whole")


@functools.cache
def suite_columns(table: str) -> tuple[str, ...]:
    """The columns the table's suite looks at; only these are handed to GX.

    GX fingerprints every column of the frame it gets (a full hash), so
    lineage and raw-text columns would cost time without being checked.
    """
    columns: list[str] = []
    for expectation in load_suite_json(table).get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                columns.append(kwargs[key])
        columns.extend(kwargs.get("column_list", []))
    return tuple(dict.fromkeys(columns))


@functools.cache
def _suite(table: str):
    from great_expectations.core.expectation_suite import ExpectationSuite

    return ExpectationSuite(**load_suite_json(table))


@functools.cache
def _range_checked_columns(table: str) -> frozenset[str]:
    """Columns the suite range-checks and whose dtype no expectation looks at."""
    ranged, typed = set(), set()
    for expectation in load_suite_json(table).get("expectations", []):
        column = expectation.get("kwargs", {}).get("column")
        if expectation.get("type") == "expect_column_values_to_be_between":
            ranged.add(column)
        elif expectation.get("type") in (
            "expect_column_values_to_be_in_type_list",
            "expect_column_values_to_be_of_type",
        ):
            typed.add(column)
    return frozenset(ranged - typed - {None})


def _for_gx(table: str, frame):
    """The frame with range-checked nullable integer columns as numpy dtypes, which GX checks vectorised.

    GX's pandas engine compares ``Int64`` (masked) columns one Python value at
    a time — about 0.1 s per 100 000 rows for each range check. A column
    without gaps becomes ``int64``; one with gaps (suppressed counts)
    becomes ``float64`` with NaN, which GX treats as missing just like
    ``<NA>``. A float can only blur integers beyond 2**53, far outside any
    bound a suite compares with, so no check changes its answer. Columns
    whose dtype a suite checks are left alone.
    """
    import pandas as pd

    converted = {}
    for name in _range_checked_columns(table) & set(frame.columns):
        dtype = frame[name].dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_integer_dtype(dtype):
            column = frame[name]
            converted[name] = (
                column.to_numpy("int64") if not column.hasnans else column.to_numpy("float64", na_value=float("nan"))
            )
    return frame.assign(**converted) if converted else frame


def _reason(config: dict) -> str:
    meta = config.get("meta") or {}
    if meta.get("reason"):
        return str(meta["reason"])
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    kind = str(config.get("type"))
    return f"{kind}({target})" if target else kind


def _examples(result: dict) -> str:
    if "observed_value" in result:
        value = result["observed_value"]
        return f"observed {json.dumps(value, default=str)[:200]}"
    listed = result.get("partial_unexpected_list") or []
    return f"e.g. {json.dumps(listed[:3], default=str)[:200]}" if listed else ""


def validate(
    table: str,
    frame,
    *,
    warehouse_uri: str | None = None,
    batch_id: str = "adhoc",
    persist: bool = True,
    keep_result: bool = False,
) -> Validation:
    """Validate ``frame`` (which must have a unique integer ``_row`` column) against the table's suite.

    With ``warehouse_uri`` (and ``persist``) the result is stored under
    ``_validation/<table>/<batch_id>.json`` with its Data Docs page, or held
    for the step's verdict inside :func:`collecting`. Raises :class:`EtlError`
    when an expectation cannot run (a column of the wrong type, a suite error).
    ``keep_result`` keeps GX's result JSON on the returned :class:`Validation` (``data``).
    """
    if ROW_ID not in frame.columns:
        raise EtlError(f"validate({table}): the frame needs a {ROW_ID} column")
    if len(frame) == 0 and not load_suite_json(table).get("validate_empty", False):
        return Validation(table)
    data = _run_suite(table, frame)
    outcome = _outcome(table, data)
    outcome.data = data if keep_result else None
    if warehouse_uri and persist:
        outcome.result_uri = keep(warehouse_uri, table, batch_id, data, frame)
    return outcome


def validate_many(table: str, frames: list) -> list[Validation]:
    """One GX validation of several frames of one table (one per file), split back into one result per frame.

    ``frames``: pandas DataFrames, each with its own unique integer ``_row``
    column (0…n-1 as :func:`etl.pipelines.common.checked_batch` numbers them).
    GX's cost per validation is mostly fixed (it builds a graph of metrics per
    expectation, ~0.1 s for a suite of ten whatever the rows), so a run that
    validates a month's small files for every month of a backfill validates
    each table once. Returns one :class:`Validation` per frame, in order, as
    :func:`validate` would have returned for that frame alone, with ``data``
    (that frame's part of GX's result, counts and failing rows its own) and
    ``frame`` set; nothing is stored (:func:`keep` does, in the frame's step).

    Only for suites of row-level expectations (each reports its failing
    rows); a suite with a batch-level one raises :class:`EtlError`. A rule on
    a file as a whole is a row-level expectation with ``meta.scope: "file"``
    on a column repeated on each of the file's rows.
    """
    import pandas as pd

    aggregate = [e["type"] for e in load_suite_json(table).get("expectations", []) if not _row_level(e)]
    if aggregate:
        raise EtlError(f"validate_many({table}): the suite has batch-level expectations {aggregate}")
    for frame in frames:
        if ROW_ID not in frame.columns:
            raise EtlError(f"validate_many({table}): every frame needs a {ROW_ID} column")
    validate_empty = load_suite_json(table).get("validate_empty", False)
    if len(frames) == 1:  # nothing to split: GX's result is the frame's own
        frame = frames[0]
        if len(frame) == 0 and not validate_empty:
            return [Validation(table)]
        data = _run_suite(table, frame)
        alone = _outcome(table, data)
        alone.data, alone.frame = data, frame
        return [alone]
    bounds, parts, offset = [], [], 0
    for frame in frames:  # each frame's row ids moved past the ones before
        span = int(frame[ROW_ID].max()) + 1 if len(frame) else 0
        bounds.append((offset, offset + span))
        if len(frame):
            parts.append(frame.assign(**{ROW_ID: frame[ROW_ID].to_numpy() + offset}))
        offset += span
    outcomes = [Validation(table) for _ in frames]
    if not parts:
        return outcomes
    data = _run_suite(table, pd.concat(parts, ignore_index=True))
    for i, (frame, (low, high)) in enumerate(zip(frames, bounds, strict=True)):
        if len(frame) == 0 and not validate_empty:
            continue
        part = _slice_result(data, low, high, frame)
        outcomes[i] = _outcome(table, part)
        outcomes[i].data, outcomes[i].frame = part, frame
    return outcomes


# Expectation types :func:`outcomes_without_gx` evaluates itself, as GX does (nulls skip a range check).
_PLAIN_TYPES = frozenset({"expect_column_values_to_be_null", "expect_column_values_to_be_between"})


def outcomes_without_gx(table: str, frames: list) -> list[Validation] | None:
    """The outcomes :func:`validate_many` would give, without Great Expectations, for a suite of plain checks.

    For ``python -m etl check``, which stores no result: judging a file that
    failed to parse must not pay GX's import and start-up (~3 s). Only
    ``expect_column_values_to_be_null`` and ``expect_column_values_to_be_between``
    (inclusive bounds, nulls skipped) are evaluated; a suite with any other
    expectation returns None (use GX). Outcomes carry no ``data``.
    tests/test_batched_validation.py holds them equal to GX's on the delivery suite.
    """
    import pandas as pd

    expectations = load_suite_json(table).get("expectations", [])
    if any(e.get("type") not in _PLAIN_TYPES for e in expectations):
        return None
    outcomes = []
    for frame in frames:
        outcome = Validation(table)
        for expectation in expectations:
            kwargs = expectation.get("kwargs") or {}
            column = frame[kwargs["column"]]
            if expectation["type"] == "expect_column_values_to_be_null":
                failing = column.notna()
            else:
                values = pd.to_numeric(column, errors="coerce")
                failing = pd.Series(False, index=frame.index)
                if kwargs.get("min_value") is not None:
                    failing |= (values < kwargs["min_value"]).fillna(False).astype(bool)
                if kwargs.get("max_value") is not None:
                    failing |= (values > kwargs["max_value"]).fillna(False).astype(bool)
            rows = [int(r) for r in frame.loc[failing.to_numpy(dtype=bool), ROW_ID]]
            if not rows:
                continue
            config = {**expectation, "severity": expectation.get("severity") or "critical"}
            reason = _reason(config)
            if config["severity"] == "critical" and (config.get("meta") or {}).get("scope") != "file":
                for row in rows:
                    outcome.failed_rows.setdefault(row, []).append(reason)
                    outcome.failed_expectations.setdefault(row, []).append(config)
            elif config["severity"] == "critical":
                outcome.critical.append(f"{reason} [{config['type']}]")
            else:
                outcome.warnings.append(f"{reason}: {len(rows)} row(s)")
        outcomes.append(outcome)
    return outcomes


def keep(warehouse_uri: str, table: str, batch_id: str, data: dict, frame=None) -> str | None:
    """Store one result (GX's JSON) — or hold it for the step's verdict inside :func:`collecting`.

    Nothing is written inside :func:`not_persisted`; returns the result's URI, or None then.
    """
    if not _PERSIST.get():
        return None
    held = _PENDING.get()
    if held is not None:
        held.append(Pending(table, batch_id, data, frame))
        return result_uri(warehouse_uri, table, batch_id)
    return store_result(warehouse_uri, table, batch_id, data, frame)


_MAP_TYPES = (
    "expect_column_values_to_",
    "expect_compound_columns_to_be_unique",
    "expect_multicolumn_values_to_",
    "expect_column_pair_values_",
    "expect_select_column_values_to_be_unique_within_record",
)


def _row_level(expectation: dict) -> bool:
    return str(expectation.get("type", "")).startswith(_MAP_TYPES)


def _run_suite(table: str, frame) -> dict:
    """GX's result (its ``to_json_dict`` shape) of ``frame`` against the table's suite."""
    wanted = [c for c in suite_columns(table) if c in frame.columns and c != ROW_ID]
    gx_frame = _for_gx(table, frame[[*wanted, ROW_ID]])
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": gx_frame})
    # Most batches pass. BASIC answers "did it pass" at about two thirds of the cost of
    # COMPLETE, whose row indexes are only needed to quarantine failing rows, so a
    # batch that fails anything is validated again with them.
    result = batch.validate(_suite(table), result_format={"result_format": "BASIC", "partial_unexpected_count": 5})
    if not result.success:
        result = batch.validate(
            _suite(table),
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [ROW_ID],
                "partial_unexpected_count": 5,
            },
        )
    return result.to_json_dict()


def _raised(item: dict) -> str | None:
    """The message of an expectation that could not run, from a result's ``exception_info`` (either shape)."""
    info = item.get("exception_info") or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "")
    for value in info.values():
        if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
            return str(value.get("exception_message") or "")
    return None


def _outcome(table: str, data: dict) -> Validation:
    """The severity policy (module doc) applied to one result JSON."""
    outcome = Validation(table)
    for item in data.get("results", []):
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        severity = str(config.get("severity") or "critical")
        res = item.get("result") or {}
        reason = _reason(config)
        message = _raised(item)
        if message is not None:
            raise EtlError(f"{table}: expectation {config.get('type')} could not run: {message[:200]}")
        index_list = res.get("unexpected_index_list")
        by_file = (config.get("meta") or {}).get("scope") == "file"
        if index_list and not by_file:
            rows = [int(entry[ROW_ID]) if isinstance(entry, dict) else int(entry) for entry in index_list]
            if severity == "critical":
                for row in rows:
                    outcome.failed_rows.setdefault(row, []).append(reason)
                    outcome.failed_expectations.setdefault(row, []).append(config)
            else:
                outcome.warnings.append(f"{reason}: {len(rows)} row(s) {_examples(res)}".strip())
        elif severity == "critical":
            outcome.critical.append(f"{reason} [{config.get('type')}] {_examples(res)}".strip())
        else:
            outcome.warnings.append(f"{reason} {_examples(res)}".strip())
    return outcome


def _slice_result(data: dict, low: int, high: int, frame) -> dict:
    """The part of a many-frame result about rows ``low``…``high``-1, with the frame's own row ids and counts."""
    from collections import Counter

    results = []
    for item in data.get("results", []):
        res = dict(item.get("result") or {})
        config = item.get("expectation_config") or {}
        failing = res.get("unexpected_index_list")
        if failing is not None:
            keep_at = [k for k, e in enumerate(failing) if low <= int(e[ROW_ID] if isinstance(e, dict) else e) < high]
            shifted = [
                {**failing[k], ROW_ID: int(failing[k][ROW_ID]) - low}
                if isinstance(failing[k], dict)
                else int(failing[k]) - low
                for k in keep_at
            ]
            values = res.get("unexpected_list")
            values = [values[k] for k in keep_at] if values is not None and len(values) == len(failing) else []
            keys = [json.dumps(v, default=str) for v in values]  # values may be unhashable (lists)
            first = dict(zip(reversed(keys), reversed(values), strict=True))  # each key's first value
            res.update(
                unexpected_index_list=shifted,
                unexpected_list=values,
                unexpected_count=len(shifted),
                partial_unexpected_list=values[:5],
                partial_unexpected_index_list=shifted[:5],
                partial_unexpected_counts=[{"value": first[k], "count": c} for k, c in Counter(keys).most_common(5)],
            )
            res.pop("unexpected_index_query", None)  # it selects from the whole frame
        if "element_count" in res:
            count = len(frame)
            column = (config.get("kwargs") or {}).get("column")
            missing = int(frame[column].isna().sum()) if column in frame.columns and "missing_count" in res else 0
            unexpected = int(res.get("unexpected_count") or 0)
            res["element_count"] = count
            if "missing_count" in res:
                res["missing_count"] = missing
                res["missing_percent"] = 100.0 * missing / count if count else None
            nonmissing = count - missing
            if "unexpected_percent" in res:
                res["unexpected_percent"] = 100.0 * unexpected / nonmissing if nonmissing else None
            if "unexpected_percent_total" in res:
                res["unexpected_percent_total"] = 100.0 * unexpected / count if count else None
            if "unexpected_percent_nonmissing" in res:
                res["unexpected_percent_nonmissing"] = 100.0 * unexpected / nonmissing if nonmissing else None
        passed = item.get("success") if failing is None else not res.get("unexpected_count")
        results.append({**item, "result": res, "success": bool(passed)})
    successful = sum(1 for r in results if r["success"])
    statistics = {
        "evaluated_expectations": len(results),
        "successful_expectations": successful,
        "unsuccessful_expectations": len(results) - successful,
        "success_percent": successful / len(results) * 100 if results else None,  # as GX computes it
    }
    return {**data, "results": results, "statistics": statistics, "success": successful == len(results)}


def result_uri(warehouse_uri: str, table: str, batch_id: str) -> str:
    """Where ``table``'s result of ``batch_id`` is stored: ``<warehouse>/_validation/<table>/<batch_id>.json``."""
    return storage.join(warehouse_uri, "_validation", table, f"{batch_id}.json")


def store_result(warehouse_uri: str, table: str, batch_id: str, data: dict, frame=None) -> str:
    """Write one result JSON (GX's ``to_json_dict`` shape) and its Data Docs page; returns the JSON's URI."""
    uri = result_uri(warehouse_uri, table, batch_id)
    fs, path = storage.filesystem(uri)
    storage.make_folder(fs, posixpath.dirname(path))
    fs.pipe_file(path, json.dumps(data, indent=1, default=str).encode("utf-8"))
    try:
        _render_docs(warehouse_uri, table, batch_id, data, frame)
    except Exception as exc:  # Data Docs are a convenience; the JSON above is the record.
        log.warning("could not render Data Docs for %s: %s", table, exc)
    return uri


# --------------------------------------------------------------------------- Data Docs
#
# The pages are rendered here rather than by GX's page view, whose pages load Bootstrap, jQuery,
# Font Awesome and Vega from CDNs (a closed network shows them broken), link to a "Home" and to
# suite pages that are never written, show failing rows as bare DataFrame indexes, and put cell
# values into the HTML unescaped (a stored XSS through any field of a delivered file). These
# pages are self-contained: inline CSS, no JavaScript and a Content-Security-Policy that allows
# neither scripts nor remote loads; every value is escaped, and personal data in values masked.
# GX's own sentences ("Must have exactly 21 rows.") still describe each expectation.
#
# Under <warehouse>/_data_docs/:
#   index.html                      every table (latest status, counts) and the newest validations
#   <table>/index.html              the table's newest validations and its months
#   <table>/by-month/YYYY-MM.html   every validation run in that month, newest first (nothing is dropped)
#   <table>/suite.html              the table's expectation suite
#   <table>/<batch_id>.html         one validation result
#   <table>/_entries/YYYY-MM.json   page → time, status and counts of the month's validations
#   <table>/_summary.json           counts per month, the newest entries: the table index and top index
#
# A batch writes its page, its month's entries and page, its table's index and summary and the top
# index, so the cost per batch stays flat as the years add up. A page the entries lack (written
# concurrently by another process, or by GX's renderer before this one) is taken in from the
# entry embedded in its <head>, or rendered again from its result JSON in _validation/.

DOCS = "_data_docs"
DOCS_RECENT = 50  # newest validations on the top index and on each table's index
DOCS_ROW_LIMIT = 200  # failing rows listed on one page; the quarantine holds them all
_RESERVED_PAGES = frozenset({"index", "suite"})
_TABLE_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENTRY_META = re.compile(r'<meta name="etl-entry" content="([^"]*)">')
_STATUS_LABEL = {
    "passed": "Passed",
    "warning": "Passed with warnings",
    "quarantined": "Failed: rows quarantined",
    "blocked": "Failed: batch blocked",
    "unknown": "Unknown",
}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_CSS = (
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#1d2330;"
    "max-width:1280px;margin:0 auto;padding:0 1em 2em}"
    "nav{padding:.7em 0;border-bottom:1px solid #ccd3dd;margin-bottom:.5em}nav a{margin-right:1.4em}"
    "h1{font-size:1.5em;margin:.6em 0 .3em}h2{font-size:1.2em;margin:1.4em 0 .3em}"
    "table{border-collapse:collapse;width:100%;margin:.4em 0 1em}"
    "th,td{border:1px solid #d5d9e0;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#f1f3f7}td.n{text-align:right;white-space:nowrap}"
    ".v{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;overflow-wrap:anywhere}"
    ".b{display:inline-block;padding:.05em .55em;border-radius:.8em;font-weight:600;white-space:nowrap}"
    ".passed{background:#dcf2e2;color:#14532d}.warning{background:#fff1cc;color:#6b4100}"
    ".quarantined{background:#ffe0c7;color:#7c2d00}.blocked{background:#fbd5d5;color:#8b1111}"
    ".unknown{background:#e8e8e8;color:#333}.muted{color:#5b6473}dl{display:grid;grid-template-columns:"
    "max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}"
)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _display(value) -> str:
    """A value as a person reads it: no NaN/NaT/<NA>, integral floats without ".0", dates without midnight."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value:
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, dt.datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _text(value, limit: int = 300) -> str:
    """``value`` as escaped HTML text, personal data masked, cut at ``limit`` characters."""
    shown = mask_personal_data(_display(value))
    if len(shown) > limit:
        shown = shown[:limit] + "…"
    return _esc(shown)


def _href(*parts: str) -> str:
    return _esc("/".join(urllib.parse.quote(p) for p in parts))


def _page_name(batch_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(batch_id)) or "_"
    if safe.startswith(".") or safe in _RESERVED_PAGES:
        safe = "batch-" + safe
    return f"{safe}.html"


def _row_of(entry) -> int:
    return int(entry[ROW_ID]) if isinstance(entry, dict) else int(entry)


def _severity(config: dict) -> str:
    return str(config.get("severity") or "critical")


def _reason_of(config: dict) -> str:
    meta = config.get("meta") or {}
    if meta.get("reason"):
        return str(meta["reason"])
    kwargs = config.get("kwargs") or {}
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    return f"{config.get('type')}({target})" if target else str(config.get("type"))


def _validation_time(data: dict) -> str:
    """When GX validated the batch (its batch load time), as ISO 8601 UTC; now if the result has none."""
    stamp = ((data.get("meta") or {}).get("batch_markers") or {}).get("ge_load_time")
    try:
        moment = dt.datetime.strptime(str(stamp), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        moment = dt.datetime.now(dt.UTC)
    return moment.isoformat(timespec="microseconds")


def _entry(table: str, batch_id: str, page: str, data: dict) -> dict:
    """What the indexes show of one result; the status follows :func:`validate`'s severity policy."""
    rows: set[int] = set()
    blocked = warnings = 0
    for item in data.get("results") or []:
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        index_list = (item.get("result") or {}).get("unexpected_index_list")
        if _severity(config) != "critical":
            warnings += 1
        elif index_list and (config.get("meta") or {}).get("scope") != "file":
            rows.update(_row_of(e) for e in index_list)
        else:  # batch-level, or a rule on the file as a whole: it blocks, its rows are not quarantined
            blocked += 1
    status = "blocked" if blocked else "quarantined" if rows else "warning" if warnings else "passed"
    stats = data.get("statistics") or {}
    return {
        "page": page,
        "batch_id": str(batch_id),
        "table": table,
        "time": _validation_time(data),
        "status": status,
        "evaluated": stats.get("evaluated_expectations"),
        "failed": stats.get("unsuccessful_expectations"),
        "rows": len(rows),
        "warnings": warnings,
        "blocked": blocked,
    }


def _when(entry: dict) -> str:
    return str(entry.get("time", ""))[:19].replace("T", " ") + " UTC"


def _newest(entry: dict) -> tuple:
    return (str(entry.get("time", "")), str(entry.get("page", "")))


def _badge(status: str) -> str:
    status = status if status in _STATUS_LABEL else "unknown"
    return f'<span class="b {status}">{_STATUS_LABEL[status]}</span>'


def _detail(entry: dict) -> str:
    parts = []
    if entry.get("blocked"):
        parts.append(f"{entry['blocked']} batch-level failure(s)")
    if entry.get("rows"):
        parts.append(f"{entry['rows']} row(s) quarantined")
    if entry.get("warnings"):
        parts.append(f"{entry['warnings']} warning(s)")
    return _esc(", ".join(parts))


def _document(title: str, nav: list[tuple[str, str]], body: str, entry: dict | None = None) -> str:
    """A whole page: the entry first in <head> (cheap to read back), inline CSS, no scripts allowed."""
    meta = f'<meta name="etl-entry" content="{_esc(json.dumps(entry, sort_keys=True))}">' if entry else ""
    links = "".join(f'<a href="{href}">{_esc(label)}</a>' for href, label in nav)
    return (
        f'<!doctype html><html lang="en"><head>{meta}<meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body>{f'<nav>{links}</nav>' if links else ''}{body}</body></html>\n"
    )


@functools.lru_cache(maxsize=1024)
def _describe_cached(kind: str, kwargs_json: str) -> str:
    """GX's sentence for an expectation ("Must have exactly 21 rows."), every parameter escaped."""
    kwargs = json.loads(kwargs_json)
    try:
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
        from great_expectations.expectations.registry import get_renderer_impl
        from great_expectations.render import LegacyRendererType

        impl = get_renderer_impl(object_name=kind, renderer_type=LegacyRendererType.PRESCRIPTIVE)
        if impl is None:
            raise LookupError(f"GX has no prescriptive renderer for {kind}")  # the fallback below
        blocks = impl.renderer(
            configuration=ExpectationConfiguration(type=kind, kwargs=kwargs),
            runtime_configuration={"include_column_name": True},
        )
        if not isinstance(blocks, list):
            raise TypeError(f"GX rendered {kind} as one block, not a list")  # the fallback below
        sentences = []
        for block in blocks:
            template = getattr(block, "string_template", None)
            if isinstance(template, dict) and template.get("template"):
                params = {
                    k: f'<span class="v">{_esc(_display(v))}</span>' for k, v in (template.get("params") or {}).items()
                }
                sentences.append(string.Template(_esc(template["template"])).safe_substitute(params))
        if sentences:
            return " ".join(sentences)
    except Exception:  # pragma: no cover - an expectation GX has no sentence for
        pass
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    return _esc(f"{kind}({target})" if target else kind)


def _describe(config: dict) -> str:
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    return _describe_cached(str(config.get("type")), json.dumps(kwargs, sort_keys=True, default=str))


def _observed(result: dict) -> str:
    if "observed_value" in result:
        return "observed " + f'<span class="v">{_text(result["observed_value"])}</span>'
    if "unexpected_count" not in result:
        return ""
    text = f"{_esc(result.get('unexpected_count'))} unexpected of {_esc(result.get('element_count', '?'))}"
    percent = result.get("unexpected_percent")
    if isinstance(percent, (int, float)) and result.get("unexpected_count"):
        text += f" ({percent:.2f} %)"
    if result.get("missing_count"):
        text += f"; {_esc(result['missing_count'])} missing"
    counts = result.get("partial_unexpected_counts")
    examples = (
        [
            f'<span class="v">{_text(c.get("value"), 80)}</span> ×{_esc(c.get("count"))}'
            for c in counts[:5]
            if isinstance(c, dict)
        ]
        if counts
        else [f'<span class="v">{_text(v, 80)}</span>' for v in (result.get("partial_unexpected_list") or [])[:5]]
    )
    if examples:
        text += "; e.g. " + ", ".join(examples)
    return text


@functools.cache
def _key_columns(table: str) -> tuple[str, ...]:
    """What names a row of ``table`` to a person: its region, partition and key columns."""
    try:
        from etl import schemas

        schema = schemas.get(table)
    except Exception:
        return ("region_code",)
    region = ("region_code",) if "region_code" in schema.column_names else ()
    return tuple(dict.fromkeys([*region, *schema.partition_by, *schema.key]))


def _failing_rows(table: str, results: list[dict], frame) -> str:
    """Rows that failed a row-level expectation: where they came from, their key columns, values and reasons."""
    reasons: dict[int, list[str]] = {}
    failing: list[list] = []
    checked: dict[str, None] = {}
    for item in results:
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        index_list = (item.get("result") or {}).get("unexpected_index_list")
        if not index_list:
            continue
        failing.append(index_list)
        if isinstance(index_list[0], dict):
            checked.update(dict.fromkeys(c for c in index_list[0] if c != ROW_ID))
        reason = _reason_of(config) + ("" if _severity(config) == "critical" else " (warning: published)")
        for found in index_list:
            reasons.setdefault(_row_of(found), []).append(reason)
    if not reasons:
        return ""
    shown = sorted(reasons)[:DOCS_ROW_LIMIT]
    values: dict[int, dict] = {}  # the failing values GX reported, for the rows shown (all there is without the frame)
    wanted_rows = set(shown)
    for index_list in failing:
        for found in index_list:
            if isinstance(found, dict) and _row_of(found) in wanted_rows:
                for column, value in found.items():
                    if column != ROW_ID:
                        values.setdefault(_row_of(found), {}).setdefault(column, value)
    records: dict[int, dict] = {}
    wanted = list(dict.fromkeys([*_key_columns(table), *checked, "source_file", "row_number"]))
    if frame is not None and ROW_ID in frame.columns:
        present = [c for c in wanted if c in frame.columns and c != ROW_ID]
        picked = frame.loc[frame[ROW_ID].isin(shown), [*present, ROW_ID]]
        records = {int(r.pop(ROW_ID)): r for r in picked.to_dict("records")}
    for row in shown:
        records[row] = {**values.get(row, {}), **records.get(row, {})}
    columns = [c for c in wanted if c not in ("source_file", "row_number") and any(c in records[r] for r in shown)]
    with_origin = any("source_file" in records[r] for r in shown)
    head = (["Source (file:line)"] if with_origin else ["Row"]) + columns + ["Reason"]
    lines = []
    for row in shown:
        record = records[row]
        if with_origin:
            origin = posixpath.basename(_display(record.get("source_file")))
            line = _display(record.get("row_number"))
            where = _text(f"{origin}:{line}" if line else origin)
        else:
            where = _esc(row)
        cells = "".join(f'<td class="v">{_text(record.get(c))}</td>' for c in columns)
        lines.append(f'<tr><td class="v">{where}</td>{cells}<td>{_text("; ".join(reasons[row]), 1000)}</td></tr>')
    more = (
        (
            f'<p class="muted">Showing the first {len(shown)} of {len(reasons)} failing rows; every one is in '
            f"the quarantine table <code>_quarantine/{_esc(table)}</code>.</p>"
        )
        if len(reasons) > len(shown)
        else ""
    )
    return (
        f"<h2>Failing rows ({len(reasons)})</h2>"
        '<p class="muted">Rows failing a critical row-level expectation are quarantined and the rest of the '
        "batch is published; personal data in values is masked.</p>"
        f"<table><tr>{''.join(f'<th>{_esc(h)}</th>' for h in head)}</tr>{''.join(lines)}</table>{more}"
    )


def _result_page(table: str, entry: dict, data: dict, frame) -> str:
    results = data.get("results") or []
    expectations = []
    for item in sorted(results, key=lambda r: bool(r.get("success"))):  # failures first, suite order kept
        config = item.get("expectation_config") or {}
        ok = bool(item.get("success"))
        severity = _severity(config)
        state = "passed" if ok else ("warning" if severity != "critical" else "blocked")
        expectations.append(
            f'<tr><td><span class="b {state}">{"Succeeded" if ok else "Failed"}</span></td>'
            f"<td>{_esc(severity)}</td><td>{_describe(config)}</td><td>{_text(_reason_of(config), 1000)}</td>"
            f"<td>{_observed(item.get('result') or {})}</td></tr>"
        )
    has_suite = suite_path(table).is_file()
    body = (
        f"<h1>{_esc(table)} · batch {_esc(entry['batch_id'])}</h1>"
        f"<p>{_badge(entry['status'])} {_detail(entry)}</p>"
        f"<dl><dt>Validated</dt><dd>{_esc(_when(entry))}</dd>"
        f'<dt>Batch</dt><dd class="v">{_esc(entry["batch_id"])}</dd>'
        f"<dt>Expectations</dt><dd>{_esc(entry.get('evaluated'))} evaluated, "
        f"{_esc(entry.get('failed'))} failed</dd>"
        f'<dt>Result JSON</dt><dd class="v">_validation/{_esc(table)}/{_esc(entry["batch_id"])}.json</dd></dl>'
        f"{_failing_rows(table, results, frame)}"
        "<h2>Expectations</h2><table><tr><th>Result</th><th>Severity</th><th>Expectation</th><th>Reason</th>"
        f"<th>Observed</th></tr>{''.join(expectations)}</table>"
    )
    nav = [("../index.html", "Home"), ("index.html", f"{table}: all validations")]
    if has_suite:
        nav.append(("suite.html", "Expectation suite"))
    return _document(f"{table} {entry['batch_id']}: {_STATUS_LABEL.get(entry['status'], '')}", nav, body, entry)


def _suite_page(table: str) -> str:
    suite = load_suite_json(table)
    rows = "".join(
        f"<tr><td>{_esc(_severity(e))}</td><td>{_describe(e)}</td><td>{_text(_reason_of(e), 1000)}</td></tr>"
        for e in suite.get("expectations", [])
    )
    notes = (suite.get("meta") or {}).get("notes")
    body = (
        f"<h1>Expectation suite: {_esc(table)}</h1>"
        + (f"<p>{_text(notes, 4000)}</p>" if notes else "")
        + f'<p class="muted">Source: <code>expectations/{_esc(table)}.json</code>. Critical row-level failures '
        "quarantine the row; critical batch-level failures block the batch; warnings are recorded.</p>"
        f"<table><tr><th>Severity</th><th>Expectation</th><th>Reason</th></tr>{rows}</table>"
    )
    nav = [("../index.html", "Home"), ("index.html", f"{table}: all validations")]
    return _document(f"Expectation suite {table}", nav, body)


def _entry_table(entries: list[dict], prefix: str, with_table: bool = False) -> str:
    """Validations as table rows, newest first; ``prefix`` leads from the index page to the table folder."""
    head = (
        "<tr><th>Validated (UTC)</th>"
        + ("<th>Table</th>" if with_table else "")
        + "<th>Batch</th><th>Status</th><th>Failed / evaluated expectations</th>"
        "<th>Rows quarantined</th><th>Warnings</th></tr>"
    )
    lines = []
    for e in entries:
        folder = f"{prefix}{urllib.parse.quote(str(e.get('table')))}/" if with_table else prefix
        table_cell = f'<td><a href="{_esc(folder)}index.html">{_esc(e.get("table"))}</a></td>' if with_table else ""
        lines.append(
            f"<tr><td>{_esc(_when(e)[:-4])}</td>{table_cell}"
            f'<td class="v"><a href="{_esc(folder)}{_href(str(e.get("page")))}">{_esc(e.get("batch_id"))}</a></td>'
            f"<td>{_badge(str(e.get('status')))}</td>"
            f'<td class="n">{_esc(e.get("failed", ""))} / {_esc(e.get("evaluated", ""))}</td>'
            f'<td class="n">{_esc(e.get("rows", 0))}</td><td class="n">{_esc(e.get("warnings", 0))}</td></tr>'
        )
    return f"<table>{head}{''.join(lines)}</table>"


def _counts_text(counts: dict) -> str:
    return _esc(", ".join(f"{counts[s]} {_STATUS_LABEL[s].lower()}" for s in _STATUS_LABEL if counts.get(s)))


def _listing(fs, folder: str) -> set[str]:
    """Names directly in ``folder`` (none when it does not exist); names only, no stat per file."""
    try:
        items = fs.ls(folder, detail=False, refresh=True)
    except FileNotFoundError:
        return set()
    return {posixpath.basename(str(i).rstrip("/")) for i in items}


def _read_json(fs, path: str):
    try:
        return json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None


def _recover_entry(fs, root: str, table: str, page: str) -> dict:
    """The entry of a page that the month entries lack: from its <head>, else by rendering it again."""
    path = posixpath.join(root, table, page)
    try:
        found = _ENTRY_META.search(fs.cat_file(path, start=0, end=4096).decode("utf-8", "replace"))
        entry = json.loads(html.unescape(found.group(1))) if found else None
        if isinstance(entry, dict) and entry.get("page") == page:
            return entry
    except (OSError, ValueError):
        pass
    # A page from GX's renderer (CDN assets, values unescaped): rendered again from its result JSON.
    batch_id = page[: -len(".html")]
    data = _read_json(fs, posixpath.join(posixpath.dirname(root), "_validation", table, f"{batch_id}.json"))
    if isinstance(data, dict):
        entry = _entry(table, batch_id, page, data)
        fs.pipe_file(path, _result_page(table, entry, data, None).encode("utf-8"))
        return entry
    try:  # neither: listed all the same, as of when it was written
        modified = fs.modified(path)
        modified = modified.astimezone(dt.UTC) if modified.tzinfo else modified.replace(tzinfo=dt.UTC)
    except Exception:
        modified = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return {
        "page": page,
        "batch_id": batch_id,
        "table": table,
        "time": modified.isoformat(timespec="microseconds"),
        "status": "unknown",
        "evaluated": None,
        "failed": None,
        "rows": 0,
        "warnings": 0,
        "blocked": 0,
    }


def _month(entry: dict) -> str:
    return str(entry.get("time", ""))[:7] or "unknown"


def _summary_ok(summary) -> bool:
    return (
        isinstance(summary, dict)
        and summary.get("version") == 2
        and isinstance(summary.get("months"), dict)
        and isinstance(summary.get("latest"), list)
    )


def _update_table_docs(fs, root: str, table: str, new: dict[str, dict]) -> dict | None:
    """Take ``new`` entries (page → entry) into the table's indexes; return its summary (None: nothing there).

    Entries are kept per month validated (``_entries/YYYY-MM.json``), so a batch reads and writes its
    month and the summary only. The first batch of a month, a missing summary (a warehouse with
    pages from GX's renderer) or a broken one go through the whole folder instead: every page
    listed there gets its entry, which also takes back one lost to a concurrent writer.
    """
    folder = posixpath.join(root, table)
    shard_folder = posixpath.join(folder, "_entries")
    summary = _read_json(fs, posixpath.join(folder, "_summary.json"))
    valid = _summary_ok(summary)
    full = not valid or any(_month(e) not in summary["months"] for e in new.values())
    shards: dict[str, dict] = {}
    if full:
        for name in _listing(fs, shard_folder):
            shard = _read_json(fs, posixpath.join(shard_folder, name)) if name.endswith(".json") else None
            if isinstance(shard, dict):
                shards[name[: -len(".json")]] = shard
    else:
        moved = {_month(e) for e in summary["latest"] if isinstance(e, dict) and e.get("page") in new}
        for month in {_month(e) for e in new.values()} | moved:
            shard = _read_json(fs, posixpath.join(shard_folder, f"{month}.json"))
            shards[month] = shard if isinstance(shard, dict) else {}
    before = {month: dict(shard) for month, shard in shards.items()}
    if full:  # a page in two months (validated again under the same batch id): its newest entry stays
        newest: dict[str, str] = {}
        for month in sorted(shards):
            for page in shards[month]:
                newest[page] = month
        for month, shard in shards.items():
            for page in [p for p in shard if newest[p] != month]:
                del shard[page]
    for page, entry in new.items():
        for shard in shards.values():
            shard.pop(page, None)
        shards.setdefault(_month(entry), {})[page] = entry
    listed: set[str] = set()
    if full:
        listed = _listing(fs, folder)
        pages = {n for n in listed if n.endswith(".html") and n[: -len(".html")] not in _RESERVED_PAGES}
        pages |= new.keys()
        for shard in shards.values():
            for page in [p for p in shard if p not in pages]:  # its page was deleted
                del shard[page]
        known = {page for shard in shards.values() for page in shard}
        for page in sorted(pages - known):
            entry = _recover_entry(fs, root, table, page)
            shards.setdefault(_month(entry), {})[page] = entry
    has_suite = suite_path(table).is_file()
    if not valid and not has_suite and not any(shards.values()):
        return None
    changed = sorted(m for m, shard in shards.items() if not valid or shard != before.get(m))
    nav_up = [("../../index.html", "Home"), ("../index.html", f"{table}: all validations")]
    if has_suite:
        nav_up.append(("../suite.html", "Expectation suite"))
    if changed:
        storage.make_folder(fs, shard_folder)
        storage.make_folder(fs, posixpath.join(folder, "by-month"))
    for month in changed:
        fs.pipe_file(posixpath.join(shard_folder, f"{month}.json"), json.dumps(shards[month]).encode("utf-8"))
        listed_month = sorted(shards[month].values(), key=_newest, reverse=True)
        body = (
            f"<h1>{_esc(table)}: validations run in {_esc(month)} ({len(listed_month)})</h1>"
            f"<p>{_counts_text(_count(listed_month))}</p>{_entry_table(listed_month, '../')}"
        )
        fs.pipe_file(
            posixpath.join(folder, "by-month", f"{month}.html"),
            _document(f"{table} {month}", nav_up, body).encode("utf-8"),
        )
    months = {} if full else dict(summary["months"])
    for month in shards if full else changed:
        months[month] = _count(list(shards[month].values()))
    months = {m: counts for m, counts in sorted(months.items(), reverse=True) if sum(counts.values())}
    if full:
        everything = [e for shard in shards.values() for e in shard.values()]
    else:
        everything = [e for e in summary["latest"] if isinstance(e, dict) and e.get("page") not in new]
        everything += list(new.values())
    latest = sorted(everything, key=_newest, reverse=True)[:DOCS_RECENT]
    counts: dict[str, int] = {}
    for month_counts in months.values():
        for status, n in month_counts.items():
            counts[status] = counts.get(status, 0) + n
    total = sum(counts.values())
    suite_sha = None
    if has_suite:
        suite_sha = hashlib.sha256(json.dumps(load_suite_json(table), sort_keys=True).encode()).hexdigest()
        if not valid or summary.get("suite_sha") != suite_sha or (full and "suite.html" not in listed):
            fs.pipe_file(posixpath.join(folder, "suite.html"), _suite_page(table).encode("utf-8"))
    month_rows = "".join(
        f'<tr><td><a href="by-month/{_href(m)}.html">{_esc(m)}</a></td><td class="n">{sum(c.values())}</td>'
        f"<td>{_counts_text(c)}</td></tr>"
        for m, c in months.items()
    )
    body = (
        f"<h1>{_esc(table)}: {total} validation(s)</h1><p>{_counts_text(counts)}</p>"
        f"<h2>Newest</h2>{_entry_table(latest, '')}"
        + (
            '<p class="muted">Older validations: by the month they were run in, below.</p>'
            if total > len(latest)
            else ""
        )
        + "<h2>By month validated (newest first)</h2><table><tr><th>Month</th><th>Validations</th>"
        f"<th>Status</th></tr>{month_rows}</table>"
    )
    nav = [("../index.html", "Home")] + ([("suite.html", "Expectation suite")] if has_suite else [])
    storage.make_folder(fs, folder)
    fs.pipe_file(posixpath.join(folder, "index.html"), _document(f"{table}: validations", nav, body).encode("utf-8"))
    summary = {
        "version": 2,
        "table": table,
        "count": total,
        "counts": counts,
        "months": months,
        "latest": latest,
        "suite_sha": suite_sha,
    }
    fs.pipe_file(posixpath.join(folder, "_summary.json"), json.dumps(summary).encode("utf-8"))
    return summary


def _count(entries: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        status = entry["status"] if entry.get("status") in _STATUS_LABEL else "unknown"
        counts[status] = counts.get(status, 0) + 1
    return counts


def _write_docs_index(fs, root: str, known: dict[str, dict]) -> None:
    """The top index: every table with its latest status and counts, and the newest validations of all."""
    summaries: dict[str, dict] = {}
    for name in sorted(_listing(fs, root)):
        if not _TABLE_DIR.fullmatch(name):  # index.html, or anything not a table's folder
            continue
        summary = known.get(name) or _read_json(fs, posixpath.join(root, name, "_summary.json"))
        if not _summary_ok(summary):
            summary = _update_table_docs(fs, root, name, {})  # a table with pages from before this renderer
        if summary:
            summaries[name] = summary
    table_rows = []
    for name, summary in summaries.items():
        latest = summary["latest"][0] if summary["latest"] else {}
        table_rows.append(
            f'<tr><td><a href="{_href(name)}/index.html">{_esc(name)}</a></td>'
            f"<td>{_esc(_when(latest)[:-4]) if latest else ''}</td>"
            f"<td>{_badge(str(latest.get('status'))) if latest else ''}</td>"
            f'<td class="n">{_esc(summary.get("count", 0))}</td>'
            f"<td>{_counts_text(summary.get('counts') or {})}</td></tr>"
        )
    newest = sorted((e for s in summaries.values() for e in s["latest"]), key=_newest, reverse=True)[:DOCS_RECENT]
    body = (
        "<h1>Validation results</h1>"
        '<p class="muted">Every validation is kept: each table\'s page lists all of them, by month.</p>'
        "<h2>Tables</h2><table><tr><th>Table</th><th>Last validated (UTC)</th><th>Last status</th>"
        f"<th>Validations</th><th>All statuses</th></tr>{''.join(table_rows)}</table>"
        f"<h2>Newest validations (all tables)</h2>{_entry_table(newest, '', with_table=True)}"
    )
    fs.pipe_file(posixpath.join(root, "index.html"), _document("Validation results", [], body).encode("utf-8"))


def _render_docs(warehouse_uri: str, table: str, batch_id: str, data: dict, frame=None) -> None:
    """Render one validation result (``to_json_dict()``) as a page under ``_data_docs/`` and update the indexes."""
    fs, root = storage.filesystem(storage.join(warehouse_uri, DOCS))
    page = _page_name(batch_id)
    entry = _entry(table, batch_id, page, data)
    storage.make_folder(fs, posixpath.join(root, table))
    fs.pipe_file(posixpath.join(root, table, page), _result_page(table, entry, data, frame).encode("utf-8"))
    summary = _update_table_docs(fs, root, table, {page: entry})
    _write_docs_index(fs, root, {table: summary} if summary else {})
