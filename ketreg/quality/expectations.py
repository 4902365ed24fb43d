"""Great Expectations suites built from the quality rules (`rules.py`), run per registry table and site on
DataFrames read from DuckDB, and rendered as Data Docs.

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


def _asset_name(table: str, site_id: str) -> str:
    return f"{table}__{site_id}"


def _counts(rule: QualityRule, result: dict[str, Any]) -> tuple[int, int]:
    """(violating rows, rows checked): not-null checks count every row; other checks skip missing values."""
    elements = int(result.get("element_count") or 0)
    unexpected = int(result.get("unexpected_count") or 0)
    if rule.expectation == "ExpectColumnValuesToNotBeNull":
        return unexpected, elements
    return unexpected, elements - int(result.get("missing_count") or 0)


def run_suites(
    con: duckdb.DuckDBPyConnection,
    rules: dict[str, list[QualityRule]],
    run_name: str,
    data_docs_dir: Path | None,
) -> SuiteRun:
    """Validate each registry table, site by site, against its suite; build Data Docs into `data_docs_dir`
    (replacing what was there) when given. Returns one result per rule and site."""
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
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    source = context.data_sources.add_pandas(DATASOURCE)
    run_id = RunIdentifier(run_name=run_name)
    results: list[CheckResult] = []
    pages: dict[tuple[str, str], str] = {}
    for table, table_rules in rules.items():
        suite = context.suites.add(gx.ExpectationSuite(name=f"registry_{table}"))
        for rule in table_rules:
            expectation = getattr(gxe, rule.expectation)(
                **rule.kwargs, meta={"kahn_category": rule.category, "rule": rule.name, "description": rule.description}
            )
            suite.add_expectation(expectation)
        frame = con.sql(f"SELECT * FROM registry.{table} ORDER BY site_id, source_line").df()
        for site_id in sorted(frame["site_id"].dropna().unique()):
            site_frame = frame[frame["site_id"] == site_id].reset_index(drop=True)
            asset = source.add_dataframe_asset(_asset_name(table, site_id))
            batch = asset.add_batch_definition_whole_dataframe("current_export")
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"registry_{table} {site_id}", data=batch, suite=suite)
            )
            validation = definition.run(
                batch_parameters={"dataframe": site_frame}, run_id=run_id, result_format="SUMMARY"
            )
            for rule, outcome in zip(table_rules, validation.results, strict=True):
                numerator, denominator = _counts(rule, outcome.result)
                results.append(CheckResult(
                    check_id=f"great_expectations/{table}/{rule.name}/{site_id}",
                    source="great_expectations",
                    category=rule.category,
                    table_name=table,
                    column_name=rule.column,
                    site_id=site_id,
                    check_name=rule.name,
                    description=rule.description,
                    numerator=numerator,
                    denominator=denominator,
                    threshold=rule.threshold,
                    passed=bool(outcome.success),
                    violations_sql=rule.violations_sql(site_id),
                    asset_key=f"registry/{table}",
                    data_docs_page=None,
                ))
            pages[(table, site_id)] = _asset_name(table, site_id)
    index = None
    if data_docs_dir is not None:
        context.build_data_docs()
        index = data_docs_dir / "index.html"
        found = _validation_pages(data_docs_dir)
        results = [
            _with_page(r, found.get(pages.get((r.table_name, r.site_id), ""))) for r in results
        ]
    return SuiteRun(results, index)


def _validation_pages(data_docs_dir: Path) -> dict[str, str]:
    """Data Docs page of each validation, by data asset name, relative to the Data Docs folder."""
    pages: dict[str, str] = {}
    for page in sorted((data_docs_dir / "validations").rglob(f"{DATASOURCE}-*.html")):
        pages[page.stem.removeprefix(f"{DATASOURCE}-")] = page.relative_to(data_docs_dir).as_posix()
    return pages


def _with_page(result: CheckResult, page: str | None) -> CheckResult:
    return replace(result, data_docs_page=page)
