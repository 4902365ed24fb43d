"""Checks of what each site sent in its current export, read from the quarantine's counts: per file and Kahn
category, the rows the contract rejected out of the rows received; and whether the site's newest export was
usable."""

from __future__ import annotations

import duckdb
import polars as pl

from ketreg.quality.results import CheckResult
from ketreg.quality.rules import COMPLETENESS, CONFORMANCE
from ketreg.warehouse.connection import sql_text
from schemas.tables import TABLES

# Quarantine rules by category (the names schemas/validation.py gives them); any other rule is plausibility.
_COMPLETENESS_RULES = ("required",)
_CONFORMANCE_RULES = (
    "type", "code", "parent_quarantined",
    *sorted({reference.name for table in TABLES for reference in table.references}),
)
_CATEGORY_WORDS = {
    "conformance": "readable values, valid codes and references to rows of the same export",
    "completeness": "required values present",
    "plausibility": "values within ranges, unique ids, consistent times, doses and rates",
}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def rule_categories() -> pl.DataFrame:
    return pl.DataFrame({
        "rule": [*_CONFORMANCE_RULES, *_COMPLETENESS_RULES],
        "category": [CONFORMANCE] * len(_CONFORMANCE_RULES) + [COMPLETENESS] * len(_COMPLETENESS_RULES),
    })


def _reason_filter(category: str) -> str:
    listed = {CONFORMANCE: _CONFORMANCE_RULES, COMPLETENESS: _COMPLETENESS_RULES}.get(category)
    if listed is not None:
        return f"len(list_filter(reasons, lambda r: r.rule IN ({', '.join(map(_quote, listed))}))) > 0"
    known = (*_CONFORMANCE_RULES, *_COMPLETENESS_RULES)
    return f"len(list_filter(reasons, lambda r: r.rule NOT IN ({', '.join(map(_quote, known))}))) > 0"


def site_export_checks(con: duckdb.DuckDBPyConnection) -> list[CheckResult]:
    """One result per site, file of its current export and category, plus one per site for its newest export."""
    con.register("_rule_categories", rule_categories())
    try:
        rows = con.execute(sql_text("quality/site_export_checks.sql")).fetchall()
    finally:
        con.unregister("_rule_categories")
    results: list[CheckResult] = []
    for site_id, export_id, file_name, category, numerator, denominator in rows:
        table = file_name.removesuffix(".csv")
        results.append(CheckResult(
            check_id=f"site_export/{table}/{category}/{site_id}",
            source="site_export",
            category=category,
            table_name=table,
            column_name=None,
            site_id=site_id,
            check_name=f"{table}_rows_pass_{category}_rules",
            description=f"rows of {file_name} in export {export_id} pass the contract's {category} rules "
                        f"({_CATEGORY_WORDS[category]})",
            numerator=int(numerator),
            denominator=int(denominator),
            threshold=0.0,
            passed=numerator == 0,
            # The rows themselves are in the working store only (the analysts' file has counts).
            violations_sql=(
                f"SELECT * FROM site_private.quarantine WHERE is_current_export AND site_id = {_quote(site_id)} "
                f"AND file_name = {_quote(file_name)} AND {_reason_filter(category)}"
            ),
            asset_key="registry/quarantine",
        ))
    newest = con.execute(
        "SELECT site_id, arg_max(export_id, export_id), arg_max(status, export_id) FROM registry.exports GROUP BY ALL "
        "ORDER BY site_id"
    ).fetchall()
    for site_id, export_id, status in newest:
        results.append(CheckResult(
            check_id=f"site_export/exports/newest_export_accepted/{site_id}",
            source="site_export",
            category=CONFORMANCE,
            table_name="exports",
            column_name=None,
            site_id=site_id,
            check_name="newest_export_accepted",
            description=f"the site's newest export ({export_id}) has every required file and column",
            numerator=int(status == "rejected"),
            denominator=1,
            threshold=0.0,
            passed=status != "rejected",
            violations_sql=(
                f"SELECT * FROM site_private.exports WHERE site_id = {_quote(site_id)} AND export_id = "
                f"{_quote(export_id)} AND status = 'rejected'"
            ),
            asset_key="registry/exports",
        ))
    return results
