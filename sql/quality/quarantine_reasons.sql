-- Quarantined rows per site, export, file and failed rule (from the counts-only registry.quarantine; a row that
-- broke a rule in two columns is counted once for the rule). Rows quarantined only because their parent row was
-- (parent_quarantined) come after the faults that caused them.
WITH counted AS (
    SELECT site_id, export_id, file_name, rule, count(DISTINCT line) AS quarantined_rows
    FROM registry.quarantine, unnest(source_lines) AS u (line)
    GROUP BY ALL
)
SELECT site_id, export_id, file_name, rule, quarantined_rows
FROM counted
ORDER BY site_id, export_id, rule = 'parent_quarantined',
    list_position(['patients.csv', 'infusions.csv', 'assessments.csv', 'adverse_events.csv', 'dispositions.csv'],
                  file_name),
    quarantined_rows DESC, rule;
