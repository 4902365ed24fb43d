-- Rows of registry.{table} that violate a check of its values; {violated_when} is the check's condition, rendered
-- from the check catalogue (config/check_catalogue.yaml) with the contract's columns, ranges and codes.
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM registry.{table} WHERE {violated_when}
