"""The short report a run prints for the registry team: what came in, what was accepted, quarantined and
rejected, and where everything is. Its figures come from the published analysts' database, so they are what
analysts see; the sites' own words (why an export was rejected, which columns were not read) come from the
private working store when it is given, since the operator running the pipeline holds that anyway."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from ketreg.metrics.time_to_event import median_relief_line
from ketreg.warehouse.sql_files import sql_text


def run_summary(analyst_db: Path, work_db: Path | None = None) -> str:
    """A plain-text summary of the published registry (and of the sites' messages, from `work_db`)."""
    private = _site_messages(work_db) if work_db is not None and work_db.is_file() else None
    con = duckdb.connect(str(analyst_db), read_only=True)
    try:
        return _summary(con, analyst_db, private)
    finally:
        con.close()


@dataclass
class _SiteMessages:
    rejections: dict[tuple[str, str], str]
    identifier_columns: list[str]


def _site_messages(work_db: Path) -> _SiteMessages | None:
    try:
        con = duckdb.connect(str(work_db), read_only=True)
    except duckdb.Error:
        return None  # e.g. a run holds it: the summary then names the site's folder instead
    try:
        rejections = con.execute(
            "SELECT site_id, export_id, rejection_reason FROM site_private.exports WHERE status = 'rejected'"
        ).fetchall()
        identifiers = con.execute(
            """SELECT DISTINCT site_id || '/' || export_id || '/' || file_name || ': ' ||
                      array_to_string(identifier_columns_dropped, ', ')
               FROM site_private.file_columns WHERE len(identifier_columns_dropped) > 0 ORDER BY 1"""
        ).fetchall()
    except duckdb.CatalogException:
        return None  # a working store from before the site_private schema
    finally:
        con.close()
    return _SiteMessages({(s, e): r for s, e, r in rejections}, [entry for (entry,) in identifiers])


def _summary(con: duckdb.DuckDBPyConnection, analyst_db: Path, private: _SiteMessages | None) -> str:
    lines: list[str] = []
    sites, exports, rejected = con.execute(
        "SELECT count(DISTINCT site_id), count(*), count(*) FILTER (status = 'rejected') FROM exports"
    ).fetchall()[0]
    lines.append(f"Registry {analyst_db}: {sites} sites, {exports} exports ({rejected} rejected)")
    has_key_table = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'pseudonym_key'"
    ).fetchall()[0][0]
    if has_key_table:
        for (fingerprint,) in con.execute("SELECT key_fingerprint FROM pseudonym_key").fetchall():
            lines.append(f"  pseudonym key fingerprint: {fingerprint}")
    for site, export in con.execute(
        "SELECT site_id, export_id FROM exports WHERE status = 'rejected' ORDER BY ALL"
    ).fetchall():
        reason = private.rejections.get((site, export)) if private else None
        lines.append(f"  REJECTED {site}/{export}: {reason or 'why: see the site’s data-manager folder'}")
    lines.append("")
    lines.append(f"  {'file (all exports)':<22}{'read':>10}{'accepted':>10}{'quarantined':>13}{'in registry':>13}")
    for file_name, read, accepted, quarantined, current in con.execute(sql_text("summary/rows_by_file.sql")).fetchall():
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
    if private is not None:
        identifiers = private.identifier_columns
    else:
        identifiers = [
            f"{site}/{export}/{file_name}: {n} column(s)"
            for site, export, file_name, n in con.execute(
                "SELECT DISTINCT site_id, export_id, file_name, identifier_columns_dropped_count FROM file_counts "
                "WHERE identifier_columns_dropped_count > 0 ORDER BY ALL"
            ).fetchall()
        ]
    for entry in identifiers:
        lines.append(f"  identifier-like columns not read (ask the site to remove them): {entry}")
    has_metrics = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'metrics' AND table_name = 'registry_metrics'"
    ).fetchall()[0][0]
    if has_metrics:
        headline = con.execute(sql_text("summary/headline_metrics.sql")).fetchall()
        for metric, numerator, denominator, estimate, low, high in headline:
            name = metric.replace("_", " ")
            lines.append(f"  {name}: {estimate:.1%} ({numerator}/{denominator}; 95 % CI {low:.1%}–{high:.1%})")
        if relief := median_relief_line(con):
            lines.append(relief)
    top_reasons = con.execute(sql_text("summary/top_quarantine_reasons.sql")).fetchall()
    if top_reasons:
        lines.append("  most frequent quarantine reasons: " + ", ".join(f"{f} {r} ×{n}" for f, r, n in top_reasons))
    return "\n".join(lines)
