-- The files of every site's current export (the denominator of the checks that compare them).
SELECT count(*) FROM registry.file_counts WHERE is_current_export
