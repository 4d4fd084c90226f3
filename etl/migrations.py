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

A column the registry declares that a stored table lacks (a declaration
that gained a field: a county yes/no question, an e-health series) is
added by :func:`add_declared_columns` — one metadata commit, null in the
rows already published (not answered), no file rewritten — before the
rewrites below; a required (non-nullable) new column needs a migration
here that gives existing rows a value. The marts are left alone: every
build rewrites them whole, in the declaration's shape, and a mart lacking
a declared column is rebuilt (:mod:`etl.pipelines.followup`).

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

from etl import publish, schemas
from etl.marts import MART_TABLES


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


def add_declared_columns(warehouse_uri: str) -> list[str]:
    """Add to every published table the columns its declaration has and it lacks (:func:`etl.publish.add_columns`:
    one metadata commit and one load-log row per table); returns one line per table changed.

    Raises :class:`ConfigError` when a lacking column is required (see the module doc).
    """
    done = []
    for schema in schemas.all_tables():
        if schema.name in MART_TABLES:
            continue  # rebuilt whole by every build, which writes the new shape (etl.publish.write_version)
        stored = publish.stored_schema(warehouse_uri, schema.name)
        if stored is None:
            continue
        missing = [f for f in schema.arrow_schema if f.name not in stored.names]
        if missing:
            line = publish.add_columns(warehouse_uri, schema.name, missing)
            if line is not None:
                done.append(line)
    return done


def ensure_current(warehouse_uri: str) -> list[str]:
    """Add declared columns (:func:`add_declared_columns`), then apply every pending migration
    (:func:`etl.publish.rewrite`: one overwrite commit and one load-log row each); returns one line per
    change (empty when current).

    Safe against a concurrent run doing the same: the second overwrite
    finds the table current and stops, or loses the commit race and re-checks.
    """
    done = add_declared_columns(warehouse_uri)
    for migration in pending(warehouse_uri):
        line = publish.rewrite(warehouse_uri, migration.table, migration.applies, migration.transform, migration.name)
        if line is not None:
            done.append(line)
    return done
