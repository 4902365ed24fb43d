"""Great Expectations on the changed sites only: a site's results depend on its own registry rows alone, so
while those rows stay as they were (its staged rows' digest, ketreg/incremental/sites.py) its results are
carried forward from the run that last validated them, that run named in `origin_run_id`; the whole registry's
results are then summed from every site's (ketreg/quality/expectations.py). Anything else the results depend
on (code, protocol, mappings, key, the rules and their thresholds) changing revalidates every site."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

import duckdb

from ketreg.incremental.sites import record_sites, site_digests, sites_to_rebuild
from ketreg.quality.expectations import SuiteRun, run_suites
from ketreg.quality.results import RESULT_COLUMNS, CheckResult
from ketreg.quality.rules import QualityRule

# The validations' entry in the working store's record of what was built from which sites' rows.
LEDGER_NAME = "quality.great_expectations"


def _digest(rules: dict[str, list[QualityRule]], shared_digest: str) -> str:
    described = {table: [asdict(rule) for rule in table_rules] for table, table_rules in rules.items()}
    text = json.dumps(described, sort_keys=True, default=str)
    return f"{shared_digest}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _last_validation(con: duckdb.DuckDBPyConnection) -> str | None:
    """The newest run recorded in `quality.check_results` with Great Expectations results."""
    try:
        found = con.execute(
            "SELECT arg_max(run_id, run_at) FROM quality.check_results WHERE source = 'great_expectations'"
        ).fetchall()
    except duckdb.CatalogException:
        return None
    return found[0][0]


def _carried(
    con: duckdb.DuckDBPyConnection, previous_run: str, sites: list[str], current_sites: list[str],
    data_docs_dir: Path | None,
) -> list[CheckResult]:
    """Run `previous_run`'s per-site Great Expectations results of the sites still on record (`current_sites`)
    and not revalidated (`sites`), each with its run of origin; their Data Docs pages relative to the Data Docs
    folder again (the quality asset records them relative to the reports folder)."""
    columns = ", ".join(c for c in RESULT_COLUMNS if c != "origin_run_id")
    rows = con.execute(
        f"SELECT {columns}, coalesce(origin_run_id, run_id) FROM quality.check_results "
        "WHERE run_id = $run AND source = 'great_expectations' AND site_id <> 'all' "
        "AND NOT list_contains($sites, site_id) AND list_contains($current, site_id) ORDER BY check_id",
        {"run": previous_run, "sites": sites, "current": current_sites},
    ).fetchall()
    prefix = f"{data_docs_dir.name}/" if data_docs_dir is not None else ""
    carried = []
    for row in rows:
        result = CheckResult(*row)
        if result.data_docs_page:
            result = replace(result, data_docs_page=result.data_docs_page.removeprefix(prefix))
        carried.append(result)
    return carried


def validate_changed_sites(
    con: duckdb.DuckDBPyConnection,
    rules: dict[str, list[QualityRule]],
    run_id: str,
    data_docs_dir: Path | None,
    shared_digest: str,
) -> tuple[SuiteRun, list[str] | None]:
    """Validate the sites whose registry rows changed since the last validation (all of them on a first run, or
    when anything but their rows changed) and carry the others' results forward. Returns the results (every
    site's and the whole registry's) and the sites validated (None: all). Call `record_validation` once the
    results are recorded."""
    digest = _digest(rules, shared_digest)
    previous = _last_validation(con)
    docs_in_place = data_docs_dir is None or (data_docs_dir / "index.html").is_file()
    sites = sites_to_rebuild(con, LEDGER_NAME, digest, run_id, built=previous is not None and docs_in_place)
    if sites is None or previous is None:
        return run_suites(con, rules, run_name=run_id, data_docs_dir=data_docs_dir), None
    carried = _carried(con, previous, sites, sorted(site_digests(con, run_id)), data_docs_dir)
    return run_suites(con, rules, run_name=run_id, data_docs_dir=data_docs_dir, sites=sites, carried=carried), sites


def record_validation(
    con: duckdb.DuckDBPyConnection, rules: dict[str, list[QualityRule]], run_id: str, shared_digest: str
) -> None:
    """Note that the results recorded for this run hold every site's validation of its rows as they are now. (If
    the run stops before this, the next run revalidates more sites than it needs: never fewer.)"""
    record_sites(con, LEDGER_NAME, _digest(rules, shared_digest), run_id)
