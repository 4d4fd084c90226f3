"""The delivery verdict: whether each file of a pipeline step publishes, decided by the ``delivery`` suite.

A pipeline step (a month of e-health exports, the pending county reports)
first validates its tables with their suites: row-level failures are
quarantined, batch-level ones block. What is left to decide is each file's
fate against the published warehouse — a region missing from the rows that
would publish, a national total that cannot be read, a published value or
row a correction would remove without saying so, a unit-level file with no
loadable row, a file refused whole. The pipeline *measures* these per file
(:class:`Findings`); this module validates the measurements, one row per
file, with ``expectations/delivery.json`` and reads the blocks off GX's
result: the suite is the contract (change a bound there and the verdict
follows), and ``meta.approvable`` says whether a person may accept a block.

:func:`persist_step` then stores each table's validation result of the step
with the delivery expectations of the files that feed it, so a blocked
file's stored result and Data Docs page say "Failed", naming the rule and
the file, like the run.

Block lines lead with the cause (:func:`short_line`): the file, the rule,
the first offending value and where, then a count of the rest — under
:data:`SHORT_LIMIT` characters for the terminal and task log (the run's
whole line for one blocked file stays under 300); the load log and the
data-quality pages keep the whole list.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from etl import approvals, expectation_suites, validation
from etl.deliveries import shown_name
from etl.privacy import mask_personal_data

# Characters of one file's block line in the terminal and the task log. The run's own prefix (pipeline,
# months blocked, the month: about 70 characters) comes before it, so a one-file failure stays under 300.
SHORT_LIMIT = 230
# A removal line of etl.no_shrink: what it would remove, why (without the month's prefix), its first example.
_REMOVAL = re.compile(r"^would remove (.+?) because (?:\d{4}-\d{2}: )?(.*?)(?: \(e\.g\. ([^,()]*)[^()]*\))?$")
# Rows of a table result that stand for the delivery suite's quarantined lines: below every frame row id.
_LINE_ROWS = -1_000_000


@dataclass
class Findings:
    """What a pipeline measured about one file of a step; each field is a column of the delivery suite.

    Text fields are None when the rule has nothing to say; ``*_detail`` is
    the sentence a block line uses (cause first). ``tables`` are the tables
    the file feeds (its delivery results are stored with theirs);
    ``rejected`` its unreadable lines (``row_number``, ``reason``).
    """

    source: str  # the file's URI as the load log holds it
    tables: tuple[str, ...]
    refused_whole: str | None = None
    national_row: str | None = None
    regions_lacking: list[str] | None = None  # "09 Region Gotland" per region missing; None: not a regional file
    regions_detail: str = ""  # why they are missing (the quarantined lines)
    quarantined_lines: int = 0  # lines of the file quarantined (for the short line)
    first_quarantined: str = ""  # "line 3: Värde: not a number 'många'"
    values_lost: int = 0
    lost_detail: str = ""
    rows_removed: int = 0
    removed_detail: str = ""
    rows_unreadable: int = 0  # published rows removed because the file's lines for them were quarantined
    unreadable_detail: str = ""
    file_rules: str | None = None  # a table suite's rule on the whole file failed (meta.scope "file"): why
    file_rules_short: str = ""
    rows_loadable: int | None = None  # a unit-level file's loadable rows; None: the rule does not apply
    loadable_detail: str = ""
    rejected: list[dict] = field(default_factory=list)

    def measures(self) -> dict:
        """The delivery frame's row (personal data masked in text: the result is shown on pages)."""
        return {
            "source_file": shown_name(self.source),
            "refused_whole": _masked(self.refused_whole),
            "national_row": _masked(self.national_row),
            "file_rules": _masked(self.file_rules),
            # A region missing from a file with quarantined lines may be one of them: the sender's to fix.
            "regions_lacking": None
            if self.regions_lacking is None or self.quarantined_lines
            else len(self.regions_lacking),
            "regions_quarantined": None
            if self.regions_lacking is None or not self.quarantined_lines
            else len(self.regions_lacking),
            "values_lost": self.values_lost,
            "rows_removed": self.rows_removed,
            "rows_removed_unreadable": self.rows_unreadable,
            "rows_loadable": self.rows_loadable,
            "lines_unreadable": len(self.rejected),
        }

    def detail(self, column: str) -> str:
        """The cause of this file's failure of the expectation on ``column``, cause first."""
        if column == "refused_whole":
            why = str(self.refused_whole)
            name = f"{shown_name(self.source)}: "
            return f"refused whole: {why[len(name) :] if why.startswith(name) else why}"
        if column == "national_row":
            return str(self.national_row)
        if column == "file_rules":
            return str(self.file_rules)
        if column in ("regions_lacking", "regions_quarantined"):
            lacking = self.regions_lacking or []
            why = f" ({self.regions_detail})" if self.regions_detail else ""
            return f"the rows that would be published lack {len(lacking)} region(s): {', '.join(lacking)}{why}"
        if column == "values_lost":
            return self.lost_detail
        if column == "rows_removed":
            return self.removed_detail
        if column == "rows_removed_unreadable":
            return self.unreadable_detail
        if column == "rows_loadable":
            return self.loadable_detail
        return column

    def short(self, column: str) -> str:
        """:meth:`detail` cut for the terminal: the first few names, then how many more."""
        if column in ("regions_lacking", "regions_quarantined"):
            lacking = self.regions_lacking or []
            shown = ", ".join(lacking[:2]) + (f", +{len(lacking) - 2} more" if len(lacking) > 2 else "")
            why = (
                f"; {self.quarantined_lines} line(s) quarantined, first {_cut(self.first_quarantined, 120)}"
                if self.quarantined_lines
                else ""
            )
            return f"{len(lacking)} of 21 regions missing ({shown}){why}"
        if column == "refused_whole":
            why = str(self.refused_whole)
            name = f"{shown_name(self.source)}: "
            return "refused whole: " + _cut(why[len(name) :] if why.startswith(name) else why, 240)
        if column == "values_lost":
            # The cells first: "1 published value into null: county_report 03 2017 grant_sek 128944953 → null".
            cells = re.sub(
                r"would turn (.+?) of \S+ into null \((.*?)\): the file does not say the value is withdrawn or "
                r"suppressed",
                r"\1 into null: \2",
                self.lost_detail,
            )
            return _cut(cells, 240)
        if column in ("rows_removed", "rows_removed_unreadable"):
            # The cause first, then what it would remove: "daily unit bookings do not sum … in 1 region(s): 01
            # (units 52,682 vs region 79,163); would remove 93 published ehealth_unit_daily row(s)".
            lines = self.removed_detail if column == "rows_removed" else self.unreadable_detail
            causes = []
            for line in lines.split("; would remove "):
                found = _REMOVAL.match(line if line.startswith("would remove ") else "would remove " + line)
                if found is None:
                    causes.append(line)
                    continue
                what, cause, example = found.groups()
                # The cause cut to leave room for what it removes (an approvable line also carries the
                # approval hint, ~85 characters); the whole line, the rule's why and examples are in the load log.
                cause = re.sub(r" \(a withdrawal must be stated[^)]*\)", "", cause)
                if column == "rows_removed":  # approvable: the hint takes ~85 characters of the line
                    cause = cause.replace(
                        "daily unit bookings do not sum to the regional bookings", "unit bookings off"
                    )
                    rows = what.split(" ", 1)[0]
                    causes.append(f"{_cut(cause, 80)}; would remove {rows} rows")
                else:
                    causes.append(
                        f"{_cut(cause, 110)}; would remove {what}" + (f" (e.g. {example} …)" if example else "")
                    )
            return _cut("; ".join(causes), 240)
        if column == "file_rules" and self.file_rules_short:
            return _cut(self.file_rules_short, 240)
        return _cut(self.detail(column), 240)


@dataclass
class Verdict:
    """The step's files judged: ``blocked`` file URI → its whole line (load log), ``short`` → its terminal line,
    ``released`` file URI → the approval that let it publish; ``data``/``rows`` the delivery suite's result."""

    blocked: dict[str, str] = field(default_factory=dict)
    short: dict[str, str] = field(default_factory=dict)
    released: dict[str, approvals.Decision] = field(default_factory=dict)
    findings: list[Findings] = field(default_factory=list)
    failed: dict[str, list[dict]] = field(default_factory=dict)  # file URI → failing expectations (blocking)
    data: dict | None = None  # the delivery suite's GX result (JSON), frame row i = findings[i]


def judge(
    findings: list[Findings],
    sha256: dict[str, str],
    decisions: dict[str, approvals.Decision],
) -> Verdict:
    """Validate ``findings`` with the delivery suite; the files its critical expectations fail are blocked.

    A file whose failing expectations are all ``approvable`` and whose content
    a person approved (``decisions``, by SHA-256) is released instead; the
    other approvable ones get the approval hint. Lines are one line each,
    cause first. Raises :class:`etl.errors.EtlError` if the suite cannot run.
    """
    return judge_steps([(findings, sha256, decisions)])[0]


def judge_steps(
    steps: list[tuple[list[Findings], dict[str, str], dict[str, approvals.Decision]]],
) -> list[Verdict]:
    """:func:`judge` for several steps at once: one validation of every step's files, one verdict per step.

    ``steps``: (findings, SHA-256 by file URI, approvals in force) per step.
    A backfill judges a month per step; GX's cost is per validation, not
    per file (:func:`etl.validation.validate_many`), so the skeleton judges
    the steps it holds together. Each verdict, and its ``data``, is what
    judging that step alone gives.
    """
    frames = [_delivery_frame(findings) for findings, _, _ in steps]
    # Not stored on their own: persist_step stores each with the tables' results of its step. A check
    # (nothing stored) needs only the decisions, read off the same suite without GX's start-up.
    results = (
        None if validation.persisting() else validation.outcomes_without_gx(expectation_suites.DELIVERY_SUITE, frames)
    )
    if results is None:
        results = validation.validate_many(expectation_suites.DELIVERY_SUITE, frames)
    return [
        _verdict(findings, sha256, decisions, result)
        for (findings, sha256, decisions), result in zip(steps, results, strict=True)
    ]


def _delivery_frame(findings: list[Findings]):
    """The delivery frame: one row per file (:meth:`Findings.measures`), counts as nullable integers."""
    import pandas as pd

    frame = pd.DataFrame([f.measures() for f in findings], columns=list(Findings("", ()).measures()))
    for column in (
        "regions_lacking",
        "regions_quarantined",
        "values_lost",
        "rows_removed",
        "rows_removed_unreadable",
        "rows_loadable",
        "lines_unreadable",
    ):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    frame[expectation_suites.ROW_ID] = range(len(frame))
    return frame


def _verdict(
    findings: list[Findings],
    sha256: dict[str, str],
    decisions: dict[str, approvals.Decision],
    result: validation.Validation,
) -> Verdict:
    """The step's verdict read off its delivery-suite result (see :func:`judge`)."""
    verdict = Verdict(findings=list(findings))
    if not findings:
        return verdict
    verdict.data = result.data
    approvable: set[str] = set()
    for row, configs in result.failed_expectations.items():
        blocking = [c for c in configs if (c.get("meta") or {}).get("effect") != "quarantine"]
        if not blocking:
            continue
        f = findings[row]
        verdict.failed[f.source] = blocking
        columns = [c["kwargs"]["column"] for c in blocking]
        whole = "; ".join(dict.fromkeys(f.detail(c) for c in columns))
        short = "; ".join(dict.fromkeys(f.short(c) for c in columns))
        stays = (
            "; the published version stays"
            if {"values_lost", "rows_removed", "rows_removed_unreadable"} & set(columns)
            else ""
        )
        verdict.blocked[f.source] = f"{shown_name(f.source)}: blocked, {whole}{stays}"
        verdict.short[f.source] = short_line(f"{shown_name(f.source)}: blocked, {short}")
        if all((c.get("meta") or {}).get("approvable") for c in blocking):
            approvable.add(f.source)
    verdict.released = approvals.release(verdict.blocked, approvable, sha256, decisions)
    for uri in verdict.released:
        verdict.short.pop(uri, None)
    for uri in approvable - set(verdict.released):
        verdict.short[uri] = approvals.approvable_line(short_line(verdict.short[uri], len(approvals.HINT) + 2))
    return verdict


def short_line(line: str, reserve: int = 0) -> str:
    """``line`` cut at a word to :data:`SHORT_LIMIT` characters (less ``reserve``), ending "… (in full in the load log)"."""
    limit = SHORT_LIMIT - reserve
    if len(line) <= limit:
        return line
    tail = " … (in full in the load log)"
    return _at_word(line, limit - len(tail)) + tail


def _at_word(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at the last space when there is one in its second half."""
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2 and len(text) > limit:
        cut = cut[:space]
    return cut.rstrip(" ,;:(")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else _at_word(text, limit - 1) + "…"


def _masked(text: str | None) -> str | None:
    return None if text is None else mask_personal_data(text)


# --------------------------------------------------------------------------- storing the step's results


def persist_step(warehouse_uri: str, batch_id: str, pending: list[validation.Pending], verdict: Verdict | None) -> None:
    """Store the step's table results (``pending``), each with the delivery expectations of its files.

    Results of one table and batch (a month's two regional files) are stored
    as one, their failing rows kept apart. A table a blocked file feeds that
    has no result of its own (the file was refused before any row) gets one
    holding the delivery expectations alone.
    """
    if not validation.persisting():
        return
    grouped: dict[tuple[str, str], list[validation.Pending]] = {}
    for item in pending:
        grouped.setdefault((item.table, item.batch_id), []).append(item)
    judged = verdict if verdict is not None and verdict.data is not None else None
    if judged is not None:
        for f in judged.findings:
            if f.source in judged.failed or f.rejected:
                for table in f.tables:
                    grouped.setdefault((table, batch_id), [])
    for (table, batch), items in grouped.items():
        data, frame = _merged(items)
        if judged is not None and batch == batch_id:
            _add_delivery(data, judged, [i for i, f in enumerate(judged.findings) if table in f.tables])
        validation.store_result(warehouse_uri, table, batch, data, frame)


def _merged(items: list[validation.Pending]):
    """One result (and frame) from several of one table and batch; row ids of later ones shifted past earlier."""
    import pandas as pd

    if not items:
        return {"success": True, "results": [], "statistics": {}, "meta": {}}, None
    if len(items) == 1:
        return copy.deepcopy(items[0].data), items[0].frame
    data = copy.deepcopy(items[0].data)
    frames = [items[0].frame]
    offset = len(items[0].frame)
    for item in items[1:]:
        more = copy.deepcopy(item.data)
        for entry in more.get("results") or []:
            for found in (entry.get("result") or {}).get("unexpected_index_list") or []:
                if isinstance(found, dict) and expectation_suites.ROW_ID in found:
                    found[expectation_suites.ROW_ID] = int(found[expectation_suites.ROW_ID]) + offset
        data["results"] = [*data.get("results", []), *more.get("results", [])]
        shifted = item.frame.copy()
        shifted[expectation_suites.ROW_ID] = shifted[expectation_suites.ROW_ID] + offset
        frames.append(shifted)
        offset += len(item.frame)
    _restate(data)
    return data, pd.concat(frames, ignore_index=True)


def _add_delivery(data: dict, verdict: Verdict, rows: Iterable[int]) -> None:
    """Append the delivery suite's expectations, judged on ``rows`` (files) of the verdict, to ``data``."""
    rows = list(rows)
    names = {i: shown_name(verdict.findings[i].source) for i in rows}
    for entry in (verdict.data or {}).get("results") or []:
        entry = copy.deepcopy(entry)
        config = entry.get("expectation_config") or {}
        meta = config.get("meta") or {}
        column = (config.get("kwargs") or {}).get("column")
        result = entry.get("result") or {}
        failing = [
            int(found[expectation_suites.ROW_ID]) if isinstance(found, dict) else int(found)
            for found in result.get("unexpected_index_list") or []
        ]
        failing = [i for i in failing if i in names]
        examples: list[str] = []
        index_list: list[dict] = []
        if meta.get("effect") == "quarantine":
            # The lines themselves, as failing rows of the table's page (file:line and the reason).
            n = 0
            for i in failing:
                for line in verdict.findings[i].rejected:
                    n += 1
                    index_list.append(
                        {
                            expectation_suites.ROW_ID: _LINE_ROWS - n,
                            "source_file": verdict.findings[i].source,
                            "row_number": int(line.get("row_number") or 0),
                            "unreadable": mask_personal_data(str(line.get("reason", ""))[:300]),
                        }
                    )
            examples = [f"{e['source_file'].rsplit('/', 1)[-1]}:{e['row_number']}" for e in index_list[:5]]
        else:
            for i in failing:
                examples.append(f"{names[i]}: {mask_personal_data(verdict.findings[i].detail(str(column)))[:400]}")
            released = [i for i in failing if verdict.findings[i].source in verdict.released]
            if failing and len(released) == len(failing):
                config["severity"] = "warning"  # a person accepted it: published, and still said
                meta = {
                    **meta,
                    "reason": f"{meta.get('reason', '')} (approved: {', '.join(names[i] for i in released)})",
                }
        config["meta"] = {**meta, "suite": expectation_suites.DELIVERY_SUITE}
        entry["expectation_config"] = config
        entry["success"] = not failing
        entry["result"] = {
            "element_count": len(rows),
            "unexpected_count": len(index_list) if index_list else len(failing),
            "unexpected_percent": (100.0 * len(failing) / len(rows)) if rows else 0.0,
            "partial_unexpected_list": examples[:5],
        }
        if index_list:
            entry["result"]["unexpected_index_list"] = index_list
        data.setdefault("results", []).append(entry)
    data.setdefault("meta", {})["etl_verdict"] = {
        "blocked": sorted(names[i] for i in rows if verdict.findings[i].source in verdict.blocked),
        "approved": sorted(names[i] for i in rows if verdict.findings[i].source in verdict.released),
    }
    _restate(data)


def _restate(data: dict) -> None:
    """GX's success and statistics, counted again over ``data``'s results."""
    results = data.get("results") or []
    failed = sum(1 for r in results if not r.get("success"))
    data["success"] = failed == 0
    data["statistics"] = {
        **(data.get("statistics") or {}),
        "evaluated_expectations": len(results),
        "successful_expectations": len(results) - failed,
        "unsuccessful_expectations": failed,
        "success_percent": (100.0 * (len(results) - failed) / len(results)) if results else 100.0,
    }
