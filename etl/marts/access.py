"""``<warehouse>/followup.duckdb``: a DuckDB database of views over the published Delta tables.

One view per published table (sources, marts), ``load_log``, one
``quarantine_<table>`` per quarantine and a ``quarantine`` view over all of
them, so an analyst runs ``duckdb warehouse/followup.duckdb`` and then
``select * from followup_region_year``. The file holds no data: each view
reads the Parquet files of its table's Delta snapshot, listed by name when
the file is built, so a view always shows one whole table version, never a
mix — DuckDB needs no Delta extension. Every pipeline run that publishes
rebuilds the file, so the views move to the new versions; files of the
versions they named stay until vacuum, whose retention is far longer than a
run.

The views name **absolute** paths of a local warehouse, so the file works
from any working directory — and must be rebuilt (``python -m etl run
followup``) if the warehouse folder moves.

**Nothing is downloaded, ever.** Every DuckDB connection here has
``autoinstall_known_extensions`` and ``autoload_known_extensions`` off: a
query that would need an extension fails instead of fetching it (DuckDB's
extension repository is on the internet; a production worker has none).
For an object-store warehouse the views name ``s3://…`` files, and DuckDB
reads them with its ``httpfs`` extension — at build time (a view is bound,
its files' schemas read, when it is created) and at query time. That
extension is the file shipped in the ``duckdb-extension-httpfs`` wheel
(requirements.txt), built for exactly the pinned DuckDB version (library
and CLI alike: one version, or DuckDB refuses the file), and ``LOAD``-ed by
its path: :func:`httpfs_extension`. The credentials are the standard
``AWS_*`` variables every other client of the project reads
(:func:`s3_secret_sql`): in this process a temporary DuckDB secret, in
memory only (never in ``followup.duckdb``, which is a shared file), and for
the analysts' DuckDB CLI an init script that reads them with ``getenv`` when
the CLI runs, so the script holds none (:func:`init_sql`;
``python -m etl.marts.access --warehouse s3://…``, see
docs/analyst-guide.md).

The file is rebuilt from scratch into a temporary file that replaces the
old one with one ``os.replace`` (on S3: one PUT): a reader never sees a
half-built catalogue, and one that has the old file open keeps it.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import posixpath
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from etl import schemas, storage
from etl.errors import ConfigError, EtlError

if TYPE_CHECKING:
    import duckdb as duckdb_module

DUCKDB_FILE = "followup.duckdb"
STORAGE_COMPATIBILITY = "v1.0.0"
# DuckDB settings of every connection made here: an extension a query needs is never fetched from the network.
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
HTTPFS_PACKAGE = "duckdb_extension_httpfs"  # the wheel duckdb-extension-httpfs (requirements.txt)
SECRET_NAME = "followup_store"
ATTACHED = "followup"  # the catalogue's name in an analyst's session on an object-store warehouse


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
    typed = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {_ident(c.name)}" for c in schema.all_columns)
    if not files:
        # A published but empty table has no Parquet file for read_parquet to find: a typed empty view instead.
        return f"CREATE VIEW {_ident(view)} AS SELECT {typed} WHERE false"
    options = ["hive_partitioning = true", "union_by_name = true"]
    if schema.partition_by:
        types = ", ".join(
            f"{_literal(p)}: {duckdb_type(schema.arrow_schema.field(p).type)}" for p in schema.partition_by
        )
        options.append(f"hive_types = {{{types}}}")
    listed = "[" + ", ".join(_literal(f) for f in files) + "]"
    # Files written before the declaration gained a column lack it (etl.migrations adds it to the table
    # without rewriting them): the typed empty row set, united by name, gives every declared column, null there.
    return (
        f"CREATE VIEW {_ident(view)} AS SELECT {columns} FROM (SELECT * FROM read_parquet({listed}, "
        f"{', '.join(options)}) UNION ALL BY NAME SELECT {typed} WHERE false)"
    )


def is_object_store(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def duckdb_version(con: duckdb_module.DuckDBPyConnection) -> str:
    """The DuckDB library's version as its extensions are filed under (``v1.5.5``)."""
    row = con.execute("SELECT library_version FROM pragma_version()").fetchone()
    assert row is not None
    return str(row[0])


def httpfs_extension(version: str) -> str:
    """Path of the ``httpfs`` extension file for DuckDB ``version`` (``v1.5.5``), from the installed wheel.

    Raises :class:`ConfigError` when that wheel is missing or built for another DuckDB version: DuckDB
    only loads an extension built for its own version, and must not download one.
    """
    try:
        root = importlib.resources.files(HTTPFS_PACKAGE)
    except ModuleNotFoundError:
        root = None
    found = root / "extensions" / version / "httpfs.duckdb_extension" if root is not None else None
    if found is None or not found.is_file():
        raise ConfigError(
            f"DuckDB's httpfs extension for DuckDB {version} is not installed (needed for an s3:// warehouse): "
            f"install duckdb-extension-httpfs=={version.lstrip('v')}, the version of duckdb and duckdb-cli "
            "(requirements.txt; `make setup`)"
        )
    return str(found)


def _endpoint(environ: Mapping[str, str]) -> tuple[str | None, bool]:
    """(host[:port] of an S3-compatible endpoint or None for AWS, whether it is https) from the environment."""
    url = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None, True
    parsed = urllib.parse.urlsplit(url if "://" in url else "https://" + url)
    return parsed.netloc, parsed.scheme != "http"


def s3_secret_sql(scope: str, environ: Mapping[str, str], *, credentials: str) -> str:
    """``CREATE TEMPORARY SECRET`` for the object store of ``scope`` (a warehouse URI), as the project reaches it.

    The endpoint and region come from the same standard variables delta-rs, s3fs and botocore read
    (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``); an
    S3-compatible endpoint gets path-style URLs. ``credentials``:

    * ``"getenv"`` — the key and secret are read by ``getenv('AWS_ACCESS_KEY_ID')`` … when the SQL runs
      (DuckDB's CLI has ``getenv``): the SQL holds no credential and may be written to a file or shown;
    * ``"literal"`` — their values from ``environ``, written into the SQL: only to execute in this
      process (:func:`configure_s3`), never to be logged or stored.

    A temporary secret lives in the connection's memory: it is not written into a database file.
    """
    endpoint, https = _endpoint(environ)
    options = ["TYPE s3"]
    if credentials == "getenv":
        options += [
            "KEY_ID getenv('AWS_ACCESS_KEY_ID')",
            "SECRET getenv('AWS_SECRET_ACCESS_KEY')",
            "SESSION_TOKEN getenv('AWS_SESSION_TOKEN')",
        ]
    elif credentials == "literal":
        for option, name in (
            ("KEY_ID", "AWS_ACCESS_KEY_ID"),
            ("SECRET", "AWS_SECRET_ACCESS_KEY"),
            ("SESSION_TOKEN", "AWS_SESSION_TOKEN"),
        ):
            if environ.get(name):
                options.append(f"{option} {_literal(environ[name])}")
    else:
        raise ValueError(f"credentials={credentials!r}")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        options.append(f"REGION {_literal(region)}")
    if endpoint:
        options += [f"ENDPOINT {_literal(endpoint)}", "URL_STYLE 'path'", f"USE_SSL {str(https).lower()}"]
    options.append(f"SCOPE {_literal(scope.rstrip('/'))}")
    return f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ({', '.join(options)})"


def configure_s3(con: duckdb_module.DuckDBPyConnection, scope: str, environ: Mapping[str, str] | None = None) -> None:
    """Load the shipped httpfs into ``con`` and give it the object store's credentials from the environment.

    The store's deadlines (:func:`etl.storage.store_timeouts`) apply to DuckDB's requests too. An error
    never shows the secret's SQL (it holds the credentials).
    """
    env = os.environ if environ is None else environ
    con.execute(f"LOAD {_literal(httpfs_extension(duckdb_version(con)))}")
    connect_timeout, request_timeout = storage.store_timeouts()
    con.execute(f"SET http_timeout = {max(1, round(connect_timeout + request_timeout))}")
    con.execute(f"SET http_retries = {storage.STORE_ATTEMPTS - 1}")
    try:
        con.execute(s3_secret_sql(scope, env, credentials="literal"))
    except Exception as exc:  # its message may quote the statement, credentials and all
        raise EtlError(f"DuckDB could not take the object store's settings ({type(exc).__name__})") from None


def connect(warehouse_uri: str) -> duckdb_module.DuckDBPyConnection:
    """A read-only DuckDB connection to the warehouse's catalogue, for Python: ``con.sql("select …")``.

    Local: ``followup.duckdb`` opened read-only. Object store: an in-memory connection with httpfs
    loaded (:func:`configure_s3`, credentials from the environment) and ``<warehouse>/followup.duckdb``
    attached read-only from the store as ``followup`` and made the default, so the views are queried
    by their names, as locally. Nothing is downloaded.
    """
    import duckdb

    if not is_object_store(warehouse_uri):
        fs, root = storage.filesystem(warehouse_uri)
        return duckdb.connect(posixpath.join(root, DUCKDB_FILE), read_only=True, config=dict(OFFLINE))
    con = duckdb.connect(config=dict(OFFLINE))
    configure_s3(con, warehouse_uri)
    con.execute(f"ATTACH {_literal(storage.join(warehouse_uri, DUCKDB_FILE))} AS {ATTACHED} (READ_ONLY)")
    con.execute(f"USE {ATTACHED}")
    return con


def init_sql(warehouse_uri: str, environ: Mapping[str, str] | None = None) -> str:
    """An init script for the DuckDB CLI (``duckdb -init FILE``) that opens an object-store warehouse's catalogue.

    It turns off extension downloads, loads the httpfs extension shipped in the venv by its path,
    creates the store's secret with ``getenv`` (the credentials are read from the analyst's
    environment when the CLI starts, never written here), attaches ``<warehouse>/followup.duckdb``
    read-only and makes it the default database. Only for the DuckDB version the project pins
    (``.venv/bin/duckdb``): another version refuses the extension file.
    """
    import duckdb

    env = os.environ if environ is None else environ
    if not is_object_store(warehouse_uri):
        raise ConfigError(f"{warehouse_uri} is a local warehouse: open {DUCKDB_FILE} there with duckdb directly")
    with duckdb.connect(config=dict(OFFLINE)) as con:
        extension = httpfs_extension(duckdb_version(con))
    catalogue = storage.join(warehouse_uri, DUCKDB_FILE)
    return "\n".join(
        [
            f"-- The follow-up warehouse {warehouse_uri}: run with the DuckDB CLI the project installs,",
            "--   .venv/bin/duckdb -init THIS_FILE",
            "-- with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) set. It holds no credential.",
            "SET autoinstall_known_extensions = false;",
            "SET autoload_known_extensions = false;",
            f"LOAD {_literal(extension)};",
            ".mode trash",  # CREATE SECRET answers with a table of one "true"
            s3_secret_sql(warehouse_uri, env, credentials="getenv") + ";",
            ".mode duckbox",
            f"ATTACH {_literal(catalogue)} AS {ATTACHED} (READ_ONLY);",
            f"USE {ATTACHED};",
            "",
        ]
    )


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
        # Written in the oldest storage format that holds it, so every DuckDB since 1.0 opens it (a local
        # warehouse's file, with an analyst's own DuckDB), not only the version pinned here.
        con = duckdb.connect(tmp, config={**OFFLINE, "storage_compatibility_version": STORAGE_COMPATIBILITY})
        try:
            if not local:
                configure_s3(con, warehouse_uri)  # the views are bound (their files' schemas read) as created
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


def main(argv: list[str] | None = None) -> int:
    """``python -m etl.marts.access [--warehouse s3://…]``: print the DuckDB CLI init script (:func:`init_sql`)."""
    from etl.config import Settings
    from etl.privacy import redact_uri

    parser = argparse.ArgumentParser(
        prog="python -m etl.marts.access",
        description="Print a DuckDB CLI init script that opens an s3:// warehouse's followup.duckdb "
        "(no credentials in it: they are read from AWS_* when the CLI runs). "
        "Use: .venv/bin/python -m etl.marts.access > followup-s3.sql && .venv/bin/duckdb -init followup-s3.sql",
    )
    parser.add_argument("--warehouse", help="warehouse URI; env ETL_WAREHOUSE_URI")
    args = parser.parse_args(argv)
    try:
        script = init_sql(Settings.resolve(warehouse=args.warehouse).warehouse_uri)
    except EtlError as exc:
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        return 2
    sys.stdout.write(script)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
