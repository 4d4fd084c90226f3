"""Schema migrations of published tables: a warehouse written by an older version, brought to the registry.

A migration is a pure function from a table's rows as they were stored to
the rows in the registry's schema (:mod:`etl.schemas`), with a test saying
when it applies (from the stored Delta schema). :func:`ensure_current`
applies the pending ones: one overwrite commit per table (the old version
stays readable by time travel until vacuumed), so readers see the old rows
or the migrated rows, never a mix, and one load-log row (pipeline
``migration``) saying what was rewritten. It runs at the start of every pipeline
run that writes the table and by ``python -m etl maintain``; a table
already current costs one read of its schema.

Migrations so far:

* ``ehealth_unit_daily.month``: ``'YYYY-MM'`` text → ``date32`` (the
  month's first day), the type ``ehealth_adoption.month`` has (issue 16:
  one type for a month across tables). The table is partitioned by it, so
  the files are rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from etl import publish


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
        stored = publish.stored_schema(warehouse_uri, migration.table)
        if stored is not None and migration.applies(stored):
            out.append(migration)
    return out


def ensure_current(warehouse_uri: str) -> list[str]:
    """Apply every pending migration (:func:`etl.publish.rewrite`: one overwrite commit and one load-log row
    each); returns one line per migration applied (empty when current).

    Safe against a concurrent run doing the same: the second overwrite
    finds the table current and stops, or loses the commit race and re-checks.
    """
    done = []
    for migration in pending(warehouse_uri):
        line = publish.rewrite(warehouse_uri, migration.table, migration.applies, migration.transform, migration.name)
        if line is not None:
            done.append(line)
    return done
