-- metrics_partial.site_tallies (working store only, never published): each site's partial sums of the
-- registry's figures (metrics.registry_metrics), one row per site, metric and stratum: rows that count into the
-- numerator, rows in the denominator, and the sums a mean or a rate needs (values, squared values, seconds of
-- infusion). A site's sums come from its own patients only, so they are rebuilt only for the sites whose rows
-- changed (ketreg/incremental/sites.py), and metrics.registry_metrics adds them up: every sum is of whole
-- numbers, so the total is exactly the one a single pass over every site gives. Definitions of each metric:
-- sql/metrics/registry_metrics.sql and docs/metrics.md.
CREATE OR REPLACE TABLE metrics_partial.site_tallies AS
WITH outcomes AS (
    SELECT * FROM metrics.patient_outcomes
),

cohort_infusions AS (
    SELECT i.infusion_key, i.patient_key
    FROM registry.infusions AS i
    JOIN outcomes USING (patient_key)
),

-- Each patient falls in one stratum of every type; a metric is broken down by the types the catalog lists.
patient_strata AS (
    SELECT patient_key, site_id, 'overall' AS stratum_type, 'all' AS stratum FROM outcomes
    UNION ALL SELECT patient_key, site_id, 'site', site_id FROM outcomes
    UNION ALL SELECT patient_key, site_id, 'etiology', cnp_etiology FROM outcomes
    UNION ALL SELECT patient_key, site_id, 'cancer_type', cancer_type FROM outcomes
    UNION ALL SELECT patient_key, site_id, 'metastatic', coalesce(CAST(metastatic AS VARCHAR), 'unknown') FROM outcomes
    UNION ALL SELECT patient_key, site_id, 'baseline_nprs_band', baseline_nprs_band FROM outcomes
),

-- The measures whose completeness is counted per infusion (from its linked pre and post assessments).
measures (measure) AS (
    SELECT * FROM (VALUES ('nprs_pre'), ('nprs_post'), ('function_score'), ('satisfaction'), ('daily_mme'))
),

-- Strata that belong to one metric instead of to the patient (AE category, resolution, reason, measure).
-- They are listed in full so that a category without any event still shows, as 0.
own_strata AS (
    SELECT DISTINCT 'ae_rate_per_infusion' AS metric, 'ae_category' AS stratum_type, category AS stratum
    FROM registry.ae_term_categories
    UNION ALL
    SELECT 'ae_episode_resolution', 'resolution', resolution
    FROM (VALUES ('self_resolved'), ('intervention')) AS r (resolution)
    UNION ALL
    SELECT 'responder_discontinuation', 'reason', reason
    FROM (VALUES ('unsatisfactory_relief'), ('adverse_event')) AS r (reason)
    UNION ALL
    SELECT 'outcome_completeness', 'measure', measure FROM measures
    UNION ALL
    -- CTCAE v5 grades 1 (mild) … 5 (death), all listed.
    SELECT 'ae_grade_distribution', 'grade', CAST(grade AS VARCHAR) FROM range(1, 6) AS g (grade)
    UNION ALL
    -- Patients by the worst grade they had (CONSORT Harms: participants with each harm, by severity).
    SELECT 'patients_with_ae', 'worst_grade', CAST(grade AS VARCHAR) FROM range(1, 6) AS g (grade)
),

infusion_safety AS (
    SELECT
        ci.infusion_key,
        ci.patient_key,
        count(ae.ae_key) AS ae_records,
        -- Serious (ICH E2A: death, life-threatening, hospitalisation, disability) is what the site ticked;
        -- severe is CTCAE grade ≥ 3. A grade-3 headache is severe, not serious.
        count(ae.ae_key) FILTER (ae.serious) AS serious_ae_records,
        count(ae.ae_key) FILTER (ae.grade >= 3) AS severe_ae_records,
        -- An episode (the AEs of one infusion) resolved by itself when nothing was done about any of them.
        bool_and(ae.action_taken = 'none') AS self_resolved
    FROM cohort_infusions AS ci
    LEFT JOIN registry.adverse_events AS ae USING (infusion_key)
    GROUP BY ci.infusion_key, ci.patient_key
),

-- Exposure in whole seconds, so that sums are exact.
infusion_exposure AS (
    SELECT ci.infusion_key, date_diff('second', i.start_time, i.end_time) AS exposure_s
    FROM cohort_infusions AS ci
    JOIN registry.infusions AS i USING (infusion_key)
),

cohort_adverse_events AS (
    SELECT ci.patient_key, ae.grade
    FROM cohort_infusions AS ci
    JOIN registry.adverse_events AS ae USING (infusion_key)
),

infusion_ae_categories AS (
    SELECT ci.infusion_key, ci.patient_key, cat.category, count(ae.ae_key) AS ae_records
    FROM cohort_infusions AS ci
    CROSS JOIN (SELECT DISTINCT category FROM registry.ae_term_categories) AS cat
    LEFT JOIN registry.adverse_events AS ae ON ae.infusion_key = ci.infusion_key AND ae.category = cat.category
    GROUP BY ci.infusion_key, ci.patient_key, cat.category
),

infusion_measures AS (
    SELECT
        ci.infusion_key,
        ci.patient_key,
        coalesce(bool_or(a.timepoint = 'pre' AND a.nprs IS NOT NULL), false) AS nprs_pre,
        coalesce(bool_or(a.timepoint = 'post' AND a.nprs IS NOT NULL), false) AS nprs_post,
        coalesce(bool_or(a.function_score IS NOT NULL), false) AS function_score,
        coalesce(bool_or(a.satisfaction IS NOT NULL), false) AS satisfaction,
        coalesce(bool_or(a.daily_mme IS NOT NULL), false) AS daily_mme
    FROM cohort_infusions AS ci
    LEFT JOIN registry.assessments AS a USING (infusion_key)
    GROUP BY ci.infusion_key, ci.patient_key
),

infusion_measure_rows AS (
    UNPIVOT infusion_measures
    ON nprs_pre, nprs_post, function_score, satisfaction, daily_mme
    INTO NAME measure VALUE recorded
),

-- One row per thing a metric counts: `hits` go into the numerator and `counted` says whether the row is in
-- the denominator (NULL for counts). Rows without an own stratum are broken down by the patient's strata.
facts AS (
    SELECT patient_key, 'cohort_patients' AS metric, NULL AS stratum_type, NULL AS stratum,
           1 AS hits, NULL::BOOLEAN AS counted
    FROM outcomes
    UNION ALL
    SELECT patient_key, 'cohort_infusions', NULL, NULL, 1, NULL FROM cohort_infusions
    UNION ALL
    SELECT patient_key, 'responder_rate', NULL, NULL, (responder IS TRUE)::INTEGER, responder IS NOT NULL
    FROM outcomes
    UNION ALL
    SELECT patient_key, 'substantial_responder_rate', NULL, NULL, (substantial_responder IS TRUE)::INTEGER,
           substantial_responder IS NOT NULL
    FROM outcomes
    UNION ALL
    SELECT patient_key, 'ae_rate_per_infusion', NULL, NULL, ae_records, true FROM infusion_safety
    UNION ALL
    SELECT patient_key, 'ae_rate_per_infusion', 'ae_category', category, ae_records, true
    FROM infusion_ae_categories
    UNION ALL
    SELECT patient_key, 'infusions_with_ae', NULL, NULL, (ae_records > 0)::INTEGER, true FROM infusion_safety
    UNION ALL
    -- Overall and by patient stratum: the share of episodes that resolved without intervention.
    SELECT patient_key, 'ae_episode_resolution', NULL, NULL, self_resolved::INTEGER, true
    FROM infusion_safety
    WHERE ae_records > 0
    UNION ALL
    SELECT s.patient_key, 'ae_episode_resolution', 'resolution', r.resolution,
           (s.self_resolved = (r.resolution = 'self_resolved'))::INTEGER, true
    FROM infusion_safety AS s
    CROSS JOIN (VALUES ('self_resolved'), ('intervention')) AS r (resolution)
    WHERE s.ae_records > 0
    UNION ALL
    SELECT patient_key, 'serious_ae_rate', NULL, NULL, serious_ae_records, true FROM infusion_safety
    UNION ALL
    SELECT patient_key, 'discontinuation_rate', NULL, NULL, discontinued::INTEGER, true
    FROM outcomes
    WHERE infusion_count > 0
    UNION ALL
    -- By reason, the discontinued patients only: every treated patient is in each reason's denominator, which
    -- metrics.registry_metrics takes from the overall one (the reasons seen anywhere are its strata).
    SELECT patient_key, 'discontinuation_rate', 'reason', coalesce(discontinuation_reason, 'unknown'), 1, NULL
    FROM outcomes
    WHERE discontinued AND infusion_count > 0
    UNION ALL
    SELECT patient_key, 'responder_discontinuation', NULL, NULL,
           (discontinued AND discontinuation_reason IN ('unsatisfactory_relief', 'adverse_event'))::INTEGER, true
    FROM outcomes
    WHERE responder
    UNION ALL
    SELECT o.patient_key, 'responder_discontinuation', 'reason', r.stratum,
           (o.discontinued AND o.discontinuation_reason IS NOT DISTINCT FROM r.stratum)::INTEGER, true
    FROM outcomes AS o
    JOIN own_strata AS r ON r.metric = 'responder_discontinuation'
    WHERE o.responder
    UNION ALL
    SELECT patient_key, 'durable_relief', NULL, NULL, (durable_relief IS TRUE)::INTEGER,
           longest_relief_days IS NOT NULL
    FROM outcomes
    WHERE responder
    UNION ALL
    SELECT patient_key, 'interruption_return_to_baseline', NULL, NULL,
           returned_to_baseline_after_interruption::INTEGER, true
    FROM outcomes
    WHERE returned_to_baseline_after_interruption IS NOT NULL
    UNION ALL
    SELECT patient_key, 'outcome_completeness', NULL, NULL,
           (nprs_pre AND nprs_post AND function_score AND satisfaction AND daily_mme)::INTEGER, true
    FROM infusion_measures
    UNION ALL
    SELECT patient_key, 'outcome_completeness', 'measure', measure, recorded::INTEGER, true
    FROM infusion_measure_rows
    UNION ALL
    SELECT patient_key, 'outcome_completeness_' || measure, NULL, NULL, recorded::INTEGER, true
    FROM infusion_measure_rows
),

-- The endpoints' rows, with two more things to add up: a patient's value for a mean (`value`, whole NPRS
-- points) and an infusion's duration for an exposure-adjusted rate (`exposure_s`).
endpoint_facts AS (
    SELECT patient_key, 'sustained_responder_rate' AS metric, NULL AS stratum_type, NULL AS stratum,
           sustained_responder::INTEGER AS hits, true AS counted, NULL::BIGINT AS value, NULL::BIGINT AS exposure_s
    FROM outcomes
    WHERE sustained_responder IS NOT NULL
    UNION ALL BY NAME
    SELECT patient_key, 'sustained_responder_rate_complete_case' AS metric, sustained_responder::INTEGER AS hits,
           true AS counted
    FROM outcomes
    WHERE primary_assessment_observed
    UNION ALL BY NAME
    -- Best case: every patient whose endpoint is missing is counted a responder (the worst case is the
    -- primary estimand itself, where they are non-responders).
    SELECT patient_key, 'sustained_responder_rate_best_case' AS metric,
           (sustained_responder OR NOT primary_assessment_observed)::INTEGER AS hits, true AS counted
    FROM outcomes
    WHERE sustained_responder IS NOT NULL
    UNION ALL BY NAME
    SELECT patient_key, 'nprs_change_primary' AS metric, (nprs_change_primary IS NOT NULL)::INTEGER AS hits,
           true AS counted, CAST(nprs_change_primary AS BIGINT) AS value
    FROM outcomes
    WHERE sustained_responder IS NOT NULL
    UNION ALL BY NAME
    SELECT patient_key, 'patients_with_ae' AS metric, (sum(ae_records) > 0)::INTEGER AS hits, true AS counted
    FROM infusion_safety
    GROUP BY patient_key
    UNION ALL BY NAME
    SELECT p.patient_key, 'patients_with_ae' AS metric, 'worst_grade' AS stratum_type, g.stratum,
           (CAST(p.worst_grade AS VARCHAR) IS NOT DISTINCT FROM g.stratum)::INTEGER AS hits, true AS counted
    FROM (
        SELECT s.patient_key, max(ae.grade) AS worst_grade
        FROM (SELECT DISTINCT patient_key FROM infusion_safety) AS s
        LEFT JOIN cohort_adverse_events AS ae USING (patient_key)
        GROUP BY s.patient_key
    ) AS p
    CROSS JOIN (SELECT stratum FROM own_strata WHERE metric = 'patients_with_ae') AS g
    UNION ALL BY NAME
    SELECT patient_key, 'severe_ae_rate' AS metric, severe_ae_records AS hits, true AS counted
    FROM infusion_safety
    UNION ALL BY NAME
    SELECT patient_key, 'ae_grade_distribution' AS metric, (grade >= 3)::INTEGER AS hits, true AS counted
    FROM cohort_adverse_events
    UNION ALL BY NAME
    SELECT ae.patient_key, 'ae_grade_distribution' AS metric, 'grade' AS stratum_type, g.stratum,
           (CAST(ae.grade AS VARCHAR) = g.stratum)::INTEGER AS hits, true AS counted
    FROM cohort_adverse_events AS ae
    CROSS JOIN (SELECT stratum FROM own_strata WHERE metric = 'ae_grade_distribution') AS g
    UNION ALL BY NAME
    SELECT s.patient_key, 'ae_rate_per_100_infusion_hours' AS metric, s.ae_records AS hits, true AS counted,
           x.exposure_s
    FROM infusion_safety AS s
    JOIN infusion_exposure AS x USING (infusion_key)
),

all_facts AS (
    SELECT * FROM facts
    UNION ALL BY NAME
    SELECT * FROM endpoint_facts
),

-- Summed per patient first: a patient has many infusions but sits in few strata, so the join to the strata
-- multiplies patients, not infusions (a hundredfold fewer rows on a large registry).
by_patient AS (
    SELECT
        metric,
        patient_key,
        sum(hits) FILTER (counted IS NOT FALSE) AS numerator,
        count(*) FILTER (counted) AS denominator,
        count(value) AS value_n,
        sum(value) AS value_sum,
        sum(value * value) AS value_sum_squares,
        sum(exposure_s) AS exposure_s
    FROM all_facts
    WHERE stratum_type IS NULL
    GROUP BY ALL
),

by_patient_stratum AS (
    SELECT
        s.site_id,
        p.metric,
        s.stratum_type,
        s.stratum,
        sum(p.numerator) AS numerator,
        sum(p.denominator) AS denominator,
        sum(p.value_n) AS value_n,
        sum(p.value_sum) AS value_sum,
        sum(p.value_sum_squares) AS value_sum_squares,
        sum(p.exposure_s) AS exposure_s
    FROM by_patient AS p
    JOIN patient_strata AS s USING (patient_key)
    GROUP BY ALL
),

by_own_stratum AS (
    SELECT
        site_id,
        metric,
        stratum_type,
        stratum,
        sum(hits) FILTER (counted IS NOT FALSE) AS numerator,
        count(*) FILTER (counted) AS denominator,
        count(value) AS value_n,
        sum(value) AS value_sum,
        sum(value * value) AS value_sum_squares,
        sum(exposure_s) AS exposure_s
    FROM all_facts
    JOIN (SELECT patient_key, site_id FROM outcomes) AS patient_sites USING (patient_key)
    WHERE stratum_type IS NOT NULL
    GROUP BY ALL
)

SELECT * FROM by_patient_stratum
UNION ALL BY NAME
SELECT * FROM by_own_stratum;
