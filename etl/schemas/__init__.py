"""The registry of output tables: one pyarrow schema per table, with docs.

Schema is data: each domain module (``reference``, ``county``, ``ehealth``,
``followup``) declares its tables with :func:`table`; writers enforce the
schema (:func:`conform`), and ``docs/tables.md`` is generated from it
(``python -m etl docs``). Every table also gets the lineage columns
``source_file``, ``batch_id`` and ``loaded_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from etl.errors import EtlError


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
        for part in (*self.key, *self.partition_by):
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


def get(name: str) -> TableSchema:
    _load_all()
    try:
        return TABLES[name]
    except KeyError:
        raise EtlError(f"unknown table {name!r}") from None


def all_tables() -> list[TableSchema]:
    _load_all()
    return list(TABLES.values())


def _load_all() -> None:
    # Domain modules register themselves on import.
    from etl.schemas import county, ehealth, reference, system  # noqa: F401

    try:
        from etl.schemas import followup  # noqa: F401
    except ImportError:  # the mart is optional until it exists
        pass


def conform(schema: TableSchema, frame) -> pa.Table:
    """A pandas DataFrame → a pyarrow Table of exactly the declared schema.

    Missing nullable columns are filled with nulls; unknown columns, missing
    required columns or values that cannot be cast raise :class:`EtlError`
    naming the column, so a writer never silently publishes a drifted schema.
    """
    import pandas as pd

    extra = [c for c in frame.columns if c not in schema.column_names]
    if extra:
        raise EtlError(f"{schema.name}: columns not in the schema: {extra}")
    arrays = []
    for col in schema.all_columns:
        if col.name in frame.columns:
            values = frame[col.name]
            try:
                if pa.types.is_date32(col.type) and pd.api.types.is_datetime64_dtype(values.dtype):
                    # Vectorised: a datetime64 column never becomes Python date objects.
                    arr = pa.array(values, from_pandas=True).cast(col.type)
                else:
                    if pa.types.is_date32(col.type):
                        values = pd.to_datetime(values).dt.date
                    arr = pa.array(values, type=col.type, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
                raise EtlError(f"{schema.name}.{col.name}: values do not fit {col.type}: {exc}") from None
        else:
            arr = pa.nulls(len(frame), type=col.type)
        if not col.nullable and arr.null_count:
            raise EtlError(f"{schema.name}.{col.name}: {arr.null_count} null value(s) in a required column")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema)


def render_markdown() -> str:
    """docs/tables.md: the data dictionary, generated from this registry."""
    lines = [
        "# Tables",
        "",
        "Generated by `make docs` (`.venv/bin/python -m etl docs`) from `etl/schemas/`; do not edit by hand.",
        "Every table is a Delta Lake table under `<warehouse>/<table>/` (hive-partitioned Parquet and `_delta_log/`);",
        "read it through `<warehouse>/followup.duckdb`'s views or any Delta reader (see the README).",
        "",
    ]
    for schema in sorted(all_tables(), key=lambda s: (s.domain, s.name)):
        lines += [f"## `{schema.name}`", "", schema.description, ""]
        lines.append(f"Key: {', '.join(f'`{k}`' for k in schema.key)}  ")
        parts = ", ".join(f"`{p}`" for p in schema.partition_by) or "none"
        lines += [f"Partitioned by: {parts}", "", "| column | type | null | meaning |", "|---|---|---|---|"]
        for col in schema.all_columns:
            lines.append(f"| `{col.name}` | {col.type} | {'yes' if col.nullable else 'no'} | {col.description} |")
        lines.append("")
    return "\n".join(lines)
