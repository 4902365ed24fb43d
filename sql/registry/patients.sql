-- registry.patients: one row per patient of each site's current export, under a pseudonymous key.
-- Patients with neuropathy that predates their cancer-related pain stay in the registry but outside the
-- analysis cohort (in_analysis_cohort = false), as in the source study.
CREATE OR REPLACE TABLE registry.patients AS
SELECT
    k.patient_key,
    p.site_id,
    p.sex,
    p.birth_year,
    p.weight_kg,
    p.cancer_type,
    p.metastatic,
    p.cnp_etiology,
    p.prior_neuropathy,
    p.cnp_diagnosis_date,
    NOT p.prior_neuropathy AS in_analysis_cohort,
    CASE WHEN p.prior_neuropathy THEN 'prior_neuropathy' END AS cohort_exclusion_reason,
    p.export_id,
    'patients.csv' AS source_file,
    p.source_line
FROM staging.patients AS p
JOIN keys.patient_keys AS k USING (site_id, export_id, patient_id)
ORDER BY p.site_id, p.source_line;
