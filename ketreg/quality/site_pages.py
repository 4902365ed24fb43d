"""The dashboard's "Sites" section: per site, counts only (current export, rows quarantined, rejected exports,
deviations, columns not read) and a link to the site's own data-manager page, `sites/<site_id>/index.html`.
Record ids, raw values and the sites' messages are on those pages, never on the cross-site dashboard."""

from __future__ import annotations

import duckdb

from ketreg.quality.templating import SECTIONS

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
    """An HTML <section> listing each site's counts with a link to its data-manager page
    (templates/sections.html.j2, `sites`)."""
    return str(SECTIONS.sites(con.execute(_COUNTS).fetchall(), sites_folder))
