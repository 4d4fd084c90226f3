"""What the data-quality pages show, as plain data: per table, per delivery, per e-health month.

The Airflow UI plugin (``plugins/etl_quality_plugin.py``) renders these; they
import nothing from Airflow and work on any warehouse URI (a local folder or
``s3://…``), reading only what the pipelines wrote:

* :func:`table_overview` — per published table: its rows now, the last load,
  totals of rows in / loaded / quarantined over the load log, the pipeline's
  blocked deliveries, and its quarantine grouped by reason with counts and a
  few example rows;
* :func:`deliveries` — per source file in the load log (a *delivery*): its
  latest outcome, the rows it has in each table now, its quarantined rows
  and, when blocked, why;
* :func:`ehealth_months` — per month of a range, the e-health exports
  expected (``journalen``, ``webbtidbok``): received in landing, loaded,
  blocked or overdue (not received N days after the month ended);
* :func:`run_activity` — the load-log rows a DAG run wrote;
* :func:`warehouse_file` — a file of the GX Data Docs or the HTML report,
  by a path that cannot leave its folder.

Every value is plain (str, int, float, bool, None, list, dict) so it can be
rendered or serialised as JSON. Text that comes from the data — quarantined
rows, reasons, messages, warnings, file names — passes through
:func:`etl.privacy.mask_personal_data` and :func:`etl.privacy.redact_uri`
and is truncated (:func:`shown_text`): the pages never show a personnummer,
an e-mail address or a credential, even from rows written before the
publisher masked them. Escaping for HTML is the renderer's job.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from typing import overload

from etl import approvals, data_docs, privacy, publish, schemas, storage
from etl.deliveries import delivery_path, display_name, shown_name

EXAMPLES_PER_REASON = 3
RAW_LIMIT = 300  # characters of a quarantined row shown
TEXT_LIMIT = 1000  # characters of a message, warning or reason shown
OVERDUE_AFTER_DAYS = 14
MAX_MONTHS = 240  # the longest month range one page asks for (twenty years)

# Which DAG writes which pipeline's rows (``pipeline`` in the load log).
DAG_PIPELINES = {
    "reference_data": "reference",
    "county_reports": "county_reports",
    "ehealth_adoption": "ehealth_adoption",
    "followup": "followup",
}
# The severity of a load-log outcome: the latest batch of a delivery shows its worst.
OUTCOME_RANK = {"blocked": 4, "failed": 3, "published": 2, "unchanged": 1, "nothing_new": 0}
COMMITTED = ("published", "unchanged")
# Month status, most severe first (the month shows its worst delivery).
MONTH_STATUS_RANK = {"overdue": 6, "blocked": 5, "waiting": 4, "expected": 3, "open": 2, "loaded": 1, "not sent": 0}

# Files the plugin may serve from the warehouse: the GX Data Docs and the HTML report.
DATA_DOCS = data_docs.DOCS
REPORT = ("exports", "followup_report.html")
MAX_FILE_BYTES = 64 << 20
_SEGMENT = re.compile(r"[\w][\w.\-]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


# --------------------------------------------------------------------------- text


@overload
def shown_text(value: str, limit: int = TEXT_LIMIT) -> str: ...
@overload
def shown_text(value: None, limit: int = TEXT_LIMIT) -> None: ...
@overload
def shown_text(value: object, limit: int = TEXT_LIMIT) -> str | None: ...
def shown_text(value: object, limit: int = TEXT_LIMIT) -> str | None:
    """``value`` as text fit to show: personal data masked, credentials redacted, control characters
    out, cut at ``limit``.

    Masking comes before cutting, so a cut never leaves part of a
    personnummer or address that the pattern would no longer recognise.
    """
    if value is None:
        return None
    text = privacy.shareable(str(value))
    text = _CONTROL.sub(" ", text)
    if len(text) > limit:
        text = text[:limit].rstrip() + "…"
    return text


def shown_time(value) -> str | None:
    """A timestamp as the pages show it: UTC, to the second."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def reason_kind(reason: str | None) -> str:
    """A reason without the value it ends with, so that rows broken the same way count together.

    ``"Bokningar: not a number: 'tolv'"`` → ``"Bokningar: not a number: '…'"``; a
    quoted part inside the text (``"… + '-' + …"``) is part of the rule and stays.
    Several reasons of one row (joined with ``"; "`` by the publisher) are one kind.
    """
    if not reason:
        return "(no reason recorded)"
    return re.sub(r"(?:'[^']*'|\"[^\"]*\")$", lambda m: m.group(0)[0] + "…" + m.group(0)[0], reason.strip())


# --------------------------------------------------------------------------- reading


def load_log_rows(warehouse_uri: str) -> list[dict]:
    """Every load-log row, oldest first (plain dicts, timestamps as datetimes)."""
    return publish.read_load_log(warehouse_uri).to_pylist()


def _delta(warehouse_uri: str, location: str):
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = storage.join(warehouse_uri, location)
    try:
        return DeltaTable(uri, storage_options=storage.delta_options(uri))
    except TableNotFoundError:
        return None


def rows_by_source(warehouse_uri: str, table: str) -> dict[str, int]:
    """Rows the table's current version holds per ``source_file`` (grouped in the Delta engine, one column read)."""
    import pyarrow as pa
    from deltalake import QueryBuilder

    schema = schemas.get(table)
    if not schema.lineage:
        return {}
    delta = _delta(warehouse_uri, table)
    if delta is None:
        return {}
    result = pa.table(
        QueryBuilder()
        .register("t", delta)
        .execute('SELECT "source_file" AS f, COUNT(*) AS n FROM t GROUP BY "source_file"')
    )
    return {f: int(n) for f, n in zip(result.column("f").to_pylist(), result.column("n").to_pylist(), strict=True)}


def _quarantine_rows(warehouse_uri: str, table: str) -> list[dict]:
    if publish.table_rows(warehouse_uri, f"_quarantine/{table}") is None:
        return []
    return publish.read_quarantine(warehouse_uri, table).to_pylist()


def published_tables() -> list[schemas.TableSchema]:
    """The tables the pipelines publish (not the quarantine or the load log), in registry order."""
    return [s for s in schemas.all_tables() if not s.name.startswith("_")]


# --------------------------------------------------------------------------- per table


def quarantine_summary(rows: list[dict], examples: int = EXAMPLES_PER_REASON) -> dict:
    """A table's quarantine: entries, input rows held, and per reason the rows and up to ``examples`` rows.

    Entries are grouped by :func:`reason_kind`; a whole rejected file counts
    the rows it held. Examples are the newest, masked and cut.
    """
    reasons: dict[str, dict] = {}
    held = 0
    ordered = sorted(
        rows,
        key=lambda r: (
            r.get("loaded_at") or dt.datetime.min.replace(tzinfo=dt.UTC),
            r.get("source_file") or "",
            -(r.get("row_number") or 0),
        ),
        reverse=True,
    )
    for row in ordered:
        weight = row.get("rows_held") or 1
        held += weight
        kind = shown_text(reason_kind(row.get("reason")))
        entry = reasons.setdefault(kind, {"reason": kind, "rows": 0, "entries": 0, "files": set(), "examples": []})
        entry["rows"] += weight
        entry["entries"] += 1
        entry["files"].add(delivery_path(row.get("source_file") or ""))
        if len(entry["examples"]) < examples:
            entry["examples"].append(
                {
                    "file": shown_text(shown_name(row.get("source_file") or "")),
                    "row_number": row.get("row_number"),
                    "whole_file": row.get("row_number") == 0,
                    "rows_held": weight,
                    "reason": shown_text(row.get("reason")),
                    "raw": shown_text(row.get("raw"), RAW_LIMIT),
                    "loaded_at": shown_time(row.get("loaded_at")),
                }
            )
    listed = sorted(reasons.values(), key=lambda e: (-e["rows"], e["reason"]))
    for entry in listed:
        entry["files"] = len(entry["files"])
    return {"entries": len(rows), "rows": held, "reasons": listed}


def _log_row(row: dict) -> dict:
    """One load-log row as the pages show it."""
    files = row.get("source_files") or []
    return {
        "batch_id": row.get("batch_id"),
        "pipeline": row.get("pipeline"),
        "table": row.get("table_name"),
        "outcome": row.get("outcome"),
        "validation": row.get("validation"),
        "rows_in": row.get("rows_in"),
        "rows_loaded": row.get("rows_loaded"),
        "rows_quarantined": row.get("rows_quarantined"),
        "files": len(files),
        "file_names": [shown_text(shown_name(f)) for f in files[:20]],
        "warnings": shown_text(row.get("warnings")),
        "message": shown_text(row.get("message")),
        "table_version": row.get("table_version"),
        "started_at": shown_time(row.get("started_at")),
        "finished_at": shown_time(row.get("finished_at")),
    }


def pipeline_runs(log_rows: list[dict]) -> list[dict]:
    """Per pipeline, its last load-log row (any outcome, a run with nothing new included) and its last failure."""
    last: dict[str, dict] = {}
    failed: dict[str, dict] = {}
    for row in log_rows:
        last[row["pipeline"]] = row
        if row["outcome"] in ("blocked", "failed"):
            failed[row["pipeline"]] = row
    return [
        {"pipeline": p, "last": _log_row(last[p]), "last_failure": _log_row(failed[p]) if p in failed else None}
        for p in sorted(last)
    ]


def table_overview(
    warehouse_uri: str,
    *,
    examples: int = EXAMPLES_PER_REASON,
    log_rows: list[dict] | None = None,
    delivery_rows: list[dict] | None = None,
) -> list[dict]:
    """Per published table: rows now, last load, load-log totals, blocked deliveries, quarantine by reason.

    ``blocked_deliveries`` are the deliveries of the table's pipeline whose
    latest outcome is ``blocked`` or ``failed`` (a blocked delivery is not
    any one table's: it was held back whole); see :func:`deliveries`.
    """
    log_rows = load_log_rows(warehouse_uri) if log_rows is None else log_rows
    if delivery_rows is None:
        delivery_rows = deliveries(warehouse_uri, log_rows=log_rows, with_rows=False)
    blocked_by_pipeline: dict[str, list[dict]] = {}
    for d in delivery_rows:
        if d["outcome"] in ("blocked", "failed"):
            blocked_by_pipeline.setdefault(d["pipeline"], []).append(
                {"file": d["file"], "outcome": d["outcome"], "message": d["message"], "since": d["last_seen"]}
            )
    out = []
    for schema in published_tables():
        mine = [r for r in log_rows if r.get("table_name") == schema.name]
        pipeline = mine[-1]["pipeline"] if mine else None
        committed = [r for r in mine if r["outcome"] in COMMITTED]
        changed = [r for r in mine if r["outcome"] == "published"]
        outcomes: dict[str, int] = {}
        for r in mine:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        out.append(
            {
                "table": schema.name,
                "domain": schema.domain,
                "description": schema.description.split(". ")[0].rstrip(".") + ".",
                "pipeline": pipeline,
                "rows": publish.table_rows(warehouse_uri, schema.name),
                "last_load": _log_row(mine[-1]) if mine else None,
                "last_change": shown_time(changed[-1]["finished_at"]) if changed else None,
                "totals": {
                    "loads": len(mine),
                    "outcomes": outcomes,
                    "rows_in": sum(r["rows_in"] or 0 for r in committed),
                    "rows_loaded": sum(r["rows_loaded"] or 0 for r in committed),
                    "rows_quarantined": sum(r["rows_quarantined"] or 0 for r in committed),
                    "rows_held_back": sum(r["rows_in"] or 0 for r in mine if r["outcome"] not in COMMITTED),
                },
                "blocked_deliveries": blocked_by_pipeline.get(pipeline, []) if pipeline else [],
                "quarantine": quarantine_summary(_quarantine_rows(warehouse_uri, schema.name), examples),
            }
        )
    return out


# --------------------------------------------------------------------------- per delivery


@overload
def _decision_text(decision: approvals.Decision) -> str: ...
@overload
def _decision_text(decision: None) -> None: ...
def _decision_text(decision: approvals.Decision | None) -> str | None:
    """``"rejected by bo on 2026-11-30: …"`` (:meth:`etl.approvals.Decision.note`), masked; None for no decision."""
    return None if decision is None else shown_text(decision.note())


def deliveries(
    warehouse_uri: str,
    *,
    log_rows: list[dict] | None = None,
    pipeline: str | None = None,
    outcome: str | None = None,
    with_rows: bool = True,
) -> list[dict]:
    """Per source file in the load log: its latest outcome, rows, and why it was blocked; newest first.

    A delivery is a landed file (a source with a content hash; the
    follow-up mart's table references are not deliveries), known by its
    folder and NFC name whatever mount point or spelling reached it. Its
    latest outcome is the worst of the rows of the last batch that named it
    (``blocked`` > ``failed`` > ``published`` > ``unchanged``); a blocked
    delivery's previous version stays published (``last_loaded``). With
    ``with_rows``, ``rows_now`` and ``quarantined_now`` give per table the
    rows the file has in the current version and in quarantine (read from
    the tables: exact per file, where a load-log row counts a whole batch).
    """
    # Size: one page of the data-quality UI, its rows and filters in the order shown.
    log_rows = load_log_rows(warehouse_uri) if log_rows is None else log_rows
    found: dict[str, dict] = {}
    decisions = approvals.latest_decisions(log_rows)  # SHA-256 → the latest approval or rejection
    for row in log_rows:
        if row["outcome"] in approvals.DECISIONS:
            continue  # a person's decision, not an outcome of the delivery
        for uri, sha in zip(row.get("source_files") or [], row.get("source_sha256") or [], strict=True):
            if not sha:
                continue
            key = delivery_path(uri)
            entry = found.setdefault(
                key, {"key": key, "uri": uri, "pipeline": row["pipeline"], "rows": [], "first_seen": row["finished_at"]}
            )
            entry["rows"].append((row, sha))
            entry["uri"] = uri
    out = []
    for key, entry in found.items():
        rows = entry["rows"]
        latest_row, latest_sha = rows[-1]
        batch = [(r, s) for r, s in rows if r["batch_id"] == latest_row["batch_id"]]
        worst = max((r for r, _ in batch), key=lambda r: OUTCOME_RANK.get(r["outcome"], 0))
        committed = [(r, s) for r, s in rows if r["outcome"] in COMMITTED]
        message = next(
            (
                r.get("message")
                for r, _ in reversed(batch)
                if r["outcome"] in ("blocked", "failed") and r.get("message")
            ),
            None,
        )
        decision = decisions.get(latest_sha)
        out.append(
            {
                "key": shown_text(key),
                "file": shown_text(shown_name(entry["uri"])),
                "approvable": worst["outcome"] == "blocked" and approvals.is_approvable(message or "", entry["uri"]),
                "decision": _decision_text(decision),
                "folder": shown_text(posixpath.dirname(key)) or None,
                "uri": shown_text(entry["uri"]),
                "pipeline": entry["pipeline"],
                "outcome": worst["outcome"],
                "message": shown_text(message),
                "sha256": latest_sha,
                "first_seen": shown_time(entry["first_seen"]),
                "last_seen": shown_time(latest_row["finished_at"]),
                "last_loaded": shown_time(committed[-1][0]["finished_at"]) if committed else None,
                "loaded_sha256": committed[-1][1] if committed else None,
                "loads": len(rows),
                "tables": [
                    {
                        "table": r.get("table_name"),
                        "outcome": r["outcome"],
                        "rows_in": r["rows_in"],
                        "rows_loaded": r["rows_loaded"],
                        "rows_quarantined": r["rows_quarantined"],
                        "files_in_batch": len(r.get("source_files") or []),
                    }
                    for r, _ in batch
                ],
                "_sort": latest_row["finished_at"],
            }
        )
    if pipeline:
        out = [d for d in out if d["pipeline"] == pipeline]
    if outcome:
        out = [d for d in out if d["outcome"] == outcome]
    out.sort(key=lambda d: d.pop("_sort"), reverse=True)
    if with_rows and out:
        wanted = {d["key"] for d in out}
        rows_now: dict[str, dict[str, int]] = {}
        quarantined: dict[str, dict[str, int]] = {}
        for schema in published_tables():
            for source, n in rows_by_source(warehouse_uri, schema.name).items():
                key = shown_text(delivery_path(source))
                if key in wanted:
                    rows_now.setdefault(key, {})[schema.name] = rows_now.get(key, {}).get(schema.name, 0) + n
            for q in _quarantine_rows(warehouse_uri, schema.name):
                key = shown_text(delivery_path(q.get("source_file") or ""))
                if key in wanted:
                    per = quarantined.setdefault(key, {})
                    per[schema.name] = per.get(schema.name, 0) + (q.get("rows_held") or 1)
        for d in out:
            d["rows_now"] = rows_now.get(d["key"], {})
            d["quarantined_now"] = quarantined.get(d["key"], {})
    return out


# --------------------------------------------------------------------------- e-health months


def parse_month(value: str) -> tuple[int, int]:
    match = _MONTH.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"a month is YYYY-MM, not {value!r}")
    return int(match.group(1)), int(match.group(2))


def month_range(first: str, last: str) -> list[str]:
    """``["2017-11", "2017-12", "2018-01"]`` for ``("2017-11", "2018-01")``; at most :data:`MAX_MONTHS`."""
    y, m = parse_month(first)
    end = parse_month(last)
    if (y, m) > end:
        raise ValueError(f"the range starts ({first}) after it ends ({last})")
    months = []
    while (y, m) <= end:
        months.append(f"{y:04d}-{m:02d}")
        if len(months) > MAX_MONTHS:
            raise ValueError(f"at most {MAX_MONTHS} months at a time")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def default_months(today: dt.date | None = None, count: int = 24) -> tuple[str, str]:
    """The last ``count`` months through the current one."""
    today = today or dt.datetime.now(dt.UTC).date()
    index = today.year * 12 + today.month - 1 - (count - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}", f"{today.year:04d}-{today.month:02d}"


def _month_end(period: str) -> dt.date:
    """The first day after the month ``period``."""
    y, m = parse_month(period)
    return dt.date(y + 1, 1, 1) if m == 12 else dt.date(y, m + 1, 1)


def _landed_exports(landing_uri: str) -> tuple[dict[tuple[str, str], list[dict]], str | None]:
    """(kind, period) → export files in landing (see :func:`ehealth_adoption.landed_exports`), or why not."""
    from etl.errors import EtlError
    from etl.pipelines import ehealth_adoption as eh

    try:
        found = eh.landed_exports(landing_uri)
    except EtlError as exc:
        return {}, shown_text(str(exc))
    for files in found.values():
        for entry in files:
            entry["name"] = display_name(entry["name"])
    return found, None


def _landing_hashes(warehouse_uri: str, prefix: str) -> dict[str, dict]:
    """The SHA-256 the last run found for each landed file (``<warehouse>/_state/landing_hashes/``), or {}."""
    import json

    fs, path = storage.filesystem(storage.hash_cache_uri(warehouse_uri, prefix))
    try:
        data = json.loads(fs.cat_file(path))
        files = data.get("files") if isinstance(data, dict) and data.get("version") == 1 else None
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _landed_sha(landed: dict, hashes: dict[str, dict]) -> str | None:
    """The landed file's SHA-256 as the last run found it, if the file has not changed since (size and time)."""
    known = hashes.get(landed["name"])
    if not isinstance(known, dict):
        return None
    stamp = known.get("stamp") or []
    if len(stamp) >= 2 and stamp[0] == landed["size"] and stamp[1] == landed["modified"]:
        return known.get("sha256")
    return None


def ehealth_months(
    warehouse_uri: str,
    landing_uri: str,
    first: str,
    last: str,
    *,
    overdue_after_days: int = OVERDUE_AFTER_DAYS,
    today: dt.date | None = None,
    log_rows: list[dict] | None = None,
) -> dict:
    """The delivery status of each month from ``first`` to ``last`` (YYYY-MM), newest first.

    Each month expects one export of each kind it expects
    (:func:`etl.sources.ehealth_spec.kinds_expected`: ``journalen``, ``webbtidbok``, …), due
    ``overdue_after_days`` after the month ends; the unit-level
    ``webbtidbok_enheter`` file is shown when sent, never expected. Per
    delivery (:func:`~etl.pipelines.ehealth_adoption.delivery_id`) the status is

    * ``loaded`` — the warehouse reflects it (the delivery record, or a
      committed load-log row) and the file in landing, if still there, is
      the content that was loaded;
    * ``blocked`` — its latest load-log row is ``blocked``/``failed`` (a
      previous version, if any, stays published);
    * ``waiting`` — in landing, not (or not in this version) loaded yet;
    * ``overdue`` — neither in landing nor loaded, and past due;
    * ``expected`` — the month is over, not yet due; ``open`` — the month is not over.

    Landing is listed once (names, sizes, times: nothing is read or hashed);
    a changed file is told from the hashes the last run remembered.
    """
    # Size: the month grid of every export kind: expected, arrived, blocked, overdue per cell, in one pass
    # over the load log.
    from etl.deliveries import DeliveryRecord
    from etl.errors import BadInput
    from etl.pipelines import ehealth_adoption as eh
    from etl.sources import ehealth_exports as exports
    from etl.sources import ehealth_spec as spec

    if overdue_after_days < 0:
        raise ValueError("overdue_after_days must be 0 or more")
    months = month_range(first, last)
    today = today or dt.datetime.now(dt.UTC).date()
    log_rows = load_log_rows(warehouse_uri) if log_rows is None else log_rows
    landed, landing_error = _landed_exports(landing_uri)
    hashes = _landing_hashes(warehouse_uri, eh.PREFIX)
    record = DeliveryRecord.load(warehouse_uri, eh.PIPELINE).published

    # Per delivery id: its load-log rows (oldest first), from the names of the files they name.
    history: dict[str, list[tuple[dict, str | None]]] = {}
    decisions = approvals.latest_decisions(log_rows)  # SHA-256 → the latest approval or rejection
    for row in log_rows:
        if row["pipeline"] != eh.PIPELINE or row["outcome"] in approvals.DECISIONS:
            continue
        for uri, sha in zip(row.get("source_files") or [], row.get("source_sha256") or [], strict=True):
            try:
                name = exports.parse_file_name(shown_name(uri))
            except BadInput:
                continue
            history.setdefault(eh.delivery_id(name.kind, name.period), []).append((row, sha))

    def one(kind: str, period: str, expected: bool) -> dict:
        # Size: one cell of the month grid: each state it can be in, in order of precedence.
        did = eh.delivery_id(kind, period)
        files = landed.get((kind, period), [])
        rows = history.get(did, [])
        committed = [(r, s) for r, s in rows if r["outcome"] in COMMITTED]
        loaded_sha = (record.get(did) or {}).get("sha256") or (committed[-1][1] if committed else None)
        loaded = did in record or bool(committed)
        latest = rows[-1] if rows else None
        landed_sha = _landed_sha(files[0], hashes) if len(files) == 1 else None
        due = _month_end(period) + dt.timedelta(days=overdue_after_days)
        status, note = None, None
        if latest is not None and latest[0]["outcome"] in ("blocked", "failed"):
            status = "blocked"
            if landed_sha is not None and landed_sha != latest[1]:
                note = "a new file has landed since; the next run loads it"
            elif files and landed_sha is None:
                note = "the file in landing changed since; the next run judges it again"
            if loaded:
                note = ((note + "; ") if note else "") + "the previous version stays published"
            decided = decisions.get(latest[1]) if latest[1] else None
            if decided is not None:
                note = ((note + "; ") if note else "") + _decision_text(decided)
        elif loaded and (not files or landed_sha == loaded_sha):
            status = "loaded"
        elif files:
            status = "waiting"
            if loaded:
                note = "a new version has landed; the next run loads it"
            if len(files) > 1:
                note = f"{len(files)} files for one delivery: the run refuses the month until one is removed"
        elif loaded:
            status = "loaded"  # loaded, then removed from landing
        elif not expected:
            status = "not sent"
        elif today >= due:
            status = "overdue"
        elif today >= _month_end(period):
            status = "expected"
        else:
            status = "open"
        return {
            "kind": kind,
            "delivery": did,
            "status": status,
            "note": note,
            "due": due.isoformat() if expected else None,
            "days_overdue": (today - due).days if status == "overdue" else None,
            "received": [
                {
                    "name": shown_text(f["name"]),
                    "size": f["size"],
                    "modified": shown_time(dt.datetime.fromtimestamp(f["modified"], dt.UTC))
                    if f["modified"] is not None
                    else None,
                }
                for f in files
            ],
            "loaded_at": shown_time(committed[-1][0]["finished_at"]) if committed else None,
            "last_outcome": latest[0]["outcome"] if latest else None,
            "message": shown_text(latest[0].get("message"))
            if latest and latest[0]["outcome"] in ("blocked", "failed")
            else None,
            "rows_in": latest[0]["rows_in"] if latest else None,
        }

    out = []
    counts: dict[str, int] = {}
    for period in reversed(months):
        expected = [one(kind, period, spec.EXPORTS[kind].expected_in(period)) for kind in spec.MONTHLY_KINDS]
        unit = one(exports.UNIT_KIND, period, False)
        status = max((d["status"] for d in expected), key=lambda s: MONTH_STATUS_RANK[s])
        if unit["status"] in ("blocked", "waiting") and MONTH_STATUS_RANK[unit["status"]] > MONTH_STATUS_RANK[status]:
            status = unit["status"]
        for d in expected:
            counts[d["status"]] = counts.get(d["status"], 0) + 1
        out.append(
            {
                "month": period,
                "status": status,
                "due": next((d["due"] for d in expected if d["due"]), None),
                "deliveries": expected,
                "units": unit,
            }
        )
    return {
        "first": months[0],
        "last": months[-1],
        "today": today.isoformat(),
        "overdue_after_days": overdue_after_days,
        "landing_error": landing_error,
        "counts": counts,
        "months": out,
    }


# --------------------------------------------------------------------------- one DAG run


def run_activity(
    warehouse_uri: str,
    pipeline: str,
    started: dt.datetime | None,
    ended: dt.datetime | None,
    *,
    log_rows: list[dict] | None = None,
) -> list[dict]:
    """The load-log rows ``pipeline`` wrote from ``started`` to ``ended``: a DAG run's span (``ended`` None: running)."""
    log_rows = load_log_rows(warehouse_uri) if log_rows is None else log_rows
    out = []
    for row in log_rows:
        if row["pipeline"] != pipeline:
            continue
        if started is not None and row["started_at"] < started:
            continue
        if ended is not None and row["finished_at"] > ended:
            continue
        out.append(_log_row(row))
    return out


# --------------------------------------------------------------------------- Data Docs and the report


def safe_parts(path: str) -> list[str]:
    """The segments of a relative path that stays inside its folder; :class:`ValueError` otherwise.

    Every segment is a plain name (letters, digits, ``_``, ``-``, ``.``,
    not starting with a dot): no ``..``, no absolute path, no backslash, no
    empty segment. An empty path or one ending in ``/`` means its ``index.html``.
    """
    text = str(path or "")
    if "\\" in text or "\x00" in text or text.startswith("/"):
        raise ValueError("not a relative path")
    parts = text.split("/")
    if parts[-1] == "":
        parts[-1] = "index.html"
    for part in parts:
        if not _SEGMENT.fullmatch(part) or part in (".", ".."):
            raise ValueError(f"not a plain file name: {part!r}")
    return parts


def warehouse_file(
    warehouse_uri: str, parts: list[str] | tuple[str, ...], max_bytes: int = MAX_FILE_BYTES
) -> bytes | None:
    """The bytes of ``<warehouse>/<parts…>`` — a file of the Data Docs or the report — or None when absent.

    Only ``_data_docs/…`` and ``exports/followup_report.html`` are served;
    on a local disk the resolved path must also stay inside the warehouse
    (no symlink out). Raises :class:`ValueError` for anything else and
    :class:`OSError` when the store cannot be read.
    """
    parts = list(parts)
    for part in parts:
        safe_parts(part)
    if not (parts and (parts[0] == DATA_DOCS and len(parts) > 1 or tuple(parts) == REPORT)):
        raise ValueError("only the Data Docs and the report are served")
    uri = storage.join(warehouse_uri, *parts)
    fs, path = storage.filesystem(uri)
    if storage.is_local(fs):
        import os

        root = os.path.realpath(storage.filesystem(storage.join(warehouse_uri, parts[0]))[1])
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise ValueError("the path leaves the warehouse")
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") != "file":
        return None
    if int(info.get("size") or 0) > max_bytes:
        raise ValueError(f"{'/'.join(parts)} is larger than {max_bytes >> 20} MB")
    return fs.cat_file(path)
