"""Separate writer processes for the concurrency tests, started in milliseconds.

A spawned process starts a new interpreter and imports pandas, pyarrow, deltalake and the project again
(about a second each, on each of the dozens of writers the races start). A forkserver whose server
imported them once forks each writer from that server (which runs no test code) instead: still a process
of its own, with its own interpreter state, that opens every table anew and races the others through the
store alone — what the tests hold — without paying the imports again.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.context import ForkServerContext, ForkServerProcess

PRELOAD = ["pandas", "pyarrow", "deltalake", "etl.publish", "pytest"]


def writer_context() -> ForkServerContext:
    """The context writers are started from, and of the queues and barriers they share (the server starts
    with the first writer)."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(PRELOAD)
    return context


def writer(target: Callable[..., None], *args) -> ForkServerProcess:
    """A writer process (not started) running ``target(*args)`` in this process's environment *now*.

    A forked writer would otherwise have the environment the server was started with, once per pytest worker:
    not this test's (``s3_env``'s endpoint and credentials files), and perhaps an earlier test's.
    """
    return writer_context().Process(target=_in_environment, args=(dict(os.environ), target, *args))


def _in_environment(environment: dict[str, str], target: Callable[..., None], *args) -> None:
    os.environ.clear()
    os.environ.update(environment)
    target(*args)
