-- registry.file_counts: conservation per file of every export: rows read = rows accepted + rows quarantined,
-- and, for each site's current export, rows accepted = rows that reached the registry table.
-- A rejected export's files are not read (rows_read = 0). Columns that were not read are counted here and
-- named only in the working store (site_private.file_columns): a header is the site's text.
CREATE OR REPLACE TABLE registry.file_counts AS
WITH registered AS (
    SELECT site_id, export_id, 'patients.csv' AS file_name, count(*) AS n FROM registry.patients GROUP BY ALL
    UNION ALL
    SELECT site_id, export_id, 'infusions.csv', count(*) FROM registry.infusions GROUP BY ALL
    UNION ALL
    SELECT site_id, export_id, 'assessments.csv', count(*) FROM registry.assessments GROUP BY ALL
    UNION ALL
    SELECT site_id, export_id, 'adverse_events.csv', count(*) FROM registry.adverse_events GROUP BY ALL
    UNION ALL
    SELECT site_id, export_id, 'dispositions.csv', count(*) FROM registry.dispositions GROUP BY ALL
)
SELECT
    f.site_id,
    f.export_id,
    f.file_name,
    f.file_sha256,
    e.status AS export_status,
    e.is_current AS is_current_export,
    f.rows_read,
    f.rows_accepted,
    f.rows_quarantined,
    CASE WHEN e.is_current THEN coalesce(r.n, 0) END AS rows_in_registry,
    len(coalesce(f.identifier_columns_dropped, [])) AS identifier_columns_dropped_count,
    len(coalesce(f.ignored_columns, [])) AS ignored_columns_count
FROM staging.file_counts AS f
JOIN registry.exports AS e USING (site_id, export_id)
LEFT JOIN registered AS r USING (site_id, export_id, file_name)
ORDER BY f.site_id, f.export_id, f.file_name;
