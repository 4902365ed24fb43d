-- registry.assessments: pain (NPRS), function, satisfaction and opioid use (MME) at baseline, before and after
-- infusions and at follow-up, for the current exports. infusion_key is empty for baseline and follow-up.
CREATE OR REPLACE TABLE registry.assessments AS
SELECT
    left(pseudonym('assessment/' || a.site_id || '/' || a.assessment_id), 32) AS assessment_key,
    pk.patient_key,
    ik.infusion_key,
    a.site_id,
    a.assessed_at,
    a.timepoint,
    a.nprs,
    a.function_score,
    a.satisfaction,
    a.daily_mme,
    a.subjective_improvement,
    a.export_id,
    'assessments.csv' AS source_file,
    a.source_line
FROM staging.assessments AS a
JOIN keys.patient_keys AS pk USING (site_id, export_id, patient_id)
LEFT JOIN keys.infusion_keys AS ik USING (site_id, export_id, infusion_id)
ORDER BY a.site_id, a.source_line;
