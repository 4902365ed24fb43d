"""The Great Expectations suites as Dagster asset checks: one check per registry table and Kahn category
(`gx_conformance`, `gx_completeness`, `gx_plausibility`), failed when any of its rules fails for the registry
or for a site, so a failing suite shows red on the table it reads instead of hiding in the quality asset's
metadata. They warn (severity WARN, not blocking): the registry is published, and the data manager follows up
on the dashboard. Results are read from `quality.check_results` of the same run, written by the quality asset."""

from collections import defaultdict

import dagster as dg

from ketreg.incremental.ledger import origin_run
from ketreg.quality.catalogue import gx_suite_checks
from pipelines.connections import WorkingStore

_QUALITY_ASSET = dg.AssetKey(["quality", "check_results"])
_SHOWN = 8  # failing rules named in a check's description; the metadata table lists them all

# The suites' checks as the check catalogue defines them (config/check_catalogue.yaml, type gx_suite).
_SUITE_CHECKS = {(check.table, check.name): check for check in gx_suite_checks()}
GX_CHECK_SPECS = [
    dg.AssetCheckSpec(
        name=check.name,
        asset=dg.AssetKey(["registry", check.table]),
        description=check.description,
        blocking=check.blocking,
        metadata=check.described,
        additional_deps=[_QUALITY_ASSET],
    )
    for check in _SUITE_CHECKS.values()
]


@dg.multi_asset_check(specs=GX_CHECK_SPECS, name="great_expectations_checks", compute_kind="great_expectations")
def great_expectations_checks(context: dg.AssetCheckExecutionContext, working_store: WorkingStore):
    """One result per registry table and category from this run's Great Expectations results."""
    with working_store.connect() as con:
        # A run that left the quality results as they were reads those of their run of origin.
        results_run = origin_run(con, context.run.run_id, _QUALITY_ASSET.to_user_string())
        rows = con.execute(
            "SELECT table_name, category, check_name, site_id, numerator, denominator, passed "
            "FROM quality.check_results WHERE run_id = ? AND source = 'great_expectations' "
            "ORDER BY table_name, category, check_name, site_id = 'all' DESC, site_id",
            [results_run],
        ).fetchall()
    by_check: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for table, category, rule, site, numerator, denominator, passed in rows:
        by_check[(table, category)].append((rule, site, numerator, denominator, passed))
    for spec in GX_CHECK_SPECS:
        check = _SUITE_CHECKS[(spec.asset_key.path[-1], spec.name)]
        results = by_check.get((check.table, check.category), [])
        failed = [r for r in results if not r[4]]
        rules = sorted({r[0] for r in results})
        named = [f"{rule} ({site}: {numerator}/{denominator})" for rule, site, numerator, denominator, _ in failed]
        description = (
            f"{len(failed)} of {len(results)} results fail: {', '.join(named[:_SHOWN])}"
            + (f" and {len(named) - _SHOWN} more" if len(named) > _SHOWN else "")
            if failed else f"all {len(results)} results pass ({len(rules)} rules × the registry and each site)"
        )
        yield dg.AssetCheckResult(
            asset_key=spec.asset_key,
            check_name=spec.name,
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={
                "rules": len(rules),
                "results": len(results),
                "failed_results": len(failed),
                "failures": dg.MetadataValue.md(
                    "| rule | site | violating rows | rows checked |\n|---|---|---|---|\n"
                    + "".join(f"| {rule} | {site} | {numerator} | {denominator} |\n"
                              for rule, site, numerator, denominator, _ in failed)
                ),
            },
        )
