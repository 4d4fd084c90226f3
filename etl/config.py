"""Where the pipeline reads from and writes to: the one place settings live.

Precedence: explicit values (CLI flags, Airflow Variables passed in by a
DAG) > environment (``ETL_LANDING_URI``, ``ETL_WAREHOUSE_URI``) > defaults
(``./landing`` and ``./warehouse`` under the current directory).

A URI is a local path or any fsspec URL (``s3://bucket/prefix``,
``memory://x``); both go through :mod:`etl.storage`, so no code elsewhere
needs to know which it got.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from etl.errors import ConfigError

ENV_LANDING = "ETL_LANDING_URI"
ENV_WAREHOUSE = "ETL_WAREHOUSE_URI"
ENV_SCB_URL = "ETL_SCB_BASE_URL"
ENV_KOLADA_URL = "ETL_KOLADA_BASE_URL"
ENV_KOLADA_KPIS = "ETL_KOLADA_KPIS"
ENV_SETTLE = "ETL_LANDING_SETTLE_SECONDS"

# A landed file modified more recently than this is taken to be still
# arriving and is left for the next run (docs/input-formats.md, "Sending a
# file"). A minute covers an upload that stalls briefly; an upload that
# stalls longer should use the hidden-name convention (.name, then rename).
DEFAULT_SETTLE_SECONDS = 60.0

SCB_DEFAULT_URL = "https://statistikdatabasen.scb.se/api/v2"
KOLADA_DEFAULT_URL = "https://api.kolada.se/v3"

# Key figures pulled when nothing is configured: SKR's cost of health care
# per inhabitant and the share of residents with a listed care contact are
# examples; an empty list is a valid configuration too.
DEFAULT_KOLADA_KPIS: tuple[str, ...] = ("N17473", "N17461")


def _normalise_uri(value: str, name: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ConfigError(f"{name} is empty: give a local path or an fsspec URL such as s3://bucket/prefix")
    if "://" in value:
        scheme = value.split("://", 1)[0]
        if not scheme.isidentifier() and not scheme.replace("-", "").isalnum():
            raise ConfigError(f"{name} has an unreadable URL scheme: {value!r}")
        return value.rstrip("/")
    # Local paths are made absolute so Airflow workers, the CLI and tests
    # agree on them whatever their working directory.
    return str(Path(value).expanduser().resolve())


def parse_kpi_list(value: str | None) -> tuple[str, ...]:
    """``"N17473, N17461"`` → ``("N17473", "N17461")``; ``""`` → ``()``."""
    if value is None:
        return DEFAULT_KOLADA_KPIS
    ids = tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    for kpi in ids:
        if not kpi.isalnum():
            raise ConfigError(f"Kolada KPI id {kpi!r} is not alphanumeric")
    return ids


@dataclass(frozen=True)
class Settings:
    landing_uri: str
    warehouse_uri: str
    scb_base_url: str = SCB_DEFAULT_URL
    kolada_base_url: str = KOLADA_DEFAULT_URL
    kolada_kpis: tuple[str, ...] = field(default=DEFAULT_KOLADA_KPIS)
    landing_settle_seconds: float = DEFAULT_SETTLE_SECONDS

    @classmethod
    def resolve(
        cls,
        landing: str | None = None,
        warehouse: str | None = None,
        scb_base_url: str | None = None,
        kolada_base_url: str | None = None,
        kolada_kpis: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> "Settings":
        env = os.environ if environ is None else environ
        landing = landing or env.get(ENV_LANDING) or "landing"
        warehouse = warehouse or env.get(ENV_WAREHOUSE) or "warehouse"
        kpis = kolada_kpis if kolada_kpis is not None else env.get(ENV_KOLADA_KPIS)
        return cls(
            landing_uri=_normalise_uri(landing, "landing URI"),
            warehouse_uri=_normalise_uri(warehouse, "warehouse URI"),
            scb_base_url=(scb_base_url or env.get(ENV_SCB_URL) or SCB_DEFAULT_URL).rstrip("/"),
            kolada_base_url=(kolada_base_url or env.get(ENV_KOLADA_URL) or KOLADA_DEFAULT_URL).rstrip("/"),
            kolada_kpis=parse_kpi_list(kpis),
            landing_settle_seconds=_parse_settle(env.get(ENV_SETTLE)),
        )


def _parse_settle(value: str | None) -> float:
    if value is None or not value.strip():
        return DEFAULT_SETTLE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{ENV_SETTLE} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 86_400:
        raise ConfigError(f"{ENV_SETTLE} must be between 0 and 86400 seconds, not {value!r}")
    return seconds
