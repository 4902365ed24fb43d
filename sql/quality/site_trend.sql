-- Failed checks per site in each of the last 12 runs (oldest first); site 'all' holds the registry-wide checks.
WITH runs AS (
    SELECT run_id, max(run_at) AS run_at FROM quality.check_results GROUP BY run_id ORDER BY run_at DESC LIMIT 12
)
SELECT r.run_id, runs.run_at, r.site_id, count_if(NOT r.passed) AS failed_checks, count(*) AS checks
FROM quality.check_results AS r
JOIN runs USING (run_id)
GROUP BY ALL
ORDER BY runs.run_at, r.site_id;
