"""``<warehouse>/followup.duckdb``: a DuckDB database of views over the published Delta tables.

One view per published table (sources, marts), ``load_log``, one
``quarantine_<table>`` per quarantine and a ``quarantine`` view over all of
them, so an analyst runs ``duckdb warehouse/followup.duckdb`` and then
``select * from followup_region_year``. The file holds no data: each view
reads the Parquet files of its table's Delta snapshot, listed by name when
the file is built, so a view always shows one whole table version, never a
mix — DuckDB needs no Delta extension (which it would download). Every
pipeline run that publishes rebuilds the file, so the views move to the new
versions; files of the versions they named stay until vacuum, whose
retention is far longer than a run.

The views name **absolute** paths of a local warehouse, so the file works
from any working directory — and must be rebuilt (``python -m etl run
followup``) if the warehouse folder moves. For an object-store warehouse
the views name the ``s3://…`` URIs and the analyst needs DuckDB's httpfs
extension and credentials (``CREATE SECRET``).

The file is rebuilt from scratch into a temporary file that replaces the
old one with one ``os.replace``: a reader never sees a half-built
catalogue, and one that has the old file open keeps it.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import urllib.parse
import uuid

import pyarrow as pa

from etl import schemas, storage

DUCKDB_FILE = "followup.duckdb"
STORAGE_COMPATIBILITY = "v1.0.0"


def duckdb_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_list(arrow_type):
        return duckdb_type(arrow_type.value_type) + "[]"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    simple = {
        pa.int16(): "SMALLINT",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
    }
    try:
        return simple[arrow_type]
    except KeyError:
        raise AssertionError(f"no DuckDB type for {arrow_type}") from None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(view: str, schema: schemas.TableSchema, files: list[str]) -> str:
    """CREATE VIEW over the Parquet ``files`` of one table version, with the registry's column order and types."""
    columns = ", ".join(_ident(c.name) for c in schema.all_columns)
    if not files:
        # A published but empty table has no Parquet file for read_parquet to find: a typed empty view instead.
        typed = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {_ident(c.name)}" for c in schema.all_columns)
        return f"CREATE VIEW {_ident(view)} AS SELECT {typed} WHERE false"
    options = ["hive_partitioning = true", "union_by_name = true"]
    if schema.partition_by:
        types = ", ".join(
            f"{_literal(p)}: {duckdb_type(schema.arrow_schema.field(p).type)}" for p in schema.partition_by
        )
        options.append(f"hive_types = {{{types}}}")
    listed = "[" + ", ".join(_literal(f) for f in files) + "]"
    return f"CREATE VIEW {_ident(view)} AS SELECT {columns} FROM read_parquet({listed}, {', '.join(options)})"


def local_path(uri: str) -> str:
    """A file of a local table as delta-rs names it (``file_uris()``, :func:`etl.publish.table_files`) → its real path.

    delta-rs percent-encodes a local file's path (``/tmp/w h/…`` comes back
    as ``/tmp/w%20h/…``, ``å`` as ``%C3%A5``, a literal ``%`` as ``%25``;
    some versions also put ``file://`` in front). DuckDB takes that for a
    file name, finds nothing, and the analysts' views went stale. So it is
    decoded once, back into the name on disk. Only for a local warehouse:
    ``s3://…`` URIs are kept as they are. (A warehouse path holding a
    percent-escape of its own is refused by
    :func:`etl.config.check_store_location`, so nothing is decoded twice.)
    """
    return urllib.parse.unquote(uri.removeprefix("file://"), errors="strict")


def _views(warehouse_uri: str) -> list[tuple[str, schemas.TableSchema, list[str], str]]:
    """(view, schema, Parquet files of the current version, description) for everything published."""
    from etl import publish

    fs, root = storage.filesystem(warehouse_uri)
    local = storage.is_local(fs)
    base = os.path.abspath(root) if local else warehouse_uri.rstrip("/")

    def files(location: str) -> list[str] | None:
        found = publish.table_files(base, location)
        if found is None:
            return None
        return [local_path(f) for f in found] if local else found

    views = []
    for schema in sorted(schemas.all_tables(), key=lambda s: s.name):
        if schema.name.startswith("_"):
            continue
        listed = files(schema.name)
        if listed is not None:
            views.append((schema.name, schema, listed, schema.description))
        q_listed = files(posixpath.join("_quarantine", schema.name))
        if q_listed is not None:
            views.append(
                (
                    f"quarantine_{schema.name}",
                    schemas.get("_quarantine"),
                    q_listed,
                    f"Quarantined input rows meant for {schema.name}, with the reason.",
                )
            )
    log_listed = files("_load_log")
    if log_listed is not None:
        views.append(("load_log", schemas.get("_load_log"), log_listed, schemas.get("_load_log").description))
    return views


def build_duckdb(warehouse_uri: str) -> str:
    """(Re)build ``<warehouse>/followup.duckdb``; returns its URI."""
    import duckdb

    views = _views(warehouse_uri)
    fs, root = storage.filesystem(warehouse_uri)
    local = storage.is_local(fs)
    target = posixpath.join(root, DUCKDB_FILE)
    # The temporary file sits next to the target so os.replace stays on one filesystem (atomic).
    tmp_dir = root if local else tempfile.mkdtemp(prefix="followup-duckdb-")
    tmp = os.path.join(tmp_dir, f".{DUCKDB_FILE}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # Written in the oldest storage format that holds it, so every DuckDB since 1.0 opens it:
        # the CLI from PyPI (duckdb-cli, what `make setup` installs) lags the Python package.
        con = duckdb.connect(tmp, config={"storage_compatibility_version": STORAGE_COMPATIBILITY})
        try:
            for view, schema, files, description in views:
                con.execute(view_sql(view, schema, files))
                con.execute(f"COMMENT ON VIEW {_ident(view)} IS {_literal(description)}")
                for col in schema.all_columns:
                    con.execute(f"COMMENT ON COLUMN {_ident(view)}.{_ident(col.name)} IS {_literal(col.description)}")
            quarantines = [v for v, *_ in views if v.startswith("quarantine_")]
            if quarantines:
                union = " UNION ALL ".join(f"SELECT * FROM {_ident(v)}" for v in quarantines)
                con.execute(f"CREATE VIEW quarantine AS {union}")
                con.execute("COMMENT ON VIEW quarantine IS 'All quarantined rows, every table (see table_name).'")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if local:
            os.replace(tmp, target)
        else:
            fs.put_file(tmp, target)
    finally:
        for leftover in (tmp, tmp + ".wal"):
            if os.path.exists(leftover):
                os.unlink(leftover)
        if not local:
            os.rmdir(tmp_dir)
    return storage.join(warehouse_uri, DUCKDB_FILE)
