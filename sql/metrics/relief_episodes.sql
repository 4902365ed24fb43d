-- Relief episodes: one row per valid infusion of a treated analysis-cohort patient, with how long its relief
-- was followed and whether its end was seen. Read by ketreg/metrics/event_times.py (a query, not a table).
--
-- Time origin: the day the infusion started. Relief reported as `relief_duration_days` ended (an event) on
-- day relief_duration_days, unless something cut the observation short first; then the episode is censored
-- at the earliest of
--   next_infusion        the patient's next infusion started on or before the day relief would have ended
--                        (relief still going when the next dose was given: its natural end is unseen);
--   interruption         an `interrupted` disposition (any reason) dated after the infusion;
--   lost_to_follow_up    a `discontinued` disposition for `lost_to_follow_up` dated after the infusion.
-- Infusions without a recorded relief duration are not analysed (counted as `not_recorded`).
WITH cohort_infusions AS (
    SELECT
        i.infusion_key,
        i.patient_key,
        i.site_id,
        i.infusion_number,
        CAST(i.start_time AS DATE) AS infusion_date,
        i.relief_duration_days,
        lead(CAST(i.start_time AS DATE)) OVER (
            PARTITION BY i.patient_key ORDER BY i.infusion_number, i.start_time, i.infusion_key
        ) AS next_infusion_date
    FROM registry.infusions AS i
    JOIN registry.patients AS p USING (patient_key)
    WHERE p.in_analysis_cohort
),

cut_offs AS (
    SELECT
        c.infusion_key,
        min(d.event_date) FILTER (d.status = 'interrupted') AS interrupted_on,
        min(d.event_date) FILTER (d.status = 'discontinued' AND d.reason = 'lost_to_follow_up') AS lost_on
    FROM cohort_infusions AS c
    JOIN registry.dispositions AS d
      ON d.patient_key = c.patient_key AND d.event_date > c.infusion_date
    GROUP BY c.infusion_key
),

candidates AS (
    SELECT
        c.*,
        date_diff('day', c.infusion_date, c.next_infusion_date) AS days_to_next_infusion,
        date_diff('day', c.infusion_date, k.interrupted_on) AS days_to_interruption,
        date_diff('day', c.infusion_date, k.lost_on) AS days_to_lost_to_follow_up
    FROM cohort_infusions AS c
    LEFT JOIN cut_offs AS k USING (infusion_key)
),

-- The earliest cut-off on or before the end of relief; ties go to the next infusion, then interruption.
cut_off_candidates AS (
    SELECT infusion_key, 'next_infusion' AS censored_by, days_to_next_infusion AS days, 1 AS priority,
           relief_duration_days
    FROM candidates
    UNION ALL
    SELECT infusion_key, 'interruption', days_to_interruption, 2, relief_duration_days FROM candidates
    UNION ALL
    SELECT infusion_key, 'lost_to_follow_up', days_to_lost_to_follow_up, 3, relief_duration_days FROM candidates
),

censoring AS (
    SELECT infusion_key, censored_by, days AS censored_at_days
    FROM cut_off_candidates
    WHERE days IS NOT NULL AND days <= relief_duration_days
    QUALIFY row_number() OVER (PARTITION BY infusion_key ORDER BY days, priority) = 1
)

SELECT
    c.infusion_key,
    c.patient_key,
    c.site_id,
    c.infusion_number,
    c.relief_duration_days,
    CASE WHEN c.relief_duration_days IS NULL THEN NULL
         ELSE coalesce(s.censored_at_days, c.relief_duration_days) END AS time_days,
    CASE WHEN c.relief_duration_days IS NULL THEN NULL ELSE s.infusion_key IS NULL END AS relief_ended,
    CASE WHEN c.relief_duration_days IS NULL THEN 'not_recorded'
         ELSE coalesce(s.censored_by, 'relief_ended') END AS status
FROM candidates AS c
LEFT JOIN censoring AS s USING (infusion_key)
ORDER BY c.site_id, c.patient_key, c.infusion_number, c.infusion_key;
