-- One site's rows of registry.{table} that violate a check of its values (see violating_rows.sql).
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM registry.{table} WHERE site_id = {site_id} AND ({violated_when})
