-- registry.adverse_events: adverse events of the current exports, each tied to its infusion. The body-system
-- category is taken from the site when given, else derived from the term (category_derived = true).
CREATE OR REPLACE TABLE registry.adverse_events AS
SELECT
    left(pseudonym('adverse_event/' || ae.site_id || '/' || ae.ae_id), 32) AS ae_key,
    pk.patient_key,
    ik.infusion_key,
    ae.site_id,
    ae.onset_time,
    ae.term,
    coalesce(ae.category, t.category) AS category,
    ae.category IS NULL AS category_derived,
    ae.grade,
    ae.serious,
    ae.action_taken,
    ae.outcome,
    ae.export_id,
    'adverse_events.csv' AS source_file,
    ae.source_line
FROM staging.adverse_events AS ae
JOIN keys.patient_keys AS pk USING (site_id, export_id, patient_id)
JOIN keys.infusion_keys AS ik USING (site_id, export_id, infusion_id)
JOIN registry.ae_term_categories AS t ON t.term = ae.term
ORDER BY ae.site_id, ae.source_line;
