-- metrics_partial.time_to_event_tallies (working store only, never published): each site's counts behind the
-- time-to-event curves (metrics.time_to_event): per endpoint, status and day, how many relief episodes or
-- treatment courses ended there with an event, or were censored there. A Kaplan–Meier curve and an
-- Aalen–Johansen cumulative incidence depend on their subjects only through these counts (events, censorings
-- and, from them, the number at risk on each day), so the registry-wide curves are computed from the sites'
-- counts added up: the same numbers, and the same bits, as a fit on every episode
-- (tests/test_metrics_time_to_event.py).
-- A site's counts come from its own patients only, so they are rebuilt only for the sites whose rows changed
-- (ketreg/incremental/sites.py).
--
-- `relief_episodes` and `treatment_courses` are the queries of sql/metrics/relief_episodes.sql and
-- sql/metrics/treatment_courses.sql (what is an event and what is censored, and why), given to this query as
-- CTEs by ketreg/metrics/build.py (`time_to_event_tallies_sql`).
--
--   episodes   relief episodes (infusions) or treatment courses (patients) in the row.
--   patients   of them, the patient's first analysed one (by day, then key): summed over a site's rows, the
--              patients the curve is over. An episode without a relief duration is not analysed (no day).
SELECT
    site_id,
    'relief_duration' AS endpoint,
    status,
    time_days,
    relief_ended AS event,
    NULL::VARCHAR AS reason,
    count(*) AS episodes,
    count(*) FILTER (first_of_patient) AS patients
FROM (
    SELECT
        site_id,
        status,
        time_days,
        relief_ended,
        time_days IS NOT NULL
        AND row_number() OVER (PARTITION BY patient_key ORDER BY time_days NULLS LAST, infusion_key) = 1
            AS first_of_patient
    FROM relief_episodes
) AS episodes
GROUP BY site_id, status, time_days, relief_ended
UNION ALL
SELECT
    site_id,
    'time_on_treatment' AS endpoint,
    status,
    time_days,
    discontinued AS event,
    reason,
    count(*) AS episodes,
    count(*) AS patients
FROM treatment_courses
GROUP BY site_id, status, time_days, discontinued, reason
