"""The pipelines, by name: each module has ``run(settings, *, <its options>) -> RunReport``.

The CLI and the DAGs look pipelines up here, so both run the same code. A
pipeline's options are the keyword-only parameters of its ``run``; an
option it does not take is refused (:func:`options_of`), never swallowed.
"""

from __future__ import annotations

import importlib
import inspect

from etl.errors import EtlError

PIPELINES: dict[str, str] = {
    "reference": "etl.pipelines.reference",
    "county-reports": "etl.pipelines.county_reports",
    "ehealth-adoption": "etl.pipelines.ehealth_adoption",
    "followup": "etl.pipelines.followup",
}
# Dependency order for "all": the mart reads what the sources published.
ORDER = ("reference", "county-reports", "ehealth-adoption", "followup")


def get(name: str):
    try:
        module_name = PIPELINES[name]
    except KeyError:
        raise EtlError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}") from None
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise EtlError(f"pipeline {name!r} is not implemented yet") from None
        raise


def options_of(name: str) -> tuple[str, ...]:
    """The options pipeline ``name`` takes: the keyword-only parameters of its ``run``."""
    parameters = inspect.signature(get(name).run).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)
