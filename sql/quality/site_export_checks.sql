-- The site-export checks of one run: for each file of each site's current export and each of Kahn's categories,
-- how many rows the contract sent to the quarantine for a rule of that category (numerator) out of the rows the
-- site sent (denominator). `_rule_categories` (rule, category) is registered by ketreg/quality/site_checks.py from
-- the check catalogue (config/check_catalogue.yaml); a rule it does not list counts as $other_rules_category
-- (plausibility: ranges, row rules, uniqueness, protocol limits).
WITH current_files AS (
    SELECT site_id, export_id, file_name, rows_read
    FROM registry.file_counts
    WHERE is_current_export
),
broken_rules AS (
    SELECT site_id, file_name, unnest(source_lines) AS source_line, rule
    FROM registry.quarantine
    WHERE is_current_export
),
broken_rows AS (
    SELECT b.site_id, b.file_name, coalesce(c.category, $other_rules_category) AS category,
           count(DISTINCT b.source_line) AS rows_broken
    FROM broken_rules AS b
    LEFT JOIN _rule_categories AS c USING (rule)
    GROUP BY ALL
),
categories AS (
    SELECT unnest($categories) AS category
)
SELECT
    f.site_id,
    f.export_id,
    f.file_name,
    k.category,
    coalesce(b.rows_broken, 0) AS numerator,
    f.rows_read AS denominator
FROM current_files AS f
CROSS JOIN categories AS k
LEFT JOIN broken_rows AS b USING (site_id, file_name, category)
ORDER BY f.site_id, f.file_name, k.category;
