-- quality.registry_check_evaluations: the registry's asset checks (pipelines/checks.py) as the check step
-- evaluated them in the newest run that ran them, one row per check. The quality step copies them into the
-- history (quality.check_results) instead of running every check's SQL a second time.
CREATE TABLE IF NOT EXISTS quality.registry_check_evaluations (
    run_id VARCHAR NOT NULL,         -- the Dagster run whose check step evaluated them
    table_name VARCHAR NOT NULL,     -- the registry table the check reads
    check_name VARCHAR NOT NULL,
    numerator BIGINT NOT NULL,       -- violating rows
    denominator BIGINT NOT NULL,     -- rows checked
    violations_sql VARCHAR NOT NULL, -- lists the violating rows in the working database
    PRIMARY KEY (table_name, check_name)
);
