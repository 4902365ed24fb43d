"""The short report a run prints: what came in, what was accepted, quarantined and rejected, and where
everything is. It reads the published analysts' database, so it shows exactly what analysts see."""

from __future__ import annotations

from pathlib import Path

import duckdb


def run_summary(analyst_db: Path) -> str:
    """A plain-text summary of the published registry."""
    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        return _summary(con, analyst_db)
    finally:
        con.close()


def _summary(con: duckdb.DuckDBPyConnection, analyst_db: Path) -> str:
    lines: list[str] = []
    sites, exports, rejected = con.execute(
        "SELECT count(DISTINCT site_id), count(*), count(*) FILTER (status = 'rejected') FROM exports"
    ).fetchall()[0]
    lines.append(f"Registry {analyst_db}: {sites} sites, {exports} exports ({rejected} rejected)")
    for site, export, reason in con.execute(
        "SELECT site_id, export_id, rejection_reason FROM exports WHERE status = 'rejected' ORDER BY ALL"
    ).fetchall():
        lines.append(f"  REJECTED {site}/{export}: {reason}")
    lines.append("")
    lines.append(f"  {'file (all exports)':<22}{'read':>10}{'accepted':>10}{'quarantined':>13}{'in registry':>13}")
    for file_name, read, accepted, quarantined, current in con.execute(
        """SELECT file_name, sum(rows_read), sum(rows_accepted), sum(rows_quarantined),
                  sum(rows_accepted) FILTER (is_current_export)
           FROM file_counts GROUP BY file_name
           ORDER BY list_position(['patients.csv', 'infusions.csv', 'assessments.csv',
                                   'adverse_events.csv', 'dispositions.csv'], file_name)"""
    ).fetchall():
        lines.append(f"  {file_name:<22}{read:>10}{accepted:>10}{quarantined:>13}{current or 0:>13}")
    lines.append("")
    cohort, excluded = con.execute(
        "SELECT count(*) FILTER (in_analysis_cohort), count(*) FILTER (NOT in_analysis_cohort) FROM patients"
    ).fetchall()[0]
    lines.append(f"  analysis cohort: {cohort} patients ({excluded} excluded for prior neuropathy)")
    deviations = con.execute(
        "SELECT deviation, count(*) FROM protocol_deviations GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    lines.append(
        "  protocol deviations: "
        + (", ".join(f"{name} {n}" for name, n in deviations) if deviations else "none")
    )
    identifiers = con.execute(
        """SELECT DISTINCT site_id || '/' || export_id || '/' || file_name || ': ' ||
                  array_to_string(identifier_columns_dropped, ', ')
           FROM file_counts WHERE len(identifier_columns_dropped) > 0 ORDER BY 1"""
    ).fetchall()
    for (entry,) in identifiers:
        lines.append(f"  identifier-like columns not read (ask the site to remove them): {entry}")
    has_metrics = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'metrics' AND table_name = 'registry_metrics'"
    ).fetchall()[0][0]
    if has_metrics:
        for metric, numerator, denominator, estimate, low, high in con.execute(
            """SELECT metric, numerator, denominator, estimate, ci_low, ci_high FROM metrics.registry_metrics
               WHERE stratum_type = 'overall' AND metric IN ('responder_rate', 'durable_relief')
               AND estimate IS NOT NULL ORDER BY metric DESC"""
        ).fetchall():
            name = metric.replace("_", " ")
            lines.append(f"  {name}: {estimate:.1%} ({numerator}/{denominator}; 95 % CI {low:.1%}–{high:.1%})")
    top_reasons = con.execute(
        """SELECT file_name, r.rule, count(*) AS n FROM quarantine, unnest(reasons) AS t(r)
           GROUP BY ALL ORDER BY n DESC, file_name, r.rule LIMIT 8"""
    ).fetchall()
    if top_reasons:
        lines.append("  most frequent quarantine reasons: " + ", ".join(f"{f} {r} ×{n}" for f, r, n in top_reasons))
    return "\n".join(lines)
