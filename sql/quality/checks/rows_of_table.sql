-- The rows a check of a whole registry table reads (its denominator).
SELECT count(*) FROM registry.{table}
