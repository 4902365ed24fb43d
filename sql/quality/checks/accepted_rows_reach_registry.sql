-- Files of a site's current export whose accepted rows did not all reach their registry table.
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM registry.file_counts WHERE is_current_export AND rows_in_registry <> rows_accepted
