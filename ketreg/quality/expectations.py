"""Great Expectations suites built from the quality rules (`rules.py`), run once per registry table on a
DataFrame read from DuckDB, and rendered as Data Docs. The per-site breakdown of each rule is counted in SQL
with the rule's own predicate: one Great Expectations validation per table and site costs about 0.4 s of
fixed overhead, which for a registry of a hundred sites would dominate the whole run.

Everything that touches Great Expectations is in `gx_session.py` (imported there, when a session opens: it takes
3–5 s to import, and only the quality step needs it). Its SQL data source returns empty results on DuckDB 2,
hence DataFrames."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from ketreg.quality.evaluator import rule_result
from ketreg.quality.gx_session import DATASOURCE, ExpectationSpec, GxSession
from ketreg.quality.results import CheckResult
from ketreg.quality.rules import QualityRule


@dataclass(frozen=True)
class SuiteRun:
    results: list[CheckResult]
    data_docs_index: Path | None


def _checked_rows(rule: QualityRule) -> str:
    """SQL condition of the rows a rule looks at (its catalogue type's `counts`): every row, or rows with a value."""
    if rule.meta.get("counts") == "every_row" or rule.column is None:
        return "true"
    return f"{rule.column} IS NOT NULL"


def _site_counts(
    con: duckdb.DuckDBPyConnection, table: str, rules: list[QualityRule], sites: list[str] | None = None
) -> dict[tuple[str, str], tuple[int, int]]:
    """(violating rows, rows checked) of every rule for every site of the table (or of `sites`), in one scan."""
    aggregates = ", ".join(
        f"count(*) FILTER ({rule.predicate}), count(*) FILTER ({_checked_rows(rule)})" for rule in rules
    )
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    rows = con.execute(
        f"SELECT site_id, {aggregates} FROM registry.{table} "
        "WHERE $sites IS NULL OR list_contains($sites, site_id) GROUP BY site_id",
        {"sites": sites},
    ).fetchall()
    for row in rows:
        for index, rule in enumerate(rules):
            counts[(rule.name, row[0])] = (int(row[1 + 2 * index]), int(row[2 + 2 * index]))
    return counts


# Rows per Great Expectations validation: large enough that its fixed cost (about 0.4 s) is paid a few times
# per table, small enough that the pandas copy and GX's metrics on it stay a few hundred MB (measured at 100 sites
# × 5,000 patients with DuckDB at 512 MB: the whole GX step peaked at 909 MiB RSS).
MAX_ROWS_PER_VALIDATION = 250_000


def _site_parts(con: duckdb.DuckDBPyConnection, table: str, sites: list[str] | None = None) -> list[list[str]]:
    """The table's sites (or those of `sites`) in consecutive groups of at most MAX_ROWS_PER_VALIDATION rows (a
    larger site alone)."""
    parts: list[list[str]] = [[]]
    rows_in_part = 0
    sizes = con.execute(
        f"SELECT site_id, count(*) FROM registry.{table} "
        "WHERE $sites IS NULL OR list_contains($sites, site_id) GROUP BY 1 ORDER BY 1",
        {"sites": sites},
    ).fetchall()
    for site_id, rows in sizes:
        if parts[-1] and rows_in_part + rows > MAX_ROWS_PER_VALIDATION:
            parts.append([])
            rows_in_part = 0
        parts[-1].append(site_id)
        rows_in_part += rows
    return parts


def _expectation(rule: QualityRule) -> ExpectationSpec:
    """The rule as a Great Expectations expectation, with the catalogue's fields of the check as its meta (shown
    with the expectation in the Data Docs)."""
    meta = {"kahn_category": rule.category, "rule": rule.name, "description": rule.description, **rule.meta}
    return rule.expectation, rule.kwargs, meta


def _needed_columns(rules: list[QualityRule]) -> list[str]:
    names = {rule.kwargs[k] for rule in rules for k in ("column", "column_A", "column_B") if k in rule.kwargs}
    return sorted(names)


def run_suites(
    con: duckdb.DuckDBPyConnection,
    rules: dict[str, list[QualityRule]],
    run_name: str,
    data_docs_dir: Path | None,
    sites: list[str] | None = None,
    carried: list[CheckResult] | tuple[CheckResult, ...] = (),
) -> SuiteRun:
    """Validate each registry table against its suite; build Data Docs into `data_docs_dir` when given. Returns
    one result per rule and site, and per rule for the whole registry (site "all").

    `sites`: validate only these sites' rows (None: every site); `carried` holds the other sites' results, kept
    from the run that last validated them. The whole registry's result is summed from the sites' numerators and
    denominators (a site's counts depend on its own rows only), so it equals a validation of every site. A full
    validation replaces the Data Docs folder; a partial one adds its pages and keeps the pages the carried
    results link to."""
    if data_docs_dir is not None and sites is None:
        shutil.rmtree(data_docs_dir, ignore_errors=True)
    results: list[CheckResult] = []
    validation_of_site: dict[tuple[str, str], str] = {}  # (table, site) → the validation that read its rows
    first_validation: dict[str, str] = {}
    session = GxSession(data_docs_dir, run_name)
    for table, table_rules in rules.items():
        session.add_suite(table, [_expectation(rule) for rule in table_rules])
        site_counts = _site_counts(con, table, table_rules, sites)
        # Only the columns the suite reads, a bounded number of rows at a time (whole sites per part): a registry
        # table can hold millions of rows, and a pandas copy of all of them would outgrow the memory budget.
        columns = ", ".join(_needed_columns(table_rules))
        parts = _site_parts(con, table, sites)
        if sites is not None and parts == [[]]:
            parts = []  # none of the sites to validate has rows here: nothing to validate
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
            counted_by_gx = session.validate(table, name, frame)
            del frame
            for rule, gx_violating in zip(table_rules, counted_by_gx, strict=True):
                # The per-site counts use the rule's SQL predicate: their violating rows must add up to what GX
                # found. (Rows checked are counted in SQL only: for a pair of columns GX's own count leaves out
                # rows that the SQL, and each site's result, count.)
                violating = sum(site_counts[(rule.name, site)][0] for site in part_sites)
                if gx_violating != violating:
                    raise RuntimeError(
                        f"rule {rule.name} on registry.{table} (sites {', '.join(part_sites)}): Great Expectations "
                        f"found {gx_violating} violating rows, its SQL predicate {violating}; "
                        "fix its check type's condition (violated_when) in config/check_catalogue.yaml"
                    )
            first_validation.setdefault(table, name)
            validation_of_site.update({(table, site): name for site in part_sites})
        for rule in table_rules:
            for site_id in sorted({site for _, site in site_counts}):
                numerator, denominator = site_counts[(rule.name, site_id)]
                passed = numerator <= rule.threshold * denominator
                results.append(rule_result(rule, site_id, numerator, denominator, passed))
    if data_docs_dir is not None:
        session.build_docs()
    index = None
    if data_docs_dir is not None:
        index = data_docs_dir / "index.html"
        found = _validation_pages(data_docs_dir, run_name)
        results = [
            _with_page(r, found.get(validation_of_site.get((r.table_name, r.site_id), ""))) for r in results
        ]
    results = [*results, *carried]
    results.extend(registry_wide(rules, results, {t: found.get(n) for t, n in first_validation.items()}
                                 if data_docs_dir is not None else {}))
    if data_docs_dir is not None and sites is not None:
        _remove_unlinked_pages(data_docs_dir, {r.data_docs_page for r in results if r.data_docs_page})
    return SuiteRun(results, index)


def registry_wide(
    rules: dict[str, list[QualityRule]], site_results: list[CheckResult], pages: dict[str, str | None]
) -> list[CheckResult]:
    """Each rule's result for the whole registry (site "all"): the sum of its sites' violating and checked rows,
    judged against the rule's threshold like each site's."""
    totals: dict[tuple[str, str], list[int]] = {}
    for result in site_results:
        total = totals.setdefault((result.table_name, result.check_name), [0, 0])
        total[0] += result.numerator
        total[1] += result.denominator
    combined = []
    for table, table_rules in rules.items():
        for rule in table_rules:
            numerator, denominator = totals.get((table, rule.name), (0, 0))
            combined.append(replace(
                rule_result(rule, "all", numerator, denominator, numerator <= rule.threshold * denominator),
                data_docs_page=pages.get(table),
            ))
    return combined


def _validation_pages(data_docs_dir: Path, run_name: str) -> dict[str, str]:
    """Data Docs page of each validation of run `run_name`, by data asset name, relative to the Data Docs folder
    (a partial validation leaves earlier runs' pages in place: their paths hold their run's name)."""
    pages: dict[str, str] = {}
    for page in sorted((data_docs_dir / "validations").rglob(f"{DATASOURCE}-*.html")):
        relative = page.relative_to(data_docs_dir)
        if run_name in relative.parts:
            pages[page.stem.removeprefix(f"{DATASOURCE}-")] = relative.as_posix()
    return pages


def _remove_unlinked_pages(data_docs_dir: Path, linked: set[str]) -> None:
    """Delete the validation pages of earlier runs that no result links to any more (`linked`: page paths,
    relative to the Data Docs folder or to the folder above it)."""
    validations = data_docs_dir / "validations"
    for page in validations.rglob("*.html"):
        relative = page.relative_to(data_docs_dir).as_posix()
        if relative not in linked and f"{data_docs_dir.name}/{relative}" not in linked:
            page.unlink()
    for folder in sorted((p for p in validations.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _with_page(result: CheckResult, page: str | None) -> CheckResult:
    return replace(result, data_docs_page=page)
