"""How a table is declared: its columns, key and docs (:class:`TableSchema`), and the registry they join.

The domain modules (``reference``, ``county``, ``ehealth``, ``followup``,
``system``) declare their tables here with :func:`table`; :mod:`etl.schemas`
reads the registry. Kept apart from the package so the domain modules and
the package do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    nullable: bool = True
    # The description in Swedish, for analysts (the workbook's Kolumner sheet); every mart column has one.
    description_sv: str = ""


LINEAGE: tuple[Column, ...] = (
    Column(
        "source_file",
        pa.string(),
        "Landing file (or API request) the row came from.",
        False,
        "Fil i landningsytan (eller API-anrop) som raden kommer från.",
    ),
    Column(
        "batch_id",
        pa.string(),
        "Load batch that published the row; joins to the load log.",
        False,
        "Laddningen som publicerade raden; kopplas till laddningsloggen.",
    ),
    Column(
        "loaded_at",
        pa.timestamp("us", tz="UTC"),
        "When the batch was published (UTC).",
        False,
        "När laddningen publicerades (UTC).",
    ),
)


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # one row per key; checked on publish
    partition_by: tuple[str, ...] = ()
    # The merge key: a delivery replaces the published rows that share these columns' values with it (an
    # e-health export replaces its year, month and service). None: every publish replaces the whole table.
    replaced_by: tuple[str, ...] | None = None
    domain: str = ""
    lineage: bool = True
    # Expectations that follow from a source's declaration (a yes/no field is boolean; a count of
    # regions is 0–21), added to the table's suite by etl.validation; business rules stay in the JSON.
    expectations: tuple[dict, ...] = ()
    all_columns: tuple[Column, ...] = field(init=False)

    def __post_init__(self) -> None:
        cols = self.columns + (LINEAGE if self.lineage else ())
        object.__setattr__(self, "all_columns", cols)
        names = [c.name for c in cols]
        if len(set(names)) != len(names):
            raise AssertionError(f"{self.name}: duplicate column names")
        for part in (*self.key, *self.partition_by, *(self.replaced_by or ())):
            if part not in names:
                raise AssertionError(f"{self.name}: {part} is not a column")

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.all_columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.all_columns]

    @property
    def business_columns(self) -> list[str]:
        """Columns that carry content (not lineage): what 'unchanged' is judged on."""
        return [c.name for c in self.columns]


TABLES: dict[str, TableSchema] = {}


def table(schema: TableSchema) -> TableSchema:
    if schema.name in TABLES:
        raise AssertionError(f"table {schema.name} declared twice")
    TABLES[schema.name] = schema
    return schema
