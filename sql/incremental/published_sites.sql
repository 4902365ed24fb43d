-- What the analysts' file holds (ketreg/registry/publish.py): the SHA-256 and size of the file the last publish
-- wrote, and, for each per-site table, the inputs digest of each site's rows it was copied with (as
-- incremental.table_sites recorded them then). A publish that finds the file unchanged replaces only the rows of
-- the sites whose digests moved since; any doubt (another file, other shared inputs) publishes the whole file.
CREATE SCHEMA IF NOT EXISTS incremental;

CREATE TABLE IF NOT EXISTS incremental.published_file (
    file_sha256 VARCHAR NOT NULL, file_bytes BIGINT NOT NULL, whole_file_bytes BIGINT NOT NULL,
    published_at TIMESTAMP WITH TIME ZONE NOT NULL
);

CREATE TABLE IF NOT EXISTS incremental.published_table_sites (
    table_name VARCHAR NOT NULL, site_id VARCHAR NOT NULL, exports_digest VARCHAR NOT NULL,
    shared_digest VARCHAR NOT NULL
);
