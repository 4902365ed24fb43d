"""Open the working database. The SQL files are read by `ketreg.warehouse.sql_files` (re-exported here for the
modules that import them from this one)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ketreg.warehouse.file_modes import make_private, private_umask
from ketreg.warehouse.sql_files import SQL_DIR, run_sql_file, sql_text

__all__ = ["SQL_DIR", "connect", "run_sql_file", "scalar", "sql_text"]

# DuckDB takes 80 % of the machine's memory by default; the pipeline keeps to a budget and spills to disk
# beyond it, so a registry of hundreds of sites runs in a small container. The working_store resource's
# memory_limit, else KETREG_DUCKDB_MEMORY_LIMIT (the resource passes either down), overrides it; likewise threads /
# KETREG_DUCKDB_THREADS (default: DuckDB's, one per core). 512 MB, not more: a step's Python side (imports
# ~0.4 GB, a staging batch, a Great Expectations part) comes on top, and with 1 GB the SQL-only steps alone
# reached 1.45 GB RSS at 100 sites × 5,000 patients.
DEFAULT_MEMORY_LIMIT = "512MB"


@contextmanager
def connect(path: Path | str, memory_limit: str = "", threads: int = 0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the working database, closed on exit. The pipeline runs its DuckDB
    work in one process, so it never waits on its own file lock. The file and its write-ahead log are
    private (0600): they hold the site id ↔ pseudonym map. `memory_limit` (DuckDB's syntax, "1GB") and
    `threads` as given (the working_store resource resolves them from its fields and the environment); empty / 0 =
    the defaults above."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with private_umask():
        con = duckdb.connect(str(path))
        make_private(Path(path))  # a store created before modes were set
        con.execute("SET memory_limit = ?", [memory_limit or DEFAULT_MEMORY_LIMIT])
        if threads:
            con.execute("SET threads = ?", [threads])
        try:
            yield con
        finally:
            con.close()


def scalar(con: duckdb.DuckDBPyConnection, query: str, parameters: Mapping[str, Any] | None = None) -> Any:
    """The single value of `query`. Fetches the whole result: DuckDB 2 streams results, and a result left
    unfinished (as `fetchone()` leaves it) blocks the connection for the next statement."""
    return con.execute(query, parameters or {}).fetchall()[0][0]
