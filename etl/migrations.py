"""Schema migrations of published tables: a warehouse written by an older version, brought to the registry.

A migration is a pure function from a table's rows as they were stored to
the rows in the registry's schema (:mod:`etl.schemas`), with a test saying
when it applies (from the stored Delta schema). :func:`ensure_current`
applies the pending ones: one overwrite commit per table (the old version
stays readable by time travel until vacuumed), so readers see the old rows
or the migrated rows, never a mix. It runs at the start of every pipeline
run that writes the table and by ``python -m etl maintain``; a table
already current costs one read of its schema.

Migrations so far:

* ``ehealth_unit_daily.month``: ``'YYYY-MM'`` text → ``date32`` (the
  month's first day), the type ``ehealth_adoption.month`` has (issue 16:
  one type for a month across tables). The table is partitioned by it, so
  the files are rewritten.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from etl import publish, schemas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    table: str
    name: str
    applies: Callable[[pa.Schema], bool]  # given the stored schema
    transform: Callable[[pa.Table], pa.Table]


def _month_text_to_date(rows: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    index = rows.schema.get_field_index("month")
    text = rows.column("month").cast(pa.string())
    first_days = pc.strptime(pc.binary_join_element_wise(text, "-01", ""), format="%Y-%m-%d", unit="s")
    return rows.set_column(index, "month", first_days.cast(pa.date32()))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "ehealth_unit_daily",
        "month as date32",
        lambda stored: (
            pa.types.is_string(stored.field("month").type) or pa.types.is_large_string(stored.field("month").type)
        ),
        _month_text_to_date,
    ),
)


def pending(warehouse_uri: str) -> list[Migration]:
    """The migrations whose table exists in the old form."""
    out = []
    for migration in MIGRATIONS:
        table = publish._open(publish._uri(warehouse_uri, migration.table))
        if table is not None and migration.applies(pa.schema(table.schema().to_arrow())):
            out.append(migration)
    return out


def ensure_current(warehouse_uri: str) -> list[str]:
    """Apply every pending migration; returns one line per migration applied (empty when current).

    Safe against a concurrent run doing the same: the second overwrite
    finds the table current and stops, or loses the commit race and re-checks.
    """
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    done = []
    for migration in pending(warehouse_uri):
        uri = publish._uri(warehouse_uri, migration.table)
        schema = schemas.get(migration.table)
        for _ in range(publish.COMMIT_ATTEMPTS):
            table = publish._open(uri)
            if not migration.applies(pa.schema(table.schema().to_arrow())):
                break
            started = dt.datetime.now(dt.UTC)
            from deltalake import QueryBuilder

            rows = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t"))
            migrated = migration.transform(rows).select(schema.arrow_schema.names).cast(schema.arrow_schema)
            try:
                write_deltalake(
                    table,
                    migrated,
                    mode="overwrite",
                    schema_mode="overwrite",
                    partition_by=list(schema.partition_by) or None,
                    writer_properties=publish._writer_properties(),
                )
            except CommitFailedError:
                publish._OPENED.pop(uri, None)
                continue
            line = (
                f"{migration.table}: migrated ({migration.name}), {migrated.num_rows} row(s) rewritten in "
                f"{(dt.datetime.now(dt.UTC) - started).total_seconds():.1f} s"
            )
            log.warning("%s", line)
            done.append(line)
            break
    return done
