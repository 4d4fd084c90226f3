"""Reading a Delta table in tests the way the project does (see ``etl.publish._read``)."""

from __future__ import annotations


def arrow(table):
    """A ``deltalake.DeltaTable``'s rows as a pyarrow Table, through delta-rs's own query engine.

    Not ``to_pyarrow_table()``: it reads through a Python filesystem handler on
    pyarrow's threads, which can abort the interpreter at exit ("terminate
    called without an active exception", exit 134) — a test process included.
    """
    import pyarrow as pa
    from deltalake import QueryBuilder

    return pa.table(QueryBuilder().register("t", table).execute("select * from t"))
