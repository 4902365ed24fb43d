-- quality.check_results: the outcome of every data-quality check in every pipeline run, one row per check,
-- site and run. It is a history: rows are added per run and never rewritten, so a data manager can see whether
-- a site's problem is new, fixed or still there. numerator = rows that violate the check, denominator = rows
-- checked, threshold = share of checked rows allowed to violate it; violations_sql lists the violating rows.
CREATE TABLE IF NOT EXISTS quality.check_results (
    run_id VARCHAR NOT NULL,         -- the Dagster run
    run_at TIMESTAMPTZ NOT NULL,     -- when the quality step ran
    check_id VARCHAR NOT NULL,       -- stable across runs: source/table/check/site
    source VARCHAR NOT NULL,         -- great_expectations | site_export | registry_check
    category VARCHAR NOT NULL,       -- Kahn 2016: conformance | completeness | plausibility
    table_name VARCHAR NOT NULL,
    column_name VARCHAR,
    site_id VARCHAR NOT NULL,        -- a site, or 'all' for checks of the whole registry
    check_name VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    numerator BIGINT NOT NULL,
    denominator BIGINT NOT NULL,
    threshold DOUBLE NOT NULL,
    passed BOOLEAN NOT NULL,
    violations_sql VARCHAR NOT NULL,
    asset_key VARCHAR NOT NULL,      -- the Dagster asset the check reads
    data_docs_page VARCHAR,          -- the Great Expectations Data Docs page, relative to the reports folder
    origin_run_id VARCHAR            -- the run that produced the result: run_id, or for a site whose rows did not
                                     -- change, the earlier run whose Great Expectations validation it carries
);
-- Added with per-site carry-forward; a history recorded before it gets the column (empty for its old rows).
ALTER TABLE quality.check_results ADD COLUMN IF NOT EXISTS origin_run_id VARCHAR;
