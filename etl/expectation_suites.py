"""The expectation suites as files: ``expectations/<table>.json`` installed as package data, and what derives from them.

``expectations/`` (top level) is the reviewed source of truth (GX Core 1.x
suite JSON), installed as the package data ``etl.expectations`` and read
with :mod:`importlib.resources` (see pyproject.toml). A table's suite is that
JSON plus the expectations its schema derives from a source's declaration
(:attr:`etl.schemas.TableSchema.expectations`). Read by :mod:`etl.validation`
(to validate) and :mod:`etl.data_docs` (to describe); no GX import here.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from importlib.resources.abc import Traversable

from etl import schemas
from etl.errors import EtlError

SUITES_PACKAGE = "etl.expectations"  # the top-level expectations/ folder, installed as package data
ROW_ID = "_row"  # the column a validated frame carries: each row's id, so failing rows map back to lines
DELIVERY_SUITE = "delivery"  # the one suite that is no table's: every file of a step, judged (etl/verdict.py)


def suites_dir() -> Traversable:
    """The installed expectation suites (package data ``etl.expectations``)."""
    return importlib.resources.files(SUITES_PACKAGE)


def suite_path(table: str) -> Traversable:
    """Where ``table``'s reviewed suite JSON is installed (it may not exist: :func:`load_suite_json` says so)."""
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
    # Every other suite is a registry table's (tests/test_validation.py).
    derived = () if table == DELIVERY_SUITE else schemas.get(table).expectations
    suite["expectations"] = [*suite.get("expectations", []), *(json.loads(json.dumps(e)) for e in derived)]
    return suite
