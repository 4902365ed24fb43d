-- metrics.registry_metrics: the registry's figures in one tidy table, the same way for every site and release:
-- how many patients and infusions the analysis cohort has, how many respond, how safe an infusion is, who stops
-- and why, how long relief lasts, what an interruption does, and how completely outcomes are recorded.
-- One row per metric and stratum; docs/metrics.md defines each metric, its numerator and its denominator.
--
--   unit 'count'        estimate = numerator; no denominator, no interval.
--   unit 'proportion'   estimate = numerator / denominator with the Wilson score 95 % interval.
--   unit 'per_infusion' events per infusion (an infusion can have several, so it is a rate, not a share)
--                       with the Poisson score 95 % interval divided by the number of infusions.
--   unit 'per_100_infusion_hours'  events per 100 hours of infusion (exposure-adjusted): numerator = events,
--                       denominator = infusions, exposure_hours = their summed duration; the Poisson score 95 %
--                       interval of the count over the exposure.
--   unit 'mean'         a mean with its SD: numerator = patients with a value, denominator = patients in the
--                       estimand's population, estimate = mean, sd = sample SD, and the t 95 % interval
--                       (t_quantile_975, registered by ketreg/metrics/build.py).
-- Every sum is of whole numbers (counts, NPRS points, seconds of infusion), so the figures do not depend on the
-- order DuckDB's threads add them up in: every run on the same data gives the same bits.
-- A denominator of 0 gives an empty estimate and interval, never an error. Every patient-level figure is over
-- the analysis cohort (metrics.patient_outcomes); every infusion-level one over those patients' valid infusions
-- (quarantined infusions never reach the registry).
CREATE OR REPLACE TABLE metrics.registry_metrics AS
WITH constants AS (
    -- The 97.5th percentile of the standard normal distribution: a two-sided 95 % interval.
    SELECT 1.959963984540054 AS z
),

outcomes AS (
    SELECT * FROM metrics.patient_outcomes
),

cohort_infusions AS (
    SELECT i.infusion_key, i.patient_key
    FROM registry.infusions AS i
    JOIN outcomes USING (patient_key)
),

-- Each patient falls in one stratum of every type; a metric is broken down by the types the catalog lists.
patient_strata AS (
    SELECT patient_key, 'overall' AS stratum_type, 'all' AS stratum FROM outcomes
    UNION ALL SELECT patient_key, 'site', site_id FROM outcomes
    UNION ALL SELECT patient_key, 'etiology', cnp_etiology FROM outcomes
    UNION ALL SELECT patient_key, 'cancer_type', cancer_type FROM outcomes
    UNION ALL SELECT patient_key, 'metastatic', coalesce(CAST(metastatic AS VARCHAR), 'unknown') FROM outcomes
    UNION ALL SELECT patient_key, 'baseline_nprs_band', baseline_nprs_band FROM outcomes
),

strata AS (
    -- The overall stratum is there even for an empty cohort, so every metric has its overall row.
    SELECT 'overall' AS stratum_type, 'all' AS stratum
    UNION
    SELECT DISTINCT stratum_type, stratum FROM patient_strata
),

catalog (position, metric, unit, stratum_types) AS (
    SELECT * FROM (VALUES
        (1, 'cohort_patients', 'count', ['overall', 'site', 'etiology', 'cancer_type', 'metastatic']),
        (2, 'cohort_infusions', 'count', ['overall', 'site', 'etiology', 'cancer_type', 'metastatic']),
        (3, 'responder_rate', 'proportion',
            ['overall', 'site', 'etiology', 'cancer_type', 'metastatic', 'baseline_nprs_band']),
        (4, 'substantial_responder_rate', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (5, 'ae_rate_per_infusion', 'per_infusion', ['overall', 'site', 'etiology', 'cancer_type']),
        (6, 'infusions_with_ae', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (7, 'ae_episode_resolution', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (8, 'serious_ae_rate', 'per_infusion', ['overall', 'site', 'etiology', 'cancer_type']),
        (9, 'discontinuation_rate', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (10, 'responder_discontinuation', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (11, 'durable_relief', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (12, 'interruption_return_to_baseline', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (13, 'outcome_completeness', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (14, 'outcome_completeness_nprs_pre', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (15, 'outcome_completeness_nprs_post', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (16, 'outcome_completeness_function_score', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (17, 'outcome_completeness_satisfaction', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (18, 'outcome_completeness_daily_mme', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        -- The primary estimand (missing = non-responder) and its sensitivity analyses beside it.
        (19, 'sustained_responder_rate', 'proportion',
            ['overall', 'site', 'etiology', 'cancer_type', 'metastatic', 'baseline_nprs_band']),
        (20, 'sustained_responder_rate_complete_case', 'proportion',
            ['overall', 'site', 'etiology', 'cancer_type', 'metastatic', 'baseline_nprs_band']),
        (21, 'sustained_responder_rate_best_case', 'proportion',
            ['overall', 'site', 'etiology', 'cancer_type', 'metastatic', 'baseline_nprs_band']),
        (22, 'nprs_change_primary', 'mean', ['overall', 'site', 'etiology', 'cancer_type']),
        -- Safety (ICH E2A: seriousness and severity are different questions; CONSORT Harms 2022).
        (23, 'patients_with_ae', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (24, 'severe_ae_rate', 'per_infusion', ['overall', 'site', 'etiology', 'cancer_type']),
        (25, 'ae_grade_distribution', 'proportion', ['overall', 'site', 'etiology', 'cancer_type']),
        (26, 'ae_rate_per_100_infusion_hours', 'per_100_infusion_hours', ['overall', 'site', 'etiology', 'cancer_type'])
    )
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
    SELECT DISTINCT 'discontinuation_rate', 'reason', coalesce(discontinuation_reason, 'unknown')
    FROM outcomes
    WHERE discontinued AND infusion_count > 0
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
    SELECT o.patient_key, 'discontinuation_rate', 'reason', r.stratum,
           (o.discontinued AND coalesce(o.discontinuation_reason, 'unknown') = r.stratum)::INTEGER, true
    FROM outcomes AS o
    JOIN own_strata AS r ON r.metric = 'discontinuation_rate'
    WHERE o.infusion_count > 0
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
    WHERE stratum_type IS NOT NULL
    GROUP BY ALL
),

-- Every row the table must have, whether or not anything was counted in it.
grid AS (
    SELECT c.position, c.metric, c.unit, s.stratum_type, s.stratum,
           list_position(c.stratum_types, s.stratum_type) AS stratum_type_position
    FROM catalog AS c
    JOIN strata AS s ON list_contains(c.stratum_types, s.stratum_type)
    UNION ALL
    SELECT c.position, c.metric, c.unit, o.stratum_type, o.stratum, 100
    FROM catalog AS c
    JOIN own_strata AS o USING (metric)
),

tallies AS (
    SELECT
        g.*,
        coalesce(p.numerator, o.numerator, 0) AS numerator,
        coalesce(p.denominator, o.denominator, 0) AS denominator,
        coalesce(p.value_n, o.value_n, 0) AS value_n,
        coalesce(p.value_sum, o.value_sum, 0) AS value_sum,
        coalesce(p.value_sum_squares, o.value_sum_squares, 0) AS value_sum_squares,
        coalesce(p.exposure_s, o.exposure_s, 0) AS exposure_s
    FROM grid AS g
    LEFT JOIN by_patient_stratum AS p USING (metric, stratum_type, stratum)
    LEFT JOIN by_own_stratum AS o USING (metric, stratum_type, stratum)
),

-- Wilson score interval for a proportion x/n, and the score interval for a Poisson count x over n infusions:
-- both have good coverage near 0 and for small n, where the textbook p ± z·SE is wrong.
-- A mean from exact integer sums: n, Σx and Σx² give the sample variance (n Σx² − (Σx)²) / (n (n − 1)).
moments AS (
    SELECT
        *,
        CASE WHEN value_n > 0 THEN value_sum / value_n END AS mean,
        CASE WHEN value_n > 1
            THEN sqrt((value_n * value_sum_squares - value_sum * value_sum) / (value_n * (value_n - 1))) END AS sd,
        exposure_s / 3600 AS exposure_hours
    FROM tallies
),

intervals AS (
    SELECT
        t.*,
        CASE WHEN t.unit = 'proportion' AND t.denominator > 0 THEN
            (t.numerator / t.denominator + k.z ^ 2 / (2 * t.denominator)
             - k.z * sqrt(t.numerator / t.denominator * (1 - t.numerator / t.denominator) / t.denominator
                          + k.z ^ 2 / (4 * t.denominator ^ 2)))
            / (1 + k.z ^ 2 / t.denominator)
        WHEN t.unit = 'per_infusion' AND t.denominator > 0 THEN
            (t.numerator + k.z ^ 2 / 2 - k.z * sqrt(t.numerator + k.z ^ 2 / 4)) / t.denominator
        WHEN t.unit = 'per_100_infusion_hours' AND t.exposure_s > 0 THEN
            (t.numerator + k.z ^ 2 / 2 - k.z * sqrt(t.numerator + k.z ^ 2 / 4)) / (t.exposure_hours / 100)
        WHEN t.unit = 'mean' AND t.value_n > 1 THEN
            t.mean - t_quantile_975(CAST(t.value_n - 1 AS BIGINT)) * t.sd / sqrt(t.value_n)
        END AS raw_low,
        CASE WHEN t.unit = 'proportion' AND t.denominator > 0 THEN
            (t.numerator / t.denominator + k.z ^ 2 / (2 * t.denominator)
             + k.z * sqrt(t.numerator / t.denominator * (1 - t.numerator / t.denominator) / t.denominator
                          + k.z ^ 2 / (4 * t.denominator ^ 2)))
            / (1 + k.z ^ 2 / t.denominator)
        WHEN t.unit = 'per_infusion' AND t.denominator > 0 THEN
            (t.numerator + k.z ^ 2 / 2 + k.z * sqrt(t.numerator + k.z ^ 2 / 4)) / t.denominator
        WHEN t.unit = 'per_100_infusion_hours' AND t.exposure_s > 0 THEN
            (t.numerator + k.z ^ 2 / 2 + k.z * sqrt(t.numerator + k.z ^ 2 / 4)) / (t.exposure_hours / 100)
        WHEN t.unit = 'mean' AND t.value_n > 1 THEN
            t.mean + t_quantile_975(CAST(t.value_n - 1 AS BIGINT)) * t.sd / sqrt(t.value_n)
        END AS raw_high
    FROM moments AS t, constants AS k
)

SELECT
    metric,
    stratum_type,
    stratum,
    CAST(numerator AS BIGINT) AS numerator,
    CAST(CASE WHEN unit <> 'count' THEN denominator END AS BIGINT) AS denominator,
    CAST(CASE
        WHEN unit = 'count' THEN numerator
        WHEN unit = 'mean' THEN mean
        WHEN unit = 'per_100_infusion_hours' THEN CASE WHEN exposure_s > 0 THEN 100 * numerator / exposure_hours END
        WHEN denominator > 0 THEN numerator / denominator
    END AS DOUBLE) AS estimate,
    -- Rounding can leave the bounds a hair outside [0, 1] (or below 0 for a rate) when x = 0 or x = n.
    -- (greatest and least skip NULLs, hence the CASEs: a count or an empty denominator has no interval.)
    -- A mean change can be negative: its bounds are not clipped.
    CAST(CASE WHEN unit = 'mean' THEN raw_low WHEN raw_low IS NOT NULL THEN greatest(raw_low, 0) END AS DOUBLE)
        AS ci_low,
    CAST(CASE WHEN unit = 'proportion' AND raw_high IS NOT NULL THEN least(raw_high, 1) ELSE raw_high END
         AS DOUBLE) AS ci_high,
    unit,
    CAST(CASE WHEN unit = 'mean' THEN sd END AS DOUBLE) AS sd,
    CAST(CASE WHEN unit = 'per_100_infusion_hours' THEN exposure_hours END AS DOUBLE) AS exposure_hours
FROM intervals
ORDER BY position, stratum_type_position, stratum_type, stratum;
