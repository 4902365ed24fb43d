"""Checks of what each site sent in its current export, read from the quarantine's counts: per file and Kahn
category, the rows the contract rejected out of the rows received; and whether the site's newest export was
usable. Both are check types of the catalogue (config/check_catalogue.yaml, engine site_export), which also
says which quarantine rules count for which category."""

from __future__ import annotations

import duckdb
import polars as pl

from ketreg.quality.catalogue import (
    CONFORMANCE,
    KAHN_CATEGORIES,
    CatalogueCheck,
    check_type,
    listed_instances,
    literal,
    render_template,
)
from ketreg.quality.catalogue import (
    site_export_checks as catalogue_site_export_checks,
)
from ketreg.quality.evaluator import check_result
from ketreg.quality.results import CheckResult
from ketreg.warehouse.connection import sql_text
from schemas.tables import TABLES


def _category_rules() -> dict[str, tuple[str, ...]]:
    """Quarantine rules by category (the names schemas/validation.py gives them), as the catalogue lists them;
    the contract's references count where the catalogue says so."""
    references = sorted({reference.name for table in TABLES for reference in table.references})
    return {
        listed["category"]: (
            *listed["quarantine_rules"], *(references if listed.get("with_contract_references") else ())
        )
        for listed in listed_instances("rows_pass_category_rules")
    }


def _other_rules_category() -> str:
    """The category of a rule no category lists (ranges, row rules, uniqueness, protocol limits)."""
    return next(listed["category"] for listed in listed_instances("rows_pass_category_rules")
                if listed.get("any_other_rule"))


def rule_categories() -> pl.DataFrame:
    listed = [(rule, category) for category, rules in _category_rules().items() for rule in rules]
    return pl.DataFrame({"rule": [r for r, _ in listed], "category": [c for _, c in listed]},
                        schema={"rule": pl.String, "category": pl.String})


def _reason_filter(category: str) -> str:
    rules = _category_rules()
    if category != _other_rules_category():
        listed = ", ".join(map(literal, rules[category]))
        return f"len(list_filter(reasons, lambda r: r.rule IN ({listed}))) > 0"
    known = ", ".join(literal(rule) for listed in rules.values() for rule in listed)
    return f"len(list_filter(reasons, lambda r: r.rule NOT IN ({known}))) > 0"


def site_export_checks(con: duckdb.DuckDBPyConnection) -> list[CheckResult]:
    """One result per site, file of its current export and category, plus one per site for its newest export."""
    checks = {(c.table, c.category): c for c in catalogue_site_export_checks()
              if c.check_type.type == "rows_pass_category_rules"}
    con.register("_rule_categories", rule_categories())
    try:
        rows = con.execute(sql_text(check_type("rows_pass_category_rules").sql or ""), {
            "categories": list(KAHN_CATEGORIES), "other_rules_category": _other_rules_category(),
        }).fetchall()
    finally:
        con.unregister("_rule_categories")
    results: list[CheckResult] = []
    for site_id, export_id, file_name, category, numerator, denominator in rows:
        check: CatalogueCheck = checks[(file_name.removesuffix(".csv"), category)]
        results.append(check_result(
            check, "site_export", site_id, int(numerator), int(denominator),
            description=check.description.format(export_id=export_id),
            # The rows themselves are in the working store only (the analysts' file has counts).
            violations_sql=render_template(check.check_type.violations_sql or "", {
                "site_id": literal(site_id), "file_name": literal(file_name),
                "reasons_of_category": _reason_filter(category),
            }),
            asset_key="registry/quarantine",
            check_id=f"site_export/{check.table}/{category}/{site_id}",
        ))
    (newest,) = [c for c in catalogue_site_export_checks() if c.check_type.type == "newest_export_accepted"]
    for site_id, export_id, status in con.execute(sql_text(newest.check_type.sql or "")).fetchall():
        results.append(check_result(
            newest, "site_export", site_id, int(status == "rejected"), 1,
            description=newest.description.format(export_id=export_id),
            violations_sql=render_template(newest.check_type.violations_sql or "", {
                "site_id": literal(site_id), "export_id": literal(export_id),
            }),
            asset_key="registry/exports",
        ))
    return results


__all__ = ["CONFORMANCE", "rule_categories", "site_export_checks"]
