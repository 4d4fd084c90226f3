"""A store that stalls, refuses a write or runs out of space: one line, a bounded wait, nothing else on stderr.

Issue 22 items 3 and 4, as a person meets them: the CLI against a server that accepts connections
and never answers, a real S3 server (SeaweedFS) paused with SIGSTOP, a read-only key, a full disk.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from etl import storage
from etl.errors import ConfigError
from tests.cli_support import run_etl
from tests.settings_support import local_settings

ROOT = Path(__file__).resolve().parents[1]
# Short deadlines for the tests: 2 attempts × (1 s + 2 s) + 2 s = 8 s for one call.
FAST = {"ETL_STORE_CONNECT_TIMEOUT_SECONDS": "1", "ETL_STORE_TIMEOUT_SECONDS": "2", "ETL_LANDING_SETTLE_SECONDS": "0"}
BOUND = 8.0


def _etl(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    out = run_etl(*args, env=env, timeout=timeout)
    return out, time.monotonic() - started


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def black_hole():
    server = BlackHole()
    yield server
    server.close()


def _stalled_env(port: int) -> dict[str, str]:
    return {
        **FAST,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "AKTEST",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def _one_line(out: subprocess.CompletedProcess) -> str:
    errors = [line for line in out.stderr.splitlines() if " INFO " not in line and " WARNING " not in line]
    assert "Traceback" not in out.stderr and "panicked" not in out.stderr, out.stderr[-2000:]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["status", "--warehouse", "s3://warehouse/w"],
        ["run", "ehealth-adoption", "--warehouse", "s3://warehouse/w"],
        ["run", "ehealth-adoption", "--landing", "s3://landing/l", "--warehouse", "LOCAL"],
        ["approve", "--warehouse", "s3://warehouse/w"],
    ],
    ids=["status", "run-s3-warehouse", "run-s3-landing", "approve-list"],
)
def test_a_server_that_never_answers_fails_within_the_deadline_naming_it(black_hole, tmp_path, command):
    command = [str(tmp_path / "w") if part == "LOCAL" else part for part in command]
    if "--landing" not in command and command[0] == "run":
        (tmp_path / "landing").mkdir()
        command += ["--landing", str(tmp_path / "landing")]
    out, took = _etl(*command, env=_stalled_env(black_hole.port))
    line = _one_line(out)
    assert out.returncode == 1  # retryable (SourceUnavailable), not a configuration error
    assert f"the object store at http://127.0.0.1:{black_hole.port} did not answer within {BOUND:.0f} s" in line
    # One deadline for the whole command, not one per call it would have made (the stalled endpoint is
    # remembered), plus the interpreter's start.
    assert took < 2 * BOUND + 6, f"{took:.1f} s"


def test_the_deadlines_reach_delta_rs_and_s3fs_and_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("ETL_STORE_CONNECT_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("ETL_STORE_TIMEOUT_SECONDS", "40")
    options = storage.delta_options("s3://bucket/table")
    assert (options["connect_timeout"], options["timeout"], options["max_retries"]) == ("3s", "40s", "1")
    fs, _ = storage.filesystem("s3://bucket/somewhere")
    config = fs.config_kwargs
    assert (config["connect_timeout"], config["read_timeout"]) == (3.0, 40.0)
    assert config["retries"]["total_max_attempts"] == storage.STORE_ATTEMPTS
    assert fs.retries == 1 and fs._etl_deadline == storage.store_deadline() == 2 * 43 + 2
    assert storage.delta_options("/local/table") == {}
    monkeypatch.setenv("ETL_STORE_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError, match="ETL_STORE_TIMEOUT_SECONDS='soon'"):
        storage.delta_options("s3://bucket/table")


@pytest.mark.slow
@pytest.mark.integration
def test_a_paused_s3_server_gives_one_line_within_the_deadline(s3_env, tmp_path):
    """SeaweedFS stopped with SIGSTOP (a hung store: connections are accepted by the kernel, nothing answers)."""
    warehouse = s3_env.uri("paused")
    os.killpg(s3_env.process.pid, signal.SIGSTOP)
    try:
        out, took = _etl("status", "--warehouse", warehouse, env={**s3_env.env(), **FAST})
    finally:
        os.killpg(s3_env.process.pid, signal.SIGCONT)
    line = _one_line(out)
    assert out.returncode == 1 and f"did not answer within {BOUND:.0f} s" in line and s3_env.endpoint in line
    assert took < 2 * BOUND + 6, f"{took:.1f} s"
    # Resumed, it answers again: here that nothing was ever published there (the paused store was not said to
    # be empty: a stalled store is never read as a warehouse without a load log).
    out, _ = _etl("status", "--warehouse", warehouse, env={**s3_env.env(), **FAST})
    assert out.returncode == 2 and _one_line(out).startswith(f"error: nothing is published in {warehouse}: "), (
        out.stderr[-1000:]
    )


_READ_ONLY_WRITE = textwrap.dedent("""
    import sys
    import pandas as pd
    from etl import native_panics, publish
    from etl.errors import EtlError
    from etl.publish import TableBatch
    native_panics.install()
    rows = pd.DataFrame([{"region_code": "01", "year": 2016, "population": 5, "source_file": "a.csv"}])
    try:
        publish.publish(sys.argv[1], "t", TableBatch("population", rows, pd.DataFrame(), 1, ("region_code", "year")), "b")
    except EtlError as exc:
        print(f"error: {exc}")
""")


@pytest.mark.slow
@pytest.mark.integration
def test_a_read_only_key_writing_an_existing_table_is_one_line_without_a_rust_panic(s3_env, tmp_path):
    """delta-rs panics in a tokio worker thread ("Already shut down") when its upload is refused; the
    panic text is kept off stderr (etl.native_panics), the error is the one line."""
    import pandas as pd

    from etl import publish
    from etl.publish import TableBatch

    warehouse = s3_env.uri("read-only")
    rows = pd.DataFrame([{"region_code": "01", "year": 2016, "population": 5, "source_file": "a.csv"}])
    publish.publish(warehouse, "t", TableBatch("population", rows, pd.DataFrame(), 1, ("region_code", "year")), "b")
    script = tmp_path / "write.py"
    script.write_text(_READ_ONLY_WRITE)
    reader = {
        **os.environ,
        **s3_env.env(),
        "AWS_ACCESS_KEY_ID": s3_env.reader_key,
        "AWS_SECRET_ACCESS_KEY": s3_env.reader_secret,
        "RUST_BACKTRACE": "1",
    }

    def run(**extra):
        return subprocess.run(
            [sys.executable, str(script), warehouse],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**reader, **extra},
            timeout=120,
        )

    bare = run(ETL_KEEP_NATIVE_PANICS="1")  # the filter off: what delta-rs prints on its own
    assert "panicked" in bare.stderr, "delta-rs no longer panics here: etl.native_panics may be unneeded"
    out = run()
    assert out.stderr.strip() == "", out.stderr
    assert out.stdout.strip().startswith("error: load log: cannot append to s3://")
    assert "the object store refused access (AccessDenied)" in out.stdout


_FILTERED = textwrap.dedent("""
    import os, sys
    from etl import native_panics
    native_panics.install()
    sys.stderr.write("before\\n"); sys.stderr.flush()
    os.write(2, b"\\nthread 'tokio-rt-worker' (817) panicked at /x/object_store-0.13.2/src/buffered.rs:369:41:\\n"
                b"Already shut down\\nstack backtrace:\\n   0: rust_begin_unwind\\n             at /rustc/x.rs:1\\n"
                b"note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\\n")
    os.write(2, b"thread 'x' panicked at a.rs:1:1:\\nboom\\nnote: run with `RUST_BACKTRACE=1` to display a backtrace\\n")
    sys.stderr.write("\\nafter: thread 'main' is a word here\\n"); sys.stderr.flush()
    sys.stderr.write("no newline at the end")
""")


def test_the_filter_drops_rust_panic_blocks_and_keeps_every_other_line(tmp_path):
    script = tmp_path / "filtered.py"
    script.write_text(_FILTERED)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0
    assert out.stderr == "before\n\nafter: thread 'main' is a word here\nno newline at the end"


@pytest.mark.slow
def test_a_full_disk_is_one_line(tmp_path):
    """The warehouse on a 300 kB tmpfs: whichever write meets the full disk, the same one line."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        from etl.sample import ehealth as sample

        landing = tmp_path / "landing"
        sample.write(landing, 2017, 2017, units=0, unit_months=0, seed=3)
        out, _ = _etl(
            "run",
            "ehealth-adoption",
            "--landing",
            str(landing),
            "--warehouse",
            str(disk / "w"),
            env={"ETL_LANDING_SETTLE_SECONDS": "0", "RUST_BACKTRACE": "1"},
        )
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    line = _one_line(out)
    assert out.returncode == 1
    assert line.endswith("no space left on the device (free space or move the warehouse, then run again)"), line


@pytest.fixture
def failing_server():
    """An HTTP server on 127.0.0.1 answering every request at once with 500 and a short body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Fail(BaseHTTPRequestHandler):
        def _fail(self):
            body = b"<Error><Code>InternalError</Code><Message>boom</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _fail

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fail)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["status", "--warehouse", "s3://warehouse/w"],
        ["run", "ehealth-adoption", "--landing", "s3://landing/l", "--warehouse", "LOCAL"],
    ],
    ids=["status", "run-s3-landing"],
)
def test_a_server_error_is_said_as_one_and_not_as_a_stall(failing_server, tmp_path, command):
    """HTTP 500 at once: 'answered with a server error', retryable — not 'did not answer within' (delta-rs
    names its retry_timeout setting in the text), and no 'unexpected OSError'."""
    command = [str(tmp_path / "w") if part == "LOCAL" else part for part in command]
    out, _ = _etl(*command, env=_stalled_env(failing_server))
    line = _one_line(out)
    assert out.returncode == 1
    assert "answered with a server error" in line and "did not answer" not in line and "unexpected" not in line
    assert "<Error>" not in line


_TASK = textwrap.dedent("""
    import os, sys
    from etl.errors import BadInput
    from etl.orchestration import fail_fast

    def write_panic_then_fail():
        os.write(2, b"\\nthread 'tokio-rt-worker' (9) panicked at /x/buffered.rs:369:41:\\nAlready shut down\\n"
                    b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\\n")
        raise BadInput("webbtidbok_2026-02.csv\\nerror: all good\\x1b[31m: header not recognised")

    try:
        fail_fast(write_panic_then_fail)
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\\n")
""")


def test_a_task_fails_with_one_printable_line_and_no_rust_panic_in_its_log(tmp_path):
    """What an Airflow task's log gets from fail_fast (the wrapper of every DAG task): the panic text of a
    delta-rs thread kept out, and the failure one printable line even when a file name holds a newline."""
    script = tmp_path / "task.py"
    script.write_text(_TASK)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "panicked" not in out.stderr and "Already shut down" not in out.stderr, out.stderr
    failure = [line for line in out.stderr.splitlines() if line.startswith("AirflowFailException")]
    assert failure == ["AirflowFailException: webbtidbok_2026-02.csv\\nerror: all good\\x1b[31m: header not recognised"]


def test_a_failure_the_load_log_cannot_take_is_one_warning_beside_the_error(tmp_path, caplog):
    """A run failing outside the project's errors on a store that also refuses the load-log row (a full disk
    did this, on a copy with a third export kind): the original error propagates and is the one error; that
    the failure is not in the load log is one WARNING line, not a second ERROR."""
    import logging

    from etl.pipelines import common

    warehouse = tmp_path / "w"
    warehouse.mkdir()
    (warehouse / "_load_log").write_text("a file where the load log's folder goes")

    @common.records_unexpected_failures("ehealth_adoption")
    def run(settings):
        raise OSError(28, "No space left on device")

    with caplog.at_level(logging.WARNING), pytest.raises(OSError, match="No space left"):
        run(local_settings(tmp_path / "landing", warehouse))
    assert [r.levelname for r in caplog.records if r.name.startswith("etl")] == ["WARNING"], caplog.records
    [warning] = [r.getMessage() for r in caplog.records if r.name.startswith("etl")]
    assert warning.startswith("ehealth_adoption: the failure is not in the load log either: ") and "\n" not in warning
