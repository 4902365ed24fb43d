"""Great Expectations suites built from the quality rules (`rules.py`), run once per registry table on a
DataFrame read from DuckDB, and rendered as Data Docs. The per-site breakdown of each rule is counted in SQL
with the rule's own predicate: one Great Expectations validation per table and site costs about 0.4 s of
fixed overhead, which for a registry of a hundred sites would dominate the whole run.

Great Expectations is imported inside these functions: it takes about 5 s to import, and only the quality step
needs it. Its SQL data source returns empty results on DuckDB 2, hence DataFrames."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb

from ketreg.quality.results import CheckResult
from ketreg.quality.rules import QualityRule

DATASOURCE = "registry"
# Suite names without dots: Data Docs turn dots into folders, and then its pages' relative links miss by a level.


@dataclass(frozen=True)
class SuiteRun:
    results: list[CheckResult]
    data_docs_index: Path | None


def _counts(rule: QualityRule, result: dict[str, Any]) -> tuple[int, int]:
    """(violating rows, rows checked): not-null checks count every row; other checks skip missing values."""
    elements = int(result.get("element_count") or 0)
    unexpected = int(result.get("unexpected_count") or 0)
    if rule.expectation == "ExpectColumnValuesToNotBeNull":
        return unexpected, elements
    return unexpected, elements - int(result.get("missing_count") or 0)


def _checked_rows(rule: QualityRule) -> str:
    """SQL condition of the rows a rule looks at: every row for not-null checks, else rows with values."""
    if rule.expectation == "ExpectColumnValuesToNotBeNull" or rule.column is None:
        columns = [rule.kwargs[k] for k in ("column_A", "column_B") if k in rule.kwargs]
        return " AND ".join(f"{c} IS NOT NULL" for c in columns) or "true"
    return f"{rule.column} IS NOT NULL"


def _site_counts(
    con: duckdb.DuckDBPyConnection, table: str, rules: list[QualityRule]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(violating rows, rows checked) of every rule for every site of the table, in one scan."""
    aggregates = ", ".join(
        f"count(*) FILTER ({rule.predicate}), count(*) FILTER ({_checked_rows(rule)})" for rule in rules
    )
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for row in con.execute(f"SELECT site_id, {aggregates} FROM registry.{table} GROUP BY site_id").fetchall():
        for index, rule in enumerate(rules):
            counts[(rule.name, row[0])] = (int(row[1 + 2 * index]), int(row[2 + 2 * index]))
    return counts


# Rows per Great Expectations validation: large enough that its fixed cost (about 0.4 s) is paid a few times
# per table, small enough that the pandas copy stays a few hundred MB.
MAX_ROWS_PER_VALIDATION = 750_000


def _site_parts(con: duckdb.DuckDBPyConnection, table: str) -> list[list[str]]:
    """The table's sites in consecutive groups of at most MAX_ROWS_PER_VALIDATION rows (a larger site alone)."""
    parts: list[list[str]] = [[]]
    rows_in_part = 0
    sizes = con.execute(f"SELECT site_id, count(*) FROM registry.{table} GROUP BY 1 ORDER BY 1").fetchall()
    for site_id, rows in sizes:
        if parts[-1] and rows_in_part + rows > MAX_ROWS_PER_VALIDATION:
            parts.append([])
            rows_in_part = 0
        parts[-1].append(site_id)
        rows_in_part += rows
    return parts


def _needed_columns(rules: list[QualityRule]) -> list[str]:
    names = {rule.kwargs[k] for rule in rules for k in ("column", "column_A", "column_B") if k in rule.kwargs}
    return sorted(names)


def run_suites(
    con: duckdb.DuckDBPyConnection,
    rules: dict[str, list[QualityRule]],
    run_name: str,
    data_docs_dir: Path | None,
) -> SuiteRun:
    """Validate each registry table against its suite; build Data Docs into `data_docs_dir` (replacing what
    was there) when given. Returns one result per rule for the whole table (site "all") and per site."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site_name in list(context.get_site_names()):
        context.delete_data_docs_site(site_name)
    if data_docs_dir is not None:
        shutil.rmtree(data_docs_dir, ignore_errors=True)
        context.add_data_docs_site(
            "ketreg",
            {
                "class_name": "SiteBuilder",
                # Great Expectations refuses a relative folder (`make demo` passes relative paths).
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    source = context.data_sources.add_pandas(DATASOURCE)
    run_id = RunIdentifier(run_name=run_name)
    results: list[CheckResult] = []
    pages: dict[str, str] = {}
    for table, table_rules in rules.items():
        suite = context.suites.add(gx.ExpectationSuite(name=f"registry_{table}"))
        for rule in table_rules:
            expectation = getattr(gxe, rule.expectation)(
                **rule.kwargs, meta={"kahn_category": rule.category, "rule": rule.name, "description": rule.description}
            )
            suite.add_expectation(expectation)
        # Only the columns the suite reads, a bounded number of rows at a time (whole sites per part): a registry
        # table can hold millions of rows, and a pandas copy of all of them would outgrow the memory budget.
        columns = ", ".join(_needed_columns(table_rules))
        parts = _site_parts(con, table)
        totals = {rule.name: [0, 0, True] for rule in table_rules}
        for number, part_sites in enumerate(parts, start=1):
            frame = (
                con.execute(
                    f"SELECT {columns} FROM registry.{table} WHERE site_id IN (SELECT unnest($sites))",
                    {"sites": part_sites},
                ).df()
                if part_sites  # an empty table still gets its (empty) validation and Data Docs page
                else con.execute(f"SELECT {columns} FROM registry.{table} WHERE false").df()
            )
            name = table if len(parts) == 1 else f"{table}__part_{number}_of_{len(parts)}"
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("current_exports")
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"registry_{name}", data=batch, suite=suite)
            )
            validation = definition.run(
                batch_parameters={"dataframe": frame}, run_id=run_id, result_format="SUMMARY"
            )
            del frame
            for rule, outcome in zip(table_rules, validation.results, strict=True):
                numerator, denominator = _counts(rule, outcome.result)
                totals[rule.name][0] += numerator
                totals[rule.name][1] += denominator
                totals[rule.name][2] = totals[rule.name][2] and bool(outcome.success)
            pages.setdefault(table, name)
        site_counts = _site_counts(con, table, table_rules)
        sites = sorted({site for _, site in site_counts})
        for rule in table_rules:
            numerator, denominator, passed = totals[rule.name]
            if len(parts) > 1:
                # Each part passing is not the whole passing for a share-based rule: judge the total.
                passed = numerator <= rule.threshold * denominator
            results.append(_result(rule, "all", numerator, denominator, passed))
            for site_id in sites:
                numerator, denominator = site_counts[(rule.name, site_id)]
                passed = numerator <= rule.threshold * denominator
                results.append(_result(rule, site_id, numerator, denominator, passed))
    index = None
    if data_docs_dir is not None:
        context.build_data_docs()
        index = data_docs_dir / "index.html"
        found = _validation_pages(data_docs_dir)
        results = [_with_page(r, found.get(pages.get(r.table_name, ""))) for r in results]
    return SuiteRun(results, index)


def _result(rule: QualityRule, site_id: str, numerator: int, denominator: int, passed: bool) -> CheckResult:
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


def _validation_pages(data_docs_dir: Path) -> dict[str, str]:
    """Data Docs page of each validation, by data asset name, relative to the Data Docs folder."""
    pages: dict[str, str] = {}
    for page in sorted((data_docs_dir / "validations").rglob(f"{DATASOURCE}-*.html")):
        pages[page.stem.removeprefix(f"{DATASOURCE}-")] = page.relative_to(data_docs_dir).as_posix()
    return pages


def _with_page(result: CheckResult, page: str | None) -> CheckResult:
    return replace(result, data_docs_page=page)
