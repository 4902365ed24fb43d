-- Protocol deviations (valid infusions that departed from the protocol) per site, current export and kind.
SELECT site_id, export_id, deviation, count(*) AS infusions
FROM registry.protocol_deviations
GROUP BY ALL
ORDER BY site_id, export_id, deviation;
