-- keys.infusion_keys (private, never published): pseudonymous infusion keys and each accepted infusion's number
-- in the patient's course, which assessments, adverse events and deviations refer to. The number is the
-- infusion's position in the site's record, quarantined infusions included (keys.infusion_positions), so a
-- quarantined infusion 1 leaves the next one infusion 2.
CREATE OR REPLACE TABLE keys.infusion_keys AS
SELECT
    p.site_id,
    p.export_id,
    p.infusion_id,
    left(pseudonym('infusion/' || p.site_id || '/' || p.infusion_id), 32) AS infusion_key,
    p.infusion_number
FROM keys.infusion_positions AS p
WHERE NOT p.quarantined;
