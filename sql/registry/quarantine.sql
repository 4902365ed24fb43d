-- registry.quarantine: what the contract quarantined, as counts: per site, export, file, failed rule and
-- column, how many rows and at which lines of the site's file. It names no record and quotes no value: the
-- rows themselves (the site's ids, the raw values, the messages) stay in the working store
-- (site_private.quarantine) and go back only to the site that sent them. A row that broke several rules is
-- counted under each. The quarantine of earlier exports stays on record (is_current_export = false).
CREATE OR REPLACE TABLE registry.quarantine AS
WITH failed_rules AS (
    SELECT
        q.site_id,
        q.export_id,
        q.file_name,
        q.source_line,
        q.is_current_export,
        r.rule,
        r."column" AS column_name
    FROM site_private.quarantine AS q, unnest(q.reasons) AS u (r)
)
SELECT
    site_id,
    export_id,
    file_name,
    rule,
    column_name,
    count(DISTINCT source_line) AS quarantined_rows,
    list_sort(list_distinct(list(source_line))) AS source_lines,
    is_current_export
FROM failed_rules
GROUP BY site_id, export_id, file_name, rule, column_name, is_current_export
ORDER BY site_id, export_id, file_name, rule, column_name;
