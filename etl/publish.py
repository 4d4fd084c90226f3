"""Publishing a table: the one module that writes the warehouse's tables, as Delta Lake tables.

:func:`publish` for every delivery; :func:`rewrite` for a schema migration (a table rewritten whole, with
its own load-log row).

Layout under ``<warehouse>`` (a local folder or an ``s3://`` prefix)::

    <table>/                 a Delta table (``_delta_log/`` + Parquet, hive partitions)
    _quarantine/<table>/     rejected rows of that table, a Delta table
    _load_log/               one row per publish, a Delta table (append-only)

Every table is written with delta-rs (:mod:`deltalake`) through one code
path on every store, so any Delta reader (DuckDB's ``delta_scan``, Polars,
pandas via ``deltalake``, Spark, Power BI) reads what the pipelines wrote.

**Atomic per table.** A table's change is one Delta commit: a reader sees
the version before it or the version after, never a mix, and a crash before
the commit leaves only unreferenced files (removed by vacuum). A publish is
up to three commits in this order — the table, its quarantine, the load-log
row (a part whose content did not change is not committed) — so a crash
between them leaves the table's new version without its load-log row until
a later publish under the same keys: it finds rows whose batch id the load
log does not name for the table, in a commit older than
:data:`CRASHED_AFTER`, and records that publish first
(:func:`_unlogged_publishes`; each publish's commit carries its batch id in the
Delta history, :data:`COMMIT_BATCH_KEY`), then its own row (``unchanged``
when the table already holds the delivery, idempotent, see below). On
S3-compatible stores commits use conditional puts (``If-None-Match``), so
no lock service is needed.

**Concurrent writers.** One commit protocol for creating and for writing
(:func:`_open_or_create`, :func:`write_version`): a table comes into being
as an empty version 0 committed put-if-absent, so of several processes
creating it exactly one does; rows are then only written as a predicate
overwrite from a version read, so when another writer committed first the
loser's commit conflicts and the whole read–compare–write is judged again
against the new version (:data:`COMMIT_ATTEMPTS`), never lost and never
doubled. Writers are not serialised by a lock across processes: a lock on
an object store needs a lock service, and the commit protocol already
makes any number of writers safe (tests/test_concurrent_writers.py, four
processes at once, local and S3). Where serialising is cheaper it is
done: Airflow runs the writing tasks in the one-slot
``etl_warehouse_writer`` pool, so scheduled runs never spend time losing races.

**Idempotent.** Writes are declared, not appended: rows replace existing
rows with the same *merge key* (e.g. region and report year) in one
predicate overwrite, so the same input published twice gives the same
table. When the rows under those keys are already exactly the new rows, no
commit is made at all and the load log says ``unchanged``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from etl import privacy, schemas, storage
from etl.errors import AccountingError, ConfigError, EtlError, one_line

if TYPE_CHECKING:
    import pandas
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

COMPRESSION: Literal["ZSTD"] = "ZSTD"  # Parquet codec of every table file
COMMIT_ATTEMPTS = 20  # read–compare–write rounds before a contended publish gives up
LOAD_LOG = "_load_log"
COMMIT_BATCH_KEY = "etl_batch_id"  # the batch id in each table commit's info (the Delta history)
# A table commit without its load-log row is taken for a crashed publish once it is this old; younger, it
# is a publish in flight (another writer between its table commit and its load-log row, which its store
# deadlines bound to seconds or minutes), which records itself.
CRASHED_AFTER = dt.timedelta(minutes=30)

# Fault injection for the crash-safety tests: with ETL_FAULT_STAGE=<stage>
# the publishing process kills itself (SIGKILL, no cleanup) at that point.
FAULT_STAGES = ("table-committed", "quarantine-published", "load-log-written")


def _checkpoint(stage: str) -> None:
    if os.environ.get("ETL_FAULT_STAGE") == stage:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def new_batch_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class TableBatch:
    """Rows for one table from one batch, with their accounting.

    ``rows`` holds the business columns plus ``source_file``; lineage
    columns ``batch_id``/``loaded_at`` are stamped here. ``quarantine`` has
    ``source_file``, ``row_number``, ``raw``, ``reason`` (and optionally
    ``source_sha256``). ``replace_keys`` lists merge-key tuples to clear even
    if no new row carries them (a republished file whose rows all failed).
    """

    table: str
    rows: pandas.DataFrame
    quarantine: pandas.DataFrame
    rows_in: int
    merge_keys: tuple[str, ...] | None  # None = replace the whole table
    replace_keys: list[tuple] = field(default_factory=list)
    quarantine_sources: list[str] = field(default_factory=list)  # sources whose old quarantine rows to clear
    warnings: list[str] = field(default_factory=list)
    validation: str = "passed"
    # For the no-shrink check (etl.no_shrink): the merge keys each source file replaces, the
    # sources refused whole (file → reason), and the sources that do not state this table at
    # all (e.g. a county JSON without an "initiatives" key), so an empty result is no withdrawal.
    source_keys: dict[str, list[tuple]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    unstated: set[str] = field(default_factory=set)
    # Sources whose content contradicts other figures of the delivery (file → why), e.g. a unit-level
    # file whose daily bookings do not add up to the month's regional bookings: cut short, maybe.
    doubts: dict[str, str] = field(default_factory=dict)

    def source_rows(self, source_file: str) -> int:
        """Input rows of one source file in this batch (loaded + quarantined)."""
        loaded = int((self.rows["source_file"] == source_file).sum()) if len(self.rows) else 0
        return loaded + self._quarantined_of(source_file)

    def _quarantined_of(self, source_file: str) -> int:
        q = self.quarantine
        if q is None or not len(q):
            return 0
        mine = q[q["source_file"] == source_file]
        if "rows_held" in mine.columns:
            return int(mine["rows_held"].fillna(1).sum())
        return int(mine["row_number"].nunique())

    def without(self, sources: set[str]) -> TableBatch:
        """This batch minus everything of ``sources`` (rows, quarantine, the keys they replace).

        Rows in shrink by exactly the rows those sources brought, so the
        accounting of what remains still adds up.
        """
        import dataclasses

        if not sources & (set(self.source_keys) | set(self.quarantine_sources) | set(self.refused)):
            return self
        removed = sum(self.source_rows(s) for s in sources)
        dropped_keys = {k for s in sources for k in self.source_keys.get(s, [])}
        kept_keys = {k for s, keys in self.source_keys.items() if s not in sources for k in keys}
        rows = self.rows[~self.rows["source_file"].isin(sources)] if len(self.rows) else self.rows
        quarantine = self.quarantine
        if quarantine is not None and len(quarantine):
            quarantine = quarantine[~quarantine["source_file"].isin(sources)]
        return dataclasses.replace(
            self,
            rows=rows.reset_index(drop=True),
            quarantine=quarantine,
            rows_in=self.rows_in - removed,
            replace_keys=[k for k in self.replace_keys if k not in dropped_keys or k in kept_keys],
            quarantine_sources=[s for s in self.quarantine_sources if s not in sources],
            source_keys={s: k for s, k in self.source_keys.items() if s not in sources},
            refused={s: r for s, r in self.refused.items() if s not in sources},
            unstated=self.unstated - sources,
            doubts={s: d for s, d in self.doubts.items() if s not in sources},
        )

    def log_entry(
        self,
        pipeline: str,
        batch_id: str,
        outcome: str,
        validation: str,
        started: dt.datetime,
        sources: Sequence[storage.LandedFile | tuple[str, str | None]],
        message: str | None = None,
        version: str | None = None,
    ) -> LoadLogEntry:
        """This batch's load-log row: its table, rows in, loaded, quarantined and warnings."""
        return LoadLogEntry(
            pipeline,
            batch_id,
            outcome,
            validation,
            started,
            self.table,
            sources,
            self.rows_in,
            len(self.rows),
            self.rows_quarantined,
            self.warnings,
            message,
            version,
        )

    @property
    def rows_quarantined(self) -> int:
        if self.quarantine is None or len(self.quarantine) == 0:
            return 0
        # A row that broke several rules is one row; a whole-file entry counts the rows it held.
        if "rows_held" in self.quarantine.columns:
            return int(self.quarantine["rows_held"].sum())
        return int(self.quarantine[["source_file", "row_number"]].drop_duplicates().shape[0])


@dataclass
class PublishResult:
    table: str
    outcome: str  # published | unchanged
    version: str | None
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    table_rows: int
    warnings: list[str]
    scope: str | None = None  # the run's unit this publish was for (a month "2017-03"); None: the whole run

    @property
    def name(self) -> str:
        """``ehealth_adoption 2017-03`` for a month's publish, else the table: one run publishes a table once
        per month, and each line and XCom entry must say which."""
        return f"{self.table} {self.scope}" if self.scope else self.table

    def summary(self) -> str:
        return (
            f"{self.name}: {self.outcome}, {self.rows_in} in = {self.rows_loaded} loaded + "
            f"{self.rows_quarantined} quarantined; table has {self.table_rows} rows"
        )


# --------------------------------------------------------------------------- helpers


def _key_tuples(table: pa.Table, keys: tuple[str, ...]) -> set[tuple]:
    if table.num_rows == 0:
        return set()
    distinct = table.select(list(keys)).group_by(list(keys)).aggregate([])  # a month's rows share one key
    return set(zip(*(distinct.column(k).to_pylist() for k in keys), strict=True))


def _sort(table: pa.Table, schema: schemas.TableSchema) -> pa.Table:
    # Sorted by key so files compress well, scans prune by statistics and
    # content comparison is order-independent.
    keys = [k for k in schema.key if k in table.column_names]
    return table.sort_by([(k, "ascending") for k in keys]) if keys and table.num_rows else table


def _check_unique(table: pa.Table, schema: schemas.TableSchema) -> None:
    """Refuse a table (already sorted by key) in which a key appears twice.

    Sorted, a repeated key sits next to itself: comparing each row with the
    next is linear, where grouping would hash every key again.
    """
    if not schema.key or table.num_rows < 2:
        return
    same = None
    for name in schema.key:
        column = table.column(name).combine_chunks()
        before, after = column.slice(0, len(column) - 1), column.slice(1)
        equal = pc.or_(pc.fill_null(pc.equal(before, after), False), pc.and_(pc.is_null(before), pc.is_null(after)))
        same = equal if same is None else pc.and_(same, equal)
    assert same is not None  # schema.key is not empty (returned above)
    # Count keys, not rows: a key three times is one duplicate key (a run of equal neighbours).
    previous = pa.concat_arrays([pa.array([False]), same.slice(0, len(same) - 1)])
    dupes = pc.sum(pc.and_(same, pc.invert(previous))).as_py() or 0
    if dupes:
        first = pc.index(same, True).as_py()
        example = {k: table.column(k)[first].as_py() for k in schema.key}
        raise AccountingError(f"{schema.name}: {dupes} duplicate key(s) after merge, e.g. {example}; nothing published")


def _same_content(old: pa.Table, new_sorted: pa.Table, schema: schemas.TableSchema) -> bool:
    cols = schema.business_columns
    if old.num_rows != new_sorted.num_rows:
        return False
    # Sorted by the whole key first: a key column need not be a business column (the quarantine's source_file).
    return _sort(old, schema).select(cols).equals(new_sorted.select(cols))


def stamp_lineage(schema: schemas.TableSchema, frame, batch_id: str, loaded_at: dt.datetime) -> pa.Table:
    """``frame`` (pandas, business and ``source_file`` columns) as ``schema``'s Arrow table, lineage stamped.

    ``batch_id`` and ``loaded_at`` (UTC) fill the lineage columns; raises :class:`EtlError` as :func:`schemas.conform`.
    """
    frame = frame.copy()
    if schema.lineage:
        frame["batch_id"] = batch_id
        frame["loaded_at"] = loaded_at
    return schemas.conform(schema, frame)


# --------------------------------------------------------------------------- Delta tables


def _uri(warehouse_uri: str, location: str) -> str:
    return storage.join(warehouse_uri, location)


# Tables opened in this process, brought up to date by reading only the commits since (a backfill
# publishes one table hundreds of times; replaying its whole log each time grows with every month).
_OPENED: dict[str, DeltaTable] = {}
_OPENED_LOCK = threading.Lock()


def _open(uri: str, version: int | None = None):
    """The Delta table at ``uri`` (its latest version, or ``version``), or None when none was ever committed there."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        if version is not None:
            return DeltaTable(uri, version=version, storage_options=storage.delta_options(uri))
        with _OPENED_LOCK:
            table = _OPENED.get(uri)
            if table is not None:
                try:
                    table.update_incremental()
                    return table
                except Exception:  # noqa: BLE001 - replaced or cleaned up under us: open it afresh
                    del _OPENED[uri]
            table = DeltaTable(uri, storage_options=storage.delta_options(uri))
            _OPENED[uri] = table
            return table
    except TableNotFoundError:
        return None
    except OSError as exc:
        raise storage.delta_store_error(f"warehouse storage: cannot read {privacy.redact_uri(uri)}", exc) from None


def _forget(uri: str) -> None:
    """Drop the table kept open at ``uri`` (after a lost commit race: the next open reads what won)."""
    with _OPENED_LOCK:
        _OPENED.pop(uri, None)


def _stored_arrow(table) -> pa.Schema:
    """The Arrow schema an open Delta table is stored with."""
    return pa.schema(table.schema().to_arrow())


def _open_or_create(uri: str, schema: schemas.TableSchema) -> DeltaTable:
    """The Delta table at ``uri``, created empty (version 0: schema, partitioning, properties) when none exists.

    The one way a table comes into being. Creating is a commit of version 0
    that fails when version 0 already exists (put-if-absent: a rename that
    does not replace on a local disk, ``If-None-Match`` on S3), with no
    retry inside delta-rs: of several processes creating one table at once,
    exactly one creates it and the others open what it created. Rows are
    only ever written into an existing version afterwards, where a
    concurrent commit is a conflict that the writer judges again.
    """
    from deltalake import CommitProperties, DeltaTable
    from deltalake.exceptions import CommitFailedError, DeltaError

    table = _open(uri)
    if table is not None:
        return table
    try:
        DeltaTable.create(
            uri,
            schema.arrow_schema,
            mode="error",
            partition_by=list(schema.partition_by) or None,
            configuration=TABLE_PROPERTIES,
            storage_options=storage.delta_options(uri),
            commit_properties=CommitProperties(max_commit_retries=0),
        )
    except CommitFailedError:
        pass  # another writer committed version 0 between our look and our commit
    except DeltaError as exc:
        if "already exists" not in str(exc).lower():
            raise storage.delta_store_error(
                f"warehouse storage: cannot create {privacy.redact_uri(uri)}", exc
            ) from None
    except OSError as exc:
        raise storage.delta_store_error(f"warehouse storage: cannot create {privacy.redact_uri(uri)}", exc) from None
    table = _open(uri)
    if table is None:  # pragma: no cover - created, yet not readable: the store lost a write
        raise EtlError(f"warehouse storage: {privacy.redact_uri(uri)} was created but cannot be opened")
    return table


def _sql_literal(value) -> str:
    if value is None:
        raise EtlError("a merge key value is null")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _predicate(merge_keys: tuple[str, ...], keys: set[tuple]) -> str:
    """SQL predicate matching the rows under ``keys`` (merge-key tuples): what a publish replaces."""
    if len(merge_keys) == 1:
        values = ", ".join(sorted(_sql_literal(k[0]) for k in keys))
        return f"{merge_keys[0]} IN ({values})"
    terms = sorted(
        "(" + " AND ".join(f"{c} = {_sql_literal(v)}" for c, v in zip(merge_keys, k, strict=True)) + ")" for k in keys
    )
    return " OR ".join(terms)


def _read(table, schema: schemas.TableSchema, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
    """Rows of a Delta table snapshot (``where``: a SQL predicate), cast to the registry schema.

    Read by delta-rs's own query engine (DataFusion: partition and row-group
    pruning), handed over as Arrow memory. Not through ``to_pyarrow_dataset``,
    whose Python filesystem handler leaves Python objects on pyarrow's
    threads that abort the interpreter at exit (issue 13 §8: exit 134).
    """
    from deltalake import QueryBuilder

    arrow = schema.arrow_schema
    wanted = columns or arrow.names
    target = pa.schema([arrow.field(c) for c in wanted])
    if table is None:
        return target.empty_table()
    # A version written before its declaration gained a column (an --as-of read, a mart not yet rebuilt)
    # lacks it: read as null, i.e. not stated (etl.migrations adds such columns to the current versions).
    stored = set(_stored_arrow(table).names)
    present = [c for c in wanted if c in stored]
    listed = ", ".join(f'"{c}"' for c in present)
    sql = f"SELECT {listed} FROM t" + (f" WHERE {where}" if where else "")
    data = pa.table(QueryBuilder().register("t", table).execute(sql))
    if data.num_rows == 0:
        return target.empty_table()
    for name in wanted:
        if name not in stored:
            data = data.append_column(target.field(name), pa.nulls(data.num_rows, target.field(name).type))
    data = data.select(wanted)
    return data.cast(target) if data.schema != target else data


def _row_count(table) -> int:
    if table is None:
        return 0
    counts = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    return int(pc.sum(counts).as_py() or 0)


class Written(NamedTuple):
    """What :func:`write_version` did: ``outcome`` published | unchanged, the table's ``version`` after it
    and its ``rows``, and ``found``: batch id → rows of the version read under the merge keys (the rows
    this write replaced or left as they were), which is how a crashed publish's rows are recognised."""

    outcome: str
    version: str | None
    rows: int
    found: dict[str, int]


def write_version(
    warehouse_uri: str,
    location: str,
    schema: schemas.TableSchema,
    new_rows: pa.Table,
    merge_keys: tuple[str, ...] | None,
    replace_keys: AbstractSet[tuple] = frozenset(),
    batch_id: str | None = None,
) -> Written:
    """Merge ``new_rows`` into the Delta table at ``location``.

    The rows under the merge keys of ``new_rows`` and ``replace_keys`` are
    replaced by ``new_rows`` in one commit (``merge_keys=None``: the whole
    table), whose commit info carries ``batch_id`` (``etl_batch_id`` in the
    Delta history). ``outcome`` is ``unchanged`` (no commit) when they
    already are exactly those rows by content. Raises
    :class:`AccountingError` when a key would appear twice,
    :class:`EtlError` when the commit keeps conflicting with other writers.
    """
    from deltalake.exceptions import CommitFailedError, DeltaError

    uri = _uri(warehouse_uri, location)
    new_sorted = _sort(new_rows.cast(schema.arrow_schema), schema)
    _check_unique(new_sorted, schema)
    clear_keys = None if merge_keys is None else _key_tuples(new_rows, merge_keys) | set(replace_keys)
    for attempt in range(COMMIT_ATTEMPTS):
        # Never an append into a table that does not exist yet: such a first write has nothing to
        # conflict with, so two writers creating one table would both land (rows doubled). The table is
        # created empty, once, and every write is then a predicate overwrite judged against a version.
        table = _open_or_create(uri, schema)
        # A table rebuilt whole (a mart) whose declaration gained a column takes the new shape with the
        # rebuild (etl.migrations leaves it alone): its old rows cannot be the same content.
        reshaped = bool(merge_keys is None and set(schema.arrow_schema.names) - set(_stored_arrow(table).names))
        old = None if reshaped else _rows_replaced(table, schema, merge_keys, clear_keys)
        found = _batches(old)
        if (old is not None and _same_content(old, new_sorted, schema)) or clear_keys == set():
            return Written("unchanged", str(table.version()), _row_count(table), found)
        try:
            _overwrite(table, new_sorted, schema, merge_keys, clear_keys, reshaped, batch_id)
        except CommitFailedError as exc:
            # Another writer committed first: judge again against its version.
            log.info("%s: commit conflict (%s), retrying", location, str(exc)[:200])
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
            continue
        except DeltaError as exc:
            raise storage.delta_store_error(f"{privacy.redact_uri(location)}: publish failed", exc) from None
        # The table object is at the version this write committed (delta-rs moves it there): reopening
        # would read whatever is latest, another writer's version in a race (a reviewer's test saw two
        # writers report one version).
        _checkpoint("table-committed")
        return Written("published", str(table.version()), _row_count(table), found)
    raise EtlError(f"{location}: gave up after {COMMIT_ATTEMPTS} conflicting commits from other writers")


def _rows_replaced(
    table, schema: schemas.TableSchema, merge_keys: tuple[str, ...] | None, clear_keys: set[tuple] | None
) -> pa.Table:
    """The rows of ``table`` a write of ``clear_keys`` replaces (``merge_keys=None``: all of them)."""
    if merge_keys is None:
        return _read(table, schema)
    if clear_keys:
        return _read(table, schema, where=_predicate(merge_keys, clear_keys))
    return schema.arrow_schema.empty_table()


def _overwrite(
    table,
    rows: pa.Table,
    schema: schemas.TableSchema,
    merge_keys: tuple[str, ...] | None,
    clear_keys: set[tuple] | None,
    reshaped: bool,
    batch_id: str | None,
) -> None:
    """One commit: ``rows`` in place of the rows under ``clear_keys`` (``merge_keys=None``: the whole table,
    in its declared shape when ``reshaped``), the commit info carrying ``batch_id``. Raises delta-rs's
    CommitFailedError when another writer committed first."""
    from deltalake import CommitProperties, write_deltalake

    commit = CommitProperties(custom_metadata={COMMIT_BATCH_KEY: batch_id}) if batch_id else None
    if merge_keys is None:
        write_deltalake(
            table,
            rows,
            mode="overwrite",
            schema_mode="overwrite" if reshaped else None,
            partition_by=(list(schema.partition_by) or None) if reshaped else None,
            writer_properties=writer_properties(),
            commit_properties=commit,
        )
    else:
        assert clear_keys  # an empty set of keys is unchanged by definition (write_version returned)
        write_deltalake(
            table,
            rows,
            mode="overwrite",
            predicate=_predicate(merge_keys, clear_keys),
            writer_properties=writer_properties(),
            commit_properties=commit,
        )


def _batches(rows: pa.Table | None) -> dict[str, int]:
    """batch id → rows, of rows read from a table with lineage columns (empty without them)."""
    if rows is None or rows.num_rows == 0 or "batch_id" not in rows.column_names:
        return {}
    counts = rows.group_by("batch_id").aggregate([("batch_id", "count")])
    return dict(zip(counts.column("batch_id").to_pylist(), counts.column("batch_id_count").to_pylist(), strict=True))


def _commit_of(uri: str, batch_id: str) -> tuple[int, dt.datetime] | None:
    """(version, commit time UTC) of the table commit carrying ``batch_id``; None when none carries it (a
    commit from before commits carried their batch id)."""
    table = _open(uri)
    if table is None:
        return None
    for commit in table.history():
        if commit.get(COMMIT_BATCH_KEY) == batch_id:
            return commit["version"], dt.datetime.fromtimestamp(commit["timestamp"] / 1000, dt.UTC)
    return None


def writer_properties():
    """The Parquet writer settings of every table file (compression :data:`COMPRESSION`)."""
    from deltalake import WriterProperties

    return WriterProperties(compression=COMPRESSION)


def stored_schema(warehouse_uri: str, location: str) -> pa.Schema | None:
    """The Arrow schema the table at ``<warehouse>/<location>`` is stored with, or None when it does not exist."""
    table = _open(_uri(warehouse_uri, location))
    return None if table is None else _stored_arrow(table)


def rewrite(
    warehouse_uri: str,
    name: str,
    applies: Callable[[pa.Schema], bool],
    transform: Callable[[pa.Table], pa.Table],
    what: str,
) -> str | None:
    """Rewrite table ``name`` whole by ``transform`` (rows as stored → rows in the registry's schema), logged.

    For schema migrations (:mod:`etl.migrations`): one overwrite commit, so
    readers see the old rows or the new, never a mix (the old version stays
    readable by time travel until vacuumed); then one load-log row (pipeline
    ``migration``, outcome ``published``, ``what`` in its message). Safe against
    a concurrent writer doing the same: it re-checks ``applies`` (given the
    stored schema) before every attempt. Returns the line logged, or None when
    the table is absent or already current. Raises :class:`EtlError` after
    :data:`COMMIT_ATTEMPTS` lost commit races.
    """
    from deltalake import QueryBuilder, write_deltalake
    from deltalake.exceptions import CommitFailedError

    uri = _uri(warehouse_uri, name)
    schema = schemas.get(name)
    for _ in range(COMMIT_ATTEMPTS):
        table = _open(uri)
        if table is None or not applies(_stored_arrow(table)):
            return None
        started = utcnow()
        rows = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t"))
        rewritten = transform(rows).select(schema.arrow_schema.names).cast(schema.arrow_schema)
        try:
            write_deltalake(
                table,
                rewritten,
                mode="overwrite",
                schema_mode="overwrite",
                partition_by=list(schema.partition_by) or None,
                writer_properties=writer_properties(),
            )
        except CommitFailedError:
            _forget(uri)
            continue
        line = (
            f"{name}: migrated ({what}), {rewritten.num_rows} row(s) rewritten in "
            f"{(utcnow() - started).total_seconds():.1f} s"
        )
        version = _open(uri)
        _log_migration(warehouse_uri, name, started, rows.num_rows, rewritten.num_rows, line, version)
        return line
    raise EtlError(f"{name}: migration {what} gave up after {COMMIT_ATTEMPTS} conflicting commits from other writers")


def _log_migration(
    warehouse_uri: str, name: str, started: dt.datetime, rows_in: int, rows_loaded: int, line: str, table
) -> None:
    """A migration's load-log row (pipeline ``migration``, the version ``table`` is at), and its warning."""
    append_load_log(
        warehouse_uri,
        LoadLogEntry(
            "migration",
            new_batch_id(),
            "published",
            "skipped",
            started,
            table=name,
            rows_in=rows_in,
            rows_loaded=rows_loaded,
            message=line,
            version=None if table is None else str(table.version()),
        ),
    )
    log.warning("%s", line)


def add_columns(warehouse_uri: str, name: str, fields: list[pa.Field]) -> str | None:
    """Add ``fields`` (nullable Arrow fields the registry declares) to table ``name``: one metadata commit.

    For a declaration that gained a column (a new county field, a new
    series): the rows already published read it as null (not answered), no
    file is rewritten; then one load-log row (pipeline ``migration``). Safe
    against a concurrent writer adding the same: each attempt adds only the
    fields still missing. Returns the line logged, or None when the table is
    absent or has them all. Raises :class:`ConfigError` for a required
    (non-nullable) field — existing rows cannot have a value for it, a
    migration in :mod:`etl.migrations` must give one — and
    :class:`EtlError` after :data:`COMMIT_ATTEMPTS` lost commit races.
    """
    from deltalake import Field
    from deltalake.exceptions import CommitFailedError, DeltaError

    required = [f.name for f in fields if not f.nullable]
    if required:
        raise ConfigError(
            f"{name}: the published table lacks required column(s) {', '.join(required)}: rows already "
            "published have no value for them; write a migration in etl/migrations.py that gives one"
        )
    uri = _uri(warehouse_uri, name)
    for _ in range(COMMIT_ATTEMPTS):
        table = _open(uri)
        if table is None:
            return None
        stored = set(_stored_arrow(table).names)
        missing = [f for f in fields if f.name not in stored]
        if not missing:
            return None
        started = utcnow()
        try:
            table.alter.add_columns([Field.from_arrow(f) for f in missing])
        except CommitFailedError:
            _forget(uri)
            continue
        except DeltaError as exc:
            if "already exists" in str(exc).lower():  # a concurrent writer added it first: check again
                _forget(uri)
                continue
            raise storage.delta_store_error(f"{name}: adding column(s) failed", exc) from None
        rows = _row_count(table)
        added = ", ".join(f.name for f in missing)
        line = f"{name}: migrated (column(s) {added} added; null in the {rows} row(s) already published)"
        _log_migration(warehouse_uri, name, started, rows, rows, line, table)
        return line
    raise EtlError(f"{name}: adding column(s) gave up after {COMMIT_ATTEMPTS} conflicting commits from other writers")


def forget_opened() -> None:
    """Drop the tables this process keeps open, so the next read replays each log from scratch (benchmarks)."""
    with _OPENED_LOCK:
        _OPENED.clear()


# Delta table properties: keep the commit log and removed files long enough for --as-of reports.
TABLE_PROPERTIES = {
    "delta.logRetentionDuration": "interval 3650 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}


def publish(
    warehouse_uri: str,
    pipeline: str,
    batch: TableBatch,
    batch_id: str,
    sources: Sequence[storage.LandedFile | tuple[str, str | None]] = (),  # (uri, sha256): None where not hashed
) -> PublishResult:
    """Publish one table's batch and its quarantine, then append the load log row.

    Raises :class:`AccountingError` (and publishes nothing) when rows in !=
    rows loaded + rows quarantined.
    """
    # Size: the commit protocol step by step (read, compare, check, write, log); split, the order atomicity
    # depends on would be hidden.
    import pandas as pd

    started = utcnow()
    schema = schemas.get(batch.table)
    rows_loaded = len(batch.rows)
    if batch.rows_in != rows_loaded + batch.rows_quarantined:
        message = (
            f"{batch.table}: row accounting failed: {batch.rows_in} in != {rows_loaded} loaded "
            f"+ {batch.rows_quarantined} quarantined"
        )
        append_load_log(
            warehouse_uri, batch.log_entry(pipeline, batch_id, "failed", "failed", started, sources, message)
        )
        error = AccountingError(message)
        error.in_load_log = True
        raise error

    loaded_at = started
    new_rows = stamp_lineage(schema, batch.rows, batch_id, loaded_at)
    quarantine = batch.quarantine if batch.quarantine is not None else pd.DataFrame()
    q_schema = schemas.get("_quarantine")
    q_frame = quarantine.copy()
    if "rows_held" in q_frame.columns:
        q_frame["rows_held"] = q_frame["rows_held"].fillna(1).astype("int64")
    q_frame["table_name"] = batch.table
    for column in ("raw", "reason"):  # quarantine keeps the row for a person, not the person
        if column in q_frame.columns:
            q_frame[column] = q_frame[column].map(privacy.mask_personal_data)
    if len(q_frame):

        def join_texts(values):
            return "; ".join(dict.fromkeys(str(x) for x in values if x is not None and x == x)) or None

        q_frame = q_frame.groupby(["source_file", "row_number", "table_name"], as_index=False, sort=True).agg(
            {
                c: ("max" if c == "rows_held" else join_texts)
                for c in q_frame.columns
                if c not in ("source_file", "row_number", "table_name")
            }
        )
    q_rows = stamp_lineage(q_schema, q_frame, batch_id, loaded_at)
    row_sources: Iterable[str] = batch.rows["source_file"].unique() if "source_file" in batch.rows.columns else []
    q_sources = (
        set(batch.quarantine_sources) | set(row_sources) | set(q_frame["source_file"].unique() if len(q_frame) else [])
    )

    # The same delivery reached before through another mount point or spelling: its quarantine rows go too.
    q_sources |= _same_delivery_sources(warehouse_uri, batch.table, q_sources)

    outcome, version, total, found = write_version(
        warehouse_uri, batch.table, schema, new_rows, batch.merge_keys, set(batch.replace_keys), batch_id
    )
    write_version(
        warehouse_uri,
        f"_quarantine/{batch.table}",
        q_schema,
        q_rows,
        ("source_file",),
        {(s,) for s in q_sources},
        batch_id,
    )
    _checkpoint("quarantine-published")
    validation = batch.validation if not batch.warnings or batch.validation != "passed" else "warning"
    for entry in _unlogged_publishes(warehouse_uri, pipeline, batch.table, batch_id, found, started):
        append_load_log(warehouse_uri, entry)
    append_load_log(
        warehouse_uri, batch.log_entry(pipeline, batch_id, outcome, validation, started, sources, version=version)
    )
    result = PublishResult(
        batch.table, outcome, version, batch.rows_in, rows_loaded, batch.rows_quarantined, total, list(batch.warnings)
    )
    log.info("%s", result.summary())
    return result


def _unlogged_publishes(
    warehouse_uri: str, pipeline: str, table: str, batch_id: str, found: dict[str, int], started: dt.datetime
) -> list[LoadLogEntry]:
    """Load-log rows for batches whose rows ``found`` holds but the load log does not name for ``table``.

    A publish is up to three commits, the load-log row last: a process killed
    after its table commit leaves rows whose batch id no load-log row names.
    A later publish under the same keys finds them (replacing them or
    leaving them as they are) and records that publish for it: outcome
    ``published`` under the crashed batch's id, the version its commit made
    (from the Delta history), the rows found, and a message naming the batch
    that recorded it. A commit younger than :data:`CRASHED_AFTER` is left
    alone: it is a concurrent publish that has not written its row yet.
    Costs a read of the load log only when ``found`` names another batch.
    """
    earlier = set(found) - {batch_id}
    if not earlier:
        return []
    log_rows = _read(
        _open(_uri(warehouse_uri, LOAD_LOG)),
        schemas.get("_load_log"),
        columns=["batch_id"],
        where=f"table_name = {_sql_literal(table)}",
    )
    logged = set(log_rows.column("batch_id").to_pylist())
    entries = []
    for crashed in sorted(earlier - logged):
        commit = _commit_of(_uri(warehouse_uri, table), crashed)
        if commit is not None and utcnow() - commit[1] < CRASHED_AFTER:
            continue  # in flight: its own process writes its row
        version = None if commit is None else commit[0]
        message = (
            f"{table}: recorded by batch {batch_id}: the publish of batch {crashed} stopped after its table "
            f"commit, before its load-log row (the process ended); {found[crashed]} of its rows found"
        )
        entries.append(
            LoadLogEntry(
                pipeline,
                crashed,
                "published",
                "skipped",  # this row judged nothing; the crashed batch's judgement was never logged
                started,
                table,
                rows_in=found[crashed],
                rows_loaded=found[crashed],
                message=message,
                version=None if version is None else str(version),
            )
        )
        log.warning("%s", message)
    return entries


def _same_delivery_sources(warehouse_uri: str, table: str, sources: set[str]) -> set[str]:
    """Quarantined source files of ``table`` that are one of ``sources`` under another path or spelling."""
    from etl.deliveries import delivery_path

    if not sources:
        return set()
    wanted = {delivery_path(s) for s in sources}
    # Every publish asks this: read the file-name column only, not the quarantined rows.
    names = _read(_open(_uri(warehouse_uri, f"_quarantine/{table}")), schemas.get("_quarantine"), ["source_file"])
    if not names.num_rows:
        return set()
    return {s for s in pc.unique(names.column("source_file")).to_pylist() if s and delivery_path(s) in wanted}


def _source_lists(sources) -> tuple[list[str], list[str]]:
    uris, shas = [], []
    for src in sources or ():
        if isinstance(src, storage.LandedFile):
            uris.append(src.uri)
            shas.append(src.sha256)
        else:
            uris.append(src[0])
            shas.append(src[1])
    return uris, shas


@dataclass(frozen=True)
class LoadLogEntry:
    """One row of the load log (schema ``_load_log``) as a writer states it, before redaction.

    ``outcome``: published | unchanged | nothing_new | failed | blocked |
    approved | rejected; ``validation``: passed | warning | failed | skipped.
    ``sources`` are :class:`~etl.storage.LandedFile` or ``(uri, sha256)``
    pairs; ``table`` is None for a row about a run or a delivery as a whole.
    """

    pipeline: str
    batch_id: str
    outcome: str
    validation: str
    started: dt.datetime
    table: str | None = None
    sources: Sequence[storage.LandedFile | tuple[str, str | None]] = ()
    rows_in: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    warnings: tuple | list = ()
    message: str | None = None
    version: str | None = None


def append_load_log(warehouse_uri: str, entry: LoadLogEntry) -> None:
    """Append ``entry`` as one row to the ``_load_log`` Delta table (written after the table's commit).

    Source URIs, warnings and the message pass through :func:`etl.privacy.redact_uri`
    here, whoever wrote them: a landing URI with credentials never reaches the log.
    Appends never conflict with each other; delta-rs retries them itself.
    """
    from deltalake import write_deltalake

    uris, shas = _source_lists(entry.sources)
    row = {
        "batch_id": [entry.batch_id],
        "pipeline": [entry.pipeline],
        "table_name": [entry.table],
        "source_files": [[privacy.redact_uri(u) for u in uris]],
        "source_sha256": [shas],
        "rows_in": [entry.rows_in],
        "rows_loaded": [entry.rows_loaded],
        "rows_quarantined": [entry.rows_quarantined],
        "outcome": [entry.outcome],
        "validation": [entry.validation],
        "warnings": [one_line(privacy.redact_uri("; ".join(entry.warnings))) or None],
        "message": [one_line(privacy.redact_uri(entry.message)) if entry.message else entry.message],
        "table_version": [entry.version],
        "started_at": [entry.started],
        "finished_at": [utcnow()],
    }
    schema = schemas.get("_load_log").arrow_schema
    from deltalake.exceptions import CommitFailedError

    uri = _uri(warehouse_uri, LOAD_LOG)
    data = pa.Table.from_pydict(row, schema=schema)
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            write_deltalake(_open_or_create(uri, schemas.get("_load_log")), data, mode="append")
            break
        except CommitFailedError:
            _OPENED.pop(uri, None)  # lost a race: append to what won
            time.sleep(min(1.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.5))
        except EtlError:
            raise
        except Exception as exc:  # noqa: BLE001 - delta-rs raises several kinds; the message is what matters
            raise storage.delta_store_error(f"load log: cannot append to {privacy.redact_uri(uri)}", exc) from None
    else:
        raise EtlError(f"load log: gave up appending to {privacy.redact_uri(uri)} after {COMMIT_ATTEMPTS} conflicts")
    _checkpoint("load-log-written")


def read_load_log(warehouse_uri: str) -> pa.Table:
    """Every load-log row (schema ``_load_log``) in the order they were written; empty when nothing was logged."""
    rows = _read(_open(_uri(warehouse_uri, LOAD_LOG)), schemas.get("_load_log"))
    return rows.sort_by([("finished_at", "ascending"), ("started_at", "ascending")]) if rows.num_rows else rows


def committed_sha256(warehouse_uri: str, pipeline: str) -> dict[str, set[str]]:
    """Per table: SHA-256 of every source file a pipeline has committed to it (published or unchanged)."""
    per_table: dict[str, set[str]] = {}
    log_rows = read_load_log(warehouse_uri).select(["pipeline", "outcome", "table_name", "source_sha256"])
    for row in log_rows.to_pylist():
        if row["pipeline"] != pipeline or row["outcome"] not in {"published", "unchanged"}:
            continue
        per_table.setdefault(row["table_name"], set()).update(row["source_sha256"] or [])
    return per_table


def loaded_sha256(warehouse_uri: str, pipeline: str, tables: tuple[str, ...] | None = None) -> set[str]:
    """SHA-256 of every source file a pipeline has committed (published or unchanged).

    With ``tables``, a file counts only once *every* listed table committed
    it: a run that died between two tables' publishes then simply redoes the
    file (publishing is idempotent) instead of leaving the second table short.
    """
    per_table = committed_sha256(warehouse_uri, pipeline)
    if not tables:
        return set().union(*per_table.values())
    return set.intersection(*(per_table.get(t, set()) for t in tables))


def read_published_keys(warehouse_uri: str, name: str, merge_keys: tuple[str, ...], keys: set[tuple]) -> pa.Table:
    """The key columns (``schema.key`` and ``merge_keys``) of the published rows under ``keys``.

    Reads only the partitions and row groups those merge keys can be in, and
    only the key columns: the no-shrink check asks this for every delivery it judges.
    """
    schema = schemas.get(name)
    columns = list(dict.fromkeys([*schema.key, *merge_keys]))
    if not keys:
        return _read(None, schema, columns)
    return _read(_open(_uri(warehouse_uri, name)), schema, columns, _predicate(merge_keys, keys))


def read_table_where(warehouse_uri: str, name: str, merge_keys: tuple[str, ...], keys: set[tuple]) -> pa.Table:
    """The published rows (all columns) under ``keys`` of ``merge_keys``; reads only their partitions."""
    schema = schemas.get(name)
    if not keys:
        return _read(None, schema)
    return _read(_open(_uri(warehouse_uri, name)), schema, None, _predicate(merge_keys, keys))


def read_table(warehouse_uri: str, name: str, version: int | None = None) -> pa.Table:
    """The current content (or ``version``) of a published table, schema applied; empty if never published.

    Raises :class:`EtlError` when ``version``'s files were removed by vacuum.
    """
    table = _open(_uri(warehouse_uri, name), version)
    try:
        return _read(table, schemas.get(name))
    except Exception as exc:
        if version is None:
            raise
        raise EtlError(
            f"{name}: version {version} can no longer be read (its files were vacuumed?): {str(exc)[:200]}"
        ) from None


def read_quarantine(warehouse_uri: str, table: str) -> pa.Table:
    """The current quarantine rows of a table."""
    return _read(_open(_uri(warehouse_uri, f"_quarantine/{table}")), schemas.get("_quarantine"))


def table_files(warehouse_uri: str, location: str) -> list[str] | None:
    """URIs of the Parquet files of a table's current version (None: never published)."""
    table = _open(_uri(warehouse_uri, location))
    return None if table is None else list(table.file_uris())


def has_load_log(warehouse_uri: str) -> bool:
    """Whether any run has written to ``warehouse_uri`` (its load log has a Delta log).

    Asked through fsspec with the store's deadlines, not by opening the table: delta-rs reads a store that
    does not answer as a table that is not there, and "nothing is published" would then be said of a
    stalled store. Raises the project's one-line error for a store that refuses or does not answer.
    """
    fs, path = storage.filesystem(storage.join(_uri(warehouse_uri, LOAD_LOG), "_delta_log"))
    try:
        fs.invalidate_cache(path)
        return bool(fs.ls(path, detail=False))
    except FileNotFoundError:
        return False
    except Exception as exc:  # noqa: BLE001 - mapped to the one line where it is a store's; else as it is
        known = storage.store_error(exc)
        if known is not None:
            raise known from None
        raise


def require_load_log(warehouse_uri: str) -> None:
    """Raise :class:`ConfigError` (one line) when ``warehouse_uri`` has no load log: no run ever wrote there.

    For the commands a person points at a warehouse (``status``, ``approve``, ``maintain``): on a wrong
    ``--warehouse`` they would otherwise read an empty warehouse and say all is clear.
    """
    if not has_load_log(warehouse_uri):
        raise ConfigError(
            f"nothing is published in {privacy.redact_uri(warehouse_uri)}: it has no load log "
            "(a wrong --warehouse or ETL_WAREHOUSE_URI, or no run yet?)"
        )


def table_rows(warehouse_uri: str, location: str) -> int | None:
    """Row count of a table's current version from the Delta log (no data read); None if never published."""
    table = _open(_uri(warehouse_uri, location))
    return None if table is None else _row_count(table)


def version_at(warehouse_uri: str, location: str, when: dt.datetime) -> tuple[int, dt.datetime] | None:
    """(version, commit time) of the table at ``location`` that was current at ``when`` (UTC).

    None when the table did not exist yet. Raises :class:`EtlError` when the
    table's history before ``when`` is no longer kept (log retention: see
    :data:`TABLE_PROPERTIES`).
    """
    table = _open(_uri(warehouse_uri, location))
    if table is None:
        return None
    commits = sorted((int(c["version"]), int(c["timestamp"])) for c in table.history())
    cutoff = when.timestamp() * 1000
    before = [(v, t) for v, t in commits if t <= cutoff]
    if not before:
        if commits and commits[0][0] == 0:
            return None  # created after `when`
        raise EtlError(
            f"{location}: its history before {when:%Y-%m-%d %H:%M} UTC is no longer kept "
            f"(earliest kept version {commits[0][0]}, committed "
            f"{dt.datetime.fromtimestamp(commits[0][1] / 1000, dt.UTC):%Y-%m-%d})"
        )
    version, stamp = before[-1]
    return version, dt.datetime.fromtimestamp(stamp / 1000, dt.UTC)
