-- The sites with data in the published registry, as copied into the working database before the check.
SELECT count(*) FROM publish_guard.published_sites WHERE rows_published > 0
