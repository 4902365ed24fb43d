-- registry.file_counts: conservation per file of every export: rows read = rows accepted + rows quarantined.
-- A rejected export's files are not read (rows_read = 0); registry.exports says why it was rejected.
CREATE OR REPLACE TABLE registry.file_counts AS
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
    f.identifier_columns_dropped,
    f.ignored_columns
FROM staging.file_counts AS f
JOIN registry.exports AS e USING (site_id, export_id)
ORDER BY f.site_id, f.export_id, f.file_name;
