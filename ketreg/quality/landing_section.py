"""Dashboard section: what the landing folder holds that was not read (stray files, misplaced exports,
empty or retired site folders), from `landing.notices` of the working database."""

from __future__ import annotations

import duckdb

from ketreg.landing.landing_notices import NOTICES_TABLE
from ketreg.quality.templating import SECTIONS


def landing_section(con: duckdb.DuckDBPyConnection) -> str:
    """An HTML `<section id="landing">` listing each entry of the landing folder that was not read."""
    present = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'landing' AND table_name = 'notices'"
    ).fetchall()[0][0]
    notices = con.execute(f"SELECT entry, notice FROM {NOTICES_TABLE} ORDER BY entry").fetchall() if present else []
    return str(SECTIONS.landing(notices))  # templates/sections.html.j2, `landing`
