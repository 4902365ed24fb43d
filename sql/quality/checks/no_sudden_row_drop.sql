-- Files of a site's current export that hold fewer than (1 - {max_row_drop_share}) of the rows of the same file in
-- the site's previous accepted export: a half-copied export or an unmounted share, not a registry to publish.
WITH accepted AS (
    SELECT site_id, export_id, file_name, rows_read,
           row_number() OVER (PARTITION BY site_id, file_name ORDER BY export_id DESC) AS recency
    FROM registry.file_counts WHERE export_status = 'accepted'
)
SELECT cur.site_id, cur.file_name, prev.export_id AS previous_export, prev.rows_read AS previous_rows,
       cur.export_id AS current_export, cur.rows_read AS current_rows
FROM accepted AS cur
JOIN accepted AS prev ON prev.site_id = cur.site_id AND prev.file_name = cur.file_name AND prev.recency = 2
WHERE cur.recency = 1 AND cur.rows_read < (1 - {max_row_drop_share}) * prev.rows_read
