"""Settings for tests: a local landing and warehouse, no Kolada, files judged at once (no settle wait).

One place for the shape every pipeline test starts from; a test that is about the settings themselves
(redaction, validation of URIs) calls ``Settings.resolve`` directly.
"""

from __future__ import annotations

from pathlib import Path

from etl.config import Settings

SETTLED_AT_ONCE = {"ETL_LANDING_SETTLE_SECONDS": "0"}


def local_settings(landing: Path | str, warehouse: Path | str, *, environ: dict | None = None, **options) -> Settings:
    """``Settings.resolve`` for these folders (or URIs), ``kolada_kpis=""`` unless given, the landing settled at
    once unless ``environ`` says otherwise."""
    options.setdefault("kolada_kpis", "")
    return Settings.resolve(
        landing=str(landing), warehouse=str(warehouse), environ={**SETTLED_AT_ONCE, **(environ or {})}, **options
    )


def settings_in(tmp: Path) -> Settings:
    """:func:`local_settings` for ``tmp/landing`` and ``tmp/warehouse``, both created."""
    (tmp / "landing").mkdir(exist_ok=True)
    (tmp / "warehouse").mkdir(exist_ok=True)
    return local_settings(tmp / "landing", tmp / "warehouse")
