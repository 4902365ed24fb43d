-- The run summary's conservation table: per contract file, rows read, accepted and quarantined over all exports,
-- and the accepted rows of current exports (those in the registry), in the contract's file order.
SELECT
    file_name,
    sum(rows_read) AS rows_read,
    sum(rows_accepted) AS rows_accepted,
    sum(rows_quarantined) AS rows_quarantined,
    sum(rows_accepted) FILTER (is_current_export) AS rows_in_registry
FROM file_counts
GROUP BY file_name
ORDER BY list_position(
    ['patients.csv', 'infusions.csv', 'assessments.csv', 'adverse_events.csv', 'dispositions.csv'], file_name
);
