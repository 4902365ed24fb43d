-- Rows of registry.{table} whose key is missing or shared with another row.
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM registry.{table} WHERE {key} IS NULL OR {key} IN
(SELECT {key} FROM registry.{table} AS same_table GROUP BY {key} HAVING count(*) > 1)
