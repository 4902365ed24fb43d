-- Treatment courses: one row per treated analysis-cohort patient (at least one valid infusion), with the time
-- on treatment and how it ended. Read by ketreg/metrics/event_times.py (a query, not a table).
--
-- Time origin: the day of the first infusion. The course ends with
--   discontinued              the patient's latest `discontinued` disposition (as in metrics.patient_outcomes),
--                             an event with its reason (the competing causes of the cumulative incidences),
-- and is censored
--   at lost_to_follow_up      when that discontinuation's reason is `lost_to_follow_up` (whether treatment
--                             stopped is unknown);
--   at external_interruption  at the first `interrupted` disposition for `external_interruption` (in the study,
--                             the pandemic) dated before the discontinuation, or at a discontinuation for that
--                             reason: a stop imposed from outside says nothing about the treatment (a
--                             hypothetical strategy);
--   at last_contact           otherwise, at the latest infusion, assessment or disposition on record.
WITH treated AS (
    SELECT i.patient_key, p.site_id, min(CAST(i.start_time AS DATE)) AS first_infusion_date
    FROM registry.infusions AS i
    JOIN registry.patients AS p USING (patient_key)
    WHERE p.in_analysis_cohort
    GROUP BY i.patient_key, p.site_id
),

discontinuation AS (
    SELECT patient_key, event_date AS discontinued_on, reason
    FROM registry.dispositions
    WHERE status = 'discontinued'
    QUALIFY row_number() OVER (PARTITION BY patient_key ORDER BY event_date DESC, source_line DESC) = 1
),

external_interruption AS (
    SELECT patient_key, min(event_date) AS interrupted_on
    FROM registry.dispositions
    WHERE status = 'interrupted' AND reason = 'external_interruption'
    GROUP BY patient_key
),

contacts AS (
    SELECT patient_key, CAST(start_time AS DATE) AS contact_date FROM registry.infusions
    UNION ALL
    SELECT patient_key, CAST(assessed_at AS DATE) FROM registry.assessments
    UNION ALL
    SELECT patient_key, event_date FROM registry.dispositions
),

last_contact AS (
    SELECT patient_key, max(contact_date) AS last_contact_on FROM contacts GROUP BY patient_key
),

course_end AS (
    SELECT
        t.patient_key,
        t.site_id,
        t.first_infusion_date,
        CASE
            WHEN e.interrupted_on IS NOT NULL AND (d.discontinued_on IS NULL OR e.interrupted_on < d.discontinued_on)
                THEN 'censored_external_interruption'
            WHEN d.reason = 'external_interruption' THEN 'censored_external_interruption'
            WHEN d.reason = 'lost_to_follow_up' THEN 'censored_lost_to_follow_up'
            WHEN d.discontinued_on IS NOT NULL THEN 'discontinued'
            ELSE 'censored_last_contact'
        END AS status,
        CASE
            WHEN e.interrupted_on IS NOT NULL AND (d.discontinued_on IS NULL OR e.interrupted_on < d.discontinued_on)
                THEN e.interrupted_on
            WHEN d.discontinued_on IS NOT NULL THEN d.discontinued_on
            ELSE l.last_contact_on
        END AS ended_on,
        d.reason AS discontinuation_reason
    FROM treated AS t
    LEFT JOIN discontinuation AS d USING (patient_key)
    LEFT JOIN external_interruption AS e USING (patient_key)
    LEFT JOIN last_contact AS l USING (patient_key)
)

SELECT
    patient_key,
    site_id,
    -- A record dated before the first infusion cannot end the course before it started.
    greatest(date_diff('day', first_infusion_date, ended_on), 0) AS time_days,
    status = 'discontinued' AS discontinued,
    CASE WHEN status = 'discontinued' THEN discontinuation_reason END AS reason,
    status
FROM course_end
ORDER BY site_id, patient_key;
