-- The run summary's most frequent quarantine reasons, root causes first: a parent_quarantined row follows from a
-- fault already counted on its parent.
WITH by_rule AS (
    SELECT file_name, rule, sum(quarantined_rows) AS quarantined_rows
    FROM quarantine
    GROUP BY ALL
)
SELECT file_name, rule, quarantined_rows
FROM by_rule
ORDER BY rule = 'parent_quarantined', quarantined_rows DESC, file_name, rule
LIMIT 8;
