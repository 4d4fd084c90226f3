"""Landing is a boundary (issue 22 §2): landing takes regular files only.

A symbolic link in landing — to a file, to a folder, named like a folder,
inside a subfolder, pointing back inside landing, or the prefix folder
itself — is named and refused without a byte of what it points at read;
nothing of that content reaches a message, a log or a table, and the other
files still load. A link swapped in between listing and reading is refused
too. The landing root itself may be a link (a mount point): it is resolved.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from etl import publish, storage
from etl.errors import BadInput, SourceUnavailable
from etl.sample import ehealth as ehealth_sample
from tests.cli_support import SETTLED, run_etl
from tests.export_support import declared_exports, declared_rows

ROOT = Path(__file__).resolve().parent.parent
MARKER = "SECRET-MARKER-7f3a9c"  # in every file outside landing a link points at; must be seen nowhere
MONTH = dt.date(2017, 3, 1)
RULE = "is a symbolic link: landing takes regular files only"


def _etl(*args: str) -> subprocess.CompletedProcess:
    return run_etl(*args, env=SETTLED)


def _secrets(folder: Path) -> Path:
    """A folder outside landing holding a secret file and export-named files that carry :data:`MARKER`."""
    folder.mkdir()
    (folder / "passwd").write_text(f"root:x:0:0:{MARKER}:/root:/bin/bash\n", encoding="utf-8")
    # Files that would parse as exports: were a link followed, the marker would be loaded or quarantined.
    for path in ehealth_sample.write_month(folder, dt.date(2017, 4, 1), seed=7, style=ehealth_sample.PLAIN):
        text = path.read_text(encoding="utf-8").replace("Stockholm", MARKER)
        path.write_text(text + f"{MARKER};{MARKER}\n", encoding="utf-8")
        assert MARKER in path.read_text(encoding="utf-8")
    return folder


def _warehouse_text(warehouse: Path) -> str:
    """Everything the warehouse says, as text: load log, every table and quarantine table, and every file's bytes."""
    parts = [str(publish.read_load_log(str(warehouse)).to_pylist())]
    for table in sorted(p.name for p in warehouse.iterdir() if (p / "_delta_log").is_dir()):
        parts.append(str(publish.read_table(str(warehouse), table).to_pylist()))
    quarantine = warehouse / "_quarantine"
    for table in sorted(p.name for p in quarantine.iterdir()) if quarantine.is_dir() else []:
        parts.append(str(publish.read_quarantine(str(warehouse), table).to_pylist()))
    parts += [p.read_bytes().decode("latin-1") for p in warehouse.rglob("*") if p.is_file()]
    return "\n".join(parts)


def _error_line(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------- a run, as the user meets it


def test_links_in_landing_are_named_and_refused_and_nothing_of_them_leaks(tmp_path, landing, warehouse):
    secrets = _secrets(tmp_path / "secrets")
    folder = landing / "ehealth"
    ehealth_sample.write_month(folder, MONTH, seed=7, style=ehealth_sample.PLAIN)  # the month that loads
    (folder / "webbtidbok_2017-04.csv").symlink_to(secrets / "passwd")  # the example
    (folder / "journalen_2017-04.csv").symlink_to(secrets, target_is_directory=True)  # a folder, named like a file
    (folder / "archive").symlink_to(secrets, target_is_directory=True)  # a folder, named like one
    (folder / "journalen_2017-05.csv").symlink_to(folder / "journalen_2017-03.csv")  # back inside landing
    (folder / "old").mkdir()  # a real subfolder (refused as a folder, never entered) holding a link
    (folder / "old" / "journalen_2017-06.csv").symlink_to(secrets / "journalen_2017-04.csv")

    out = _etl("run", "ehealth-adoption", "--landing", str(landing), "--warehouse", str(warehouse))

    assert out.returncode == 1, out.stderr
    error = _error_line(out)
    assert error.startswith("error: ehealth_adoption: 5 file(s) in landing not loaded"), error
    for name in ("webbtidbok_2017-04.csv", "journalen_2017-04.csv", "archive", "journalen_2017-05.csv"):
        assert f"'{name}' {RULE}; copy the file in" in error
    assert "'old' is a folder" in error
    assert MARKER not in out.stdout + out.stderr
    assert MARKER not in _warehouse_text(warehouse)
    # The regular files loaded: the whole of March, 21 regions x every declared kind's metrics.
    loaded = publish.read_table(str(warehouse), "ehealth_adoption").to_pylist()
    assert len(loaded) == declared_rows(f"{MONTH:%Y-%m}") and {r["month"] for r in loaded} == {MONTH}
    # The load log names the links too (the permanent record of why the run failed).
    failed = [r["message"] for r in publish.read_load_log(str(warehouse)).to_pylist() if r["outcome"] == "failed"]
    assert len(failed) == 1 and f"'webbtidbok_2017-04.csv' {RULE}" in failed[0]


def test_a_landing_folder_that_is_a_link_is_refused_whole(tmp_path, landing, warehouse):
    secrets = _secrets(tmp_path / "secrets")
    (landing / "ehealth").symlink_to(secrets, target_is_directory=True)

    out = _etl("run", "ehealth-adoption", "--landing", str(landing), "--warehouse", str(warehouse))

    assert out.returncode == 1, out.stderr
    error = _error_line(out)
    assert "'ehealth' is a symbolic link: landing takes regular files in real folders only" in error, error
    assert MARKER not in out.stdout + out.stderr
    assert MARKER not in _warehouse_text(warehouse)
    assert publish.read_table(str(warehouse), "ehealth_adoption").num_rows == 0


# --------------------------------------------------------------------------- listing


def test_the_landing_root_may_be_a_link_and_a_hard_link_is_refused_unread(tmp_path, landing):
    (landing / "ehealth").mkdir()
    (landing / "ehealth" / "a.csv").write_bytes(b"a")
    outside = tmp_path / "outside.csv"
    outside.write_bytes(MARKER.encode())
    os.link(outside, landing / "ehealth" / "b.csv")  # a second name of a file outside landing
    mount = tmp_path / "mount"
    mount.symlink_to(landing, target_is_directory=True)  # /data/landing -> /mnt/x

    skipped: list[str] = []
    files = storage.list_landed(str(mount), "ehealth", (".csv",), skipped=skipped)

    assert skipped == ["'b.csv' has other hard links: landing takes files copied in, not linked; copy the file in"]
    assert [f.name for f in files] == ["a.csv"]
    assert files[0].uri == str(mount / "ehealth" / "a.csv")  # lineage keeps the configured spelling
    assert files[0].location == os.path.join(os.path.realpath(landing), "ehealth", "a.csv")  # opened here
    assert storage.read_bytes(files[0].path) == b"a"
    # A hard link made after the listing is refused where the file is opened.
    os.link(landing / "ehealth" / "a.csv", tmp_path / "elsewhere.csv")
    with pytest.raises(BadInput, match="'a.csv' has other hard links") as info:
        storage.read_bytes(files[0].path)
    assert MARKER not in str(info.value)


def test_the_monitoring_listing_takes_what_a_run_would_and_reads_nothing(tmp_path, landing):
    """storage.list_names (the overdue check, the e-health page): a run's boundary, by listing only."""
    folder = landing / "ehealth"
    folder.mkdir()
    (folder / "journalen_2017-02.csv").write_bytes(b"ab")
    (folder / "webbtidbok_2017-02.csv").write_bytes(b"abc")
    os.utime(folder / "webbtidbok_2017-02.csv", (1_500_000_000, 1_500_000_000))
    (folder / ".journalen_2017-03.csv.part").write_bytes(b"x")  # an upload in progress
    (folder / "journalen_2017-04.csv").symlink_to(_secrets(tmp_path / "secrets") / "passwd")
    os.link(tmp_path / "secrets" / "passwd", folder / "journalen_2017-05.csv")
    (folder / "journalen_2017-06.csv").mkdir()
    (folder / "notes.txt").write_bytes(b"x")
    # NFD-spelled name, as saved on macOS: listed NFC-spelled, like a run names it; of both spellings, the newer.
    (folder / "webbtidbok_enheter_2017-02_Skåne.csv").write_bytes(b"")
    (folder / "webbtidbok_enheter_2017-02_Skåne.csv").write_bytes(b"older")
    os.utime(folder / "webbtidbok_enheter_2017-02_Skåne.csv", (1_400_000_000, 1_400_000_000))

    listed = storage.list_names(str(landing), "ehealth", (".csv",))

    assert [(e.name, e.size) for e in listed] == [
        ("journalen_2017-02.csv", 2),
        ("webbtidbok_2017-02.csv", 3),
        ("webbtidbok_enheter_2017-02_Skåne.csv", 0),
    ]
    assert listed[1].modified == 1_500_000_000
    with pytest.raises(SourceUnavailable, match="does not exist"):
        storage.list_names(str(tmp_path / "unmounted"), "ehealth", (".csv",))
    # A linked folder is named, not listed as empty (which would show every month as not delivered).
    (landing / "county_reports").symlink_to(folder, target_is_directory=True)
    with pytest.raises(BadInput, match="'county_reports' is a symbolic link"):
        storage.list_names(str(landing), "county_reports", (".csv",))


def test_a_file_name_with_a_line_break_or_a_terminal_escape_is_refused_and_never_printed_raw(tmp_path, landing):
    """A name could otherwise split the one error line (a forged 'error: all good') or recolour the terminal."""
    folder = landing / "ehealth"
    folder.mkdir()
    (folder / "journalen_2017-09\nerror: all good.csv").write_bytes(b"x")
    (folder / "journalen_2017-10\x1b[2K\x1b[31mRED.csv").write_bytes(b"x")
    out = _etl("run", "ehealth-adoption", "--landing", str(landing), "--warehouse", str(tmp_path / "w"))
    assert out.returncode == 1
    assert "\x1b" not in out.stderr + out.stdout
    assert not any(line.startswith("error: all good") for line in out.stderr.splitlines())
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "holds control characters" in last
    messages = [r["message"] or "" for r in publish.read_load_log(str(tmp_path / "w")).to_pylist()]
    assert messages and not any("\n" in m or "\x1b" in m for m in messages)


def test_a_caller_without_a_skipped_list_is_refused(tmp_path, landing):
    (landing / "api_snapshot").mkdir()
    (landing / "api_snapshot" / "scb.json").symlink_to(_secrets(tmp_path / "secrets") / "passwd")
    with pytest.raises(BadInput, match=f"'scb.json' {RULE}") as info:
        storage.list_landed(str(landing), "api_snapshot", (".json",))
    assert MARKER not in str(info.value)


# --------------------------------------------------------------------------- swapped in after listing (TOCTOU)


@pytest.fixture
def listed(tmp_path, landing):
    """A month with its unit-level file, listed; then the secrets beside landing."""
    units = ehealth_sample.make_units(3, 7)
    ehealth_sample.write_month(landing / "ehealth", MONTH, seed=7, units=units, style=ehealth_sample.PLAIN)
    files = {f.name: f for f in storage.list_landed(str(landing), "ehealth", (".csv",))}
    assert len(files) == len(declared_exports([f"{MONTH:%Y-%m}"])) + 1  # and the unit-level file
    return files, _secrets(tmp_path / "secrets")


def _no_marker(*things) -> None:
    assert MARKER not in repr(things)


@pytest.mark.parametrize("without_proc", [False, True], ids=["proc", "no-proc"])
def test_a_file_replaced_by_a_link_after_listing_is_refused_by_every_reader(listed, monkeypatch, without_proc):
    from etl.sources import ehealth_exports, unit_daily

    if without_proc:  # where the kernel cannot name an open file's path (no /proc): the path-side check
        monkeypatch.setattr(storage, "_opened_path", lambda fd: None)
    files, secrets = listed
    for f in files.values():
        Path(f.path).unlink()
        Path(f.path).symlink_to(secrets / "passwd")

    journal = files["journalen_2017-03.csv"]
    with pytest.raises(BadInput, match=f"'journalen_2017-03.csv' {RULE}") as info:
        storage.read_bytes(journal.path)
    _no_marker(info.value)
    with pytest.raises(BadInput, match=RULE):
        storage.sha256_of(storage.filesystem(journal.path)[0], journal.path)

    export = ehealth_exports.read_export_file(journal.uri, location=journal.path)
    assert export.file_error is not None and RULE in export.file_error
    assert export.regional == [] and export.national == []
    _no_marker(export)

    unit_file = files["webbtidbok_enheter_2017-03.csv"]
    read = unit_daily.read_unit_daily(unit_file.uri, location=unit_file.path)
    assert read.file_error is not None and RULE in read.file_error and read.rows is None
    _no_marker(read.rejected, read.file_error)


@pytest.mark.parametrize("without_proc", [False, True], ids=["proc", "no-proc"])
def test_a_folder_replaced_by_a_link_after_listing_is_refused(listed, landing, monkeypatch, without_proc):
    from etl.sources import unit_daily

    if without_proc:
        monkeypatch.setattr(storage, "_opened_path", lambda fd: None)
    files, secrets = listed
    for f in files.values():  # same names over there, holding the marker
        (secrets / f.name).write_text(f"{MARKER}\n", encoding="utf-8")
    (landing / "ehealth").rename(landing / "ehealth.listed")
    (landing / "ehealth").symlink_to(secrets, target_is_directory=True)

    journal = files["journalen_2017-03.csv"]
    with pytest.raises(BadInput, match="'journalen_2017-03.csv': a folder on its way is a symbolic link") as info:
        storage.read_bytes(journal.path)
    _no_marker(info.value)
    unit_file = files["webbtidbok_enheter_2017-03.csv"]
    read = unit_daily.read_unit_daily(unit_file.uri, location=unit_file.path)
    assert read.file_error is not None and "symbolic link" in read.file_error
    _no_marker(read.rejected, read.file_error)


@pytest.mark.timeout(20)  # a reader that waits for a writer would hang here
def test_a_pipe_swapped_in_is_refused_without_waiting_for_a_writer(listed):
    files, _ = listed
    journal = files["journalen_2017-03.csv"]
    Path(journal.path).unlink()
    os.mkfifo(journal.path)
    with pytest.raises(BadInput, match="'journalen_2017-03.csv': not a regular file"):
        storage.read_bytes(journal.path)


# --------------------------------------------------------------------------- etl check FILE


def test_check_refuses_a_link_it_is_given(tmp_path, landing, settings):
    from etl import check

    (landing / "ehealth").mkdir()
    link = landing / "ehealth" / "webbtidbok_2017-04.csv"
    link.symlink_to(_secrets(tmp_path / "secrets") / "webbtidbok_2017-04.csv")
    (verdict,) = check.check([str(link)], settings)
    assert verdict.verdict == check.REFUSED
    assert verdict.lines == [f"'webbtidbok_2017-04.csv' {RULE}; copy the file in"]
    _no_marker(verdict)


def test_check_follows_the_folders_an_engineer_names_to_a_regular_file(tmp_path):
    # The folders on the way to a file named on the command line are the engineer's choice (a landing
    # mounted under a linked path): resolved, and the file read at its real path.
    real = tmp_path / "real"
    ehealth_sample.write_month(real, MONTH, seed=7, style=ehealth_sample.PLAIN)
    (tmp_path / "shortcut").symlink_to(real, target_is_directory=True)
    landed = storage.landed_file(str(tmp_path / "shortcut" / "journalen_2017-03.csv"))
    assert landed.location == os.path.join(os.path.realpath(real), "journalen_2017-03.csv")
    assert storage.read_bytes(landed.path) == (real / "journalen_2017-03.csv").read_bytes()
