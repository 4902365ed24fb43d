-- site_private.exports (working store only, never published): why an export was rejected and the notices
-- about it, in the words the site needs to fix its export. These messages name the site's files and columns
-- and may quote what the site sent, so they go back to that site only (its data-manager folder); analysts
-- get each export's status and the number of notices (registry.exports).
CREATE OR REPLACE TABLE site_private.exports AS
SELECT
    e.site_id,
    e.export_id,
    e.status,
    e.is_current,
    s.rejection_reason,
    coalesce(s.notices, []) AS notices
FROM registry.exports AS e
JOIN staging.exports AS s USING (site_id, export_id)
ORDER BY e.site_id, e.export_id;
