"""One row of the check-results history: a check's outcome for one site (or the whole registry) in one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import polars as pl


@dataclass(frozen=True)
class CheckResult:
    check_id: str  # stable across runs: source/table/check/site, so runs can be compared
    source: str  # great_expectations | site_export | registry_check
    category: str  # conformance | completeness | plausibility (Kahn 2016)
    table_name: str
    column_name: str | None
    site_id: str  # a site, or "all" for checks of the whole registry
    check_name: str
    description: str
    numerator: int  # rows that violate the check
    denominator: int  # rows checked
    threshold: float  # share of checked rows allowed to violate it
    passed: bool
    violations_sql: str  # lists the violating rows in the working database
    asset_key: str  # the Dagster asset whose data the check reads
    data_docs_page: str | None = None  # relative to the reports folder
    # The run that produced this result: a site's Great Expectations results are carried forward from the run
    # that last validated its rows while they stay unchanged; None while being made (then it is this run).
    origin_run_id: str | None = None

    @property
    def failure_share(self) -> float:
        return self.numerator / self.denominator if self.denominator else 0.0


RESULT_COLUMNS = tuple(f.name for f in fields(CheckResult))


def results_frame(results: list[CheckResult]) -> pl.DataFrame:
    """The results as a DataFrame with the history table's columns (without the run's id and time)."""
    schema = {
        "check_id": pl.String, "source": pl.String, "category": pl.String, "table_name": pl.String,
        "column_name": pl.String, "site_id": pl.String, "check_name": pl.String, "description": pl.String,
        "numerator": pl.Int64, "denominator": pl.Int64, "threshold": pl.Float64, "passed": pl.Boolean,
        "violations_sql": pl.String, "asset_key": pl.String, "data_docs_page": pl.String,
        "origin_run_id": pl.String,
    }
    return pl.DataFrame([asdict(r) for r in results], schema=schema, orient="row")
