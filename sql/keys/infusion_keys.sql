-- keys.infusion_keys (private, never published): pseudonymous infusion keys and each infusion's number in the
-- patient's course (1, 2, 3 … by start time), which assessments, adverse events and deviations refer to.
CREATE OR REPLACE TABLE keys.infusion_keys AS
SELECT
    i.site_id,
    i.export_id,
    i.infusion_id,
    left(pseudonym('infusion/' || i.site_id || '/' || i.infusion_id), 32) AS infusion_key,
    row_number() OVER (PARTITION BY i.site_id, i.patient_id ORDER BY i.start_time, i.infusion_id) AS infusion_number
FROM staging.infusions AS i
JOIN registry.exports AS e USING (site_id, export_id)
WHERE e.is_current;
