-- Quarantined rows per site, export, file and failed rule (from the counts-only registry.quarantine; a row that
-- broke a rule in two columns is counted once for the rule).
SELECT site_id, export_id, file_name, rule, count(DISTINCT line) AS quarantined_rows
FROM registry.quarantine, unnest(source_lines) AS u (line)
GROUP BY ALL
ORDER BY site_id, export_id, quarantined_rows DESC, file_name, rule;
