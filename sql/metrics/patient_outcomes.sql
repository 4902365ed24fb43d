-- metrics.patient_outcomes: one row per patient of the analysis cohort (no neuropathy before the cancer-related
-- pain) with what the clinic wants to know about their course: pain at baseline, the best relief during
-- induction, whether they responded, how far the rate went, whether and why they stopped, how long relief
-- lasted, and whether pain came back when treatment was interrupted from outside.
--
-- Definitions (thresholds are $-parameters from the protocol file):
--   baseline NPRS   the latest `baseline` assessment with an NPRS at or before the first infusion's start,
--                   else the latest `pre` assessment of infusion 1 with an NPRS.
--   induction       infusion numbers 1 … $induction_infusions.
--   induction window  `post` and `follow_up` assessments linked to an induction infusion, or unlinked and
--                   dated from the first infusion's start to before the first maintenance infusion starts
--                   (no upper bound when there is none).
--   responder       some assessment of the induction window has NPRS ≤ baseline × (1 − $responder_reduction)
--                   or subjective_improvement true. NPRS and the baseline are integers, so the 1e-9 only keeps
--                   an exact 30 % reduction (10 → 7) from being lost to floating-point rounding.
--   substantial responder  NPRS ≤ baseline × (1 − $substantial_reduction) in the induction window; a
--                   patient's "feels better" says nothing about how much, so it does not count here.
--   A baseline of 0 leaves no pain to reduce: such a patient can respond only by subjective report.
--   responder and substantial_responder are NULL for a patient without any infusion.
--   infusion numbers  the infusion's position in the site's record, quarantined infusions included
--                   (keys.infusion_positions, sql/keys/infusion_positions.sql); the first infusion's start and the
--                   first maintenance infusion's start are those of the record, accepted or not.
--   course incomplete the site's record holds a quarantined infusion of the patient whose start cannot be read,
--                   so no infusion's number is certain: every induction-based column (best reduction, end of
--                   induction, responder, substantial responder, subjective improvement, the primary endpoint)
--                   is NULL and the patient is in none of their rates (counted in metrics.patient_flow).
--
-- The primary estimand (ICH E9(R1); docs/metrics.md, "Statistical analysis plan"), over treated patients with a
-- complete course:
--   primary assessment  the latest `pre` NPRS of infusion $primary_pre_infusion_number; without one, the
--                   `follow_up` NPRS assessed closest to day $primary_follow_up_target_day after the start of
--                   infusion 1 (day 0), at most $primary_follow_up_window_days days from it (ties: the earlier,
--                   then the earlier line). Never a `post` score: that measures the hours after a dose.
--   primary_assessment_observed  that NPRS and a baseline NPRS exist (the endpoint can be judged).
--   sustained_responder  NPRS at the primary assessment ≤ baseline × (1 − $responder_reduction); a patient
--                   whose endpoint cannot be judged is a non-responder (composite strategy: missing = false).
--   nprs_primary, nprs_change_primary  that NPRS, and it minus baseline (NULL when missing; never another
--                   timepoint in its place).
CREATE OR REPLACE TABLE metrics.patient_outcomes AS
WITH cohort AS (
    SELECT patient_key, site_id, cnp_etiology, cancer_type, metastatic
    FROM registry.patients
    WHERE in_analysis_cohort
),

-- The patient's course as the site recorded it, quarantined infusions included.
record AS (
    SELECT
        pk.patient_key,
        count(p.infusion_number) AS recorded_infusions,
        count(*) FILTER (p.infusion_number IS NULL) AS unplaced_infusions,
        min(p.start_time) FILTER (p.infusion_number = 1) AS first_infusion_start,
        min(p.start_time) FILTER (p.infusion_number = $induction_infusions + 1) AS first_maintenance_start
    FROM keys.infusion_positions AS p
    JOIN keys.patient_keys AS pk USING (site_id, export_id, patient_id)
    GROUP BY pk.patient_key
),

course AS (
    SELECT
        c.patient_key,
        count(i.infusion_key) AS infusion_count,
        coalesce(any_value(r.recorded_infusions), 0) AS recorded_infusions,
        coalesce(any_value(r.unplaced_infusions), 0) > 0 AS course_incomplete,
        any_value(r.first_infusion_start) AS first_infusion_start,
        any_value(r.first_maintenance_start) AS first_maintenance_start,
        max(i.max_rate_mg_h) AS max_rate_mg_h,
        max(i.max_rate_mg_kg_h) AS max_rate_mg_kg_h,
        max(i.relief_duration_days) AS longest_relief_days,
        bool_or(i.relief_duration_days > $durable_relief_days) AS durable_relief
    FROM cohort AS c
    LEFT JOIN registry.infusions AS i USING (patient_key)
    LEFT JOIN record AS r USING (patient_key)
    GROUP BY c.patient_key
),

baseline_candidates AS (
    SELECT a.patient_key, a.nprs, a.assessed_at, a.source_line, 1 AS preference, 'baseline' AS source
    FROM registry.assessments AS a
    JOIN course AS c USING (patient_key)
    WHERE a.timepoint = 'baseline'
      AND a.nprs IS NOT NULL
      AND (c.first_infusion_start IS NULL OR a.assessed_at <= c.first_infusion_start)
    UNION ALL
    SELECT a.patient_key, a.nprs, a.assessed_at, a.source_line, 2, 'pre_infusion_1'
    FROM registry.assessments AS a
    JOIN registry.infusions AS i USING (infusion_key)
    WHERE a.timepoint = 'pre' AND i.infusion_number = 1 AND a.nprs IS NOT NULL
),

-- A baseline assessment beats the pre-infusion score; among equals, the latest one (the later line of the
-- site's file when two share a time, so that every run picks the same).
baseline AS (
    SELECT patient_key, nprs AS nprs_baseline, source AS baseline_source
    FROM baseline_candidates
    QUALIFY row_number() OVER (
        PARTITION BY patient_key ORDER BY preference, assessed_at DESC, source_line DESC
    ) = 1
),

induction_window AS (
    SELECT a.patient_key, a.assessed_at, a.source_line, a.nprs, a.subjective_improvement
    FROM registry.assessments AS a
    JOIN course AS c USING (patient_key)
    LEFT JOIN registry.infusions AS i ON i.infusion_key = a.infusion_key
    WHERE a.timepoint IN ('post', 'follow_up')
      AND (
          i.infusion_number <= $induction_infusions
          OR (
              a.infusion_key IS NULL
              AND a.assessed_at >= c.first_infusion_start
              AND (c.first_maintenance_start IS NULL OR a.assessed_at < c.first_maintenance_start)
          )
      )
),

induction_response AS (
    SELECT
        w.patient_key,
        max(100.0 * (b.nprs_baseline - w.nprs) / b.nprs_baseline) FILTER (b.nprs_baseline > 0)
            AS best_nprs_reduction_pct,
        bool_or(b.nprs_baseline > 0 AND w.nprs <= b.nprs_baseline * (1 - $responder_reduction) + 1e-9)
            AS nprs_responder,
        bool_or(b.nprs_baseline > 0 AND w.nprs <= b.nprs_baseline * (1 - $substantial_reduction) + 1e-9)
            AS nprs_substantial_responder,
        bool_or(w.subjective_improvement) AS subjective_improvement
    FROM induction_window AS w
    LEFT JOIN baseline AS b USING (patient_key)
    GROUP BY w.patient_key
),

-- The last NPRS of the induction window: the end-of-induction pain a trial would measure.
end_of_induction AS (
    SELECT patient_key, nprs AS nprs_end_of_induction
    FROM induction_window
    WHERE nprs IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY patient_key ORDER BY assessed_at DESC, source_line DESC) = 1
),

-- The latest discontinuation says why the patient stopped.
discontinuation AS (
    SELECT patient_key, event_date AS discontinued_on, reason AS discontinuation_reason
    FROM registry.dispositions
    WHERE status = 'discontinued'
    QUALIFY row_number() OVER (PARTITION BY patient_key ORDER BY event_date DESC, source_line DESC) = 1
),

-- The first interruption from outside (in the study: the pandemic), and the first NPRS long enough after it.
interruption AS (
    SELECT patient_key, min(event_date) AS interrupted_on
    FROM registry.dispositions
    WHERE status = 'interrupted' AND reason = 'external_interruption'
    GROUP BY patient_key
),

after_interruption AS (
    SELECT ir.patient_key, a.nprs AS nprs_after_interruption
    FROM interruption AS ir
    JOIN registry.assessments AS a USING (patient_key)
    WHERE a.nprs IS NOT NULL
      AND date_diff('day', ir.interrupted_on, CAST(a.assessed_at AS DATE)) >= $interruption_follow_up_days
    QUALIFY row_number() OVER (PARTITION BY ir.patient_key ORDER BY a.assessed_at, a.source_line) = 1
),

any_interruption AS (
    SELECT DISTINCT patient_key FROM registry.dispositions WHERE status = 'interrupted'
),

primary_candidates AS (
    SELECT a.patient_key, a.nprs, 1 AS preference, 0 AS days_from_target, a.assessed_at, a.source_line,
           'pre_infusion' AS source
    FROM registry.assessments AS a
    JOIN registry.infusions AS i USING (infusion_key)
    WHERE a.timepoint = 'pre' AND i.infusion_number = $primary_pre_infusion_number AND a.nprs IS NOT NULL
    UNION ALL
    SELECT f.patient_key, f.nprs, 2, abs(f.day - $primary_follow_up_target_day), f.assessed_at, f.source_line,
           'follow_up'
    FROM (
        SELECT a.*, date_diff('day', CAST(k.first_infusion_start AS DATE), CAST(a.assessed_at AS DATE)) AS day
        FROM registry.assessments AS a
        JOIN course AS k USING (patient_key)
        WHERE a.timepoint = 'follow_up' AND a.nprs IS NOT NULL
    ) AS f
    WHERE abs(f.day - $primary_follow_up_target_day) <= $primary_follow_up_window_days
),

-- The pre-infusion score beats a follow-up; the latest pre-infusion score (as for the baseline), the follow-up
-- closest to the target day.
primary_assessment AS (
    SELECT patient_key, nprs AS nprs_primary, source AS primary_assessment_source, assessed_at
    FROM primary_candidates
    QUALIFY row_number() OVER (
        PARTITION BY patient_key
        ORDER BY preference, days_from_target, CASE WHEN preference = 1 THEN assessed_at END DESC, assessed_at,
                 source_line
    ) = 1
),

-- Patients in the induction-based endpoints: treated, with every infusion placed in their course.
evaluable AS (
    SELECT patient_key FROM course WHERE infusion_count > 0 AND NOT course_incomplete
)

SELECT
    c.patient_key,
    c.site_id,
    c.cnp_etiology,
    c.cancer_type,
    c.metastatic,
    b.nprs_baseline,
    b.baseline_source,
    CASE
        WHEN b.nprs_baseline IS NULL THEN 'unknown'
        WHEN b.nprs_baseline >= $severe_baseline_nprs_from THEN format('{}-10', $severe_baseline_nprs_from)
        WHEN b.nprs_baseline >= $moderate_baseline_nprs_from
            THEN format('{}-{}', $moderate_baseline_nprs_from, $severe_baseline_nprs_from - 1)
        ELSE format('0-{}', $moderate_baseline_nprs_from - 1)
    END AS baseline_nprs_band,
    CASE WHEN ev.patient_key IS NOT NULL THEN round(r.best_nprs_reduction_pct, 1) END AS best_nprs_reduction_pct,
    CASE WHEN ev.patient_key IS NOT NULL THEN e.nprs_end_of_induction END AS nprs_end_of_induction,
    CASE WHEN ev.patient_key IS NOT NULL THEN e.nprs_end_of_induction - b.nprs_baseline END
        AS nprs_change_end_of_induction,
    CASE WHEN ev.patient_key IS NOT NULL
        THEN coalesce(r.nprs_responder, false) OR coalesce(r.subjective_improvement, false) END AS responder,
    CASE WHEN ev.patient_key IS NOT NULL THEN coalesce(r.nprs_substantial_responder, false) END
        AS substantial_responder,
    CASE WHEN ev.patient_key IS NOT NULL THEN r.subjective_improvement END AS subjective_improvement,
    k.infusion_count,
    k.max_rate_mg_h,
    k.max_rate_mg_kg_h,
    d.patient_key IS NOT NULL AS discontinued,
    d.discontinuation_reason,
    d.discontinued_on,
    k.longest_relief_days,
    k.durable_relief,
    ai.patient_key IS NOT NULL AS interrupted,
    ir.interrupted_on AS externally_interrupted_on,
    ai_nprs.nprs_after_interruption,
    ai_nprs.nprs_after_interruption >= b.nprs_baseline - $return_to_baseline_margin_nprs
        AS returned_to_baseline_after_interruption,
    k.recorded_infusions,
    k.course_incomplete,
    CASE WHEN ev.patient_key IS NOT NULL THEN pa.primary_assessment_source END AS primary_assessment_source,
    CASE WHEN ev.patient_key IS NOT NULL
        THEN date_diff('day', CAST(k.first_infusion_start AS DATE), CAST(pa.assessed_at AS DATE)) END
        AS primary_assessment_day,
    CASE WHEN ev.patient_key IS NOT NULL THEN pa.nprs_primary IS NOT NULL AND b.nprs_baseline IS NOT NULL END
        AS primary_assessment_observed,
    CAST(CASE WHEN ev.patient_key IS NOT NULL THEN pa.nprs_primary END AS DOUBLE) AS nprs_primary,
    CAST(CASE WHEN ev.patient_key IS NOT NULL THEN pa.nprs_primary - b.nprs_baseline END AS DOUBLE)
        AS nprs_change_primary,
    CASE WHEN ev.patient_key IS NOT NULL THEN coalesce(
        b.nprs_baseline > 0 AND pa.nprs_primary <= b.nprs_baseline * (1 - $responder_reduction) + 1e-9, false
    ) END AS sustained_responder
FROM cohort AS c
JOIN course AS k USING (patient_key)
LEFT JOIN baseline AS b USING (patient_key)
LEFT JOIN induction_response AS r USING (patient_key)
LEFT JOIN end_of_induction AS e USING (patient_key)
LEFT JOIN discontinuation AS d USING (patient_key)
LEFT JOIN interruption AS ir USING (patient_key)
LEFT JOIN after_interruption AS ai_nprs USING (patient_key)
LEFT JOIN any_interruption AS ai USING (patient_key)
LEFT JOIN primary_assessment AS pa USING (patient_key)
LEFT JOIN evaluable AS ev USING (patient_key)
ORDER BY c.site_id, c.patient_key;
