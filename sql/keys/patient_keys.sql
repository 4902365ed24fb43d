-- keys.patient_keys (private, never published): the pseudonymous key of each patient of the current exports.
-- patient_key = HMAC-SHA256(KETREG_PSEUDONYM_KEY, site_id || '/' || patient_id); the same patient keeps the same
-- key across exports and runs, and without the key nobody can go back to the site's patient id.
CREATE OR REPLACE TABLE keys.patient_keys AS
SELECT
    p.site_id,
    p.export_id,
    p.patient_id,
    pseudonym(p.site_id || '/' || p.patient_id) AS patient_key
FROM staging.patients AS p
JOIN registry.exports AS e USING (site_id, export_id)
WHERE e.is_current;
