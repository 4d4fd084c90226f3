"""Approval of a blocked delivery: a person decides to publish a delivery the checks blocked.

A delivery is blocked when publishing it would drop something the checks
cannot tell is meant (:mod:`etl.no_shrink`, the 21-regions rule of the
e-health exports). Some of those blocks a person can settle: a region that
genuinely did not report that month, a correction that really does leave
an initiative out. Such a block is **approvable**; its line in the failed
run and the load log says so and names the DAG to use (:data:`HINT`).
Refused files (unreadable, wrong month, not a report) and failed
critical rules without rows to publish are not: nothing could be
published, the file has to be replaced.

A decision is one load-log row (``outcome`` ``approved`` or ``rejected``)
naming the file and its SHA-256 with ``"<decision> by <user>: <why>"``. It
holds for that content only: a new file for the delivery is judged afresh.
The latest decision per content counts, so an approval can be withdrawn by
a rejection. Pipelines release an approved block when they judge the file
(:func:`release`): its rows publish with the quarantine and removals the
block named, and the publish's load-log row carries who approved it and
why; the follow-up report footnotes it (:func:`footnotes`).

Deciding *and publishing at once* runs a pipeline, so it lives above the
pipelines, in :mod:`etl.pipelines.approved`: pipelines call this module,
never the other way round. In Airflow the DAG ``approve_blocked_delivery``
asks through the human-in-the-loop operator; ``python -m etl approve`` does
the same from a shell.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from etl import privacy, publish
from etl.deliveries import delivery_path, display_name, shown_name
from etl.errors import BadInput

APPROVE_DAG = "approve_blocked_delivery"
HINT = f"a person may approve publishing it as it is (Airflow DAG {APPROVE_DAG})"
APPROVED, REJECTED = "approved", "rejected"
DECISIONS = (APPROVED, REJECTED)  # the load-log outcomes of a decision (not outcomes of a delivery)
MIN_REASON = 10  # characters: "ok" is not a reason anyone can audit later
PIPELINES = ("ehealth_adoption", "county_reports")  # the pipelines whose deliveries can be blocked

_DECISION = re.compile(r"^(approved|rejected) by (?P<by>[^:]*): (?P<why>.*)$", re.S)


@dataclass(frozen=True)
class Decision:
    """One person's decision on one blocked file content."""

    pipeline: str
    source_file: str  # URI as the load log holds it (redacted)
    sha256: str
    approved: bool
    by: str
    reason: str
    at: dt.datetime

    @property
    def name(self) -> str:
        return shown_name(self.source_file)

    def note(self) -> str:
        """``"approved by ada on 2026-11-30: Gotland did not report"``, for load-log rows and run output."""
        verb = APPROVED if self.approved else REJECTED
        return f"{verb} by {self.by} on {self.at:%Y-%m-%d}: {self.reason}"


@dataclass(frozen=True)
class Blocked:
    """A delivery blocked now, from its latest load-log row."""

    pipeline: str
    source_file: str
    sha256: str
    message: str
    approvable: bool
    blocked_at: dt.datetime
    decision: Decision | None = None  # the latest decision on this content, if any

    @property
    def name(self) -> str:
        return shown_name(self.source_file)


def is_approvable(message: str, source_file: str) -> bool:
    """Whether a stored block line says a person may approve it: the hint ends the line (text a sender
    controls, quoted inside a refusal, can neither end it nor stand where a refusal begins)."""
    refused = message.startswith(f"{shown_name(source_file)}: blocked, refused whole:")
    return message.endswith(f"; {HINT}") and not refused


def approvable_line(line: str) -> str:
    """A blocked file's one line, with the hint that a person may approve it."""
    return f"{line}; {HINT}"


def _decision(row: dict) -> Decision | None:
    """The decision a load-log row (a dict) records, or None for any other row."""
    if row["outcome"] not in DECISIONS or not row["source_sha256"]:
        return None
    match = _DECISION.match(row["message"] or "")
    if match is None:
        return None
    return Decision(
        row["pipeline"],
        (row["source_files"] or [""])[0],
        row["source_sha256"][0],
        row["outcome"] == APPROVED,
        match["by"],
        match["why"],
        row["finished_at"],
    )


def latest_decisions(rows) -> dict[str, Decision]:
    """Latest decision per file content (SHA-256) in load-log rows (dicts, oldest first)."""
    return {d.sha256: d for d in map(_decision, rows) if d is not None}


def approved(warehouse_uri: str, pipeline: str, published: AbstractSet[str] = frozenset()) -> dict[str, Decision]:
    """SHA-256 → approval, for every file content of ``pipeline`` whose latest decision is an approval in force.

    An approval releases one block, the one the person saw: it holds while
    its content is what its delivery is published from now (``published``:
    the delivery record's SHA-256s) — a month judged again because another
    of its files is still blocked must not block the approved file again
    beside it — and is used up once a later publish moved the delivery on.
    The same content landing again then (re-sent after a complete delivery
    replaced it) is judged afresh and blocked again, never published on an
    old approval.
    """
    rows = publish.read_load_log(warehouse_uri).to_pylist()
    used = _published_after(rows)
    return {
        sha: d
        for sha, d in latest_decisions(rows).items()
        if d.approved and d.pipeline == pipeline and (sha in published or not used(sha, d.at))
    }


def _published_after(rows: list[dict]):
    """``used(sha, when)``: whether a publish committed that content after ``when`` (load-log rows, dicts)."""
    published: dict[str, list[dt.datetime]] = {}
    for row in rows:
        if row["outcome"] in ("published", "unchanged"):
            for sha in row["source_sha256"] or ():
                published.setdefault(sha, []).append(row["finished_at"])
    return lambda sha, when: any(at > when for at in published.get(sha, ()))


def published_since(warehouse_uri: str, decision: Decision) -> bool:
    """Whether ``decision``'s file content was published after it (the approval did what it was for)."""
    return _published_after(publish.read_load_log(warehouse_uri).to_pylist())(decision.sha256, decision.at)


def release(
    blocked: dict[str, str], approvable: set[str], sha256: dict[str, str], decisions: dict[str, Decision]
) -> dict[str, Decision]:
    """Settle ``blocked`` (file URI → line) against approvals; returns the released files' decisions.

    An approvable file whose content was approved is removed from
    ``blocked`` (it publishes); every other approvable file's line gets the
    :data:`HINT`. Files not in ``approvable`` stay blocked as they are, an
    approval notwithstanding (nothing of them could publish).
    """
    released = {}
    for uri in list(blocked):
        if uri not in approvable:
            continue
        decision = decisions.get(sha256.get(uri, ""))
        if decision is not None:
            released[uri] = decision
            del blocked[uri]
        else:
            blocked[uri] = approvable_line(blocked[uri])
    return released


def release_note(uri: str, decision: Decision) -> str:
    """The warning a released file's publish carries into the load log."""
    return f"{shown_name(uri)}: published although blocked, {decision.note()}"


def _latest_rows(rows) -> dict[tuple[str, str], dict]:
    """Per (pipeline, delivery path): the latest load-log row that names the file (dicts, oldest first)."""
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["pipeline"] not in PIPELINES or row["outcome"] in DECISIONS:
            continue
        for uri in row["source_files"] or ():
            latest[(row["pipeline"], delivery_path(uri))] = row
    return latest


def blocked_now(warehouse_uri: str) -> list[Blocked]:
    """Every file whose latest load-log row blocked it, newest first, with the latest decision on its content.

    A file later published (on approval or replaced by the same name) is
    not blocked any more. A blocked file superseded by a newer file of
    another name stays listed until its name reappears; approving it then
    changes nothing, as the newer file is the delivery.
    """
    return blocked_in(publish.read_load_log(warehouse_uri).to_pylist())


def blocked_in(rows: list[dict]) -> list[Blocked]:
    """:func:`blocked_now` over load-log rows already read (dicts, oldest first)."""
    decisions = latest_decisions(rows)
    out = []
    for (pipeline, _), row in _latest_rows(rows).items():
        if row["outcome"] != "blocked" or not row["source_sha256"]:
            continue
        sha = row["source_sha256"][0]
        message = row["message"] or ""
        out.append(
            Blocked(
                pipeline,
                row["source_files"][0],
                sha,
                message,
                is_approvable(message, row["source_files"][0]),
                row["finished_at"],
                decisions.get(sha),
            )
        )
    return sorted(out, key=lambda b: b.blocked_at, reverse=True)


def find(warehouse_uri: str, name: str) -> Blocked:
    """The approvable blocked delivery whose file is called ``name`` (as failure lines show it).

    Raises :class:`BadInput` naming what is blocked now when ``name`` is not
    blocked, not approvable (the file must be replaced) or ambiguous.
    """
    wanted = display_name(name.strip().rsplit("/", 1)[-1])
    blocked = blocked_now(warehouse_uri)
    matches = [b for b in blocked if b.name == wanted]
    if not matches:
        approvable = sorted({b.name for b in blocked if b.approvable})
        shown = ", ".join(approvable[:10]) + (" …" if len(approvable) > 10 else "")
        raise BadInput(f"{wanted}: not a blocked delivery; blocked and approvable now: {shown or 'none'}")
    if len(matches) > 1:
        raise BadInput(
            f"{wanted}: {len(matches)} blocked deliveries of that name "
            f"({', '.join(b.pipeline for b in matches)}); rename one and let the next run judge it"
        )
    found = matches[0]
    if not found.approvable:
        raise BadInput(
            f"{wanted}: blocked for a reason no approval can settle (nothing of it could be "
            f"published); replace the file: {found.message[:300]}"
        )
    return found


def who_and_why(blocked: Blocked, by: str, reason: str) -> tuple[str, str]:
    """``(by, reason)`` as a decision stores them: one line each, personal data masked; checked, nothing written.

    The one place a person's own words enter the system (the CLI's
    ``--by``/``--reason``, the Airflow approval form): masked here, every
    output (load log, ``etl status``, the report's footnotes, the UI)
    shows them masked. A user name that is an e-mail address (single
    sign-on) is kept as its local part — the load log names the engineer,
    not their address. :class:`BadInput` for a reason shorter than
    :data:`MIN_REASON` characters.
    """
    reason = " ".join(str(reason or "").split())
    if len(reason) < MIN_REASON:
        raise BadInput(
            f"{blocked.name}: a decision needs a reason of at least {MIN_REASON} characters "
            f"(got {privacy.mask_personal_data(reason)!r})"
        )
    by = " ".join(str(by or "").replace(":", " ").split())
    if privacy.EMAIL.fullmatch(by):
        by = by.split("@", 1)[0]
    return str(privacy.mask_personal_data(by)) or "unknown user", str(privacy.mask_personal_data(reason))


def record(
    warehouse_uri: str, blocked: Blocked, approve: bool, by: str, reason: str, batch_id: str | None = None
) -> Decision:
    """Write a decision on ``blocked`` to the load log; returns it.

    ``by`` is the deciding user as Airflow knows them, ``reason`` why; both
    pass :func:`who_and_why` (checked, masked) before anything is written.
    Without ``batch_id`` (a shell's decision), the same decision as the
    latest one on this content is not written again (a retried command);
    with one (an approval run's, :func:`decision_of`), the row carries it.
    """
    by, reason = who_and_why(blocked, by, reason)
    verb = APPROVED if approve else REJECTED
    earlier = blocked.decision
    same = earlier is not None and (earlier.approved, earlier.by, earlier.reason) == (approve, by, reason)
    if same and batch_id is None and earlier is not None:
        return earlier  # the same decision again (a retried command): written once
    now = publish.utcnow()
    message = f"{verb} by {by}: {reason}"
    publish.append_load_log(
        warehouse_uri,
        publish.LoadLogEntry(
            blocked.pipeline,
            batch_id or publish.new_batch_id(),
            verb,
            "skipped",
            now,
            sources=[(blocked.source_file, blocked.sha256)],
            message=message,
        ),
    )
    return Decision(blocked.pipeline, blocked.source_file, blocked.sha256, approve, by, reason, now)


def decision_of(
    warehouse_uri: str, batch_id: str, sha256: str | None = None, since: dt.datetime | None = None
) -> Decision | None:
    """The decision recorded under ``batch_id`` (an approval run's, see :func:`record`), or None.

    ``sha256``: only a decision on that content; ``since``: only one recorded at or after it (the run's
    start). A run id can be chosen, and a deleted run's id used again: the decision an earlier run of that
    id recorded, on another file or before this run began, is not this run's.
    """
    rows = publish.read_load_log(warehouse_uri).to_pylist()
    found = [
        d
        for r in rows
        if r["batch_id"] == batch_id
        and (d := _decision(r)) is not None
        and (sha256 is None or d.sha256 == sha256)
        and (since is None or d.at >= since)
    ]
    return max(found, key=lambda d: d.at) if found else None


def footnotes(warehouse_uri: str, until: dt.datetime | None = None) -> list[str]:
    """One line per file published on approval (up to ``until``), oldest first, for the report and workbook.

    ``"webbtidbok_2019-03.csv (ehealth_adoption): publicerad trots spärr, godkänd 2026-11-30 av ada: …"``.
    A file counts once a publish after its approval committed its content.
    """
    rows = [r for r in publish.read_load_log(warehouse_uri).to_pylist() if until is None or r["finished_at"] <= until]
    approvals: dict[str, Decision] = {}
    lines: dict[str, str] = {}
    for row in rows:
        decision = _decision(row)
        if decision is not None:
            if decision.approved:
                approvals[decision.sha256] = decision
            else:
                approvals.pop(decision.sha256, None)
            continue
        if row["outcome"] not in ("published", "unchanged"):
            continue
        for sha in row["source_sha256"] or []:
            d = approvals.get(sha)
            if d is not None and sha not in lines:
                lines[sha] = (
                    f"{d.name} ({d.pipeline}): publicerad trots spärr, godkänd {d.at:%Y-%m-%d} av {d.by}: {d.reason}"
                )
    return list(lines.values())
