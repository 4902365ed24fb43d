-- Each site's newest export and its status: rejected when a required file or column is missing.
SELECT site_id, arg_max(export_id, export_id) AS export_id, arg_max(status, export_id) AS status
FROM registry.exports GROUP BY ALL
ORDER BY site_id
