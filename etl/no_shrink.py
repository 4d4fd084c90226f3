"""The no-shrink check: a delivery never removes published rows unless it says so.

Judged on the rows that would be published, per source file, before
anything is written. A delivery is **blocked** — nothing of it is published,
the previous version stays, the run fails naming it — when

* the file was refused whole (unreadable, wrong month, not a report …),
  whether or not it replaces anything: a refused file is never a silent
  no-op; or
* publishing it would remove keys present in the published version (a
  region's month, an initiative, a unit's day) *and* the removal is not
  the sender's say: rows of the file were quarantined (a broken row rule,
  an unknown region name, a truncated last line) or the file does not state
  that table at all (a county JSON that leaves its ``initiatives`` list
  out, an export without its national total line), or its figures
  contradict the rest of the delivery (a unit-level file whose daily
  bookings do not add up to the month's regional bookings: cut short at a
  line boundary, which no parser can see).

A correction that states a table explicitly — ``"initiatives": []``, an
export listing every region — is honoured, removals included: that is
the only way published rows leave the warehouse, and never silently:
:func:`removals` names them, one line per table and file, for the run's
output and the load log.

**No silent value loss** (:func:`value_losses`): a delivery is blocked, too,
when it would turn a published non-null value (a region's count, a grant,
a yes/no answer) into null — "suppressed" in the e-health tables — under
the same key, naming the cells (table, key, column, old value → null),
unless the file says so in the contract's way: the caller's ``said``
(for a monthly export, the cell holds the suppression marker ``..``/``–``/``-``
rather than nothing; county reports and unit-level files have no such way,
docs/input-formats.md "Values that become null"). Rows merely counted would
pass such a delivery: the row is still there, its value is not. Such a
block is a person's call (approvable, :mod:`etl.approvals`).

The other files of the batch are published as usual; the caller drops the
blocked sources with :meth:`etl.publish.TableBatch.without`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from etl import privacy, publish, schemas
from etl.deliveries import shown_name

MAX_EXAMPLES = 3
MAX_LINES = 5  # input line numbers named per reason


def _dropped(published, batch: publish.TableBatch, source: str, schema: schemas.TableSchema):
    """The published key rows (pyarrow) that ``source``'s rows would not carry: an anti-join on the key.

    Vectorised: a unit-level month is ~124 000 keys, which as Python tuples
    cost more than reading them.
    """
    key = list(schema.key)
    published = published.select(key)
    rows = batch.rows[batch.rows["source_file"] == source] if len(batch.rows) else batch.rows
    if not published.num_rows or not len(rows):
        return published
    new = publish.stamp_lineage(schema, rows, "no-shrink-check", publish.utcnow()).select(key)
    return published.join(new.group_by(key).aggregate([]), keys=key, join_type="left anti")


def quarantine_reasons(
    batch: publish.TableBatch, source: str, *, limit: int = 2, lines: bool = False
) -> tuple[int, str]:
    """(rows held, the ``limit`` commonest reasons) of one source file's quarantine entries in ``batch``.

    ``"Månad: not a month (3×), …"``; with ``lines=True`` each reason names
    the input lines it hit (``"… (line 3, 7)"``). Reasons are masked for
    personal data, as the stored quarantine is. ``(0, "")`` when nothing of
    the file was quarantined.
    """
    q = batch.quarantine
    if q is None or not len(q):
        return 0, ""
    mine = q[q["source_file"] == source]
    if not len(mine):
        return 0, ""
    held = int(mine["rows_held"].fillna(1).sum()) if "rows_held" in mine.columns else len(mine)
    by_reason: dict[str, list[int]] = {}
    for reason, row in zip(mine["reason"], mine["row_number"], strict=True):
        for part in str(reason).split("; ") if isinstance(reason, str) else ():
            by_reason.setdefault(str(privacy.mask_personal_data(part.strip())), []).append(int(row))
    counts = Counter({reason: len(rows) for reason, rows in by_reason.items()})
    shown = []
    for reason, n in counts.most_common(limit):
        numbers = sorted(set(by_reason[reason]) - {0})  # line 0: the file as a whole
        if lines and numbers:
            where = ", ".join(map(str, numbers[:MAX_LINES])) + (" …" if len(numbers) > MAX_LINES else "")
            shown.append(f"{reason} (line {where})")
        else:
            shown.append(f"{reason} ({n}×)" if n > 1 else reason)
    more = len(counts) - len(shown)
    return held, ", ".join(shown) + (f", {more} other reason(s)" if more > 0 else "")


def first_quarantined(batch: publish.TableBatch, source: str) -> str:
    """``"line 3: Värde: not a number 'många'"``: the first quarantined line of ``source`` (masked), or ""."""
    q = batch.quarantine
    if q is None or not len(q):
        return ""
    mine = q[q["source_file"] == source]
    if not len(mine):
        return ""
    first = mine.sort_values("row_number").iloc[0]
    reason = privacy.mask_personal_data(str(first["reason"]).split("; ")[0])
    return f"line {int(first['row_number'])}: {reason}" if int(first["row_number"]) else reason


def _show_key(schema: schemas.TableSchema, key: tuple) -> str:
    return " ".join(str(v.isoformat() if hasattr(v, "isoformat") else v) for v in key)


@dataclass(frozen=True)
class Loss:
    """A published non-null value a delivery would turn into null: one cell of one table."""

    table: str
    source: str  # the file that would publish the null
    key: tuple  # the row's key (``schema.key``)
    column: str
    old: object  # the published value

    def show(self) -> str:
        """``"county_report 03 2017 grant_sek 128944953 → null"``."""
        old = self.old.isoformat() if hasattr(self.old, "isoformat") else self.old
        return f"{self.table} {' '.join(_show_value(v) for v in self.key)} {self.column} {old} → null"


# Per table: the columns whose published values a delivery must not empty unless it says so, and the
# columns that must be equal too for a row to be "the same" (an initiative's number is its position:
# under a new number the cost is another initiative's). Other columns (names, free text) are not counted.
_SAME: dict[str, tuple[str, ...]] = {"county_initiative": ("title",)}
_NOT_VALUES = frozenset({"submitted_at", "unit_name", "description", "title"})


def value_columns(table: str) -> tuple[str, ...]:
    """The nullable value columns of ``table`` a delivery must not turn into null silently."""
    schema = schemas.get(table)
    return tuple(
        c.name
        for c in schema.columns
        if c.nullable and c.name not in schema.key and c.name not in _NOT_VALUES and c.name != "suppressed"
    )


def value_losses(warehouse_uri: str, batch: publish.TableBatch, source: str) -> list[Loss]:
    """The published non-null values that ``source``'s rows in ``batch`` would publish as null (same key).

    Reads the published rows only when the file's rows hold a null in a value
    column (a delivery without one cannot empty anything): a first delivery or
    a file without gaps costs nothing.
    """
    import pyarrow.compute as pc

    keys = batch.source_keys.get(source)
    columns = [c for c in value_columns(batch.table) if len(batch.rows) and c in batch.rows.columns]
    if not batch.merge_keys or not keys or source in batch.refused or not columns:
        return []
    rows = batch.rows[batch.rows["source_file"] == source]
    if not len(rows) or not any(rows[c].isna().any() for c in columns):
        return []
    schema = schemas.get(batch.table)
    key = list(schema.key)
    same = [c for c in _SAME.get(batch.table, ()) if c not in key]
    wanted = list(dict.fromkeys([*key, *same, *columns]))
    published = publish.read_table_where(warehouse_uri, batch.table, batch.merge_keys, set(keys))
    if not published.num_rows:
        return []
    new = publish.stamp_lineage(schema, rows, "value-loss-check", publish.utcnow()).select(wanted)
    joined = published.select(wanted).join(new, keys=key, join_type="inner", left_suffix="__old", right_suffix="__new")
    losses = []
    for column in columns:
        mask = pc.and_(pc.is_valid(joined.column(f"{column}__old")), pc.is_null(joined.column(f"{column}__new")))
        for other in same:
            mask = pc.and_(mask, pc.equal(joined.column(f"{other}__old"), joined.column(f"{other}__new")))
        hit = joined.filter(mask)
        if not hit.num_rows:
            continue
        hit = hit.sort_by([(k, "ascending") for k in key])
        at = zip(*(hit.column(k).to_pylist() for k in key), strict=True)
        for where, old in zip(at, hit.column(f"{column}__old").to_pylist(), strict=True):
            losses.append(Loss(batch.table, source, tuple(where), column, old))
    return losses


def _loss_line(table: str, losses: list[Loss]) -> str:
    n = len(losses)
    shown = ", ".join(loss.show() for loss in losses[:MAX_EXAMPLES]) + (" …" if n > MAX_EXAMPLES else "")
    return (
        f"would turn {_rows(n, 'published value')} of {table} into null ({shown}): the file does not say "
        "the value is withdrawn or suppressed"
    )


@dataclass
class Shrink:
    """What one source file would do to the published tables (measured, not judged: :mod:`etl.verdict` judges).

    ``refused``: why it was refused whole (one per table that says so);
    ``values_lost``/``lost_line``: published values it would null without
    saying so; ``rows_removed``/``removed_lines``: published rows it would
    remove because a table is unstated or its figures are in doubt;
    ``rows_unreadable``/``unreadable_lines``: published rows it would remove
    because its lines for them were quarantined (a sender's format error).
    """

    refused: list[str] = field(default_factory=list)
    values_lost: int = 0
    lost_line: str = ""
    rows_removed: int = 0
    removed_lines: list[str] = field(default_factory=list)
    rows_unreadable: int = 0
    unreadable_lines: list[str] = field(default_factory=list)

    @property
    def removed_detail(self) -> str:
        return "; ".join(dict.fromkeys(self.removed_lines))

    @property
    def unreadable_detail(self) -> str:
        return "; ".join(dict.fromkeys(self.unreadable_lines))


def shrinks(
    warehouse_uri: str, batches: list[publish.TableBatch], said: Callable[[Loss], bool] | None = None
) -> dict[str, Shrink]:
    """Source file → what publishing it would remove or empty, over every table of the batch.

    A source blocked for one table is blocked for all of them (the caller
    drops it everywhere), so a file never half-lands. ``said(loss)`` tells
    whether the file states a value's loss in the contract's way (then it is
    no loss to count); without it no loss is stated.
    """
    found: dict[str, Shrink] = {}
    for batch in batches:
        for source, why in batch.refused.items():
            entry = found.setdefault(source, Shrink())
            if why not in entry.refused:
                entry.refused.append(why)
        if not batch.merge_keys:
            continue
        schema = schemas.get(batch.table)
        for source, keys in batch.source_keys.items():
            if source in batch.refused or not keys:
                continue
            entry = found.setdefault(source, Shrink())
            lost = [loss for loss in value_losses(warehouse_uri, batch, source) if said is None or not said(loss)]
            if lost:
                entry.values_lost += len(lost)
                entry.lost_line = "; ".join(filter(None, [entry.lost_line, _loss_line(batch.table, lost)]))
            held, top = quarantine_reasons(batch, source)
            unstated = source in batch.unstated
            doubt = batch.doubts.get(source)
            if not held and not unstated and not doubt:
                continue  # the file states this table whole: whatever it leaves out is withdrawn
            published = publish.read_published_keys(warehouse_uri, batch.table, batch.merge_keys, set(keys))
            dropped = _dropped(published, batch, source, schema)
            if not dropped.num_rows:
                continue
            first = dropped.sort_by([(k, "ascending") for k in schema.key]).slice(0, MAX_EXAMPLES)
            shown = zip(*(first.column(k).to_pylist() for k in schema.key), strict=True)
            examples = ", ".join(_show_key(schema, k) for k in shown)
            first_line = first_quarantined(batch, source) if held else ""
            cause = (
                (
                    f"{held} row(s) quarantined, first {first_line}"
                    if first_line.startswith("line ")
                    else f"{held} row(s) quarantined: {top}"
                )
                if held
                else f"the file has no rows for {batch.table} (a withdrawal must be stated, e.g. an empty "
                "list in a report's JSON)"
                if unstated
                else doubt
            )
            line = f"would remove {dropped.num_rows} published {batch.table} row(s) because {cause} (e.g. {examples})"
            if held:
                entry.rows_unreadable += dropped.num_rows
                entry.unreadable_lines.append(line)
            else:
                entry.rows_removed += dropped.num_rows
                entry.removed_lines.append(line)
    return found


@dataclass(frozen=True)
class _Naming:
    """How a removal line names the rows removed from a table.

    ``column`` names a row (read from the published rows where it is not
    part of the key: an initiative's number shifts when one before it is
    left out, its title does not); ``place`` are the key columns saying
    where (``"region 03 2017: "``), ``document`` what the sender sent.
    """

    what: str
    column: str
    place: tuple[str, ...] = ()
    place_label: str = ""
    document: str = "file"


_NAMED_BY = {
    "county_initiative": _Naming("initiative", "title", ("region_code", "report_year"), "region ", "report"),
    "county_ehealth_service": _Naming(
        "e-health service", "service", ("region_code", "report_year"), "region ", "report"
    ),
    "ehealth_adoption": _Naming("region", "region_code", ("month", "service")),
    "ehealth_unit_daily": _Naming("unit", "unit_hsa_id"),
}


def removals(warehouse_uri: str, batch: publish.TableBatch) -> list[str]:
    """One line per source file whose rows, published, remove published rows of ``batch``'s table.

    ``"county_initiative: 1 published row removed by the correction of uppsala.json (region 03 2017:
    initiative 'Vårdnära service' no longer in the report)"``. For the batch as it will publish
    (blocked files already taken out): a correction that states a table whole is honoured, removals
    included — and says so, in the run's output and as a warning in the load log
    (:func:`etl.pipelines.skeleton.execute`). Reads the published keys under each file's merge keys.
    """
    if not batch.merge_keys:
        return []
    schema = schemas.get(batch.table)
    lines = []
    for source, keys in batch.source_keys.items():
        if source in batch.refused or not keys:
            continue
        published = publish.read_published_keys(warehouse_uri, batch.table, batch.merge_keys, set(keys))
        dropped = _dropped(published, batch, source, schema)
        if dropped.num_rows:
            lines.append(_removal_line(warehouse_uri, batch, source, dropped, schema))
    return lines


def _removal_line(
    warehouse_uri: str, batch: publish.TableBatch, source: str, dropped, schema: schemas.TableSchema
) -> str:
    n = dropped.num_rows
    head = f"{batch.table}: {_rows(n, 'published row')} removed by the correction of {shown_name(source)}"
    naming = _NAMED_BY.get(batch.table)
    if naming is None:
        first = dropped.sort_by([(k, "ascending") for k in schema.key]).slice(0, MAX_EXAMPLES)
        shown = zip(*(first.column(k).to_pylist() for k in schema.key), strict=True)
        more = " …" if n > MAX_EXAMPLES else ""
        return f"{head} (no longer in the file: {', '.join(_show_key(schema, k) for k in shown)}{more})"
    rows = batch.rows[batch.rows["source_file"] == source] if len(batch.rows) else batch.rows
    kept = {str(v) for v in rows[naming.column].dropna()} if len(rows) else set()
    place = list(naming.place)
    groups = sorted(set(zip(*(dropped.column(k).to_pylist() for k in place), strict=True))) if place else [()]
    parts = []
    for group in groups:
        mine = dropped.filter(_matches(dropped, place, group)) if place else dropped
        if naming.column in schema.key:
            counts = Counter(str(v) for v in mine.column(naming.column).to_pylist())
            gone = sorted(name for name in counts if name not in kept)
            partly = {name: k for name, k in counts.items() if name in kept}
        else:  # read the published rows' names: what the correction no longer lists
            old = publish.read_table_where(warehouse_uri, batch.table, tuple(place), {group})
            gone = sorted({str(v) for v in old.column(naming.column).to_pylist()} - kept)
            partly = {}
            if not gone:  # the same names on fewer rows (one was listed twice): name the rows' numbers
                partly = {f"no. {v}": 1 for v in sorted(mine.column(schema.key[-1]).to_pylist())}
        named = []
        if gone:
            quoted = ", ".join(repr(str(privacy.mask_personal_data(g))) for g in gone[:MAX_EXAMPLES])
            named.append(
                f"{naming.what}{'s' if len(gone) > 1 else ''} {quoted}{' …' if len(gone) > MAX_EXAMPLES else ''}"
            )
        for name, k in list(partly.items())[:MAX_EXAMPLES]:
            shown_as = name if name.startswith("no. ") else repr(str(privacy.mask_personal_data(name)))
            named.append(f"{naming.what} {shown_as}" + ("" if name.startswith("no. ") else f" ({_rows(k, 'row')})"))
        where = f"{naming.place_label}{' '.join(_show_value(v) for v in group)}: " if place else ""
        parts.append(f"{where}{', '.join(named)} no longer in the {naming.document}")
    return f"{head} ({'; '.join(parts)})"


def _rows(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _show_value(value) -> str:
    """A key value in a line: a month's first day as ``2017-03``, other dates ISO, the rest as text."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime) and value.day == 1:
        return f"{value:%Y-%m}"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _matches(table, columns: list[str], values: tuple):
    """A mask of ``table``'s rows whose ``columns`` equal ``values``."""
    import pyarrow.compute as pc

    mask = None
    for column, value in zip(columns, values, strict=True):
        term = pc.equal(table.column(column), pa.scalar(value, table.schema.field(column).type))
        mask = term if mask is None else pc.and_(mask, term)
    return mask


def without_blocked(batches: list[publish.TableBatch], blocked: dict[str, str]) -> list[publish.TableBatch]:
    """The batches minus every blocked source."""
    sources = set(blocked)
    return [batch.without(sources) for batch in batches]
