"""fsspec/s3fs and deltalake against a real S3 server (SeaweedFS, see tests/seaweedfs.py).

No mocks: every test talks HTTP to ``weed mini`` on loopback. What these prove
about the store is what the warehouse relies on: list-after-write, single-object
moves, Delta commits that refuse to overwrite an existing log entry (conditional
put), and that a "directory" prefix cannot be renamed on S3.
"""

from __future__ import annotations

import queue

import fsspec
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from tests.delta_support import arrow as _arrow
from tests.process_support import writer as writer_process
from tests.process_support import writer_context

pytestmark = pytest.mark.integration


def _fs(uri: str):
    # A fresh S3FileSystem (no instance cache): configured from the environment s3_env set.
    return fsspec.core.url_to_fs(uri, skip_instance_cache=True)


def _delta_options(server) -> dict[str, str]:
    # object_store keys as deltalake takes them; AWS_ALLOW_HTTP because the endpoint is http://.
    # "conditional_put": "etag" makes commits put-if-absent (If-None-Match: *); see test (c).
    return {**server.env(), "conditional_put": "etag"}


# --- (a) fsspec / s3fs -----------------------------------------------------------------


def test_fsspec_write_list_read_and_move_one_file(s3_env):
    fs, root = _fs(s3_env.uri("fsspec"))
    assert type(fs).__name__ == "S3FileSystem"
    files = {f"{root}/month=2024-0{i}/data.csv": f"id,value\n{i},{i * 10}\n".encode() for i in range(1, 4)}
    for path, body in files.items():
        fs.pipe(path, body)
    with fs.open(f"{root}/notes.txt", "wb") as handle:
        handle.write("åäö\n".encode())

    # Listed at once, by the same client and by a new one (no cached listing to lean on).
    assert sorted(fs.find(root)) == sorted([*files, f"{root}/notes.txt"])
    assert sorted(_fs(s3_env.uri("x"))[0].find(root)) == sorted([*files, f"{root}/notes.txt"])
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)) == [
        "month=2024-01",
        "month=2024-02",
        "month=2024-03",
        "notes.txt",
    ]
    for path, body in files.items():
        assert fs.cat(path) == body
        assert fs.info(path)["size"] == len(body)
    assert fs.cat(f"{root}/notes.txt").decode() == "åäö\n"

    source = f"{root}/month=2024-01/data.csv"
    target = f"{root}/archive/2024-01.csv"
    fs.mv(source, target)
    fs.invalidate_cache()
    assert not fs.exists(source)
    assert fs.cat(target) == files[source]
    # Files only: SeaweedFS keeps an emptied "directory" listed as a common prefix (month=2024-01/
    # still shows in fs.ls and fs.exists), where AWS S3 drops it; so no assertion on prefixes here.
    assert sorted(fs.find(root)) == sorted([target, *[p for p in files if p != source], f"{root}/notes.txt"])


# --- (b) deltalake: partitioned write, predicate overwrite ------------------------------


def test_delta_partitioned_write_and_predicate_overwrite(s3_env):
    uri = s3_env.uri("delta")
    options = _delta_options(s3_env)
    write_deltalake(
        uri, pa.table({"region": ["01", "01", "03"], "v": [1, 2, 3]}), partition_by=["region"], storage_options=options
    )
    write_deltalake(uri, pa.table({"region": ["05"], "v": [5]}), mode="append", storage_options=options)
    # Replace region 03 only: the new rows must all match the predicate.
    write_deltalake(
        uri,
        pa.table({"region": ["03", "03"], "v": [30, 31]}),
        mode="overwrite",
        predicate="region = '03'",
        storage_options=options,
    )

    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 2
    assert table.metadata().partition_columns == ["region"]
    rows = sorted((r["region"], r["v"]) for r in _arrow(table).to_pylist())
    assert rows == [("01", 1), ("01", 2), ("03", 30), ("03", 31), ("05", 5)]
    history = sorted(table.history(), key=lambda h: h["version"])
    assert [(h["version"], h["operation"], h["operationParameters"]["mode"]) for h in history] == [
        (0, "WRITE", "ErrorIfExists"),
        (1, "WRITE", "Append"),
        (2, "WRITE", "Overwrite"),
    ]
    assert history[2]["operationParameters"]["predicate"] == "region = '03'"
    # Every live file sits under its partition's prefix; region 03 has exactly the new one.
    live = table.file_uris()
    assert all(uri + "/region=" in f for f in live)
    assert sum("/region=03/" in f for f in live) == 1

    # Time travel still sees the replaced rows (the old file is removed logically, not deleted).
    before = DeltaTable(uri, version=1, storage_options=options)
    assert sorted(r["v"] for r in _arrow(before).to_pylist()) == [1, 2, 3, 5]

    # deltalake also finds the server from the environment alone (what s3_env sets).
    assert DeltaTable(uri).version() == 2

    # Rows outside the predicate are refused, and nothing is committed.
    with pytest.raises(Exception, match="failed validation"):
        write_deltalake(
            uri,
            pa.table({"region": ["01"], "v": [99]}),
            mode="overwrite",
            predicate="region = '03'",
            storage_options=options,
        )
    assert DeltaTable(uri, storage_options=options).version() == 2


# --- (c) conditional put: concurrent commits --------------------------------------------

APPENDS_PER_WRITER = 10
NO_INNER_RETRY = CommitProperties(max_commit_retries=0)  # every lost race surfaces as CommitFailedError


def _append_worker(uri: str, options: dict, writer: int, barrier, results) -> None:
    """Append APPENDS_PER_WRITER one-row commits, retrying each on CommitFailedError (a writer process)."""
    lost_races = 0
    barrier.wait(timeout=60)
    for seq in range(APPENDS_PER_WRITER):
        for _ in range(50):
            try:
                write_deltalake(
                    uri,
                    pa.table({"writer": [writer], "seq": [seq]}),
                    mode="append",
                    storage_options=options,
                    commit_properties=NO_INNER_RETRY,
                )
                break
            except CommitFailedError:
                lost_races += 1
        else:
            raise RuntimeError(f"writer {writer}: append {seq} lost 50 races in a row")
    results.put((writer, lost_races))


def test_stale_commit_is_refused_by_the_store(s3_env):
    """The store itself refuses to overwrite an existing object under If-None-Match, and a Delta
    commit from a stale snapshot therefore fails instead of replacing someone else's commit."""
    import botocore.session  # type: ignore[import-untyped]  # botocore ships no types (as in etl/storage.py)
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    client = botocore.session.get_session().create_client("s3")  # configured by s3_env
    key = s3_env.uri("ifnonematch").split("/", 3)[3]
    client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read() == b"first"
    client.close()

    uri = s3_env.uri("stale")
    options = _delta_options(s3_env)
    write_deltalake(uri, pa.table({"x": [0]}), storage_options=options)
    stale = DeltaTable(uri, storage_options=options)  # snapshot at version 0
    write_deltalake(uri, pa.table({"x": [1]}), mode="append", storage_options=options)  # version 1
    with pytest.raises(CommitFailedError):  # would be version 1 again
        write_deltalake(stale, pa.table({"x": [2]}), mode="append", commit_properties=NO_INNER_RETRY)
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    assert sorted(_arrow(table)["x"].to_pylist()) == [0, 1]

    # deltalake commits with put-if-absent only: with conditional put switched off it cannot commit at all.
    with pytest.raises(OSError, match="PutMode::Create"):
        write_deltalake(
            s3_env.uri("noput"), pa.table({"x": [0]}), storage_options={**s3_env.env(), "conditional_put": "disabled"}
        )


def test_two_processes_commit_concurrently_without_losing_a_commit(s3_env):
    """Two processes append 10 commits each to one table at the same time. A lost race is a
    CommitFailedError (the store refused the existing version: conditional put), retried; at the
    end all 20 appends are in the table, once each, in versions 1..20 with no gap."""
    uri = s3_env.uri("concurrent")
    options = _delta_options(s3_env)
    write_deltalake(
        uri, pa.table({"writer": pa.array([], pa.int64()), "seq": pa.array([], pa.int64())}), storage_options=options
    )  # version 0: the table exists before the race

    context = writer_context()
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [writer_process(_append_worker, uri, options, w, barrier, results) for w in (0, 1)]
    for worker in workers:
        worker.start()
    try:
        lost = {}
        for _ in workers:
            try:
                writer, lost_races = results.get(timeout=90)
            except queue.Empty:
                break
            lost[writer] = lost_races
        for worker in workers:
            worker.join(timeout=30)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [w.exitcode for w in workers] == [0, 0], "a writer process failed (see its traceback above)"
    assert sorted(lost) == [0, 1]
    print(f"lost commit races (retried): {lost}")

    table = DeltaTable(uri, storage_options=options)
    rows = sorted((r["writer"], r["seq"]) for r in _arrow(table).to_pylist())
    assert rows == [(w, s) for w in (0, 1) for s in range(APPENDS_PER_WRITER)]
    assert table.version() == 2 * APPENDS_PER_WRITER
    history = table.history()
    assert sorted(h["version"] for h in history) == list(range(2 * APPENDS_PER_WRITER + 1))
    assert sum(h["operationParameters"].get("mode") == "Append" for h in history) == 2 * APPENDS_PER_WRITER


# --- (d) the old fault class: renaming a prefix ----------------------------------------


def test_recursive_move_of_a_prefix_fails_half_done(s3_env):
    """``fs.mv(dir, other, recursive=True)`` on S3 is not a rename: s3fs copies every object, then
    also tries to copy the "directory" entries (the prefix itself, sub-prefixes), which are no
    objects: CopyObject answers NoSuchKey, raised as FileNotFoundError (fsspec/s3fs#394), and the
    delete step never runs. The data ends up under both prefixes, and a reader of either sees a
    "complete" folder. This is why the warehouse no longer renames prefixes: a publish is one Delta
    commit (new Parquet objects plus one put-if-absent log entry), never a move."""
    fs, root = _fs(s3_env.uri("mv"))
    names = ["part-0.parquet", "part-1.parquet", "part-2.parquet", "sub/part-3.parquet"]
    for i, name in enumerate(names):
        fs.pipe(f"{root}/current/{name}", f"payload {i}".encode())

    with pytest.raises(FileNotFoundError):
        fs.mv(f"{root}/current", f"{root}/previous", recursive=True)

    fs.invalidate_cache()
    found = sorted(fs.find(root))
    # Every object was copied, none was deleted: the move is neither done nor undone.
    assert found == sorted([f"{root}/current/{n}" for n in names] + [f"{root}/previous/{n}" for n in names])
    for i, name in enumerate(names):
        assert fs.cat(f"{root}/previous/{name}") == f"payload {i}".encode()
