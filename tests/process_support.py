"""Separate writer processes for the concurrency and crash tests, started in milliseconds.

A spawned process starts a new interpreter and imports pandas, pyarrow, deltalake and the project again
(about a second each, on each of the dozens of writers the races start). A forkserver whose server
imported them once forks each writer from that server (which runs no test code) instead: still a process
of its own, with its own interpreter state, that opens every table anew and races the others through the
store alone — what the tests hold — without paying the imports again.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess

from etl.regions import REGION_CODES

PRELOAD = ["pandas", "pyarrow", "deltalake", "etl.publish", "pytest"]
# What a Publisher writes per version: one county_report row per region and year.
YEARS = range(2016, 2026)
ROWS_PER_VERSION = len(REGION_CODES) * len(YEARS)


def writer_context() -> ForkServerContext:
    """The context writers are started from, and of the queues and barriers they share (the server starts
    with the first writer)."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(PRELOAD)
    return context


def writer(target: Callable[..., None], *args, environment: Mapping[str, str] | None = None) -> ForkServerProcess:
    """A writer process (not started) running ``target(*args)`` in ``environment`` (default: this process's
    environment *now*).

    A forked writer would otherwise have the environment the server was started with, once per pytest worker:
    not this test's (``s3_env``'s endpoint and credentials files), and perhaps an earlier test's.
    """
    environment = dict(os.environ if environment is None else environment)
    return writer_context().Process(target=_in_environment, args=(environment, target, *args))


def _in_environment(environment: dict[str, str], target: Callable[..., None], *args) -> None:
    os.environ.clear()
    os.environ.update(environment)
    target(*args)


class Publisher:
    """A process publishing versions ``first``..``first+count-1`` of ``county_report`` to ``warehouse``: every
    row of version *i* has ``grant_sek = i`` (:data:`ROWS_PER_VERSION`: the 21 regions × :data:`YEARS`), and with ``quarantine`` one quarantined
    row per version. After each publish it sends *i* to this side; a failure sends its traceback.

    ``fault_stage`` sets ``ETL_FAULT_STAGE`` (``publish.FAULT_STAGES``): the process SIGKILLs itself there.
    ``environment`` is the process's whole environment (default: this process's now).
    """

    def __init__(
        self,
        warehouse: str,
        first: int,
        count: int,
        *,
        quarantine: bool = False,
        fault_stage: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        env = {k: v for k, v in (os.environ if environment is None else environment).items() if k != "ETL_FAULT_STAGE"}
        if fault_stage:
            env["ETL_FAULT_STAGE"] = fault_stage
        self._received, sending = writer_context().Pipe(duplex=False)
        self.process = writer(_publish_versions, sending, str(warehouse), first, count, quarantine, environment=env)
        self.process.daemon = True  # a failed test's publisher is ended when pytest exits, not waited for
        self.process.start()
        sending.close()  # this side only receives: a dead child then reads as the end of the pipe
        self.error = ""

    def next_version(self, timeout: float = 120) -> int | None:
        """The next version the process published, or None once it ended (``error`` then holds any traceback)."""
        if not self._received.poll(timeout):
            self._end()
            raise TimeoutError(f"no version published within {timeout} s (publisher killed)")
        try:
            message = self._received.recv()
        except EOFError:
            self.process.join(10)
            self.error = self.error or f"publisher ended (exit code {self.process.exitcode}) without a traceback"
            return None
        if isinstance(message, str):
            self.error = message
            return None
        return message

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float = 300) -> int | None:
        """The exit code (negative: the signal that ended it), after draining what it sent; TimeoutError (the
        publisher killed) if it still runs after ``timeout`` seconds."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self._end()
            raise TimeoutError(f"publisher still running after {timeout} s (killed)")
        while self._received.poll(0):
            try:
                message = self._received.recv()
            except EOFError:
                break
            if isinstance(message, str):
                self.error = message
        return self.process.exitcode

    def running(self) -> bool:
        return self.process.is_alive()

    def _end(self) -> None:
        self.process.kill()
        self.process.join(10)


def version_batch(i: int, quarantine: bool):
    """The ``county_report`` batch a Publisher publishes as version *i*: ``grant_sek = i`` in every row of
    :data:`ROWS_PER_VERSION`, and with ``quarantine`` one quarantined row."""
    import pandas as pd

    from etl.publish import TableBatch

    rows = pd.DataFrame(
        [
            {
                "region_code": c,
                "report_year": y,
                "grant_sek": i,
                "source_file": f"v{i}.json",
                "submitted_at": pd.Timestamp("2020-01-01", tz="UTC"),
            }
            for y in YEARS
            for c in REGION_CODES
        ]
    )
    bad = pd.DataFrame(
        [{"source_file": f"v{i}.json", "row_number": 0, "raw": "x", "reason": f"test {i}"}] if quarantine else []
    )
    return TableBatch("county_report", rows, bad, len(rows) + len(bad), ("region_code", "report_year"))


def _publish_versions(sending: Connection, warehouse: str, first: int, count: int, quarantine: bool) -> None:
    try:
        from etl import publish

        for i in range(first, first + count):
            batch = version_batch(i, quarantine)
            publish.publish(warehouse, "crash-test" if quarantine else "guarantee-test", batch, f"batch-{i}")
            sending.send(i)
    except BaseException:
        sending.send(traceback.format_exc()[-2000:])
        raise
