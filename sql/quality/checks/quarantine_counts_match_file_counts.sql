-- Files whose quarantined rows (registry.file_counts) are not the distinct lines the counts-only quarantine names:
-- the analysts' quarantine must name exactly the lines the conservation ledger counts.
SELECT f.site_id, f.export_id, f.file_name, f.rows_quarantined, coalesce(c.lines, 0) AS lines_counted
FROM registry.file_counts AS f LEFT JOIN (SELECT site_id, export_id, file_name,
count(DISTINCT line) AS lines FROM registry.quarantine, unnest(source_lines) AS u (line) GROUP BY ALL)
AS c USING (site_id, export_id, file_name) WHERE f.rows_quarantined <> coalesce(c.lines, 0)
