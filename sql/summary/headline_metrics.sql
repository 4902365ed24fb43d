-- The run summary's headline figures: the overall responder and durable-relief rates with their intervals.
SELECT metric, numerator, denominator, estimate, ci_low, ci_high
FROM metrics.registry_metrics
WHERE
    stratum_type = 'overall'
    AND metric IN ('sustained_responder_rate', 'responder_rate', 'durable_relief')
    AND estimate IS NOT NULL
ORDER BY metric DESC;
