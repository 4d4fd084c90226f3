"""Deliveries: which landed file each logical delivery is now, and whether the warehouse reflects it.

A *delivery* is what a sender means by a file: one service's monthly export
for one month (``journalen_2019-03``), one month of unit-level web booking,
one region's county report for one year. Its id is that meaning, never the
path: the same delivery reached through another mount point, or with its
name spelled NFD (macOS) instead of NFC, is one delivery.

**Delivery order, not content history.** For each delivery the file in
landing *now* is what the warehouse should reflect. A delivery is pending
when the content of that file (SHA-256) differs from the content the
published version came from — so re-sending an earlier version after a
correction (undoing it) is loaded again, where "a hash never seen" would
call it old news.

What was published from which content is kept in
``<warehouse>/_state/deliveries/<pipeline>.json``; it is written only after
a delivery's tables are committed. It is a record of commits, not a source
of truth for the tables: lost or stale, it makes the next run reload a
delivery, which publishing (idempotent) then reports as ``unchanged``. A
delivery the record does not know (a warehouse from before it existed, a
run killed before writing it) falls back to the load log: the content last
committed for that delivery to every table it feeds
(:func:`etl.pipelines.common.last_committed`).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

from etl import storage

log = logging.getLogger(__name__)

STATE_VERSION = 1


def display_name(name: str) -> str:
    """A file name as messages show it: NFC-normalised, so both spellings read alike."""
    return unicodedata.normalize("NFC", name)


def shown_name(uri: str) -> str:
    """A landed file's name as messages show it: the last part of its URI, NFC-normalised."""
    return display_name(str(uri).rsplit("/", 1)[-1])


def delivery_path(uri: str) -> str:
    """``<prefix>/<NFC name>`` of a landed file's URI: the same for every mount point and spelling."""
    parts = [p for p in str(uri).replace("\\", "/").split("/") if p]
    return display_name("/".join(parts[-2:]))


def record_uri(warehouse_uri: str, pipeline: str) -> str:
    return storage.join(warehouse_uri, "_state", "deliveries", f"{pipeline}.json")


def _same_file(entry: dict | None, landed: storage.LandedFile) -> TypeGuard[dict]:
    """Is ``landed`` the file ``entry`` remembers: same content, not written again since (same time)?

    A file rewritten with its old content (a re-send under the same name) has
    a new modification time: it arrived again. Entries written before times
    were remembered match on content alone.
    """
    if not entry:
        return False
    return entry.get("sha256") == landed.sha256 and entry.get("modified", landed.modified) == landed.modified


@dataclass
class DeliveryRecord:
    """What each delivery's published version came from, and what each landed file was found to be.

    ``published``: delivery id → ``{"sha256": …, "file": NFC name}`` (committed).
    ``files``: NFC file name → ``{"sha256", "delivery": id or None, "seen": epoch s, "modified"}``
    — the delivery a file's content was found to be (a county report's region
    and year are inside the file), so unchanged files are not parsed again,
    and when that content first arrived (delivery order).
    """

    uri: str
    published: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    legacy_source: Callable[[], Mapping[str, str]] | None = (
        None  # callable → {delivery id: SHA-256 last committed}, from the load log
    )
    now: float = field(default_factory=time.time)  # this run's arrival time: files first seen together tie
    _legacy: dict[str, str] | None = None
    _stored: bytes | None = None  # the record as read: a run that changed nothing does not write it again

    @classmethod
    def load(cls, warehouse_uri: str, pipeline: str, legacy_committed=None) -> DeliveryRecord:
        """Read the record; ``legacy_committed`` is asked, once, only for a delivery the record lacks."""
        uri = record_uri(warehouse_uri, pipeline)
        record = cls(uri, legacy_source=legacy_committed)
        fs, path = storage.filesystem(uri)
        try:
            if fs.exists(path):
                stored = fs.cat_file(path)
                data = json.loads(stored)
                if data.get("version") == STATE_VERSION:
                    record._stored = stored
                    record.published = dict(data.get("published") or {})
                    record.files = dict(data.get("files") or {})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # Losing the record costs a reload (reported unchanged), never a wrong table.
            log.warning("ignoring delivery record %s: %s", uri, storage.describe(exc))
        return record

    def is_published(self, delivery: str, landed: storage.LandedFile) -> bool:
        """Does the published version of ``delivery`` come from exactly this file's content?"""
        entry = self.published.get(delivery)
        if entry is not None:
            return entry.get("sha256") == landed.sha256
        if self.legacy_source is None:
            return False
        if self._legacy is None:
            self._legacy = dict(self.legacy_source())
        return self._legacy.get(delivery) == landed.sha256

    def mark_published(self, delivery: str, landed: storage.LandedFile) -> None:
        self.published[delivery] = {"sha256": landed.sha256, "file": landed.name}

    def remember_file(self, landed: storage.LandedFile, delivery: str | None) -> None:
        """Note a file's content and delivery, and — the first time this content is seen under this name — when."""
        entry = self.files.get(landed.name)
        seen = entry.get("seen") if _same_file(entry, landed) else None
        self.files[landed.name] = {
            "sha256": landed.sha256,
            "delivery": delivery,
            "seen": seen or self.now,
            "modified": landed.modified,
        }

    def arrived(self, landed: storage.LandedFile) -> float:
        """When this content was first seen in landing under this name (epoch s; 0 for records older than that).

        Delivery order goes by arrival, not by the file's modification time:
        a copy that keeps its old time (``cp -p``, rsync ``-a``, WinSCP) or a
        sender's clock ahead of ours must not decide which version counts.
        """
        entry = self.files.get(landed.name)
        if _same_file(entry, landed):
            return float(entry.get("seen") or 0.0)
        return self.now

    def known_delivery(self, landed: storage.LandedFile) -> tuple[bool, str | None]:
        """(known, delivery id) of a file whose content was seen before under this name."""
        entry = self.files.get(landed.name)
        if _same_file(entry, landed):
            return True, entry.get("delivery")
        return False, None

    def save(self, landing_names: set[str] | None = None) -> None:
        """Write the record (atomically where the store can rename) unless it is as read; files no longer in
        landing are forgotten."""
        files = self.files if landing_names is None else {n: v for n, v in self.files.items() if n in landing_names}
        payload = json.dumps(
            {"version": STATE_VERSION, "published": self.published, "files": files}, sort_keys=True, ensure_ascii=False
        ).encode()
        if payload == self._stored or (self._stored is None and not self.published and not files):
            return
        fs, path = storage.filesystem(self.uri)
        try:
            storage.make_folder(fs, posixpath.dirname(path))
            tmp = f"{path}.{os.getpid()}.tmp"
            fs.pipe_file(tmp, payload)
            fs.mv(tmp, path)
            self._stored = payload
        except OSError as exc:
            # The tables are committed; without the record the next run reloads (unchanged).
            log.warning("could not write the delivery record %s: %s", self.uri, storage.describe(exc))
