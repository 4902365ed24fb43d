-- registry.protocol_deviations: valid infusions that departed from the protocol. They stay in the registry;
-- this table says where and by how much. Limits come from the protocol file ($-parameters).
CREATE OR REPLACE TABLE registry.protocol_deviations AS
WITH deviations AS (
    SELECT
        *,
        'first_infusion_rate_above_titration_cap' AS deviation,
        'max_rate_mg_h' AS measure,
        max_rate_mg_h AS observed,
        $first_infusion_max_rate_mg_h AS protocol_limit
    FROM registry.infusions
    WHERE infusion_number = 1 AND max_rate_mg_h > $first_infusion_max_rate_mg_h
    UNION ALL
    SELECT
        *,
        'rate_above_protocol_maximum',
        'max_rate_mg_h',
        max_rate_mg_h,
        $max_rate_mg_h
    FROM registry.infusions
    WHERE max_rate_mg_h > $max_rate_mg_h
    UNION ALL
    SELECT
        *,
        'session_shorter_than_planned',
        'duration_h',
        duration_h,
        $planned_session_hours - $session_tolerance_hours
    FROM registry.infusions
    WHERE duration_h < $planned_session_hours - $session_tolerance_hours
    UNION ALL
    SELECT
        *,
        'session_longer_than_planned',
        'duration_h',
        duration_h,
        $planned_session_hours + $session_tolerance_hours
    FROM registry.infusions
    WHERE duration_h > $planned_session_hours + $session_tolerance_hours
)
SELECT
    infusion_key,
    patient_key,
    site_id,
    infusion_number,
    deviation,
    measure,
    observed,
    protocol_limit,
    export_id,
    source_file,
    source_line
FROM deviations
ORDER BY site_id, source_line, deviation;
