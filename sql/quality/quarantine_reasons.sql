-- Quarantined rows per site, export, file and failed rule; a row that broke several rules counts under each.
WITH failed_rules AS (
    SELECT site_id, export_id, file_name, source_line, unnest(list_transform(reasons, lambda r: r.rule)) AS rule
    FROM registry.quarantine
)
SELECT site_id, export_id, file_name, rule, count(DISTINCT source_line) AS quarantined_rows
FROM failed_rules
GROUP BY ALL
ORDER BY site_id, export_id, quarantined_rows DESC, file_name, rule;
