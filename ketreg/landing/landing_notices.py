"""What the landing folder holds that is not `<site>/<export>/<file>`: stray files, misplaced exports, empty or
retired site folders. Nothing there is read, and nothing is left out silently: each entry becomes a notice
in `landing.notices` of the working database, the run's summary and the quality dashboard."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from ketreg.landing.discovery import LandingScan

# Not published: analysts get the registry; the notices are for the registry team and data managers.
NOTICES_TABLE = "landing.notices"


def landing_notices(scan: LandingScan) -> pl.DataFrame:
    """One row per landing-level notice: `entry` (its path under the landing folder) and `notice`."""
    rows = [
        {"entry": text.split(": ", 1)[0], "notice": text.split(": ", 1)[1] if ": " in text else text}
        for text in scan.ignored_entries
    ]
    return pl.DataFrame(rows, schema={"entry": pl.String, "notice": pl.String})


def record_landing_notices(con: duckdb.DuckDBPyConnection, notices: pl.DataFrame) -> None:
    """Replace `landing.notices` with this scan's notices (the landing folder as it is now)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS landing")
    con.register("_notices", notices)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {NOTICES_TABLE} AS SELECT * FROM _notices ORDER BY entry")
    finally:
        con.unregister("_notices")


def read_landing_notices(work_db: Path) -> list[str]:
    """`entry: notice` lines of the last scan, from the working database ([] when there is none)."""
    if not work_db.exists():
        return []
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        found = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'landing' AND table_name = 'notices'"
        ).fetchall()[0][0]
        if not found:
            return []
        return [f"{entry}: {notice}" for entry, notice in
                con.execute(f"SELECT entry, notice FROM {NOTICES_TABLE} ORDER BY entry").fetchall()]
    finally:
        con.close()
