"""Writing a sample into a landing: beside no other delivery, and unchanged when it is the same sample.

``etl sample`` writes its files aside first (a temporary folder) and hands
them to :func:`move_in`, so that a landing holding anything else is refused
before a byte of it changes.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from etl.errors import ConfigError
from etl.sample.reference import SNAPSHOT_DIR


def _delivery(rel: Path) -> bool:
    """A file in a source folder (``county_reports/``, ``ehealth/``); beside them lie the sample's own notes
    (its READMEs, ``sample-defects.json``) and its recorded API answers (``api_snapshot/``)."""
    return len(rel.parts) > 1 and rel.parts[0] != SNAPSHOT_DIR


def move_in(staging: Path, out: Path) -> list[Path]:
    """Move the sample written under ``staging`` into ``out``; returns the files written (the others were there).

    Raises :class:`ConfigError` (one line, nothing changed) when a source folder of ``out`` holds a file
    that is not this very sample's, whatever its name: a region's delivery that the synthetic files would
    supersede or double. A file already there with the same bytes is left as it is, dates included. The
    sample's notes are replaced; its recorded API answers as a whole, so a shorter sample leaves no pages
    of a longer one.
    """
    new = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
    mine = {rel for rel in new if _delivery(rel)}
    there = sorted(
        p.relative_to(out)
        for folder in {rel.parts[0] for rel in mine}
        for p in (out / folder).rglob("*")
        if p.is_file() or p.is_symlink()
    )
    other = [rel for rel in there if rel not in mine or not filecmp.cmp(staging / rel, out / rel, shallow=False)]
    if other:
        raise ConfigError(
            f"{out / other[0]}: is no file of this sample ({len(other)} such file(s) under {out}); "
            "`etl sample` writes synthetic deliveries beside no other delivery: give it an empty folder "
            "or one that holds this same sample"
        )
    snapshot = Path(SNAPSHOT_DIR)
    answers = [rel for rel in new if snapshot in rel.parents]
    if sorted(p.relative_to(out) for p in (out / snapshot).rglob("*") if p.is_file()) != answers:
        shutil.rmtree(out / snapshot, ignore_errors=True)
    moved = []
    for rel in new:
        target = out / rel
        if target.exists() and filecmp.cmp(staging / rel, target, shallow=False):
            continue  # the same sample again: left as it was (and dated as it was)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staging / rel, target)
        moved.append(target)
    return moved
