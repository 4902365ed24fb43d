-- site_private.quarantine (working store only, never published): every row a site sent that failed the
-- contract, with the site's own record id, the raw values as received and every failed rule in words. Only
-- the site that sent a row gets it back (its data-manager folder, <reports>/sites/<site_id>/); analysts get
-- counts (registry.quarantine). The quarantine of earlier exports stays on record (is_current_export = false).
CREATE OR REPLACE TABLE site_private.quarantine AS
SELECT
    q.site_id,
    q.export_id,
    q.file_name,
    q.source_line,
    q.record_id,
    q.raw_values,
    q.reasons,
    array_to_string(list_transform(q.reasons, lambda r: r.message), '; ') AS reason_text,
    e.is_current AS is_current_export
FROM staging.quarantine AS q
JOIN registry.exports AS e USING (site_id, export_id)
ORDER BY q.site_id, q.export_id, q.file_name, q.source_line;
