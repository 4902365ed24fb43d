-- registry.dispositions: dated changes in each patient's course (continuing, discontinued, interrupted,
-- resumed) with the reason, for the current exports.
CREATE OR REPLACE TABLE registry.dispositions AS
SELECT
    pk.patient_key,
    d.site_id,
    d.event_date,
    d.status,
    d.reason,
    d.export_id,
    'dispositions.csv' AS source_file,
    d.source_line
FROM staging.dispositions AS d
JOIN keys.patient_keys AS pk USING (site_id, export_id, patient_id)
ORDER BY d.site_id, d.source_line;
