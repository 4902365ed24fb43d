"""One DuckDB transaction around a block: committed when the block ends, rolled back when it raises.

Every write that rebuilds or replaces a table goes through it, so a failed step (or an interrupted run:
KeyboardInterrupt and SystemExit are rolled back too) leaves the tables as they were, never half-written
(tests/test_atomicity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """`with transaction(con): …` — BEGIN, then COMMIT after the block, or ROLLBACK and re-raise if it raised."""
    con.begin()
    try:
        yield con
    except BaseException:
        con.rollback()
        raise
    con.commit()
