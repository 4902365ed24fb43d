"""Dashboard section: what the landing folder holds that was not read (stray files, misplaced exports,
empty or retired site folders), from `landing.notices` of the working database."""

from __future__ import annotations

from html import escape

import duckdb

from ketreg.landing.landing_notices import NOTICES_TABLE


def landing_section(con: duckdb.DuckDBPyConnection) -> str:
    """An HTML `<section id="landing">` listing each entry of the landing folder that was not read."""
    present = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'landing' AND table_name = 'notices'"
    ).fetchall()[0][0]
    notices = con.execute(f"SELECT entry, notice FROM {NOTICES_TABLE} ORDER BY entry").fetchall() if present else []
    if not notices:
        body = '<p class="empty">every entry of the landing folder is a site\'s export folder</p>'
    else:
        rows = "".join(f"<tr><td><code>{escape(entry)}</code></td><td>{escape(notice)}</td></tr>"
                       for entry, notice in notices)
        body = ('<table class="data"><thead><tr><th>entry</th><th>why it was not read</th></tr></thead>'
                f"<tbody>{rows}</tbody></table>")
    return ('<section id="landing"><h2>Not read from the landing folder</h2>'
            "<p>Sites send <code>&lt;site_id&gt;/&lt;export_id&gt;/&lt;file&gt;</code>; anything else is listed "
            "here and left alone.</p>" + body + "</section>")
