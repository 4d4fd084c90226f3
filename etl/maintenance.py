"""Warehouse maintenance: compaction, checkpoints and vacuum of every Delta table.

Publishing by merge key leaves small files behind (a month here, a region
there) and a growing commit log; old versions' files are kept so that
``python -m etl report --as-of`` can rebuild a published figure. This module
keeps the warehouse fast without breaking that promise:

* **compaction** (``optimize``): small files of a partition rewritten into
  few larger ones — a new version with the same rows (no reader notices);
* **checkpoint**: the commit log summarised, so opening a table reads one
  Parquet file instead of every JSON commit;
* **vacuum**: files no version inside the retention window refers to are
  deleted. Retention is ``ETL_RETENTION_DAYS`` (default
  :data:`DEFAULT_RETENTION_DAYS`, ten years: reports must be reproducible
  for as long as a follow-up period is audited); ``--as-of`` a date before
  it fails with one line.

Run by the ``warehouse_maintenance`` DAG (weekly) and ``python -m etl
maintain``; each table's figures are returned and logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

from etl import publish, schemas, storage
from etl.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 3650


@dataclass
class TableMaintenance:
    """What maintenance did to one table (counts of files, versions)."""

    location: str
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    compacted_from: int  # files removed by compaction
    compacted_into: int  # files it added
    vacuumed: int  # files deleted from storage
    checkpoint: bool

    def line(self) -> str:
        return (
            f"{self.location}: {self.files_before} → {self.files_after} file(s) "
            f"(compacted {self.compacted_from} into {self.compacted_into}), {self.vacuumed} old file(s) "
            f"vacuumed, version {self.version_before} → {self.version_after}"
            + (", checkpoint written" if self.checkpoint else "")
        )


def retention_days(environ: dict | None = None) -> int:
    """``ETL_RETENTION_DAYS`` (whole days ≥ 1), default :data:`DEFAULT_RETENTION_DAYS`; ConfigError otherwise."""
    text = (environ if environ is not None else os.environ).get("ETL_RETENTION_DAYS", "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"ETL_RETENTION_DAYS must be a whole number of days ≥ 1, not {text!r}")
    return int(text)


def locations() -> list[str]:
    """Every Delta table a warehouse can hold: the registry's tables, their quarantines, the load log."""
    names = [s.name for s in schemas.all_tables() if not s.name.startswith("_")]
    return [*names, *(f"_quarantine/{n}" for n in names), publish.LOAD_LOG]


def maintain_table(warehouse_uri: str, location: str, retention: int) -> TableMaintenance | None:
    """Compact, checkpoint and vacuum one table; None when it was never published."""
    from deltalake import DeltaTable

    uri = storage.join(warehouse_uri, location)
    options = storage.delta_options(uri)
    try:
        table = DeltaTable(uri, storage_options=options)
    except Exception as exc:  # noqa: BLE001 - TableNotFoundError and storage errors alike
        if type(exc).__name__ == "TableNotFoundError":
            return None
        raise storage.delta_store_error(f"{location}: cannot open", exc) from None
    before, files_before = table.version(), len(table.file_uris())
    metrics = table.optimize.compact(writer_properties=publish.writer_properties())
    table = DeltaTable(uri, storage_options=options)
    table.create_checkpoint()
    table.cleanup_metadata()  # commit files older than the table's log retention
    removed = table.vacuum(retention_hours=retention * 24, dry_run=False, enforce_retention_duration=False)
    table = DeltaTable(uri, storage_options=options)
    return TableMaintenance(
        location,
        before,
        table.version(),
        files_before,
        len(table.file_uris()),
        int(metrics.get("numFilesRemoved", 0)),
        int(metrics.get("numFilesAdded", 0)),
        len(removed),
        True,
    )


def maintain(warehouse_uri: str, retention: int | None = None) -> list[TableMaintenance]:
    """Maintain every published table of the warehouse; returns the figures of each (see :class:`TableMaintenance`)."""
    retention = retention_days() if retention is None else retention
    from etl import migrations
    from etl.pipelines.common import refresh_views

    migrations.ensure_current(warehouse_uri)  # before compaction: a migration rewrites the table anyway
    done = []
    for location in locations():
        result = maintain_table(warehouse_uri, location, retention)
        if result is not None:
            log.info("%s", result.line())
            done.append(result)
    # Compaction made new versions of the same rows: the analysts' views follow them now, so that a
    # later vacuum never deletes files a view still names.
    refresh_views(warehouse_uri)
    return done


def as_dicts(results: list[TableMaintenance]) -> list[dict]:
    return [asdict(r) for r in results]
