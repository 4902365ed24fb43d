-- The quarantined rows of one file of a site's current export that broke a rule of one category (the rows are in
-- the working store only; the analysts' file has counts).
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM site_private.quarantine WHERE is_current_export AND site_id = {site_id}
AND file_name = {file_name} AND {reasons_of_category}
