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
rendered as Data Docs pages under ``<warehouse>/_data_docs/`` (self-contained HTML,
:mod:`etl.data_docs`). The suite files themselves are :mod:`etl.expectation_suites`.

GX is imported lazily and one ephemeral context is reused per process:
building a context costs seconds, validating a batch milliseconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from etl import data_docs, storage
from etl.errors import EtlError, ValidationFailed
from etl.expectation_suites import (  # part of this module's interface: validation.ROW_ID, validation.load_suite_json
    ROW_ID,
    load_suite_json,
)

log = logging.getLogger(__name__)


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
        data_docs.render(warehouse_uri, table, batch_id, data, frame)
    except Exception as exc:  # Data Docs are a convenience; the JSON above is the record.
        log.warning("could not render Data Docs for %s: %s", table, exc)
    return uri
