-- Sites with rows in the published registry (copied into publish_guard.published_sites before the check) that
-- have none in this run, and are not among the sites retired on purpose ({retired_sites}).
WITH this_run AS (
    SELECT site_id, sum(rows_in_registry) AS rows_in_registry FROM registry.file_counts
    WHERE is_current_export GROUP BY site_id
)
SELECT published.site_id, published.rows_published, coalesce(this_run.rows_in_registry, 0) AS rows_this_run
FROM publish_guard.published_sites AS published LEFT JOIN this_run USING (site_id)
WHERE published.rows_published > 0 AND coalesce(this_run.rows_in_registry, 0) = 0
  AND NOT list_contains({retired_sites}, published.site_id)
ORDER BY published.site_id
