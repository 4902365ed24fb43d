-- A release manifest's exports: every export of the published registry with its status and the SHA-256 of each
-- file it was read from, so a release names exactly which site data it holds.
SELECT
    e.site_id, e.export_id, e.status, e.is_current,
    list({ 'file_name': f.file_name, 'sha256': f.file_sha256 } ORDER BY f.file_name)
        FILTER (f.file_name IS NOT NULL) AS files
FROM exports AS e
LEFT JOIN file_counts AS f USING (site_id, export_id)
GROUP BY ALL
ORDER BY e.site_id, e.export_id;
