-- The run ledger of incremental runs (ketreg/incremental/ledger.py): what each run planned from which inputs,
-- which assets it rebuilt or skipped, and which published file each run produced.
CREATE SCHEMA IF NOT EXISTS incremental;

CREATE TABLE IF NOT EXISTS incremental.run_plans (
    run_id VARCHAR PRIMARY KEY, inputs_fingerprint VARCHAR NOT NULL, input_parts JSON,
    unchanged_since VARCHAR, planned_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS incremental.asset_runs (
    run_id VARCHAR NOT NULL, asset_key VARCHAR NOT NULL, inputs_fingerprint VARCHAR NOT NULL,
    skipped BOOLEAN NOT NULL, origin_run_id VARCHAR NOT NULL, recorded_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS incremental.publications (
    run_id VARCHAR NOT NULL, inputs_fingerprint VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL,
    published_at TIMESTAMPTZ
);
