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
-- The counts, sums and strata come from each site's partial sums (metrics_partial.site_tallies,
-- sql/metrics/site_tallies.sql, where the facts each metric counts are listed), rebuilt only for sites whose rows
-- changed, and added up here.
-- A denominator of 0 gives an empty estimate and interval, never an error. Every patient-level figure is over
-- the analysis cohort (metrics.patient_outcomes); every infusion-level one over those patients' valid infusions
-- (quarantined infusions never reach the registry).
CREATE OR REPLACE TABLE metrics.registry_metrics AS
WITH constants AS (
    -- The 97.5th percentile of the standard normal distribution: a two-sided 95 % interval.
    SELECT 1.959963984540054 AS z
),

-- Each patient falls in one stratum of every type; a metric is broken down by the types the catalog lists.
-- Every cohort patient is counted in `cohort_patients` in each of their strata, so the sites' partial sums of
-- that metric list exactly the strata the cohort's patients fall in (without reading a million patients again).
strata AS (
    -- The overall stratum is there even for an empty cohort, so every metric has its overall row.
    SELECT 'overall' AS stratum_type, 'all' AS stratum
    UNION
    SELECT DISTINCT stratum_type, stratum FROM metrics_partial.site_tallies WHERE metric = 'cohort_patients'
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
    -- The reasons treated patients gave for stopping (each such patient counts in their reason's partial sum).
    SELECT DISTINCT 'discontinuation_rate', 'reason', stratum
    FROM metrics_partial.site_tallies
    WHERE metric = 'discontinuation_rate' AND stratum_type = 'reason'
    UNION ALL
    SELECT 'outcome_completeness', 'measure', measure FROM measures
    UNION ALL
    -- CTCAE v5 grades 1 (mild) … 5 (death), all listed.
    SELECT 'ae_grade_distribution', 'grade', CAST(grade AS VARCHAR) FROM range(1, 6) AS g (grade)
    UNION ALL
    -- Patients by the worst grade they had (CONSORT Harms: participants with each harm, by severity).
    SELECT 'patients_with_ae', 'worst_grade', CAST(grade AS VARCHAR) FROM range(1, 6) AS g (grade)
),

-- The sites' partial sums (metrics_partial.site_tallies, sql/metrics/site_tallies.sql) added up.
site_sums AS (
    SELECT
        metric,
        stratum_type,
        stratum,
        sum(numerator) AS numerator,
        sum(denominator) AS denominator,
        sum(value_n) AS value_n,
        sum(value_sum) AS value_sum,
        sum(value_sum_squares) AS value_sum_squares,
        sum(exposure_s) AS exposure_s
    FROM metrics_partial.site_tallies
    GROUP BY ALL
),

-- Every treated patient is in the denominator of each discontinuation reason: the overall denominator.
treated_patients AS (
    SELECT denominator FROM site_sums
    WHERE metric = 'discontinuation_rate' AND stratum_type = 'overall'
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
        coalesce(s.numerator, 0) AS numerator,
        CASE WHEN g.metric = 'discontinuation_rate' AND g.stratum_type = 'reason'
            THEN coalesce((SELECT denominator FROM treated_patients), 0)
            ELSE coalesce(s.denominator, 0) END AS denominator,
        coalesce(s.value_n, 0) AS value_n,
        coalesce(s.value_sum, 0) AS value_sum,
        coalesce(s.value_sum_squares, 0) AS value_sum_squares,
        coalesce(s.exposure_s, 0) AS exposure_s
    FROM grid AS g
    LEFT JOIN site_sums AS s USING (metric, stratum_type, stratum)
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
