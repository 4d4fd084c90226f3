"""What is in a warehouse: tables, row counts, quarantine, last loads, deliveries blocked now and failures."""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import shlex

from etl import approvals, publish, schemas
from etl.deliveries import shown_name
from etl.privacy import redact_uri


def table_rows(warehouse_uri: str, location: str) -> int | None:
    """Row count of a published table from its Delta log (no data read); None if never published."""
    return publish.table_rows(warehouse_uri, location)


def quarantined_rows(warehouse_uri: str, table: str) -> int:
    """Input rows in quarantine: a whole rejected file counts the rows it held."""
    if table_rows(warehouse_uri, f"_quarantine/{table}") is None:
        return 0
    q = publish.read_quarantine(warehouse_uri, table)
    if q.num_rows == 0:
        return 0
    import pyarrow.compute as pc

    return int(pc.sum(pc.fill_null(q.column("rows_held"), 1)).as_py())


_SUPERSEDED = re.compile(r"^superseded by (?P<by>\S+)")


def superseded_reports(warehouse_uri: str, until: dt.datetime | None = None) -> list[str]:
    """One line per county report replaced by a later one for the same region and year (in quarantine whole,
    quarantined up to ``until``), oldest first, in Swedish for the report: ``"arsrapport_2018_19.json: ersatt
    av arsrapport_2018_19_rattelse.json (samma region och år, inkom senare); dess uppgifter visas inte"``.

    Read from ``county_report``'s quarantine (:mod:`etl.pipelines.county_reports` quarantines a superseded
    file whole, reason ``superseded by <file> …``). Empty when nothing was superseded.
    """
    if table_rows(warehouse_uri, "_quarantine/county_report") is None:
        return []
    rows = sorted(publish.read_quarantine(warehouse_uri, "county_report").to_pylist(), key=lambda r: r["loaded_at"])
    lines: dict[str, str] = {}
    for row in rows:
        match = _SUPERSEDED.match(row["reason"] or "")
        if match is None or (until is not None and row["loaded_at"] > until):
            continue
        name = shown_name(row["source_file"])
        lines.setdefault(
            name,
            f"{name}: ersatt av {shown_name(match['by'])} (samma region och år, inkom senare); "
            "dess uppgifter visas inte",
        )
    return list(lines.values())


def summary(warehouse_uri: str) -> list[dict]:
    rows = []
    for schema in schemas.all_tables():
        if schema.name.startswith("_"):
            continue
        count = table_rows(warehouse_uri, schema.name)
        if count is None:
            continue
        rows.append({"table": schema.name, "rows": count, "quarantined": quarantined_rows(warehouse_uri, schema.name)})
    return rows


def render(warehouse_uri: str, last: int = 10) -> str:
    lines = [f"warehouse: {warehouse_uri}", "", f"{'table':<28}{'rows':>12}{'quarantined':>14}"]
    tables = summary(warehouse_uri)
    for row in tables:
        lines.append(f"{row['table']:<28}{row['rows']:>12}{row['quarantined']:>14}")
    if not tables:
        lines.append("(no tables published yet)")
    log = publish.read_load_log(warehouse_uri).to_pylist()
    log.sort(key=lambda r: r["finished_at"])
    lines += ["", f"last {min(last, len(log))} loads:"]
    for row in log[-last:]:
        # A row about a delivery as a whole (blocked, approved, rejected) names its file instead of a table.
        what = row["table_name"] or (shown_name(row["source_files"][0]) if row["source_files"] else "-")
        line = (
            f"  {row['finished_at']:%Y-%m-%d %H:%M:%S} {row['pipeline']:<17} {what:<26} "
            f"{row['outcome']:<11} in={row['rows_in']} loaded={row['rows_loaded']} "
            f"quarantined={row['rows_quarantined']} validation={row['validation']}"
        )
        if row["outcome"] in approvals.DECISIONS and row["message"]:
            line += f"  ({row['message']})"  # who decided and why (masked when it was recorded)
        lines.append(line)
    blocked = approvals.blocked_in(log)  # the load log read above, oldest first
    lines += ["", f"blocked now: {len(blocked)}"]
    for b in blocked:
        # The file's landing root is the folder above its pipeline's folder: the command works as printed.
        landing = redact_uri(posixpath.dirname(posixpath.dirname(b.source_file)))
        how = (
            f"a person may approve it: .venv/bin/python -m etl approve {shlex.quote(b.name)} --reason '…' "
            f"--landing {shlex.quote(landing)} --warehouse {shlex.quote(redact_uri(warehouse_uri))}"
            if b.approvable
            else "not approvable (a format error or the sender's figures): the sender must send a new file"
        )
        decided = f"; {b.decision.note()}" if b.decision is not None else ""
        lines.append(f"  {b.name} ({b.pipeline}, last blocked {b.blocked_at:%Y-%m-%d %H:%M}): {how}{decided}")
    failures = [r for r in log if r["outcome"] == "failed"]
    lines += ["", f"failures: {len(failures)}"]
    for row in failures[-last:]:
        lines.append(
            f"  {row['finished_at']:%Y-%m-%d %H:%M:%S} {row['pipeline']} {row['table_name'] or '-'}: {row['message']}"
        )
    return "\n".join(lines)
