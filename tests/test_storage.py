"""Listing landing storage: what counts as a delivery, and remembered hashes."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from etl import storage
from etl.errors import BadInput, SourceUnavailable
from tests.settings_support import local_settings


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _land(folder, name: str, data: bytes, mtime: float | None = None):
    path = folder / "ehealth" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _hashes(landing, cache=None) -> dict[str, str]:
    return {f.name: f.sha256 for f in storage.list_landed(str(landing), "ehealth", (".csv",), hash_cache=cache)}


def test_unchanged_files_keep_their_remembered_hash_and_changed_ones_are_read_again(tmp_path):
    landing, cache = tmp_path / "landing", storage.hash_cache_uri(str(tmp_path / "warehouse"), "ehealth")
    a = _land(landing, "a.csv", b"first", mtime=1_700_000_000)
    _land(landing, "b.csv", b"other", mtime=1_700_000_000)
    assert _hashes(landing, cache) == {"a.csv": _sha(b"first"), "b.csv": _sha(b"other")}

    # Same size, same mtime, same inode: the remembered hash is used — the file is not read.
    with a.open("r+b") as handle:
        handle.write(b"FIRST")
    os.utime(a, (1_700_000_000, 1_700_000_000))
    assert _hashes(landing, cache)["a.csv"] == _sha(b"first")
    assert _hashes(landing)["a.csv"] == _sha(b"FIRST")  # without the cache every file is read

    # Any change a delivery makes is seen: a new modification time, a new size, a replaced file.
    os.utime(a, (1_700_000_100, 1_700_000_100))
    assert _hashes(landing, cache)["a.csv"] == _sha(b"FIRST")
    _land(landing, "a.csv", b"first, longer", mtime=1_700_000_100)
    assert _hashes(landing, cache)["a.csv"] == _sha(b"first, longer")
    replacement = landing / "ehealth" / "new.tmp"
    replacement.write_bytes(b"first, LONGER")
    os.utime(replacement, (1_700_000_100, 1_700_000_100))
    os.replace(replacement, a)  # same name, size and mtime; a new inode
    assert _hashes(landing, cache) == {"a.csv": _sha(b"first, LONGER"), "b.csv": _sha(b"other")}

    # A file that is gone is forgotten.
    (landing / "ehealth" / "b.csv").unlink()
    assert _hashes(landing, cache) == {"a.csv": _sha(b"first, LONGER")}
    assert '"b.csv"' not in (tmp_path / "warehouse" / "_state" / "landing_hashes" / "ehealth.json").read_text()


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 99}', b"[]", b'{"version": 1, "files": 3}'])
def test_a_damaged_cache_only_costs_a_full_read(tmp_path, content):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    _land(landing, "a.csv", b"data")
    cache_file = warehouse / "_state" / "landing_hashes" / "ehealth.json"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(content)
    assert _hashes(landing, storage.hash_cache_uri(str(warehouse), "ehealth")) == {"a.csv": _sha(b"data")}
    assert '"version": 1' in cache_file.read_text()  # rewritten whole


def test_object_store_listing_uses_the_cache_too(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/land/ehealth/a.csv", b"one")
    cache = "memory://wh/_state/landing_hashes/ehealth.json"
    files = storage.list_landed("memory://land", "ehealth", (".csv",), hash_cache=cache)
    assert [(f.name, f.sha256) for f in files] == [("a.csv", _sha(b"one"))]
    assert fs.exists("/wh/_state/landing_hashes/ehealth.json")
    fs.pipe("/land/ehealth/a.csv", b"two!")  # a new size (and time): read again
    files = storage.list_landed("memory://land", "ehealth", (".csv",), hash_cache=cache)
    assert [(f.name, f.sha256) for f in files] == [("a.csv", _sha(b"two!"))]
    fs.rm("/land", recursive=True)
    fs.rm("/wh", recursive=True)


def test_what_is_not_a_delivery_and_what_cannot_be_taken_in(tmp_path):
    landing = tmp_path / "landing"
    _land(landing, "a.csv", b"x")
    _land(landing, ".upload-in-progress.csv", b"x")
    _land(landing, "notes.txt", b"x")
    (landing / "ehealth" / "folder.csv").mkdir()
    (landing / "ehealth" / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    _land(landing, "x\\..\\escape.csv", b"x")
    skipped: list[str] = []
    files = storage.list_landed(str(landing), "ehealth", (".csv",), skipped=skipped)
    assert [f.name for f in files] == ["a.csv"]
    # Nothing silent (issue 13 §2): the folder and the other type are named too; the dotfile is hidden.
    assert sorted(skipped) == [
        "'folder.csv' is a folder: deliveries are files directly under ehealth/",
        "'gone.csv' is a symbolic link: landing takes regular files only; copy the file in",
        "'notes.txt': not a file type this folder takes (accepted: .csv)",
        "unsafe file name in landing storage: 'x\\\\..\\\\escape.csv'",
    ]
    with pytest.raises(BadInput, match="unsafe file name"):  # a caller that does not collect them is refused
        storage.list_landed(str(landing), "ehealth", (".csv",))


def test_a_link_to_a_file_is_refused_not_read(tmp_path):
    # Issue 22 §2 (it used to be taken in like the file): landing is a boundary; tests/test_landing_boundary.py.
    landing = tmp_path / "landing"
    target = tmp_path / "elsewhere.csv"
    target.write_bytes(b"linked")
    (landing / "ehealth").mkdir(parents=True)
    (landing / "ehealth" / "linked.csv").symlink_to(target)
    skipped: list[str] = []
    files = storage.list_landed(str(landing), "ehealth", (".csv",), skipped=skipped)
    assert files == [] and skipped == [storage.link_refusal("linked.csv")]


# --------------------------------------------------------------------------- issue 13 §5: URIs with credentials


@pytest.fixture
def http_landing(landing):
    """``landing`` served over HTTP on 127.0.0.1 (directory listings, as a plain web server gives them)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(landing))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://sender:s3cret-pw@127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_credentials_in_a_landing_uri_reach_no_column_load_log_or_state(http_landing, landing, warehouse):
    from etl import publish
    from etl.pipelines import ehealth_adoption
    from tests.export_support import write_export as _write

    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    settings = local_settings(http_landing, warehouse)
    report = ehealth_adoption.run(settings)
    assert report.outcome == "published"
    assert ehealth_adoption.run(settings).outcome == "nothing_new"  # its message names the landing URI
    sources = set(publish.read_table(str(warehouse), "ehealth_adoption").column("source_file").to_pylist())
    assert sources == {
        f"{http_landing.replace('sender:s3cret-pw', '***')}/ehealth/{k}_2017-03.csv"
        for k in ("journalen", "webbtidbok")
    }
    leaked = [p for p in warehouse.rglob("*") if p.is_file() and b"s3cret-pw" in p.read_bytes()]
    assert leaked == []  # tables, quarantine, load log, delivery record, hash cache, validation results


def test_an_unreachable_remote_landing_fails_instead_of_reading_as_empty(warehouse):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceUnavailable, match="cannot read") as error:
        storage.list_landed(f"http://u:s3cret-pw@127.0.0.1:{port}/landing", "ehealth", (".csv",))
    assert "s3cret-pw" not in str(error.value)


def test_a_file_stamped_in_the_future_is_taken_once_listed_unchanged_for_the_settle_interval(tmp_path, monkeypatch):
    folder = tmp_path / "landing" / "ehealth"
    folder.mkdir(parents=True)
    path = folder / "journalen_2020-02.csv"
    path.write_text("x")
    future = time.time() + 10 * 365 * 86400
    os.utime(path, (future, future))
    cache = str(tmp_path / "hashes.json")
    arriving: list[str] = []
    found = storage.list_landed(
        str(tmp_path / "landing"), "ehealth", (".csv",), hash_cache=cache, settle_seconds=60, arriving=arriving
    )
    assert found == [] and "in the future" in arriving[0]
    later = time.time() + 61
    monkeypatch.setattr(storage.time, "time", lambda: later)
    found = storage.list_landed(
        str(tmp_path / "landing"), "ehealth", (".csv",), hash_cache=cache, settle_seconds=60, arriving=[]
    )
    assert [f.name for f in found] == ["journalen_2020-02.csv"]


def test_a_file_name_that_is_not_utf8_is_named_not_a_crash(tmp_path):
    folder = tmp_path / "landing" / "county_reports"
    folder.mkdir(parents=True)
    (folder / "ok.json").write_text("{}")
    with open(os.path.join(os.fsencode(folder), b"Sk\xe5ne.json"), "w") as handle:
        handle.write("{}")
    skipped: list[str] = []
    found = storage.list_landed(str(tmp_path / "landing"), "county_reports", (".json",), skipped=skipped)
    assert [f.name for f in found] == ["ok.json"]
    assert len(skipped) == 1 and "not valid UTF-8" in skipped[0] and "Sk\\udce5ne.json" in skipped[0]
    skipped[0].encode("utf-8")  # the line itself can be logged and stored


def test_a_mistyped_http_landing_fails_instead_of_nothing_new_forever(http_landing, landing):
    (landing / "ehealth").mkdir()
    with pytest.raises(SourceUnavailable, match="does not exist on the server") as error:
        storage.list_landed(f"{http_landing}/nonexistent", "ehealth", (".csv",))
    assert "s3cret-pw" not in str(error.value)
    assert storage.list_landed(http_landing, "county_reports", (".json",)) == []  # no delivery yet: fine
