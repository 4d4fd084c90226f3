"""Rust panic messages of delta-rs' worker threads, kept off the terminal and the task log.

delta-rs (Rust ``object_store`` on a tokio runtime) can panic in one of its
own worker threads when a write fails half-way — a read-only key, a full
disk, a vanished bucket: ``thread 'tokio-rt-worker' panicked at
…/object_store/src/buffered.rs: Already shut down``, and with
``RUST_BACKTRACE`` set a backtrace. The Python call still raises its error,
which :mod:`etl.storage` turns into the one line a person reads; the panic
text is printed by Rust's panic hook straight to file descriptor 2, from a
thread Python does not run, so no ``try`` or logging setting can catch it,
and Python cannot replace Rust's panic hook.

What can be done, and is done here: file descriptor 2 of the process is a
pipe read by a thread that forwards every line to the real stderr except a
Rust panic block (from ``thread '…' panicked at`` up to its ``note:`` line
or the end of its backtrace). Each panic it drops becomes one DEBUG log
record, so ``--debug`` still shows it. Installed by the CLI and by every
Airflow task (:func:`etl.orchestration.fail_fast`); the real stderr is put
back at exit, after the pipe is drained.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

log = logging.getLogger(__name__)

_HEADER = re.compile(rb"^thread '[^']*'(?: \(\d+\))? panicked at ")
# The lines a panic block is made of after its header: its message (one line, usually), the backtrace
# heading and frames ("   0: …", "             at …"), and the closing note.
_FRAME = re.compile(rb"^(stack backtrace:|\s+\d+: |\s+at |note: )")

_state: dict = {}


def install() -> None:
    """Route file descriptor 2 through the panic filter (once per process; a no-op where it cannot)."""
    if _state or not hasattr(os, "pipe") or os.environ.get("ETL_KEEP_NATIVE_PANICS"):
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no fd 2 (a daemon without one): nothing to filter
        return
    thread = threading.Thread(target=_pump, args=(read_end, original), name="native-panic-filter", daemon=True)
    _state.update(original=original, thread=thread)
    thread.start()
    atexit.register(uninstall)


def uninstall() -> None:
    """Put the real stderr back as file descriptor 2 and drain what the filter still holds."""
    if not _state or "done" in _state:
        return
    _state["done"] = True
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_state["original"], 2)  # closes the pipe's last write end: the reader sees the end
    _state["thread"].join(timeout=5)


def _pump(read_end: int, original: int) -> None:
    pending = b""
    held = 0  # empty lines not yet forwarded
    in_panic: list[bytes] | None = None
    with os.fdopen(read_end, "rb", buffering=0) as source:
        while True:
            try:
                chunk = source.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = []
            for line in lines:
                # Rust starts a panic with an empty line: an empty line waits to see what follows it.
                if not line.strip() and in_panic is None:
                    held += 1
                    continue
                in_panic, keep = _filter(line, in_panic)
                if in_panic is None or keep:
                    out.extend([b"\n"] * held)
                held = 0
                if keep:
                    out.append(line + b"\n")
            # A partial line (a prompt, a progress bar without its newline) goes on at once unless it
            # may be the start of a panic header.
            if pending and in_panic is None and not b"thread '".startswith(pending[:8]):
                out.extend([b"\n"] * held)
                held = 0
                out.append(pending)
                pending = b""
            if out:
                _write(original, b"".join(out))
    if in_panic is None:
        _write(original, b"\n" * held + pending)
    if in_panic:
        _dropped(in_panic)


def _filter(line: bytes, in_panic: list[bytes] | None) -> tuple[list[bytes] | None, bool]:
    """(the panic block being dropped or None, whether ``line`` goes to stderr)."""
    if _HEADER.match(line):
        if in_panic:
            _dropped(in_panic)
        return [line], False
    if in_panic is None:
        return None, True
    if len(in_panic) == 1 or _FRAME.match(line):  # the message line, then the backtrace and its note
        in_panic.append(line)
        if line.startswith(b"note: "):
            _dropped(in_panic)
            return None, False
        return in_panic, False
    _dropped(in_panic)  # a block without its note (RUST_BACKTRACE=0 prints one): this line is not part of it
    return None, line.strip() != b""


def _dropped(block: list[bytes]) -> None:
    if not log.isEnabledFor(logging.DEBUG):  # (the record would come back through this very pipe)
        return
    header = block[0].decode("utf-8", "replace")
    message = block[1].decode("utf-8", "replace") if len(block) > 1 else ""
    log.debug("a delta-rs worker thread panicked (kept off stderr): %s %s", header, message)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError:
            return
        view = view[written:]
