-- registry.exports: every export in the landing folder, whether it was usable, and which one is current.
-- An export is a full snapshot of what a site holds, so the newest accepted export of a site supersedes its
-- earlier ones in every registry table; a rejected export never supersedes anything. Why an export was
-- rejected, and the notices about it, are the site's own text: they stay in the working store
-- (site_private.exports) and go back to that site; analysts get the status and how many notices there were.
CREATE OR REPLACE TABLE registry.exports AS
WITH ranked AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY site_id, status ORDER BY export_id DESC) AS recency_within_status
    FROM staging.exports
)
SELECT
    site_id,
    export_id,
    status,
    len(coalesce(notices, [])) AS notice_count,
    status = 'accepted' AND recency_within_status = 1 AS is_current
FROM ranked
ORDER BY site_id, export_id;
