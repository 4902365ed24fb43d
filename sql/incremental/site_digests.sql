-- Per-site rebuilds (ketreg/incremental/sites.py): the digest of each site's inputs a registry table was last
-- built from, each run's digest of every site's staged rows, and each staged table's per-site row count and hash
-- sum kept with the table's storage fingerprint (reused while the table is unchanged), and the signature of each
-- row group of the staged table at that time (ketreg/incremental/staged_parts.py: which sites to hash again).
CREATE SCHEMA IF NOT EXISTS incremental;

CREATE TABLE IF NOT EXISTS incremental.table_sites (
    table_name VARCHAR NOT NULL, site_id VARCHAR NOT NULL, exports_digest VARCHAR NOT NULL,
    shared_digest VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS incremental.run_site_digests (
    run_id VARCHAR NOT NULL, site_id VARCHAR NOT NULL, digest VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS incremental.staged_table_parts (
    table_name VARCHAR NOT NULL, storage_fingerprint VARCHAR NOT NULL, site_id VARCHAR NOT NULL,
    row_count BIGINT NOT NULL, hash_sum VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS incremental.staged_row_groups (
    table_name VARCHAR NOT NULL, signature VARCHAR NOT NULL
);
