-- Files whose rows read are not all either accepted or quarantined: a row lost between reading and validation.
-- They list whole rows on purpose (SELECT *): the reader sees every value of a violating row.
-- noqa: disable=AM04
SELECT * FROM registry.file_counts WHERE rows_read <> rows_accepted + rows_quarantined
