-- registry.infusions: one row per infusion session of the current exports, numbered per patient in time
-- order, with its phase (induction for the protocol's first infusions, maintenance after), its duration and,
-- where the patient's weight is known, its rates per kilogram.
CREATE OR REPLACE TABLE registry.infusions AS
SELECT
    ik.infusion_key,
    pk.patient_key,
    i.site_id,
    ik.infusion_number,
    CASE WHEN ik.infusion_number <= $induction_infusions THEN 'induction' ELSE 'maintenance' END AS phase,
    i.start_time,
    i.end_time,
    round(date_diff('second', i.start_time, i.end_time) / 3600.0, 3) AS duration_h,
    i.initial_rate_mg_h,
    i.max_rate_mg_h,
    round(i.initial_rate_mg_h / p.weight_kg, 4) AS initial_rate_mg_kg_h,
    round(i.max_rate_mg_h / p.weight_kg, 4) AS max_rate_mg_kg_h,
    i.total_dose_mg,
    i.completed,
    i.stop_reason,
    i.relief_duration_days,
    i.export_id,
    'infusions.csv' AS source_file,
    i.source_line
FROM staging.infusions AS i
JOIN keys.infusion_keys AS ik USING (site_id, export_id, infusion_id)
JOIN keys.patient_keys AS pk USING (site_id, export_id, patient_id)
JOIN staging.patients AS p USING (site_id, export_id, patient_id)
ORDER BY i.site_id, i.source_line;
