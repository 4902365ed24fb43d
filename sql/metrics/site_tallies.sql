-- metrics_partial.site_tallies (working store only, never published): each site's partial sums of the
-- registry's figures (metrics.registry_metrics), one row per site, metric and stratum: rows that count into the
-- numerator, rows in the denominator, and the sums a mean or a rate needs (values, squared values, seconds of
-- infusion). A site's sums come from its own patients only, so they are rebuilt only for the sites whose rows
-- changed (ketreg/incremental/sites.py), and metrics.registry_metrics adds them up: every sum is of whole
-- numbers, so the total is exactly the one a single pass over every site gives. Definitions of each metric:
-- sql/metrics/registry_metrics.sql and docs/metrics.md.
--
-- How it stays fast on a large registry (100 sites × 5,000 patients: 6 M infusions, 13 M assessments): every
-- fact is counted against its patient's stratum combination (`combo`: site, etiology, cancer type, metastatic,
-- baseline band; a few hundred per site) instead of the patient, so the big aggregations have a few thousand
-- groups, not a million patients or six million infusions keyed by long text (those spilled to disk at DuckDB's
-- 512 MB limit); adverse events and assessments are summed per infusion before they meet the infusions.
-- Every figure is a sum of whole numbers, so summing per combination and then per stratum gives exactly the
-- sums per patient and then per stratum that the definitions state.
CREATE OR REPLACE TABLE metrics_partial.site_tallies AS
-- Each patient falls in one stratum of every type; a metric is broken down by the types the catalog lists.
-- Patients with the same strata of every type share a combination.
WITH outcomes AS (
    SELECT
        *,
        dense_rank() OVER (ORDER BY site_id, cnp_etiology, cancer_type, metastatic, baseline_nprs_band) AS combo
    FROM metrics.patient_outcomes
),

combo_strata AS (
    SELECT DISTINCT
        combo,
        site_id,
        cnp_etiology,
        cancer_type,
        coalesce(CAST(metastatic AS VARCHAR), 'unknown') AS metastatic,
        baseline_nprs_band
    FROM outcomes
),

patient_strata AS (
    SELECT combo, site_id, 'overall' AS stratum_type, 'all' AS stratum FROM combo_strata
    UNION ALL SELECT combo, site_id, 'site', site_id FROM combo_strata
    UNION ALL SELECT combo, site_id, 'etiology', cnp_etiology FROM combo_strata
    UNION ALL SELECT combo, site_id, 'cancer_type', cancer_type FROM combo_strata
    UNION ALL SELECT combo, site_id, 'metastatic', metastatic FROM combo_strata
    UNION ALL SELECT combo, site_id, 'baseline_nprs_band', baseline_nprs_band FROM combo_strata
),

cohort_infusions AS (
    SELECT i.infusion_key, o.patient_key, o.combo,
           -- Exposure in whole seconds, so that sums are exact.
           date_diff('second', i.start_time, i.end_time) AS exposure_s
    FROM registry.infusions AS i
    JOIN outcomes AS o USING (patient_key)
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

-- Each infusion's adverse events (an infusion without any has none: NULL counts become 0 below).
ae_per_infusion AS (
    SELECT
        infusion_key,
        count(ae_key) AS ae_records,
        -- Serious (ICH E2A: death, life-threatening, hospitalisation, disability) is what the site ticked;
        -- severe is CTCAE grade ≥ 3. A grade-3 headache is severe, not serious.
        count(ae_key) FILTER (serious) AS serious_ae_records,
        count(ae_key) FILTER (grade >= 3) AS severe_ae_records,
        -- An episode (the AEs of one infusion) resolved by itself when nothing was done about any of them.
        bool_and(action_taken = 'none') AS self_resolved
    FROM registry.adverse_events
    GROUP BY infusion_key
),

infusion_safety AS (
    SELECT
        ci.infusion_key,
        ci.patient_key,
        ci.combo,
        ci.exposure_s,
        coalesce(ae.ae_records, 0) AS ae_records,
        coalesce(ae.serious_ae_records, 0) AS serious_ae_records,
        coalesce(ae.severe_ae_records, 0) AS severe_ae_records,
        ae.self_resolved
    FROM cohort_infusions AS ci
    LEFT JOIN ae_per_infusion AS ae USING (infusion_key)
),

cohort_adverse_events AS (
    SELECT ci.patient_key, ci.combo, ae.grade, ae.category
    FROM cohort_infusions AS ci
    JOIN registry.adverse_events AS ae USING (infusion_key)
),

-- Each infusion counts once in the denominator of every AE category, and its AEs of the category in the
-- numerator: per combination, the infusions and the AEs of each category.
ae_categories AS (
    SELECT DISTINCT category FROM registry.ae_term_categories
),

ae_category_tallies AS (
    SELECT
        c.combo,
        cat.category,
        c.infusions,
        coalesce(a.ae_records, 0) AS ae_records
    FROM (SELECT combo, count(*) AS infusions FROM cohort_infusions GROUP BY combo) AS c
    CROSS JOIN ae_categories AS cat
    LEFT JOIN (
        SELECT combo, category, count(*) AS ae_records FROM cohort_adverse_events GROUP BY combo, category
    ) AS a ON a.combo = c.combo AND a.category = cat.category
),

-- Which measures each infusion's linked assessments recorded.
measures_per_infusion AS (
    SELECT
        infusion_key,
        bool_or(timepoint = 'pre' AND nprs IS NOT NULL) AS nprs_pre,
        bool_or(timepoint = 'post' AND nprs IS NOT NULL) AS nprs_post,
        bool_or(function_score IS NOT NULL) AS function_score,
        bool_or(satisfaction IS NOT NULL) AS satisfaction,
        bool_or(daily_mme IS NOT NULL) AS daily_mme
    FROM registry.assessments
    WHERE infusion_key IS NOT NULL
    GROUP BY infusion_key
),

infusion_measures AS (
    SELECT
        ci.infusion_key,
        ci.combo,
        coalesce(m.nprs_pre, false) AS nprs_pre,
        coalesce(m.nprs_post, false) AS nprs_post,
        coalesce(m.function_score, false) AS function_score,
        coalesce(m.satisfaction, false) AS satisfaction,
        coalesce(m.daily_mme, false) AS daily_mme
    FROM cohort_infusions AS ci
    LEFT JOIN measures_per_infusion AS m USING (infusion_key)
),

infusion_measure_rows AS (
    UNPIVOT infusion_measures
    ON nprs_pre, nprs_post, function_score, satisfaction, daily_mme
    INTO NAME measure VALUE recorded
),

-- One row per thing a metric counts: `hits` go into the numerator and `counted` says whether the row is in
-- the denominator (NULL for counts). Rows without an own stratum are broken down by the patient's strata.
facts AS (
    SELECT combo, 'cohort_patients' AS metric, NULL AS stratum_type, NULL AS stratum,
           1 AS hits, NULL::BOOLEAN AS counted
    FROM outcomes
    UNION ALL
    SELECT combo, 'cohort_infusions', NULL, NULL, 1, NULL FROM cohort_infusions
    UNION ALL
    SELECT combo, 'responder_rate', NULL, NULL, (responder IS TRUE)::INTEGER, responder IS NOT NULL
    FROM outcomes
    UNION ALL
    SELECT combo, 'substantial_responder_rate', NULL, NULL, (substantial_responder IS TRUE)::INTEGER,
           substantial_responder IS NOT NULL
    FROM outcomes
    UNION ALL
    SELECT combo, 'ae_rate_per_infusion', NULL, NULL, ae_records, true FROM infusion_safety
    UNION ALL
    SELECT combo, 'infusions_with_ae', NULL, NULL, (ae_records > 0)::INTEGER, true FROM infusion_safety
    UNION ALL
    -- Overall and by patient stratum: the share of episodes that resolved without intervention.
    SELECT combo, 'ae_episode_resolution', NULL, NULL, self_resolved::INTEGER, true
    FROM infusion_safety
    WHERE ae_records > 0
    UNION ALL
    SELECT s.combo, 'ae_episode_resolution', 'resolution', r.resolution,
           (s.self_resolved = (r.resolution = 'self_resolved'))::INTEGER, true
    FROM infusion_safety AS s
    CROSS JOIN (VALUES ('self_resolved'), ('intervention')) AS r (resolution)
    WHERE s.ae_records > 0
    UNION ALL
    SELECT combo, 'serious_ae_rate', NULL, NULL, serious_ae_records, true FROM infusion_safety
    UNION ALL
    SELECT combo, 'discontinuation_rate', NULL, NULL, discontinued::INTEGER, true
    FROM outcomes
    WHERE infusion_count > 0
    UNION ALL
    -- By reason, the discontinued patients only: every treated patient is in each reason's denominator, which
    -- metrics.registry_metrics takes from the overall one (the reasons seen anywhere are its strata).
    SELECT combo, 'discontinuation_rate', 'reason', coalesce(discontinuation_reason, 'unknown'), 1, NULL
    FROM outcomes
    WHERE discontinued AND infusion_count > 0
    UNION ALL
    SELECT combo, 'responder_discontinuation', NULL, NULL,
           (discontinued AND discontinuation_reason IN ('unsatisfactory_relief', 'adverse_event'))::INTEGER, true
    FROM outcomes
    WHERE responder
    UNION ALL
    SELECT o.combo, 'responder_discontinuation', 'reason', r.stratum,
           (o.discontinued AND o.discontinuation_reason IS NOT DISTINCT FROM r.stratum)::INTEGER, true
    FROM outcomes AS o
    JOIN own_strata AS r ON r.metric = 'responder_discontinuation'
    WHERE o.responder
    UNION ALL
    SELECT combo, 'durable_relief', NULL, NULL, (durable_relief IS TRUE)::INTEGER,
           longest_relief_days IS NOT NULL
    FROM outcomes
    WHERE responder
    UNION ALL
    SELECT combo, 'interruption_return_to_baseline', NULL, NULL,
           returned_to_baseline_after_interruption::INTEGER, true
    FROM outcomes
    WHERE returned_to_baseline_after_interruption IS NOT NULL
    UNION ALL
    SELECT combo, 'outcome_completeness', NULL, NULL,
           (nprs_pre AND nprs_post AND function_score AND satisfaction AND daily_mme)::INTEGER, true
    FROM infusion_measures
    UNION ALL
    SELECT combo, 'outcome_completeness', 'measure', measure, recorded::INTEGER, true
    FROM infusion_measure_rows
    UNION ALL
    SELECT combo, 'outcome_completeness_' || measure, NULL, NULL, recorded::INTEGER, true
    FROM infusion_measure_rows
),

-- The endpoints' rows, with two more things to add up: a patient's value for a mean (`value`, whole NPRS
-- points) and an infusion's duration for an exposure-adjusted rate (`exposure_s`).
endpoint_facts AS (
    SELECT combo, 'sustained_responder_rate' AS metric, NULL AS stratum_type, NULL AS stratum,
           sustained_responder::INTEGER AS hits, true AS counted, NULL::BIGINT AS value, NULL::BIGINT AS exposure_s
    FROM outcomes
    WHERE sustained_responder IS NOT NULL
    UNION ALL BY NAME
    SELECT combo, 'sustained_responder_rate_complete_case' AS metric, sustained_responder::INTEGER AS hits,
           true AS counted
    FROM outcomes
    WHERE primary_assessment_observed
    UNION ALL BY NAME
    -- Best case: every patient whose endpoint is missing is counted a responder (the worst case is the
    -- primary estimand itself, where they are non-responders).
    SELECT combo, 'sustained_responder_rate_best_case' AS metric,
           (sustained_responder OR NOT primary_assessment_observed)::INTEGER AS hits, true AS counted
    FROM outcomes
    WHERE sustained_responder IS NOT NULL
    UNION ALL BY NAME
    SELECT combo, 'nprs_change_primary' AS metric, (nprs_change_primary IS NOT NULL)::INTEGER AS hits,
           true AS counted, CAST(nprs_change_primary AS BIGINT) AS value
    FROM outcomes
    WHERE sustained_responder IS NOT NULL
    UNION ALL BY NAME
    -- Patients with an adverse event, overall and by the worst grade they had: one row per treated patient.
    SELECT combo, 'patients_with_ae' AS metric, (sum(ae_records) > 0)::INTEGER AS hits, true AS counted
    FROM infusion_safety
    GROUP BY patient_key, combo
    UNION ALL BY NAME
    SELECT p.combo, 'patients_with_ae' AS metric, 'worst_grade' AS stratum_type, g.stratum,
           (CAST(p.worst_grade AS VARCHAR) IS NOT DISTINCT FROM g.stratum)::INTEGER AS hits, true AS counted
    FROM (
        SELECT s.patient_key, s.combo, max(ae.grade) AS worst_grade
        FROM (SELECT DISTINCT patient_key, combo FROM cohort_infusions) AS s
        LEFT JOIN cohort_adverse_events AS ae USING (patient_key)
        GROUP BY s.patient_key, s.combo
    ) AS p
    CROSS JOIN (SELECT stratum FROM own_strata WHERE metric = 'patients_with_ae') AS g
    UNION ALL BY NAME
    SELECT combo, 'severe_ae_rate' AS metric, severe_ae_records AS hits, true AS counted
    FROM infusion_safety
    UNION ALL BY NAME
    SELECT combo, 'ae_grade_distribution' AS metric, (grade >= 3)::INTEGER AS hits, true AS counted
    FROM cohort_adverse_events
    UNION ALL BY NAME
    SELECT ae.combo, 'ae_grade_distribution' AS metric, 'grade' AS stratum_type, g.stratum,
           (CAST(ae.grade AS VARCHAR) = g.stratum)::INTEGER AS hits, true AS counted
    FROM cohort_adverse_events AS ae
    CROSS JOIN (SELECT stratum FROM own_strata WHERE metric = 'ae_grade_distribution') AS g
    UNION ALL BY NAME
    SELECT combo, 'ae_rate_per_100_infusion_hours' AS metric, ae_records AS hits, true AS counted, exposure_s
    FROM infusion_safety
),

all_facts AS (
    SELECT * FROM facts
    UNION ALL BY NAME
    SELECT * FROM endpoint_facts
),

-- Summed per stratum combination first: a patient has many infusions but sits in one combination, and a
-- combination stands for many patients, so the join to the strata multiplies combinations, not patients.
-- A fact without a stratum of its own (stratum_type NULL) counts in every stratum of its patient; a fact with one
-- (AE category, resolution, reason, measure, grade) counts in that stratum of its site.
by_combo AS (
    SELECT
        metric,
        stratum_type,
        stratum,
        combo,
        sum(hits) FILTER (counted IS NOT FALSE) AS numerator,
        count(*) FILTER (counted) AS denominator,
        count(value) AS value_n,
        sum(value) AS value_sum,
        sum(value * value) AS value_sum_squares,
        sum(exposure_s) AS exposure_s
    FROM all_facts
    GROUP BY ALL
    UNION ALL BY NAME
    -- AE rate per infusion by AE category: each infusion in every category's denominator (counted above per
    -- combination, not as one row per infusion and category).
    SELECT
        'ae_rate_per_infusion' AS metric,
        'ae_category' AS stratum_type,
        category AS stratum,
        combo,
        ae_records AS numerator,
        infusions AS denominator,
        0 AS value_n
    FROM ae_category_tallies
)

SELECT
    s.site_id,
    c.metric,
    coalesce(c.stratum_type, s.stratum_type) AS stratum_type,
    CASE WHEN c.stratum_type IS NULL THEN s.stratum ELSE c.stratum END AS stratum,
    sum(c.numerator) AS numerator,
    sum(c.denominator) AS denominator,
    sum(c.value_n) AS value_n,
    sum(c.value_sum) AS value_sum,
    sum(c.value_sum_squares) AS value_sum_squares,
    sum(c.exposure_s) AS exposure_s
FROM by_combo AS c
-- Every combination has exactly one 'site' stratum: the one row a fact with its own stratum joins.
JOIN patient_strata AS s
    ON c.combo = s.combo AND (c.stratum_type IS NULL OR s.stratum_type = 'site')
GROUP BY ALL;
