"""Publishing a table: the one way rows reach the warehouse.

Layout under ``<warehouse>``::

    <table>/                    what readers glob: <table>/**/*.parquet (hive partitions)
    _versions/<table>/<vid>/    immutable versions of the table
    _quarantine/<table>/        rejected rows (itself published through here)
    _load_log/                  one Parquet file per publish (append-only)
    _locks/<table>.lock         one writer at a time per table

**Atomic.** A publish builds a complete new version in a staging folder
(unchanged partitions are hard-linked, changed ones rewritten), renames it
into ``_versions/`` and then swaps ``<table>`` — a symlink — to it with one
``rename(2)``. A reader either lists the old version or the new one; a
reader already reading the old one keeps working (old versions are kept
for a while). A crash at any point leaves the previous version in place;
the next publish sweeps the stale staging folder.

On object stores (``s3://``) there is no atomic rename: there the new
version's files are copied in under new names and the old ones deleted
afterwards, driven by a journal that the next publish rolls forward after
a crash. Readers of an object store can briefly see both during the swap;
the load log is written last and marks the commit.

**Idempotent.** Writes are declared, not appended: rows replace existing
rows with the same *merge key* (e.g. region and report year), so the same
input published twice gives the same table. When nothing changes, no new
version is made at all and the load log says ``unchanged``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import posixpath
import shutil
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl import privacy, schemas, storage
from etl.errors import AccountingError, EtlError

log = logging.getLogger(__name__)

KEEP_VERSIONS = 3  # current + two previous, for readers that are mid-read
COMPRESSION = "zstd"

# Fault injection for the crash-safety tests: with ETL_FAULT_STAGE=<stage>
# the publishing process kills itself (SIGKILL, no cleanup) at that point.
FAULT_STAGES = ("partition-written", "staged", "version-renamed", "swapped", "pruned", "quarantine-published", "load-log-written")


def _checkpoint(stage: str) -> None:
    if os.environ.get("ETL_FAULT_STAGE") == stage:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def new_batch_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


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
    rows: "pandas.DataFrame"  # noqa: F821
    quarantine: "pandas.DataFrame"  # noqa: F821
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

    def without(self, sources: set[str]) -> "TableBatch":
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
            self, rows=rows.reset_index(drop=True), quarantine=quarantine, rows_in=self.rows_in - removed,
            replace_keys=[k for k in self.replace_keys if k not in dropped_keys or k in kept_keys],
            quarantine_sources=[s for s in self.quarantine_sources if s not in sources],
            source_keys={s: k for s, k in self.source_keys.items() if s not in sources},
            refused={s: r for s, r in self.refused.items() if s not in sources},
            unstated=self.unstated - sources,
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

    def summary(self) -> str:
        return (
            f"{self.table}: {self.outcome}, {self.rows_in} in = {self.rows_loaded} loaded + "
            f"{self.rows_quarantined} quarantined; table has {self.table_rows} rows"
        )


# --------------------------------------------------------------------------- helpers


def _partition_path(schema: schemas.TableSchema, values: tuple) -> str:
    parts = []
    for name, value in zip(schema.partition_by, values):
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        parts.append(f"{name}={text}")
    return "/".join(parts)


def _parse_partition_path(schema: schemas.TableSchema, rel: str) -> tuple:
    values = []
    for part, name in zip(rel.split("/"), schema.partition_by):
        key, _, text = part.partition("=")
        if key != name:
            raise EtlError(f"unexpected partition folder {part!r} in {schema.name}")
        col_type = schema.arrow_schema.field(name).type
        values.append(pc.cast(pa.array([text]), col_type)[0].as_py())
    return tuple(values)


def _key_tuples(table: pa.Table, keys: tuple[str, ...]) -> set[tuple]:
    if table.num_rows == 0:
        return set()
    distinct = table.select(list(keys)).group_by(list(keys)).aggregate([])  # a month's rows share one key
    return set(zip(*(distinct.column(k).to_pylist() for k in keys)))


def _not_cleared(old: pa.Table, merge_keys: tuple[str, ...], clear_keys: set[tuple]) -> pa.Array:
    """Mask of the rows of ``old`` whose merge key is not being replaced."""
    if len(merge_keys) == 1:  # vectorised for the common single-column key (e.g. a month)
        column = old.column(merge_keys[0])
        try:
            values = pa.array([k[0] for k in clear_keys], type=column.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            pass  # a key of another type matches nothing; the general path below says so
        else:
            return pc.invert(pc.is_in(column, value_set=values, skip_nulls=False))
    keys = zip(*(old.column(c).to_pylist() for c in merge_keys))
    return pa.array([k not in clear_keys for k in keys], type=pa.bool_())


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
        equal = pc.or_(pc.fill_null(pc.equal(before, after), False),
                       pc.and_(pc.is_null(before), pc.is_null(after)))
        same = equal if same is None else pc.and_(same, equal)
    # Count keys, not rows: a key three times is one duplicate key (a run of equal neighbours).
    previous = pa.concat_arrays([pa.array([False]), same.slice(0, len(same) - 1)])
    dupes = pc.sum(pc.and_(same, pc.invert(previous))).as_py() or 0
    if dupes:
        first = pc.index(same, True).as_py()
        example = {k: table.column(k)[first].as_py() for k in schema.key}
        raise AccountingError(
            f"{schema.name}: {dupes} duplicate key(s) after merge, e.g. {example}; nothing published"
        )


def _same_content(old: pa.Table, new_sorted: pa.Table, schema: schemas.TableSchema) -> bool:
    cols = schema.business_columns
    if old.num_rows != new_sorted.num_rows:
        return False
    # Sorted by the whole key first: a key column need not be a business column (the quarantine's source_file).
    return _sort(old, schema).select(cols).equals(new_sorted.select(cols))


# --------------------------------------------------------------------------- storage of versions


class _Store:
    """Where one table's versions live, and how the current one is swapped."""

    def __init__(self, warehouse_uri: str, location: str, schema: schemas.TableSchema):
        self.fs, self.root = storage.filesystem(warehouse_uri)
        self.local = storage.is_local(self.fs)
        self.schema = schema
        self.location = location  # e.g. "population" or "_quarantine/county_report"
        self.table_path = posixpath.join(self.root, location)
        self.versions = posixpath.join(self.root, "_versions", location)

    # -- reading the current version
    def current_dir(self) -> str | None:
        if self.local:
            if os.path.islink(self.table_path):
                return os.path.realpath(self.table_path)
            return self.table_path if os.path.isdir(self.table_path) else None
        return self.table_path if self.fs.exists(self.table_path) else None

    def current_version(self) -> str | None:
        current = self.current_dir()
        if current and self.local and os.path.islink(self.table_path):
            return posixpath.basename(current)
        if current and not self.local:
            marker = posixpath.join(self.versions, "_CURRENT")
            if self.fs.exists(marker):
                return self.fs.cat_file(marker).decode().strip()
        return None

    def partitions(self, base: str | None) -> dict[str, list[str]]:
        """Relative partition path → parquet files in it, for the version at ``base``."""
        if not base or not self.fs.exists(base):
            return {}
        found: dict[str, list[str]] = {}
        for path in sorted(self.fs.find(base)):
            if not path.endswith(".parquet"):
                continue
            rel = posixpath.relpath(posixpath.dirname(path), base.rstrip("/"))
            found.setdefault("" if rel == "." else rel, []).append(path)
        return found

    def read_partition(self, files: list[str], rel: str) -> pa.Table:
        tables = []
        for path in files:
            with self.fs.open(path, "rb") as handle:
                tables.append(_read_parquet(handle))
        table = pa.concat_tables(tables) if tables else self.schema.arrow_schema.empty_table()
        if self.schema.partition_by:
            values = _parse_partition_path(self.schema, rel)
            for name, value in zip(self.schema.partition_by, values):
                col_type = self.schema.arrow_schema.field(name).type
                table = table.append_column(name, pa.array([value] * table.num_rows, type=col_type))
        return table.select(self.schema.column_names).cast(self.schema.arrow_schema)

    # -- writing a new version
    def sweep(self) -> None:
        """Remove staging left by a crashed publish (we hold the table lock, so none is live)."""
        if not self.fs.exists(self.versions):
            return
        if not self.local:
            self._roll_forward()
        for path in self.fs.ls(self.versions, detail=False):
            if posixpath.basename(path.rstrip("/")).startswith(".staging-"):
                log.warning("sweeping stale staging %s", path)
                self.fs.rm(path, recursive=True)

    def prune(self) -> None:
        """Drop versions past retention; the current one and the newest previous ones stay."""
        current = self.current_version()
        names = sorted(
            posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self.versions, detail=False)
        )
        previous = [n for n in names if not n.startswith((".", "_")) and n != current]
        for name in previous[: max(0, len(previous) - (KEEP_VERSIONS - 1))]:
            self.fs.rm(posixpath.join(self.versions, name), recursive=True)

    def write_file(self, table: pa.Table, path: str) -> None:
        file_table = table.drop_columns(list(self.schema.partition_by)) if self.schema.partition_by else table
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(path, "wb") as handle:
            pq.write_table(
                file_table, handle, compression=COMPRESSION, write_statistics=True, row_group_size=256_000
            )
            if self.local:
                handle.flush()
                os.fsync(handle.fileno())

    def link(self, src: str, dst: str) -> None:
        self.fs.makedirs(posixpath.dirname(dst), exist_ok=True)
        if self.local:
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        self.fs.copy(src, dst)

    def commit(self, staging: str, version: str) -> None:
        final = posixpath.join(self.versions, version)
        if self.local:
            os.rename(staging, final)
            _fsync_dir(self.versions)
            _checkpoint("version-renamed")
            tmp_link = posixpath.join(posixpath.dirname(self.table_path), f".{posixpath.basename(self.table_path)}.{version}.tmp")
            target = os.path.relpath(final, posixpath.dirname(self.table_path))
            os.makedirs(posixpath.dirname(self.table_path), exist_ok=True)
            os.symlink(target, tmp_link)
            if os.path.isdir(self.table_path) and not os.path.islink(self.table_path):
                # A plain folder from outside the publisher would make rename fail: refuse clearly.
                os.unlink(tmp_link)
                raise EtlError(f"{self.table_path} is a plain folder, not a published table; move it away")
            os.replace(tmp_link, self.table_path)  # the atomic swap
            _fsync_dir(posixpath.dirname(self.table_path))
            return
        self.fs.mv(staging, final, recursive=True)
        journal = {"version": version, "final": final}
        self.fs.pipe_file(posixpath.join(self.versions, "_PENDING"), json.dumps(journal).encode())
        self._roll_forward()

    def _roll_forward(self) -> None:
        pending = posixpath.join(self.versions, "_PENDING")
        if not self.fs.exists(pending):
            return
        journal = json.loads(self.fs.cat_file(pending))
        final, version = journal["final"], journal["version"]
        wanted = {posixpath.relpath(p, final) for p in self.fs.find(final) if p.endswith(".parquet")}
        for rel in sorted(wanted):
            dst = posixpath.join(self.table_path, rel)
            if not self.fs.exists(dst):
                self.fs.makedirs(posixpath.dirname(dst), exist_ok=True)
                self.fs.copy(posixpath.join(final, rel), dst)
        if self.fs.exists(self.table_path):
            for path in self.fs.find(self.table_path):
                if posixpath.relpath(path, self.table_path) not in wanted:
                    self.fs.rm(path)
        self.fs.pipe_file(posixpath.join(self.versions, "_CURRENT"), version.encode())
        self.fs.rm(pending)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def table_lock(warehouse_uri: str, location: str, timeout: float = 600):
    """One writer at a time per table (local warehouses; Airflow pools cover the rest)."""
    fs, root = storage.filesystem(warehouse_uri)
    if not storage.is_local(fs):
        yield
        return
    from filelock import FileLock, Timeout

    lock_dir = os.path.join(root, "_locks")
    os.makedirs(lock_dir, exist_ok=True)
    lock = FileLock(os.path.join(lock_dir, location.replace("/", "__") + ".lock"))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise EtlError(f"{location}: another publish holds the lock for over {timeout:.0f} s") from None
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------- the publish


def _stamp(schema: schemas.TableSchema, frame, batch_id: str, loaded_at: dt.datetime) -> pa.Table:
    frame = frame.copy()
    if schema.lineage:
        frame["batch_id"] = batch_id
        frame["loaded_at"] = loaded_at
    return schemas.conform(schema, frame)


def write_version(
    warehouse_uri: str,
    location: str,
    schema: schemas.TableSchema,
    new_rows: pa.Table,
    merge_keys: tuple[str, ...] | None,
    replace_keys: set[tuple] = frozenset(),
) -> tuple[str, str | None, int]:
    """Merge ``new_rows`` into the table at ``location``; returns (outcome, version, table rows)."""
    store = _Store(warehouse_uri, location, schema)
    store.sweep()
    current = store.current_dir()
    old_parts = store.partitions(current)
    part_cols = list(schema.partition_by)

    # Split the new rows by partition.
    new_parts: dict[str, pa.Table] = {}
    if part_cols and new_rows.num_rows:
        groups = new_rows.select(part_cols).group_by(part_cols).aggregate([])
        for i in range(groups.num_rows):
            values = tuple(groups.column(c)[i].as_py() for c in part_cols)
            if groups.num_rows == 1:  # the usual case (one month): no need to copy the rows through a filter
                new_parts[_partition_path(schema, values)] = new_rows
                continue
            mask = None
            for c, v in zip(part_cols, values):
                cond = pc.equal(new_rows[c], pa.scalar(v, type=new_rows.schema.field(c).type))
                mask = cond if mask is None else pc.and_(mask, cond)
            new_parts[_partition_path(schema, values)] = new_rows.filter(mask)
    elif new_rows.num_rows or merge_keys is None:
        new_parts[""] = new_rows

    if merge_keys is None:
        affected = set(old_parts) | set(new_parts)
        clear_keys: set[tuple] | None = None  # everything goes
    else:
        clear_keys = _key_tuples(new_rows, merge_keys) | set(replace_keys)
        if part_cols and set(part_cols) <= set(merge_keys):
            idx = [merge_keys.index(c) for c in part_cols]
            affected = {_partition_path(schema, tuple(k[i] for i in idx)) for k in clear_keys}
            affected = {p for p in affected if p in old_parts or p in new_parts}
        else:
            affected = set(old_parts) | set(new_parts)

    version = utcnow().strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    staging = posixpath.join(store.versions, f".staging-{version}")
    changed = False
    total = 0
    for rel in sorted(set(old_parts) | set(new_parts)):
        out_dir = posixpath.join(staging, rel) if rel else staging
        if rel not in affected:
            for path in old_parts[rel]:
                store.link(path, posixpath.join(out_dir, posixpath.basename(path)))
                total += pq.ParquetFile(store.fs.open(path, "rb")).metadata.num_rows
            continue
        old = store.read_partition(old_parts[rel], rel) if rel in old_parts else None
        if old is not None and clear_keys is not None and old.num_rows:
            kept = old.filter(_not_cleared(old, merge_keys, clear_keys))
        else:
            kept = None
        pieces = [t for t in (kept, new_parts.get(rel)) if t is not None and t.num_rows]
        merged = _sort(pa.concat_tables(pieces) if pieces else schema.arrow_schema.empty_table(), schema)
        _check_unique(merged, schema)
        total += merged.num_rows
        if old is not None and _same_content(old, merged, schema):
            for path in old_parts[rel]:  # keep the old files (and their lineage) as they are
                store.link(path, posixpath.join(out_dir, posixpath.basename(path)))
            continue
        changed = True
        if merged.num_rows:
            store.write_file(merged, posixpath.join(out_dir, f"part-{version}.parquet"))
            _checkpoint("partition-written")
    if current is None and not changed:
        changed = True  # first publish of an empty table still creates it
    if not changed:
        if store.fs.exists(staging):
            store.fs.rm(staging, recursive=True)
        return "unchanged", store.current_version(), total
    store.fs.makedirs(staging, exist_ok=True)
    _checkpoint("staged")
    store.commit(staging, version)
    _checkpoint("swapped")
    store.prune()
    _checkpoint("pruned")
    return "published", version, total


def publish(
    warehouse_uri: str,
    pipeline: str,
    batch: TableBatch,
    batch_id: str,
    sources: list[storage.LandedFile] | list[tuple[str, str]] = (),
) -> PublishResult:
    """Publish one table's batch and its quarantine, then append the load log row.

    Raises :class:`AccountingError` (and publishes nothing) when rows in !=
    rows loaded + rows quarantined.
    """
    import pandas as pd

    started = utcnow()
    schema = schemas.get(batch.table)
    rows_loaded = len(batch.rows)
    if batch.rows_in != rows_loaded + batch.rows_quarantined:
        message = (
            f"{batch.table}: row accounting failed: {batch.rows_in} in != {rows_loaded} loaded "
            f"+ {batch.rows_quarantined} quarantined"
        )
        append_load_log(warehouse_uri, pipeline, batch_id, batch.table, sources, batch.rows_in, rows_loaded,
                        batch.rows_quarantined, "failed", "failed", batch.warnings, message, None, started)
        raise AccountingError(message)

    loaded_at = started
    new_rows = _stamp(schema, batch.rows, batch_id, loaded_at)
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
            {c: ("max" if c == "rows_held" else join_texts)
             for c in q_frame.columns if c not in ("source_file", "row_number", "table_name")}
        )
    q_rows = _stamp(q_schema, q_frame, batch_id, loaded_at)
    row_sources = batch.rows["source_file"].unique() if "source_file" in batch.rows.columns else []
    q_sources = set(batch.quarantine_sources) | set(row_sources) | set(
        q_frame["source_file"].unique() if len(q_frame) else []
    )

    # The same delivery reached before through another mount point or spelling: its quarantine rows go too.
    q_sources |= _same_delivery_sources(warehouse_uri, batch.table, q_sources)

    location = batch.table
    with table_lock(warehouse_uri, location):
        outcome, version, total = write_version(
            warehouse_uri, location, schema, new_rows, batch.merge_keys, set(batch.replace_keys)
        )
    with table_lock(warehouse_uri, f"_quarantine/{batch.table}"):
        write_version(
            warehouse_uri, f"_quarantine/{batch.table}", q_schema, q_rows, ("source_file",),
            {(s,) for s in q_sources},
        )
    _checkpoint("quarantine-published")
    validation = batch.validation if not batch.warnings or batch.validation != "passed" else "warning"
    append_load_log(warehouse_uri, pipeline, batch_id, batch.table, sources, batch.rows_in, rows_loaded,
                    batch.rows_quarantined, outcome, validation, batch.warnings, None, version, started)
    result = PublishResult(batch.table, outcome, version, batch.rows_in, rows_loaded, batch.rows_quarantined,
                           total, list(batch.warnings))
    log.info("%s", result.summary())
    return result


def _same_delivery_sources(warehouse_uri: str, table: str, sources: set[str]) -> set[str]:
    """Quarantined source files of ``table`` that are one of ``sources`` under another path or spelling."""
    from etl.deliveries import delivery_path

    if not sources:
        return set()
    wanted = {delivery_path(s) for s in sources}
    published = read_quarantine(warehouse_uri, table)
    if not published.num_rows:
        return set()
    return {s for s in set(published.column("source_file").to_pylist()) if s and delivery_path(s) in wanted}


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


LOAD_LOG = "_load_log"
COMPACT_LOAD_LOG_AT = 256  # row files before they are merged into one segment file
_SEGMENT_PREFIX = "segment-"
_MEMBERS_KEY = b"etl.load_log.members"


def append_load_log(
    warehouse_uri: str, pipeline: str, batch_id: str, table_name: str | None, sources, rows_in: int,
    rows_loaded: int, rows_quarantined: int, outcome: str, validation: str, warnings: list[str],
    message: str | None, version: str | None, started: dt.datetime,
) -> None:
    """Append one row to ``_load_log/`` (one small file per row; written last, so it marks the commit).

    Source URIs, warnings and the message pass through :func:`etl.privacy.redact_uri`
    here, whoever wrote them: a landing URI with credentials never reaches the log.
    """
    uris, shas = _source_lists(sources)
    row = {
        "batch_id": [batch_id], "pipeline": [pipeline], "table_name": [table_name],
        "source_files": [[privacy.redact_uri(u) for u in uris]],
        "source_sha256": [shas], "rows_in": [rows_in], "rows_loaded": [rows_loaded],
        "rows_quarantined": [rows_quarantined], "outcome": [outcome], "validation": [validation],
        "warnings": [privacy.redact_uri("; ".join(warnings)) or None], "message": [privacy.redact_uri(message)],
        "table_version": [version],
        "started_at": [started], "finished_at": [utcnow()],
    }
    schema = schemas.get("_load_log").arrow_schema
    table = pa.Table.from_pydict(row, schema=schema)
    fs, root = storage.filesystem(warehouse_uri)
    folder = posixpath.join(root, LOAD_LOG)
    fs.makedirs(folder, exist_ok=True)
    name = f"{started.strftime('%Y%m%dT%H%M%S%f')}-{batch_id}-{table_name or 'run'}.parquet"
    tmp = posixpath.join(folder, "." + name + ".tmp")
    with fs.open(tmp, "wb") as handle:
        pq.write_table(table, handle, compression=COMPRESSION)
    _checkpoint("load-log-written")
    fs.mv(tmp, posixpath.join(folder, name))
    try:
        if len(_load_log_files(fs, folder)[1]) >= COMPACT_LOAD_LOG_AT:
            compact_load_log(warehouse_uri)
    except Exception as exc:  # noqa: BLE001 - the row is committed; merging is housekeeping and can wait
        log.warning("could not compact the load log: %s: %s", type(exc).__name__, exc)


def _load_log_files(fs, folder: str) -> tuple[list[str], list[str]]:
    """(segment files, row files) in the load-log folder, by name."""
    if not fs.exists(folder):
        return [], []
    names = sorted(posixpath.basename(p) for p in fs.ls(folder, detail=False))
    visible = [n for n in names if n.endswith(".parquet") and not n.startswith(".")]
    segments = [n for n in visible if n.startswith(_SEGMENT_PREFIX)]
    return segments, [n for n in visible if not n.startswith(_SEGMENT_PREFIX)]


def _members(arrow_schema: pa.Schema) -> list[str]:
    """The row files a segment merged, in its row order (from its Parquet metadata)."""
    return json.loads((arrow_schema.metadata or {}).get(_MEMBERS_KEY, b"[]"))


def _segment_members(fs, path: str) -> list[str]:
    with fs.open(path, "rb") as handle:
        return _members(pq.read_schema(handle))


def compact_load_log(warehouse_uri: str) -> int:
    """Merge the load log's row files into one segment file; returns how many rows were merged.

    Every scheduled run adds a row file (a daily DAG with nothing new, 365 a
    year), and every run reads the whole log, so without merging a no-op
    run would slow down year by year. A segment names its member files in
    its Parquet metadata and readers skip members, so the order — segment
    written whole, made visible, then members deleted — never shows a row
    twice to :func:`read_load_log`; members left by a crash are deleted here
    next time.
    """
    fs, root = storage.filesystem(warehouse_uri)
    folder = posixpath.join(root, LOAD_LOG)
    schema = schemas.get("_load_log").arrow_schema
    with table_lock(warehouse_uri, LOAD_LOG):
        for name in fs.ls(folder, detail=False) if fs.exists(folder) else []:
            if posixpath.basename(name).startswith("." + _SEGMENT_PREFIX):
                fs.rm(name)  # a segment whose writing was cut short; its rows are still in their files
        segments, rows = _load_log_files(fs, folder)
        merged = {m for seg in segments for m in _segment_members(fs, posixpath.join(folder, seg))}
        for leftover in [n for n in rows if n in merged]:
            fs.rm(posixpath.join(folder, leftover))
        members = [n for n in rows if n not in merged]
        if not members:
            return 0
        tables = []
        for name in members:
            with fs.open(posixpath.join(folder, name), "rb") as handle:
                tables.append(_read_parquet(handle).cast(schema))
        table = pa.concat_tables(tables).replace_schema_metadata({_MEMBERS_KEY: json.dumps(members).encode()})
        final = f"{_SEGMENT_PREFIX}{members[0][:-len('.parquet')]}--{len(members)}.parquet"
        tmp = posixpath.join(folder, "." + final + ".tmp")
        with fs.open(tmp, "wb") as handle:
            pq.write_table(table, handle, compression=COMPRESSION)
        fs.mv(tmp, posixpath.join(folder, final))
        for name in members:
            fs.rm(posixpath.join(folder, name))
        return len(members)


def _read_parquet(handle, **kwargs) -> pa.Table:
    """A Parquet file from an open fsspec file, read from an Arrow-owned copy of its bytes.

    Never hand pyarrow the Python file object itself: its readers finish
    tearing down on Arrow's thread pools after returning, and a C++ object
    holding a Python object (the file, a bytes buffer) needs the GIL to be
    released. When that happens while the interpreter exits, the pool thread
    is killed inside a noexcept destructor: "terminate called without an
    active exception", exit 134 (issue 13 §8). Arrow-owned memory needs no GIL.
    """
    out = pa.BufferOutputStream()
    out.write(handle.read())
    return pq.read_table(pa.BufferReader(out.getvalue()), **kwargs)


def read_load_log(warehouse_uri: str) -> pa.Table:
    """Every load-log row, once: segment files, then the row files no segment has merged yet."""
    fs, root = storage.filesystem(warehouse_uri)
    folder = posixpath.join(root, LOAD_LOG)
    schema = schemas.get("_load_log").arrow_schema
    for _attempt in range(5):
        fs.invalidate_cache(folder)  # object-store listings are cached; a retry must see the new segment
        segments, rows = _load_log_files(fs, folder)
        tables, merged, vanished = [], set(), False
        for name in segments:
            with fs.open(posixpath.join(folder, name), "rb") as handle:
                table = _read_parquet(handle)
            members = _members(table.schema)
            if len(members) == table.num_rows and merged.intersection(members):
                # Two compactions at once (object stores have no lock) merged the same row file
                # twice; row i of a segment is its member i, so keep each member's row once.
                table = table.filter(pa.array([m not in merged for m in members], pa.bool_()))
            merged.update(members)
            tables.append(table.replace_schema_metadata(None).cast(schema))
        for name in rows:
            if name in merged:
                continue  # already in a segment (a compaction was cut short before deleting it)
            try:
                with fs.open(posixpath.join(folder, name), "rb") as handle:
                    tables.append(_read_parquet(handle).cast(schema))
            except FileNotFoundError:
                vanished = True  # merged into a segment since we listed the folder
                break
        if not vanished:
            return pa.concat_tables(tables) if tables else schema.empty_table()
    raise EtlError(f"{folder}: the load log kept changing while being read; try again")


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


def _read_location(warehouse_uri: str, location: str, schema: schemas.TableSchema) -> pa.Table:
    store = _Store(warehouse_uri, location, schema)
    parts = store.partitions(store.current_dir())
    tables = [store.read_partition(files, rel) for rel, files in sorted(parts.items())]
    return pa.concat_tables(tables) if tables else schema.arrow_schema.empty_table()


def read_published_keys(warehouse_uri: str, name: str, merge_keys: tuple[str, ...], keys: set[tuple]) -> pa.Table:
    """The key columns (``schema.key`` and ``merge_keys``) of the published rows under ``keys``.

    Reads only the partitions those merge keys can be in, and only the key
    columns: the no-shrink check asks this for every delivery it judges.
    """
    schema = schemas.get(name)
    columns = list(dict.fromkeys([*schema.key, *merge_keys]))
    store = _Store(warehouse_uri, name, schema)
    parts = store.partitions(store.current_dir())
    part_cols = list(schema.partition_by)
    if part_cols and set(part_cols) <= set(merge_keys):
        idx = [merge_keys.index(c) for c in part_cols]
        wanted = {_partition_path(schema, tuple(k[i] for i in idx)) for k in keys}
        parts = {rel: files for rel, files in parts.items() if rel in wanted}
    file_columns = [c for c in columns if c not in part_cols]
    tables = []
    for rel, files in sorted(parts.items()):
        for path in files:
            with store.fs.open(path, "rb") as handle:
                table = _read_parquet(handle, columns=file_columns)
            if part_cols:
                for col, value in zip(part_cols, _parse_partition_path(schema, rel)):
                    table = table.append_column(col, pa.array([value] * table.num_rows,
                                                              type=schema.arrow_schema.field(col).type))
            tables.append(table.select(columns))
    arrow = schema.arrow_schema
    empty = pa.schema([arrow.field(c) for c in columns]).empty_table()
    table = pa.concat_tables([t.cast(empty.schema) for t in tables]) if tables else empty
    if not table.num_rows:
        return table
    return table.filter(pc.invert(_not_cleared(table, merge_keys, keys)))


def read_table(warehouse_uri: str, name: str) -> pa.Table:
    """The current content of a published table (all partitions, schema applied)."""
    return _read_location(warehouse_uri, name, schemas.get(name))


def read_quarantine(warehouse_uri: str, table: str) -> pa.Table:
    """The current quarantine rows of a table."""
    return _read_location(warehouse_uri, f"_quarantine/{table}", schemas.get("_quarantine"))
