-- One file's part of registry.export_changes: what each site's current export changed against the site's
-- previous accepted export, matched on the record's own id. Rendered once per contract file by
-- ketreg/registry/export_changes.py, which fills the slots {table}, {file_name}, {record_id} and {changed_columns}
-- with the contract's names only (ketreg.warehouse.sql_files.render_sql).
WITH pairs AS (
    SELECT site_id, export_id, previous_export_id
    FROM (
        SELECT
            site_id,
            export_id,
            is_current,
            lead(export_id) OVER (PARTITION BY site_id ORDER BY export_id DESC) AS previous_export_id
        FROM registry.exports
        WHERE status = 'accepted'
    ) AS accepted_exports
    WHERE is_current AND previous_export_id IS NOT NULL
),
cur AS (
    SELECT t.*, {record_id} AS record_id, p.previous_export_id
    FROM staging.{table} AS t JOIN pairs AS p USING (site_id, export_id)
),
prev AS (
    SELECT t.*, {record_id} AS record_id
    FROM staging.{table} AS t JOIN pairs AS p ON t.site_id = p.site_id AND t.export_id = p.previous_export_id
),
compared AS (
    SELECT
        coalesce(cur.site_id, prev.site_id) AS site_id,
        CASE
            WHEN prev.record_id IS NULL THEN 'added'
            WHEN cur.record_id IS NULL THEN 'removed'
            ELSE 'kept'
        END AS change,
        CASE
            WHEN cur.record_id IS NOT NULL AND prev.record_id IS NOT NULL
            THEN list_filter([{changed_columns}], lambda c: c IS NOT NULL)
            ELSE []
        END AS changed_columns
    FROM cur
    FULL JOIN prev ON cur.site_id = prev.site_id AND cur.record_id = prev.record_id
)
SELECT
    c.site_id,
    p.export_id,
    p.previous_export_id,
    {file_name} AS file_name,
    count(*) FILTER (c.change = 'added') AS rows_added,
    count(*) FILTER (c.change = 'removed') AS rows_removed,
    count(*) FILTER (c.change = 'kept' AND len(c.changed_columns) > 0) AS rows_changed,
    count(*) FILTER (c.change = 'kept' AND len(c.changed_columns) = 0) AS rows_unchanged,
    list_sort(list_distinct(flatten(list(c.changed_columns)))) AS columns_changed
FROM compared AS c
JOIN pairs AS p USING (site_id)
GROUP BY c.site_id, p.export_id, p.previous_export_id
