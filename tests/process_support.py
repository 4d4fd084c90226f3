"""Separate writer processes for the concurrency tests, started in milliseconds.

A spawned process starts a new interpreter and imports pandas, pyarrow, deltalake and the project again
(about a second each, on each of the dozens of writers the races start). A forkserver whose server
imported them once forks each writer from that clean, single-threaded server instead: still a process of
its own, with its own interpreter state, that opens every table anew and races the others through the
store alone — what the tests hold — without paying the imports again.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import ForkServerContext

PRELOAD = ["pandas", "pyarrow", "deltalake", "etl.publish", "pytest"]


def writer_context() -> ForkServerContext:
    """The multiprocessing context writers are started from: a forkserver that preloaded :data:`PRELOAD`.

    The server starts on the first writer and serves the rest of the session (one per pytest worker).
    """
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(PRELOAD)
    return context
