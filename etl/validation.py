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
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": frame[[*wanted, ROW_ID]]})
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
    if warehouse_uri:
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
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    for item in result.results:  # GX 1.24's renderer cannot format numpy-2 scalars
        if item.result:
            item.result = _plain(item.result)
    document = ValidationResultsPageRenderer().render(result)
    html = DefaultJinjaPageView().render(document)
    uri = storage.join(warehouse_uri, "_data_docs", table, f"{batch_id}.html")
    fs, path = storage.filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, html.encode("utf-8"))
    _write_docs_index(warehouse_uri)


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
