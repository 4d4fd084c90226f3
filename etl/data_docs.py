"""Data Docs: the validation results as self-contained HTML pages under ``<warehouse>/_data_docs/``.

:func:`render` writes one result's page and brings its table's indexes and
the top index up to date; :func:`etl.validation.store_result` calls it after
writing the result JSON (the record; a page is a convenience). The layout
and why these pages are not GX's own are below.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import json
import logging
import posixpath
import re
import string
import urllib.parse

from etl import storage
from etl.expectation_suites import ROW_ID, load_suite_json, suite_path
from etl.privacy import mask_personal_data

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- Data Docs
#
# The pages are rendered here rather than by GX's page view, whose pages load Bootstrap, jQuery,
# Font Awesome and Vega from CDNs (a closed network shows them broken), link to a "Home" and to
# suite pages that are never written, show failing rows as bare DataFrame indexes, and put cell
# values into the HTML unescaped (a stored XSS through any field of a delivered file). These
# pages are self-contained: inline CSS, no JavaScript and a Content-Security-Policy that allows
# neither scripts nor remote loads; every value is escaped, and personal data in values masked.
# GX's own sentences ("Must have exactly 21 rows.") still describe each expectation.
#
# Under <warehouse>/_data_docs/:
#   index.html                      every table (latest status, counts) and the newest validations
#   <table>/index.html              the table's newest validations and its months
#   <table>/by-month/YYYY-MM.html   every validation run in that month, newest first (nothing is dropped)
#   <table>/suite.html              the table's expectation suite
#   <table>/<batch_id>.html         one validation result
#   <table>/_entries/YYYY-MM.json   page → time, status and counts of the month's validations
#   <table>/_summary.json           counts per month, the newest entries: the table index and top index
#
# A batch writes its page, its month's entries and page, its table's index and summary and the top
# index, so the cost per batch stays flat as the years add up. A page the entries lack (written
# concurrently by another process, or by GX's renderer before this one) is taken in from the
# entry embedded in its <head>, or rendered again from its result JSON in _validation/.

DOCS = "_data_docs"
DOCS_RECENT = 50  # newest validations on the top index and on each table's index
DOCS_ROW_LIMIT = 200  # failing rows listed on one page; the quarantine holds them all
_RESERVED_PAGES = frozenset({"index", "suite"})
_TABLE_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENTRY_META = re.compile(r'<meta name="etl-entry" content="([^"]*)">')
_STATUS_LABEL = {
    "passed": "Passed",
    "warning": "Passed with warnings",
    "quarantined": "Failed: rows quarantined",
    "blocked": "Failed: batch blocked",
    "unknown": "Unknown",
}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_CSS = (
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#1d2330;"
    "max-width:1280px;margin:0 auto;padding:0 1em 2em}"
    "nav{padding:.7em 0;border-bottom:1px solid #ccd3dd;margin-bottom:.5em}nav a{margin-right:1.4em}"
    "h1{font-size:1.5em;margin:.6em 0 .3em}h2{font-size:1.2em;margin:1.4em 0 .3em}"
    "table{border-collapse:collapse;width:100%;margin:.4em 0 1em}"
    "th,td{border:1px solid #d5d9e0;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#f1f3f7}td.n{text-align:right;white-space:nowrap}"
    ".v{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;overflow-wrap:anywhere}"
    ".b{display:inline-block;padding:.05em .55em;border-radius:.8em;font-weight:600;white-space:nowrap}"
    ".passed{background:#dcf2e2;color:#14532d}.warning{background:#fff1cc;color:#6b4100}"
    ".quarantined{background:#ffe0c7;color:#7c2d00}.blocked{background:#fbd5d5;color:#8b1111}"
    ".unknown{background:#e8e8e8;color:#333}.muted{color:#5b6473}dl{display:grid;grid-template-columns:"
    "max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}"
)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _display(value) -> str:
    """A value as a person reads it: no NaN/NaT/<NA>, integral floats without ".0", dates without midnight."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value:
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, dt.datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _text(value, limit: int = 300) -> str:
    """``value`` as escaped HTML text, personal data masked, cut at ``limit`` characters."""
    shown = mask_personal_data(_display(value))
    if len(shown) > limit:
        shown = shown[:limit] + "…"
    return _esc(shown)


def _href(*parts: str) -> str:
    return _esc("/".join(urllib.parse.quote(p) for p in parts))


def _page_name(batch_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(batch_id)) or "_"
    if safe.startswith(".") or safe in _RESERVED_PAGES:
        safe = "batch-" + safe
    return f"{safe}.html"


def _row_of(entry) -> int:
    return int(entry[ROW_ID]) if isinstance(entry, dict) else int(entry)


def _severity(config: dict) -> str:
    return str(config.get("severity") or "critical")


def _reason_of(config: dict) -> str:
    meta = config.get("meta") or {}
    if meta.get("reason"):
        return str(meta["reason"])
    kwargs = config.get("kwargs") or {}
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    return f"{config.get('type')}({target})" if target else str(config.get("type"))


def _validation_time(data: dict) -> str:
    """When GX validated the batch (its batch load time), as ISO 8601 UTC; now if the result has none."""
    stamp = ((data.get("meta") or {}).get("batch_markers") or {}).get("ge_load_time")
    try:
        moment = dt.datetime.strptime(str(stamp), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        moment = dt.datetime.now(dt.UTC)
    return moment.isoformat(timespec="microseconds")


def _entry(table: str, batch_id: str, page: str, data: dict) -> dict:
    """What the indexes show of one result; the status follows :func:`validate`'s severity policy."""
    rows: set[int] = set()
    blocked = warnings = 0
    for item in data.get("results") or []:
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        index_list = (item.get("result") or {}).get("unexpected_index_list")
        if _severity(config) != "critical":
            warnings += 1
        elif index_list and (config.get("meta") or {}).get("scope") != "file":
            rows.update(_row_of(e) for e in index_list)
        else:  # batch-level, or a rule on the file as a whole: it blocks, its rows are not quarantined
            blocked += 1
    status = "blocked" if blocked else "quarantined" if rows else "warning" if warnings else "passed"
    stats = data.get("statistics") or {}
    return {
        "page": page,
        "batch_id": str(batch_id),
        "table": table,
        "time": _validation_time(data),
        "status": status,
        "evaluated": stats.get("evaluated_expectations"),
        "failed": stats.get("unsuccessful_expectations"),
        "rows": len(rows),
        "warnings": warnings,
        "blocked": blocked,
    }


def _when(entry: dict) -> str:
    return str(entry.get("time", ""))[:19].replace("T", " ") + " UTC"


def _newest(entry: dict) -> tuple:
    return (str(entry.get("time", "")), str(entry.get("page", "")))


def _badge(status: str) -> str:
    status = status if status in _STATUS_LABEL else "unknown"
    return f'<span class="b {status}">{_STATUS_LABEL[status]}</span>'


def _detail(entry: dict) -> str:
    parts = []
    if entry.get("blocked"):
        parts.append(f"{entry['blocked']} batch-level failure(s)")
    if entry.get("rows"):
        parts.append(f"{entry['rows']} row(s) quarantined")
    if entry.get("warnings"):
        parts.append(f"{entry['warnings']} warning(s)")
    return _esc(", ".join(parts))


def _document(title: str, nav: list[tuple[str, str]], body: str, entry: dict | None = None) -> str:
    """A whole page: the entry first in <head> (cheap to read back), inline CSS, no scripts allowed."""
    meta = f'<meta name="etl-entry" content="{_esc(json.dumps(entry, sort_keys=True))}">' if entry else ""
    links = "".join(f'<a href="{href}">{_esc(label)}</a>' for href, label in nav)
    return (
        f'<!doctype html><html lang="en"><head>{meta}<meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body>{f'<nav>{links}</nav>' if links else ''}{body}</body></html>\n"
    )


@functools.lru_cache(maxsize=1024)
def _describe_cached(kind: str, kwargs_json: str) -> str:
    """GX's sentence for an expectation ("Must have exactly 21 rows."), every parameter escaped."""
    kwargs = json.loads(kwargs_json)
    try:
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
        from great_expectations.expectations.registry import get_renderer_impl
        from great_expectations.render import LegacyRendererType

        impl = get_renderer_impl(object_name=kind, renderer_type=LegacyRendererType.PRESCRIPTIVE)
        if impl is None:
            raise LookupError(f"GX has no prescriptive renderer for {kind}")  # the fallback below
        blocks = impl.renderer(
            configuration=ExpectationConfiguration(type=kind, kwargs=kwargs),
            runtime_configuration={"include_column_name": True},
        )
        if not isinstance(blocks, list):
            raise TypeError(f"GX rendered {kind} as one block, not a list")  # the fallback below
        sentences = []
        for block in blocks:
            template = getattr(block, "string_template", None)
            if isinstance(template, dict) and template.get("template"):
                params = {
                    k: f'<span class="v">{_esc(_display(v))}</span>' for k, v in (template.get("params") or {}).items()
                }
                sentences.append(string.Template(_esc(template["template"])).safe_substitute(params))
        if sentences:
            return " ".join(sentences)
    except Exception:  # pragma: no cover - an expectation GX has no sentence for
        pass
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    return _esc(f"{kind}({target})" if target else kind)


def _describe(config: dict) -> str:
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    return _describe_cached(str(config.get("type")), json.dumps(kwargs, sort_keys=True, default=str))


def _observed(result: dict) -> str:
    if "observed_value" in result:
        return "observed " + f'<span class="v">{_text(result["observed_value"])}</span>'
    if "unexpected_count" not in result:
        return ""
    text = f"{_esc(result.get('unexpected_count'))} unexpected of {_esc(result.get('element_count', '?'))}"
    percent = result.get("unexpected_percent")
    if isinstance(percent, (int, float)) and result.get("unexpected_count"):
        text += f" ({percent:.2f} %)"
    if result.get("missing_count"):
        text += f"; {_esc(result['missing_count'])} missing"
    counts = result.get("partial_unexpected_counts")
    examples = (
        [
            f'<span class="v">{_text(c.get("value"), 80)}</span> ×{_esc(c.get("count"))}'
            for c in counts[:5]
            if isinstance(c, dict)
        ]
        if counts
        else [f'<span class="v">{_text(v, 80)}</span>' for v in (result.get("partial_unexpected_list") or [])[:5]]
    )
    if examples:
        text += "; e.g. " + ", ".join(examples)
    return text


@functools.cache
def _key_columns(table: str) -> tuple[str, ...]:
    """What names a row of ``table`` to a person: its region, partition and key columns."""
    try:
        from etl import schemas

        schema = schemas.get(table)
    except Exception:
        return ("region_code",)
    region = ("region_code",) if "region_code" in schema.column_names else ()
    return tuple(dict.fromkeys([*region, *schema.partition_by, *schema.key]))


def _failing_rows(table: str, results: list[dict], frame) -> str:
    """Rows that failed a row-level expectation: where they came from, their key columns, values and reasons."""
    # Size: one HTML table: which columns name a row, the rows looked up by id, masked; split, the row-id
    # bookkeeping would travel between the parts.
    reasons: dict[int, list[str]] = {}
    failing: list[list] = []
    checked: dict[str, None] = {}
    for item in results:
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        index_list = (item.get("result") or {}).get("unexpected_index_list")
        if not index_list:
            continue
        failing.append(index_list)
        if isinstance(index_list[0], dict):
            checked.update(dict.fromkeys(c for c in index_list[0] if c != ROW_ID))
        reason = _reason_of(config) + ("" if _severity(config) == "critical" else " (warning: published)")
        for found in index_list:
            reasons.setdefault(_row_of(found), []).append(reason)
    if not reasons:
        return ""
    shown = sorted(reasons)[:DOCS_ROW_LIMIT]
    values: dict[int, dict] = {}  # the failing values GX reported, for the rows shown (all there is without the frame)
    wanted_rows = set(shown)
    for index_list in failing:
        for found in index_list:
            if isinstance(found, dict) and _row_of(found) in wanted_rows:
                for column, value in found.items():
                    if column != ROW_ID:
                        values.setdefault(_row_of(found), {}).setdefault(column, value)
    records: dict[int, dict] = {}
    wanted = list(dict.fromkeys([*_key_columns(table), *checked, "source_file", "row_number"]))
    if frame is not None and ROW_ID in frame.columns:
        present = [c for c in wanted if c in frame.columns and c != ROW_ID]
        picked = frame.loc[frame[ROW_ID].isin(shown), [*present, ROW_ID]]
        records = {int(r.pop(ROW_ID)): r for r in picked.to_dict("records")}
    for row in shown:
        records[row] = {**values.get(row, {}), **records.get(row, {})}
    columns = [c for c in wanted if c not in ("source_file", "row_number") and any(c in records[r] for r in shown)]
    with_origin = any("source_file" in records[r] for r in shown)
    head = (["Source (file:line)"] if with_origin else ["Row"]) + columns + ["Reason"]
    lines = []
    for row in shown:
        record = records[row]
        if with_origin:
            origin = posixpath.basename(_display(record.get("source_file")))
            line = _display(record.get("row_number"))
            where = _text(f"{origin}:{line}" if line else origin)
        else:
            where = _esc(row)
        cells = "".join(f'<td class="v">{_text(record.get(c))}</td>' for c in columns)
        lines.append(f'<tr><td class="v">{where}</td>{cells}<td>{_text("; ".join(reasons[row]), 1000)}</td></tr>')
    more = (
        (
            f'<p class="muted">Showing the first {len(shown)} of {len(reasons)} failing rows; every one is in '
            f"the quarantine table <code>_quarantine/{_esc(table)}</code>.</p>"
        )
        if len(reasons) > len(shown)
        else ""
    )
    return (
        f"<h2>Failing rows ({len(reasons)})</h2>"
        '<p class="muted">Rows failing a critical row-level expectation are quarantined and the rest of the '
        "batch is published; personal data in values is masked.</p>"
        f"<table><tr>{''.join(f'<th>{_esc(h)}</th>' for h in head)}</tr>{''.join(lines)}</table>{more}"
    )


def _result_page(table: str, entry: dict, data: dict, frame) -> str:
    results = data.get("results") or []
    expectations = []
    for item in sorted(results, key=lambda r: bool(r.get("success"))):  # failures first, suite order kept
        config = item.get("expectation_config") or {}
        ok = bool(item.get("success"))
        severity = _severity(config)
        state = "passed" if ok else ("warning" if severity != "critical" else "blocked")
        expectations.append(
            f'<tr><td><span class="b {state}">{"Succeeded" if ok else "Failed"}</span></td>'
            f"<td>{_esc(severity)}</td><td>{_describe(config)}</td><td>{_text(_reason_of(config), 1000)}</td>"
            f"<td>{_observed(item.get('result') or {})}</td></tr>"
        )
    has_suite = suite_path(table).is_file()
    body = (
        f"<h1>{_esc(table)} · batch {_esc(entry['batch_id'])}</h1>"
        f"<p>{_badge(entry['status'])} {_detail(entry)}</p>"
        f"<dl><dt>Validated</dt><dd>{_esc(_when(entry))}</dd>"
        f'<dt>Batch</dt><dd class="v">{_esc(entry["batch_id"])}</dd>'
        f"<dt>Expectations</dt><dd>{_esc(entry.get('evaluated'))} evaluated, "
        f"{_esc(entry.get('failed'))} failed</dd>"
        f'<dt>Result JSON</dt><dd class="v">_validation/{_esc(table)}/{_esc(entry["batch_id"])}.json</dd></dl>'
        f"{_failing_rows(table, results, frame)}"
        "<h2>Expectations</h2><table><tr><th>Result</th><th>Severity</th><th>Expectation</th><th>Reason</th>"
        f"<th>Observed</th></tr>{''.join(expectations)}</table>"
    )
    nav = [("../index.html", "Home"), ("index.html", f"{table}: all validations")]
    if has_suite:
        nav.append(("suite.html", "Expectation suite"))
    return _document(f"{table} {entry['batch_id']}: {_STATUS_LABEL.get(entry['status'], '')}", nav, body, entry)


def _suite_page(table: str) -> str:
    suite = load_suite_json(table)
    rows = "".join(
        f"<tr><td>{_esc(_severity(e))}</td><td>{_describe(e)}</td><td>{_text(_reason_of(e), 1000)}</td></tr>"
        for e in suite.get("expectations", [])
    )
    notes = (suite.get("meta") or {}).get("notes")
    body = (
        f"<h1>Expectation suite: {_esc(table)}</h1>"
        + (f"<p>{_text(notes, 4000)}</p>" if notes else "")
        + f'<p class="muted">Source: <code>expectations/{_esc(table)}.json</code>. Critical row-level failures '
        "quarantine the row; critical batch-level failures block the batch; warnings are recorded.</p>"
        f"<table><tr><th>Severity</th><th>Expectation</th><th>Reason</th></tr>{rows}</table>"
    )
    nav = [("../index.html", "Home"), ("index.html", f"{table}: all validations")]
    return _document(f"Expectation suite {table}", nav, body)


def _entry_table(entries: list[dict], prefix: str, with_table: bool = False) -> str:
    """Validations as table rows, newest first; ``prefix`` leads from the index page to the table folder."""
    head = (
        "<tr><th>Validated (UTC)</th>"
        + ("<th>Table</th>" if with_table else "")
        + "<th>Batch</th><th>Status</th><th>Failed / evaluated expectations</th>"
        "<th>Rows quarantined</th><th>Warnings</th></tr>"
    )
    lines = []
    for e in entries:
        folder = f"{prefix}{urllib.parse.quote(str(e.get('table')))}/" if with_table else prefix
        table_cell = f'<td><a href="{_esc(folder)}index.html">{_esc(e.get("table"))}</a></td>' if with_table else ""
        lines.append(
            f"<tr><td>{_esc(_when(e)[:-4])}</td>{table_cell}"
            f'<td class="v"><a href="{_esc(folder)}{_href(str(e.get("page")))}">{_esc(e.get("batch_id"))}</a></td>'
            f"<td>{_badge(str(e.get('status')))}</td>"
            f'<td class="n">{_esc(e.get("failed", ""))} / {_esc(e.get("evaluated", ""))}</td>'
            f'<td class="n">{_esc(e.get("rows", 0))}</td><td class="n">{_esc(e.get("warnings", 0))}</td></tr>'
        )
    return f"<table>{head}{''.join(lines)}</table>"


def _counts_text(counts: dict) -> str:
    return _esc(", ".join(f"{counts[s]} {_STATUS_LABEL[s].lower()}" for s in _STATUS_LABEL if counts.get(s)))


def _listing(fs, folder: str) -> set[str]:
    """Names directly in ``folder`` (none when it does not exist); names only, no stat per file."""
    try:
        items = fs.ls(folder, detail=False, refresh=True)
    except FileNotFoundError:
        return set()
    return {posixpath.basename(str(i).rstrip("/")) for i in items}


def _read_json(fs, path: str):
    try:
        return json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return None


def _recover_entry(fs, root: str, table: str, page: str) -> dict:
    """The entry of a page that the month entries lack: from its <head>, else by rendering it again."""
    path = posixpath.join(root, table, page)
    try:
        found = _ENTRY_META.search(fs.cat_file(path, start=0, end=4096).decode("utf-8", "replace"))
        entry = json.loads(html.unescape(found.group(1))) if found else None
        if isinstance(entry, dict) and entry.get("page") == page:
            return entry
    except (OSError, ValueError):
        pass
    # A page from GX's renderer (CDN assets, values unescaped): rendered again from its result JSON.
    batch_id = page[: -len(".html")]
    data = _read_json(fs, posixpath.join(posixpath.dirname(root), "_validation", table, f"{batch_id}.json"))
    if isinstance(data, dict):
        entry = _entry(table, batch_id, page, data)
        fs.pipe_file(path, _result_page(table, entry, data, None).encode("utf-8"))
        return entry
    try:  # neither: listed all the same, as of when it was written
        modified = fs.modified(path)
        modified = modified.astimezone(dt.UTC) if modified.tzinfo else modified.replace(tzinfo=dt.UTC)
    except Exception:
        modified = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return {
        "page": page,
        "batch_id": batch_id,
        "table": table,
        "time": modified.isoformat(timespec="microseconds"),
        "status": "unknown",
        "evaluated": None,
        "failed": None,
        "rows": 0,
        "warnings": 0,
        "blocked": 0,
    }


def _month(entry: dict) -> str:
    return str(entry.get("time", ""))[:7] or "unknown"


def _summary_ok(summary) -> bool:
    return (
        isinstance(summary, dict)
        and summary.get("version") == 2
        and isinstance(summary.get("months"), dict)
        and isinstance(summary.get("latest"), list)
    )


def _update_table_docs(fs, root: str, table: str, new: dict[str, dict]) -> dict | None:
    """Take ``new`` entries (page → entry) into the table's indexes; return its summary (None: nothing there).

    Entries are kept per month validated (``_entries/YYYY-MM.json``), so a batch reads and writes its
    month and the summary only. The first batch of a month, a missing summary (a warehouse with
    pages from GX's renderer) or a broken one go through the whole folder instead: every page
    listed there gets its entry, which also takes back one lost to a concurrent writer.
    """
    # Size: reads the month's entries, takes in pages written concurrently and rewrites the month page, the
    # table index and the summary in one pass, so each file is written once per batch. The next to split
    # (entries, recovery, pages).
    folder = posixpath.join(root, table)
    shard_folder = posixpath.join(folder, "_entries")
    summary = _read_json(fs, posixpath.join(folder, "_summary.json"))
    valid = _summary_ok(summary)
    full = not valid or any(_month(e) not in summary["months"] for e in new.values())
    shards: dict[str, dict] = {}
    if full:
        for name in _listing(fs, shard_folder):
            shard = _read_json(fs, posixpath.join(shard_folder, name)) if name.endswith(".json") else None
            if isinstance(shard, dict):
                shards[name[: -len(".json")]] = shard
    else:
        moved = {_month(e) for e in summary["latest"] if isinstance(e, dict) and e.get("page") in new}
        for month in {_month(e) for e in new.values()} | moved:
            shard = _read_json(fs, posixpath.join(shard_folder, f"{month}.json"))
            shards[month] = shard if isinstance(shard, dict) else {}
    before = {month: dict(shard) for month, shard in shards.items()}
    if full:  # a page in two months (validated again under the same batch id): its newest entry stays
        newest: dict[str, str] = {}
        for month in sorted(shards):
            for page in shards[month]:
                newest[page] = month
        for month, shard in shards.items():
            for page in [p for p in shard if newest[p] != month]:
                del shard[page]
    for page, entry in new.items():
        for shard in shards.values():
            shard.pop(page, None)
        shards.setdefault(_month(entry), {})[page] = entry
    listed: set[str] = set()
    if full:
        listed = _listing(fs, folder)
        pages = {n for n in listed if n.endswith(".html") and n[: -len(".html")] not in _RESERVED_PAGES}
        pages |= new.keys()
        for shard in shards.values():
            for page in [p for p in shard if p not in pages]:  # its page was deleted
                del shard[page]
        known = {page for shard in shards.values() for page in shard}
        for page in sorted(pages - known):
            entry = _recover_entry(fs, root, table, page)
            shards.setdefault(_month(entry), {})[page] = entry
    has_suite = suite_path(table).is_file()
    if not valid and not has_suite and not any(shards.values()):
        return None
    changed = sorted(m for m, shard in shards.items() if not valid or shard != before.get(m))
    nav_up = [("../../index.html", "Home"), ("../index.html", f"{table}: all validations")]
    if has_suite:
        nav_up.append(("../suite.html", "Expectation suite"))
    if changed:
        storage.make_folder(fs, shard_folder)
        storage.make_folder(fs, posixpath.join(folder, "by-month"))
    for month in changed:
        fs.pipe_file(posixpath.join(shard_folder, f"{month}.json"), json.dumps(shards[month]).encode("utf-8"))
        listed_month = sorted(shards[month].values(), key=_newest, reverse=True)
        body = (
            f"<h1>{_esc(table)}: validations run in {_esc(month)} ({len(listed_month)})</h1>"
            f"<p>{_counts_text(_count(listed_month))}</p>{_entry_table(listed_month, '../')}"
        )
        fs.pipe_file(
            posixpath.join(folder, "by-month", f"{month}.html"),
            _document(f"{table} {month}", nav_up, body).encode("utf-8"),
        )
    months = {} if full else dict(summary["months"])
    for month in shards if full else changed:
        months[month] = _count(list(shards[month].values()))
    months = {m: counts for m, counts in sorted(months.items(), reverse=True) if sum(counts.values())}
    if full:
        everything = [e for shard in shards.values() for e in shard.values()]
    else:
        everything = [e for e in summary["latest"] if isinstance(e, dict) and e.get("page") not in new]
        everything += list(new.values())
    latest = sorted(everything, key=_newest, reverse=True)[:DOCS_RECENT]
    counts: dict[str, int] = {}
    for month_counts in months.values():
        for status, n in month_counts.items():
            counts[status] = counts.get(status, 0) + n
    total = sum(counts.values())
    suite_sha = None
    if has_suite:
        suite_sha = hashlib.sha256(json.dumps(load_suite_json(table), sort_keys=True).encode()).hexdigest()
        if not valid or summary.get("suite_sha") != suite_sha or (full and "suite.html" not in listed):
            fs.pipe_file(posixpath.join(folder, "suite.html"), _suite_page(table).encode("utf-8"))
    month_rows = "".join(
        f'<tr><td><a href="by-month/{_href(m)}.html">{_esc(m)}</a></td><td class="n">{sum(c.values())}</td>'
        f"<td>{_counts_text(c)}</td></tr>"
        for m, c in months.items()
    )
    body = (
        f"<h1>{_esc(table)}: {total} validation(s)</h1><p>{_counts_text(counts)}</p>"
        f"<h2>Newest</h2>{_entry_table(latest, '')}"
        + (
            '<p class="muted">Older validations: by the month they were run in, below.</p>'
            if total > len(latest)
            else ""
        )
        + "<h2>By month validated (newest first)</h2><table><tr><th>Month</th><th>Validations</th>"
        f"<th>Status</th></tr>{month_rows}</table>"
    )
    nav = [("../index.html", "Home")] + ([("suite.html", "Expectation suite")] if has_suite else [])
    storage.make_folder(fs, folder)
    fs.pipe_file(posixpath.join(folder, "index.html"), _document(f"{table}: validations", nav, body).encode("utf-8"))
    summary = {
        "version": 2,
        "table": table,
        "count": total,
        "counts": counts,
        "months": months,
        "latest": latest,
        "suite_sha": suite_sha,
    }
    fs.pipe_file(posixpath.join(folder, "_summary.json"), json.dumps(summary).encode("utf-8"))
    return summary


def _count(entries: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        status = entry["status"] if entry.get("status") in _STATUS_LABEL else "unknown"
        counts[status] = counts.get(status, 0) + 1
    return counts


def _write_docs_index(fs, root: str, known: dict[str, dict]) -> None:
    """The top index: every table with its latest status and counts, and the newest validations of all."""
    summaries: dict[str, dict] = {}
    for name in sorted(_listing(fs, root)):
        if not _TABLE_DIR.fullmatch(name):  # index.html, or anything not a table's folder
            continue
        summary = known.get(name) or _read_json(fs, posixpath.join(root, name, "_summary.json"))
        if not _summary_ok(summary):
            summary = _update_table_docs(fs, root, name, {})  # a table with pages from before this renderer
        if summary:
            summaries[name] = summary
    table_rows = []
    for name, summary in summaries.items():
        latest = summary["latest"][0] if summary["latest"] else {}
        table_rows.append(
            f'<tr><td><a href="{_href(name)}/index.html">{_esc(name)}</a></td>'
            f"<td>{_esc(_when(latest)[:-4]) if latest else ''}</td>"
            f"<td>{_badge(str(latest.get('status'))) if latest else ''}</td>"
            f'<td class="n">{_esc(summary.get("count", 0))}</td>'
            f"<td>{_counts_text(summary.get('counts') or {})}</td></tr>"
        )
    newest = sorted((e for s in summaries.values() for e in s["latest"]), key=_newest, reverse=True)[:DOCS_RECENT]
    body = (
        "<h1>Validation results</h1>"
        '<p class="muted">Every validation is kept: each table\'s page lists all of them, by month.</p>'
        "<h2>Tables</h2><table><tr><th>Table</th><th>Last validated (UTC)</th><th>Last status</th>"
        f"<th>Validations</th><th>All statuses</th></tr>{''.join(table_rows)}</table>"
        f"<h2>Newest validations (all tables)</h2>{_entry_table(newest, '', with_table=True)}"
    )
    fs.pipe_file(posixpath.join(root, "index.html"), _document("Validation results", [], body).encode("utf-8"))


def render(warehouse_uri: str, table: str, batch_id: str, data: dict, frame=None) -> None:
    """Render one validation result (``to_json_dict()``) as a page under ``_data_docs/`` and update the indexes."""
    fs, root = storage.filesystem(storage.join(warehouse_uri, DOCS))
    page = _page_name(batch_id)
    entry = _entry(table, batch_id, page, data)
    storage.make_folder(fs, posixpath.join(root, table))
    fs.pipe_file(posixpath.join(root, table, page), _result_page(table, entry, data, frame).encode("utf-8"))
    summary = _update_table_docs(fs, root, table, {page: entry})
    _write_docs_index(fs, root, {table: summary} if summary else {})
