-- The staging layer's bookkeeping beside the contract's row tables (those are created from the Pandera models
-- by ketreg/staging/tables.py, the contract being the one source of their columns and types).
CREATE SCHEMA IF NOT EXISTS staging;

-- Which exports are staged, from which content, and whether they were usable.
CREATE TABLE IF NOT EXISTS staging.exports (
    site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
    status VARCHAR NOT NULL, rejection_reason VARCHAR, notices VARCHAR[],
    PRIMARY KEY (site_id, export_id)
);

-- Conservation per file: every row read is accepted or quarantined.
CREATE TABLE IF NOT EXISTS staging.file_counts (
    site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_sha256 VARCHAR,
    rows_read BIGINT NOT NULL, rows_accepted BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL,
    identifier_columns_dropped VARCHAR[], ignored_columns VARCHAR[]
);

-- Each quarantined row with its raw values and every reason it was refused.
CREATE TABLE IF NOT EXISTS staging.quarantine (
    site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
    source_line BIGINT NOT NULL, record_id VARCHAR, raw_values VARCHAR,
    reasons STRUCT("column" VARCHAR, rule VARCHAR, message VARCHAR)[]
);
