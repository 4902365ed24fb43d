-- keys.infusion_positions (private, never published): every infusion in each site's current record of a patient,
-- accepted or quarantined, with its position in the patient's course (1, 2, 3 … by start time). An infusion is
-- numbered by the site's record, not by what passed validation: when infusion 1 is quarantined (a rate typed in
-- the wrong unit), the next one is still infusion 2, so baseline, induction and maintenance stay where the clinic
-- put them.
--
--   accepted rows                      numbered by start time (then the site's id: every run numbers alike).
--   quarantined rows, start readable   numbered with them (quarantined = true); their own data never reach the
--                                      registry. The start is read from the row as received (raw_values, text
--                                      in the contract's ISO form once a site mapping has converted it).
--                                      A quarantined row of the same patient and start time as an accepted
--                                      infusion is the same session entered twice and takes no position.
--   quarantined rows, start unreadable infusion_number NULL: nobody can say where it falls, so the patient's
--                                      course is incomplete (metrics.patient_outcomes.course_incomplete) and
--                                      the patient is left out of the induction-based endpoints, counted.
-- A quarantined row whose patient id cannot be read belongs to no patient and is left out here (it stays in the
-- quarantine with its reasons).
CREATE OR REPLACE TABLE keys.infusion_positions AS
WITH current_exports AS (
    SELECT site_id, export_id FROM registry.exports WHERE is_current
),

accepted AS (
    SELECT i.site_id, i.export_id, i.patient_id, i.infusion_id, i.start_time
    FROM staging.infusions AS i
    JOIN current_exports USING (site_id, export_id)
),

-- Blanks around a cell and an empty cell are read the way the parser reads them (missing). Raw values that are
-- not readable JSON (never written so by staging, but the pipeline must not fail on them) give no start: the
-- course is then incomplete rather than numbered by a guess.
quarantined AS (
    SELECT
        q.site_id,
        q.export_id,
        q.source_line,
        CASE WHEN json_valid(q.raw_values)
            THEN nullif(trim(json_extract_string(q.raw_values, '$.patient_id'), E' \t\r\n'), '') END AS patient_id,
        q.record_id AS infusion_id,
        CASE WHEN json_valid(q.raw_values) THEN TRY_CAST(
            nullif(trim(json_extract_string(q.raw_values, '$.start_time'), E' \t\r\n'), '') AS TIMESTAMP
        ) END AS start_time
    FROM staging.quarantine AS q
    JOIN current_exports USING (site_id, export_id)
    WHERE q.file_name = 'infusions.csv'
),

quarantined_placed AS (
    SELECT site_id, export_id, patient_id, min(infusion_id) AS infusion_id, start_time
    FROM quarantined AS q
    WHERE patient_id IS NOT NULL
      AND start_time IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM accepted AS a
          WHERE a.site_id = q.site_id AND a.export_id = q.export_id AND a.patient_id = q.patient_id
            AND a.start_time = q.start_time
      )
    GROUP BY site_id, export_id, patient_id, start_time
),

course AS (
    SELECT site_id, export_id, patient_id, infusion_id, start_time, false AS quarantined FROM accepted
    UNION ALL
    SELECT site_id, export_id, patient_id, infusion_id, start_time, true FROM quarantined_placed
)

SELECT
    site_id,
    export_id,
    patient_id,
    infusion_id,
    start_time,
    quarantined,
    row_number() OVER (
        PARTITION BY site_id, patient_id ORDER BY start_time, quarantined, infusion_id NULLS LAST
    ) AS infusion_number
FROM course
UNION ALL
SELECT site_id, export_id, patient_id, infusion_id, NULL, true, NULL
FROM quarantined
WHERE patient_id IS NOT NULL AND start_time IS NULL
ORDER BY site_id, patient_id, infusion_number NULLS LAST, infusion_id;
