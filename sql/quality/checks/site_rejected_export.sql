-- The site's newest export, if it was rejected.
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM site_private.exports WHERE site_id = {site_id} AND export_id = {export_id} AND status = 'rejected'
