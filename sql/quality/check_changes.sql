-- quality.check_changes: every check of the newest run compared with the run before it. A failure is
-- 'new' when the check passed (or did not exist) before, 'persisting' when it failed in both runs, and
-- 'resolved' when it failed before and passes (or no longer applies) now; everything else is 'passing'.
CREATE OR REPLACE TABLE quality.check_changes AS
WITH runs AS (
    SELECT run_id, max(run_at) AS run_at, row_number() OVER (ORDER BY max(run_at) DESC) AS recency
    FROM quality.check_results
    GROUP BY run_id
),
current_run AS (
    SELECT r.* FROM quality.check_results AS r JOIN runs USING (run_id) WHERE runs.recency = 1
),
previous_run AS (
    SELECT r.* FROM quality.check_results AS r JOIN runs USING (run_id) WHERE runs.recency = 2
)
SELECT
    check_id,
    coalesce(cur.source, prev.source) AS source,
    coalesce(cur.category, prev.category) AS category,
    coalesce(cur.table_name, prev.table_name) AS table_name,
    coalesce(cur.site_id, prev.site_id) AS site_id,
    coalesce(cur.check_name, prev.check_name) AS check_name,
    coalesce(cur.description, prev.description) AS description,
    CASE
        WHEN NOT cur.passed AND coalesce(prev.passed, true) THEN 'new'
        WHEN NOT cur.passed AND NOT prev.passed THEN 'persisting'
        WHEN NOT prev.passed AND coalesce(cur.passed, true) THEN 'resolved'
        ELSE 'passing'
    END AS change,
    prev.numerator AS previous_numerator,
    cur.numerator AS current_numerator,
    cur.denominator AS current_denominator,
    (SELECT run_id FROM runs WHERE recency = 2) AS previous_run_id,
    (SELECT run_id FROM runs WHERE recency = 1) AS current_run_id
FROM current_run AS cur
FULL OUTER JOIN previous_run AS prev USING (check_id)
ORDER BY site_id, table_name, check_name;
