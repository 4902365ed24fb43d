-- Rows of registry.{table} whose {key} names no row of registry.{parent} (a missing key refers to nothing).
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM registry.{table} WHERE {key} IS NOT NULL AND {key} NOT IN (SELECT {key} FROM registry.{parent})
