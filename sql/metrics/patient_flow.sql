-- metrics.patient_flow: where every patient record a site sent ends up, as in a CONSORT / RECORD flow diagram:
-- received → quarantined (the row failed the contract) → registered → excluded (by reason) → analysed →
-- completed induction → entered maintenance, and among the analysed the primary endpoint observed or missing,
-- discontinued (by reason and by phase) and lost to follow-up. One row per step, breakdown, category and site,
-- plus the same for all sites together (site_id 'all'); a step with nobody in it is there with 0.
--
-- The counts add up by construction, and tests/test_endpoints.py checks they do:
--   received = quarantined + registered                      (rows of patients.csv of each site's current export)
--   registered = Σ excluded by reason + analysed
--   analysed = primary endpoint observed + missing
--   discontinued = Σ by reason = Σ by phase; lost_to_follow_up = Σ by phase
--   every site's counts add up to the 'all' row.
-- Exclusion reasons, the first that applies: prior_neuropathy (outside the analysis cohort);
-- no_infusion_recorded; all_infusions_quarantined (infusions were sent, none passed the contract);
-- course_incomplete (an infusion whose start cannot be read makes every infusion number uncertain).
-- "Analysed" is the population of the induction-based endpoints (responder rate, sustained responder rate);
-- safety counts every cohort infusion, course complete or not.
-- Phase of a discontinuation: `induction` when the site's record holds at most $induction_infusions infusions
-- of the patient, else `maintenance`. Lost to follow-up is a discontinuation whose latest reason is
-- `lost_to_follow_up`; it is not among the `discontinued`.
CREATE OR REPLACE TABLE metrics.patient_flow AS
WITH patient_files AS (
    SELECT site_id, rows_read, rows_quarantined, rows_in_registry
    FROM registry.file_counts
    WHERE is_current_export AND file_name = 'patients.csv'
),

patients AS (
    SELECT
        p.patient_key,
        p.site_id,
        CASE
            WHEN NOT p.in_analysis_cohort THEN 'prior_neuropathy'
            WHEN o.infusion_count = 0 AND (o.recorded_infusions > 0 OR o.course_incomplete)
                THEN 'all_infusions_quarantined'
            WHEN o.infusion_count = 0 THEN 'no_infusion_recorded'
            WHEN o.course_incomplete THEN 'course_incomplete'
        END AS exclusion_reason,
        o.recorded_infusions,
        o.primary_assessment_observed,
        o.discontinued,
        coalesce(o.discontinuation_reason, 'unknown') AS discontinuation_reason,
        CASE WHEN o.recorded_infusions <= $induction_infusions THEN 'induction' ELSE 'maintenance' END AS phase
    FROM registry.patients AS p
    LEFT JOIN metrics.patient_outcomes AS o USING (patient_key)
),

analysed AS (
    SELECT * FROM patients WHERE exclusion_reason IS NULL
),

-- One row per patient and place in the diagram they count in.
placed (site_id, step_order, step, breakdown, category) AS (
    SELECT site_id, 3, 'registered', 'total', 'all' FROM patients
    UNION ALL
    SELECT site_id, 4, 'excluded', 'reason', exclusion_reason FROM patients WHERE exclusion_reason IS NOT NULL
    UNION ALL
    SELECT site_id, 5, 'analysed', 'total', 'all' FROM analysed
    UNION ALL
    SELECT site_id, 6, 'primary_endpoint', 'status',
           CASE WHEN primary_assessment_observed THEN 'observed' ELSE 'missing' END
    FROM analysed
    UNION ALL
    SELECT site_id, 7, 'completed_induction', 'total', 'all' FROM analysed
    WHERE recorded_infusions >= $induction_infusions
    UNION ALL
    SELECT site_id, 8, 'entered_maintenance', 'total', 'all' FROM analysed
    WHERE recorded_infusions > $induction_infusions
    UNION ALL
    SELECT site_id, 9, 'discontinued', 'total', 'all' FROM analysed
    WHERE discontinued AND discontinuation_reason <> 'lost_to_follow_up'
    UNION ALL
    SELECT site_id, 9, 'discontinued', 'reason', discontinuation_reason FROM analysed
    WHERE discontinued AND discontinuation_reason <> 'lost_to_follow_up'
    UNION ALL
    SELECT site_id, 9, 'discontinued', 'phase', phase FROM analysed
    WHERE discontinued AND discontinuation_reason <> 'lost_to_follow_up'
    UNION ALL
    SELECT site_id, 10, 'lost_to_follow_up', 'total', 'all' FROM analysed
    WHERE discontinued AND discontinuation_reason = 'lost_to_follow_up'
    UNION ALL
    SELECT site_id, 10, 'lost_to_follow_up', 'phase', phase FROM analysed
    WHERE discontinued AND discontinuation_reason = 'lost_to_follow_up'
),

-- Every place in the diagram, so that an empty one shows as 0: the fixed categories, and the discontinuation
-- reasons any site recorded.
places (step_order, step, breakdown, category) AS (
    SELECT * FROM (VALUES
        (1, 'received', 'total', 'all'),
        (2, 'quarantined', 'total', 'all'),
        (3, 'registered', 'total', 'all'),
        (4, 'excluded', 'reason', 'prior_neuropathy'),
        (4, 'excluded', 'reason', 'no_infusion_recorded'),
        (4, 'excluded', 'reason', 'all_infusions_quarantined'),
        (4, 'excluded', 'reason', 'course_incomplete'),
        (5, 'analysed', 'total', 'all'),
        (6, 'primary_endpoint', 'status', 'observed'),
        (6, 'primary_endpoint', 'status', 'missing'),
        (7, 'completed_induction', 'total', 'all'),
        (8, 'entered_maintenance', 'total', 'all'),
        (9, 'discontinued', 'total', 'all'),
        (9, 'discontinued', 'phase', 'induction'),
        (9, 'discontinued', 'phase', 'maintenance'),
        (10, 'lost_to_follow_up', 'total', 'all'),
        (10, 'lost_to_follow_up', 'phase', 'induction'),
        (10, 'lost_to_follow_up', 'phase', 'maintenance')
    )
    UNION ALL
    SELECT DISTINCT 9, 'discontinued', 'reason', category
    FROM placed
    WHERE step = 'discontinued' AND breakdown = 'reason'
),

sites AS (
    SELECT site_id FROM patient_files
    UNION
    SELECT site_id FROM patients
),

counted AS (
    SELECT site_id, step, breakdown, category, count(*) AS patients FROM placed GROUP BY ALL
    UNION ALL
    SELECT site_id, 'received', 'total', 'all', sum(rows_read) FROM patient_files GROUP BY ALL
    UNION ALL
    SELECT site_id, 'quarantined', 'total', 'all', sum(rows_quarantined) FROM patient_files GROUP BY ALL
),

by_site AS (
    SELECT s.site_id, p.step_order, p.step, p.breakdown, p.category, coalesce(c.patients, 0) AS patients
    FROM places AS p
    CROSS JOIN sites AS s
    LEFT JOIN counted AS c ON c.site_id = s.site_id AND c.step = p.step AND c.breakdown = p.breakdown
        AND c.category = p.category
)

SELECT step_order, step, breakdown, category, site_id, CAST(patients AS BIGINT) AS patients
FROM by_site
UNION ALL
SELECT p.step_order, p.step, p.breakdown, p.category, 'all', CAST(coalesce(sum(b.patients), 0) AS BIGINT)
FROM places AS p
LEFT JOIN by_site AS b USING (step_order, step, breakdown, category)
GROUP BY p.step_order, p.step, p.breakdown, p.category
ORDER BY step_order, breakdown <> 'total', breakdown, category, site_id = 'all' DESC, site_id;
