-- Per site and export: rows the site sent, rows accepted into the registry and rows quarantined (all files),
-- and whether the export was usable at all (a rejected export's files are not read).
SELECT
    e.site_id,
    e.export_id,
    e.status,
    e.notice_count,
    e.is_current,
    coalesce(sum(f.rows_read), 0) AS rows_read,
    coalesce(sum(f.rows_accepted), 0) AS rows_accepted,
    coalesce(sum(f.rows_quarantined), 0) AS rows_quarantined
FROM registry.exports AS e
LEFT JOIN registry.file_counts AS f USING (site_id, export_id)
GROUP BY ALL
ORDER BY e.site_id, e.export_id;
