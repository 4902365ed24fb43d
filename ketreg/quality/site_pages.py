"""The dashboard's "Sites" section: per site, counts only (current export, rows quarantined, rejected exports,
deviations, columns not read) and a link to the site's own data-manager page, `sites/<site_id>/index.html`.
Record ids, raw values and the sites' messages are on those pages, never on the cross-site dashboard."""

from __future__ import annotations

from html import escape

import duckdb

_COUNTS = """
SELECT
    e.site_id,
    max(e.export_id) FILTER (e.is_current) AS current_export,
    count(*) FILTER (e.status = 'rejected') AS rejected_exports,
    (SELECT coalesce(sum(f.rows_quarantined), 0) FROM registry.file_counts AS f
     WHERE f.site_id = e.site_id AND f.is_current_export) AS quarantined_rows,
    (SELECT count(*) FROM registry.protocol_deviations AS d WHERE d.site_id = e.site_id) AS deviations,
    (SELECT coalesce(sum(f.identifier_columns_dropped_count + f.ignored_columns_count), 0)
     FROM registry.file_counts AS f WHERE f.site_id = e.site_id AND f.is_current_export) AS columns_not_read
FROM registry.exports AS e
GROUP BY e.site_id
ORDER BY e.site_id
"""


def site_pages_section(con: duckdb.DuckDBPyConnection, sites_folder: str = "sites") -> str:
    """An HTML <section> listing each site's counts with a link to its data-manager page."""
    rows = con.execute(_COUNTS).fetchall()
    body = "".join(
        f"<tr><td>{escape(site)}</td><td>{escape(current or '–')}</td><td class=num>{quarantined:,}</td>"
        f"<td class=num>{rejected:,}</td><td class=num>{deviations:,}</td><td class=num>{not_read:,}</td>"
        f'<td><a href="{escape(sites_folder)}/{escape(site)}/index.html">what to fix</a></td></tr>'
        for site, current, rejected, quarantined, deviations, not_read in rows
    )
    table = (
        '<table class="data"><thead><tr><th>site</th><th>current export</th><th>rows quarantined (current)</th>'
        "<th>rejected exports</th><th>protocol deviations</th><th>columns not read</th><th>site's page</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
        if rows else '<p class="empty">no sites on record</p>'
    )
    return (
        '<section id="sites"><h2>Sites: what each has to fix</h2>'
        "<p>Counts only. Each site's own records (its ids, raw values, the reasons in full) are in its "
        "data-manager folder <code>sites/&lt;site_id&gt;/</code>, files readable by the registry team and the "
        "site's group only; send each site its own folder.</p>" + table + "</section>"
    )
