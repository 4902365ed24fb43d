-- site_private.file_columns (working store only, never published): the columns of each file that were not
-- read, by name: identifier-like ones (the site should remove them) and ones the contract does not know.
-- Column names are the site's header text: a file sent without its header row makes its first data row the
-- "header", so these lists can hold patient data. Analysts get only how many there were
-- (registry.file_counts).
CREATE OR REPLACE TABLE site_private.file_columns AS
SELECT
    f.site_id,
    f.export_id,
    f.file_name,
    coalesce(f.identifier_columns_dropped, []) AS identifier_columns_dropped,
    coalesce(f.ignored_columns, []) AS ignored_columns
FROM staging.file_counts AS f
JOIN registry.exports USING (site_id, export_id)
ORDER BY f.site_id, f.export_id, f.file_name;
