"""The one evaluator of the registry's catalogue checks (config/check_catalogue.yaml, engine registry_check): it
renders a check's SQL templates with whitelisted identifiers and literals, counts the violating rows (numerator)
and the rows checked (denominator), and turns the outcome into a row of `quality.check_results`. The Dagster asset
checks (pipelines/checks.py) and the quality asset read their outcomes from here; Great Expectations rules and the
site-export checks make their rows with `check_result` too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ketreg.landing.retired import retired_sites
from ketreg.quality.catalogue import CatalogueCheck, column, literal, registry_key, render_template, table_name
from ketreg.quality.conditions import contract_condition
from ketreg.quality.registry_evaluations import run_evaluations
from ketreg.quality.results import CheckResult
from ketreg.quality.rules import QualityRule
from ketreg.warehouse.connection import scalar
from ketreg.warehouse.sql_files import sql_text
from schemas.protocol import Protocol
from schemas.tables import TABLES, TABLES_BY_NAME

# The published registry's rows per site, copied into the working database when a check needs them, so the
# check's SQL runs on the working database alone (and can be run again from the quality history).
PUBLISHED_SITES = "publish_guard.published_sites"
_NAMED_AT_MOST = 20
# The registry's pseudonymous keys: the only columns a key or reference check may name.
REGISTRY_KEYS = frozenset(key for key in (registry_key(table) for table in TABLES) if key)


class PublishedRegistryUnreadable(RuntimeError):
    """The analysts' file cannot be read to compare with this run (nothing is published then)."""


@dataclass(frozen=True)
class CheckInputs:
    """What the registry checks read besides the working database: the settings of this registry."""

    analyst_db_path: Path
    landing_path: Path
    retired_sites: tuple[str, ...]
    max_row_drop_share: float
    protocol: Protocol


@dataclass(frozen=True)
class Evaluation:
    """One registry check evaluated on the working database: its violating rows' SQL and counts."""

    check: CatalogueCheck
    violations_sql: str
    violations: int  # the numerator
    checked: int  # the denominator
    named: list[str]  # values of the check type's `names_column` of the violating rows (at most 20)

    @property
    def passed(self) -> bool:
        return self.violations <= self.check.threshold * self.checked

    @property
    def summary(self) -> str:
        """What the operator reads in the run: how many rows violate what, and for named rows how to resolve it."""
        check_type = self.check.check_type
        text = f"{self.violations} of {self.checked} rows violate: {self.check.description}"
        if self.named:
            text += f" ({check_type.names_column}: {', '.join(self.named)}); {check_type.remedy}"
        return text


def _snapshot_published_sites(con: duckdb.DuckDBPyConnection, analyst_db: Path) -> None:
    """Refresh PUBLISHED_SITES from the analysts' file as it is now (no rows when nothing is published yet)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS publish_guard")
    con.execute(f"CREATE OR REPLACE TABLE {PUBLISHED_SITES} (site_id VARCHAR, rows_published BIGINT)")
    if not analyst_db.exists():
        return
    try:
        con.execute("ATTACH ? AS published (READ_ONLY)", [str(analyst_db.resolve())])
    except duckdb.Error as exc:
        raise PublishedRegistryUnreadable(
            f"cannot read the published registry {analyst_db.resolve()} to compare with this run "
            f"(is it open read-write elsewhere?): {type(exc).__name__}; nothing was published"
        ) from exc
    try:
        tables = {row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'published' AND schema_name = 'main'"
        ).fetchall()}
        if "file_counts" in tables:
            con.execute(f"INSERT INTO {PUBLISHED_SITES} SELECT site_id, sum(rows_in_registry) "
                        "FROM published.main.file_counts WHERE is_current_export GROUP BY site_id")
        elif "exports" in tables:  # an older or reduced registry: a current export counts as data
            con.execute(f"INSERT INTO {PUBLISHED_SITES} SELECT DISTINCT site_id, 1 "
                        "FROM published.main.exports WHERE is_current")
    finally:
        con.execute("DETACH published")


def _fragments(con: duckdb.DuckDBPyConnection, check: CatalogueCheck, inputs: CheckInputs) -> dict[str, str]:
    """The {slots} of a check's templates: identifiers from a whitelist, values as escaped literals, conditions
    rendered from the catalogue. The vanished-site check first copies the published registry's sites in."""
    fragments = {"table": table_name(check.table)}
    if "key" in check.params:
        fragments["key"] = column(check.params["key"], REGISTRY_KEYS)
    if "parent" in check.params:
        fragments["parent"] = table_name(check.params["parent"])
    if check.check_type.type == "values_within_contract_ranges":
        columns = {row[0] for row in con.execute(f"DESCRIBE registry.{fragments['table']}").fetchall()}
        fragments["violated_when"] = contract_condition(TABLES_BY_NAME[check.table], columns, inputs.protocol)
    if check.check_type.type == "no_sudden_row_drop":
        fragments["max_row_drop_share"] = literal(float(inputs.max_row_drop_share))
    if check.check_type.type == "no_site_vanished":
        _snapshot_published_sites(con, inputs.analyst_db_path)
        fragments["retired_sites"] = literal(retired_sites(inputs.landing_path, list(inputs.retired_sites)))
    return fragments


def _used(relative: str, fragments: dict[str, str]) -> dict[str, str]:
    """The fragments a template has slots for (a check's two templates need different ones)."""
    text = sql_text(relative)
    return {name: value for name, value in fragments.items() if "{" + name + "}" in text}


def evaluate(con: duckdb.DuckDBPyConnection, check: CatalogueCheck, inputs: CheckInputs) -> Evaluation:
    """Run one registry check's SQL on the working database."""
    check_type = check.check_type
    if check_type.sql is None or check_type.denominator_sql is None:
        raise ValueError(f"check type {check_type.type} has no SQL to evaluate (config/check_catalogue.yaml)")
    fragments = _fragments(con, check, inputs)
    violations_sql = render_template(check_type.sql, _used(check_type.sql, fragments))
    violations = scalar(con, f"SELECT count(*) FROM ({violations_sql})")
    checked = scalar(con, render_template(check_type.denominator_sql, _used(check_type.denominator_sql, fragments)))
    named: list[str] = []
    if violations and check_type.names_column:
        named = [str(row[0]) for row in con.execute(
            f"SELECT DISTINCT {column(check_type.names_column, {'site_id'})} FROM ({violations_sql}) "
            f"ORDER BY 1 LIMIT {_NAMED_AT_MOST}"
        ).fetchall()]
    return Evaluation(check, violations_sql, violations, checked, named)


def check_result(
    check: CatalogueCheck, source: str, site_id: str, numerator: int, denominator: int, violations_sql: str,
    asset_key: str, passed: bool | None = None, description: str | None = None, check_id: str | None = None,
) -> CheckResult:
    """A catalogue check's outcome as one row of `quality.check_results` (for one site, or "all"); `check_id`
    is `source/table/check/site` unless given (it must stay as earlier runs recorded it)."""
    return CheckResult(
        check_id=check_id or f"{source}/{check.table}/{check.name}/{site_id}",
        source=source,
        category=check.category,
        table_name=check.table,
        column_name=check.column,
        site_id=site_id,
        check_name=check.name,
        description=description if description is not None else check.description,
        numerator=numerator,
        denominator=denominator,
        threshold=check.threshold,
        passed=passed if passed is not None else numerator <= check.threshold * denominator,
        violations_sql=violations_sql,
        asset_key=asset_key,
    )


def rule_result(rule: QualityRule, site_id: str, numerator: int, denominator: int, passed: bool) -> CheckResult:
    """A Great Expectations rule's outcome for one site (or "all") as one row of `quality.check_results`."""
    return CheckResult(
        check_id=f"great_expectations/{rule.table}/{rule.name}/{site_id}",
        source="great_expectations",
        category=rule.category,
        table_name=rule.table,
        column_name=rule.column,
        site_id=site_id,
        check_name=rule.name,
        description=rule.description,
        numerator=numerator,
        denominator=denominator,
        threshold=rule.threshold,
        passed=passed,
        violations_sql=rule.violations_sql(site_id) if site_id != "all" else rule.all_violations_sql(),
        asset_key=f"registry/{rule.table}",
        data_docs_page=None,
    )


def registry_check_result(check: CatalogueCheck, numerator: int, denominator: int, violations_sql: str) -> CheckResult:
    """A registry check's outcome for the whole registry, as the quality history records it (SQL on one line)."""
    return check_result(check, "registry_check", "all", numerator, denominator, " ".join(violations_sql.split()),
                        asset_key=f"registry/{check.table}")


def registry_results(
    con: duckdb.DuckDBPyConnection, checks: Sequence[CatalogueCheck], inputs: CheckInputs, run_id: str
) -> list[CheckResult]:
    """The registry checks' rows of the quality history, as the check step of run `run_id` evaluated them
    (quality.registry_check_evaluations); a check that run did not evaluate (the quality asset materialized on
    its own) is evaluated here."""
    evaluated = run_evaluations(con, run_id)
    results = []
    for check in checks:
        row = evaluated.get((check.table, check.name))
        if row is None:
            evaluation = evaluate(con, check, inputs)
            results.append(registry_check_result(
                check, evaluation.violations, evaluation.checked, evaluation.violations_sql
            ))
        else:
            results.append(registry_check_result(check, row.numerator, row.denominator, row.violations_sql))
    return results
