"""Validation with Great Expectations: suites in ``expectations/``, a severity policy.

``expectations/<table>.json`` is the reviewed source of truth (GX Core 1.x
suite JSON). Each expectation carries GX's own ``severity``:

* ``critical`` + row-level (a map expectation, which reports the failing
  rows): those rows go to quarantine with the expectation's reason; the
  rest of the batch is published.
* ``critical`` + batch-level (row counts, sets of values, sums): the batch
  is blocked — :class:`ValidationFailed` names the expectation and examples.
* ``warning``: recorded in the load log, data published.

Pipelines may add derived ``_check_*`` columns (e.g. spend as a share of the
grant) so that a cross-column rule is a plain GX expectation on one column.
Results are written as JSON under ``<warehouse>/_validation/<table>/`` and
rendered into GX Data Docs under ``<warehouse>/_data_docs/``.

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
from pathlib import Path

from etl import storage
from etl.errors import EtlError, ValidationFailed

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = Path(__file__).resolve().parent.parent / "expectations"
ROW_ID = "_row"

# Off while ``python -m etl check`` judges files: a check leaves no trace in the warehouse.
_PERSIST = contextvars.ContextVar("persist_validation_results", default=True)


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


@dataclass
class Validation:
    table: str
    failed_rows: dict[int, list[str]] = field(default_factory=dict)  # row id → reasons (critical, row-level)
    warnings: list[str] = field(default_factory=list)
    critical: list[str] = field(default_factory=list)  # batch-level critical failures
    result_uri: str | None = None

    @property
    def outcome(self) -> str:
        if self.critical:
            return "failed"
        return "warning" if self.warnings else "passed"

    def raise_if_blocked(self) -> None:
        if self.critical:
            raise ValidationFailed(f"{self.table}: validation failed: " + " | ".join(self.critical))


def suite_path(table: str) -> Path:
    return EXPECTATIONS_DIR / f"{table}.json"


@functools.lru_cache(maxsize=None)
def load_suite_json(table: str) -> dict:
    path = suite_path(table)
    if not path.exists():
        raise EtlError(f"no expectation suite for {table}: {path} is missing")
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


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


@functools.lru_cache(maxsize=None)
def _batch_definition(table: str):
    context = _context()
    source = context.data_sources.add_pandas(f"etl_{table}")
    asset = source.add_dataframe_asset(table)
    return asset.add_batch_definition_whole_dataframe("whole")


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
def _suite(table: str):
    from great_expectations.core.expectation_suite import ExpectationSuite

    return ExpectationSuite(**load_suite_json(table))


@functools.lru_cache(maxsize=None)
def _range_checked_columns(table: str) -> frozenset[str]:
    """Columns the suite range-checks and whose dtype no expectation looks at."""
    ranged, typed = set(), set()
    for expectation in load_suite_json(table).get("expectations", []):
        column = expectation.get("kwargs", {}).get("column")
        if expectation.get("type") == "expect_column_values_to_be_between":
            ranged.add(column)
        elif expectation.get("type") in ("expect_column_values_to_be_in_type_list",
                                         "expect_column_values_to_be_of_type"):
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
            converted[name] = (column.to_numpy("int64") if not column.hasnans
                               else column.to_numpy("float64", na_value=float("nan")))
    return frame.assign(**converted) if converted else frame


def _reason(config) -> str:
    meta = config.meta or {}
    if meta.get("reason"):
        return str(meta["reason"])
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    return f"{config.type}({target})" if target else config.type


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
) -> Validation:
    """Validate ``frame`` (which must have a unique integer ``_row`` column) against the table's suite."""
    if ROW_ID not in frame.columns:
        raise EtlError(f"validate({table}): the frame needs a {ROW_ID} column")
    outcome = Validation(table)
    suite_json = load_suite_json(table)
    if len(frame) == 0 and not suite_json.get("validate_empty", False):
        return outcome
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
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID],
                           "partial_unexpected_count": 5},
        )
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        severity = str(getattr(config.severity, "value", config.severity or "critical"))
        res = item.result or {}
        reason = _reason(config)
        if item.exception_info and item.exception_info.get("raised_exception"):
            message = item.exception_info.get("exception_message", "")
            raise EtlError(f"{table}: expectation {config.type} could not run: {message[:200]}")
        index_list = res.get("unexpected_index_list")
        if index_list is not None and index_list:
            rows = [int(entry[ROW_ID]) if isinstance(entry, dict) else int(entry) for entry in index_list]
            if severity == "critical":
                for row in rows:
                    outcome.failed_rows.setdefault(row, []).append(reason)
            else:
                outcome.warnings.append(f"{reason}: {len(rows)} row(s) {_examples(res)}".strip())
        elif severity == "critical":
            outcome.critical.append(f"{reason} [{config.type}] {_examples(res)}".strip())
        else:
            outcome.warnings.append(f"{reason} {_examples(res)}".strip())
    if warehouse_uri and _PERSIST.get():
        outcome.result_uri = _persist(warehouse_uri, table, batch_id, result)
    return outcome


def _persist(warehouse_uri: str, table: str, batch_id: str, result) -> str:
    uri = storage.join(warehouse_uri, "_validation", table, f"{batch_id}.json")
    fs, path = storage.filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, json.dumps(result.to_json_dict(), indent=1, default=str).encode("utf-8"))
    try:
        _render_docs(warehouse_uri, table, batch_id, result)
    except Exception as exc:  # Data Docs are a convenience; the JSON above is the record.
        log.warning("could not render Data Docs for %s: %s", table, exc)
    return uri


def _render_docs(warehouse_uri: str, table: str, batch_id: str, result) -> None:
    """Render the validation result as a GX Data Docs page under ``_data_docs/``."""
    renderer, view = _docs_renderer()
    for item in result.results:  # GX 1.24's renderer cannot format numpy-2 scalars
        if item.result:
            item.result = _plain(item.result)
    html = view.render(renderer.render(result))
    uri = storage.join(warehouse_uri, "_data_docs", table, f"{batch_id}.html")
    fs, path = storage.filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, html.encode("utf-8"))
    _write_docs_index(warehouse_uri)


@functools.lru_cache(maxsize=1)
def _docs_renderer():
    """One renderer and page view per process: each view owns a Jinja environment whose
    template cache would otherwise be rebuilt (and every template recompiled) per page."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return ValidationResultsPageRenderer(), DefaultJinjaPageView()


def _plain(value):
    """numpy scalars (also nested in lists/dicts) → plain Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value


def _write_docs_index(warehouse_uri: str) -> None:
    fs, root = storage.filesystem(storage.join(warehouse_uri, "_data_docs"))
    pages = sorted((p for p in fs.find(root) if p.endswith(".html") and not p.endswith("index.html")), reverse=True)
    items = "\n".join(
        f'<li><a href="{posixpath.relpath(p, root)}">{posixpath.relpath(p, root)}</a></li>' for p in pages[:500]
    )
    html = (
        "<!doctype html><meta charset='utf-8'><title>Validation results</title>"
        f"<h1>Validation results (newest first)</h1><ul>{items}</ul>"
    )
    fs.pipe_file(posixpath.join(root, "index.html"), html.encode("utf-8"))
