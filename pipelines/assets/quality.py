"""Quality layer: every data-quality check of the run recorded in `quality.check_results` (Great Expectations
suites derived from the contract, the site-export checks read from the quarantine, and the registry's asset
checks), Great Expectations Data Docs that render offline, and the static quality dashboard, under the
reports folder (`RegistrySettings.reports_path`)."""

import datetime as dt
from dataclasses import replace

import dagster as dg

from ketreg.incremental.ledger import shared_digest
from ketreg.quality.carry_forward import record_validation, validate_changed_sites
from ketreg.quality.evaluator import registry_results
from ketreg.quality.history import record_run
from ketreg.quality.offline_docs import make_offline
from ketreg.quality.rules import COMPLETENESS, CONFORMANCE, PLAUSIBILITY, registry_rules
from ketreg.quality.settings import load_quality_settings
from ketreg.quality.site_checks import site_export_checks
from ketreg.warehouse.file_modes import share
from pipelines.assets.metrics import metrics_assets
from pipelines.assets.planning import planning_assets
from pipelines.assets.registry import registry_assets
from pipelines.checks import CHECKS, check_inputs
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable
from schemas.tables import TABLES

DATA_DOCS_FOLDER = "data_docs"


@dg.asset(
    key=["quality", "check_results"],
    deps=[key for asset in (*registry_assets, *metrics_assets) for key in asset.keys],
    group_name="quality",
    kinds={"duckdb", "python"},
)
@skippable
def quality_check_results(
    context: dg.AssetExecutionContext, settings: RegistrySettings, working_store: WorkingStore
) -> dg.MaterializeResult:
    """quality.check_results: this run's outcome of every data-quality check (Kahn category, numerator,
    denominator, threshold, pass, SQL of the violating rows), added to the history of earlier runs, and
    quality.check_changes (new, resolved and persisting failures). Also writes the Great Expectations Data
    Docs of the suites derived from the contract, with their scripts and styles served locally."""
    # Imported here: the dashboard's templates (jinja2) are needed only by the quality steps.
    from ketreg.quality.dashboard import DASHBOARD_FILE

    reports = settings.reports_path
    data_docs = reports / DATA_DOCS_FOLDER
    quality_settings = load_quality_settings()
    with working_store.connect() as con:
        columns = {
            table.name: [row[0] for row in con.execute(f"DESCRIBE registry.{table.name}").fetchall()]
            for table in TABLES
        }
        rules = registry_rules(columns, settings.protocol(), quality_settings)
        # Only the sites whose rows changed are validated; the others' results carry forward with their run.
        digest = shared_digest(con, context.run.run_id)
        suites, validated = validate_changed_sites(con, rules, context.run.run_id, data_docs, digest)
        make_offline(data_docs, dashboard=reports / DASHBOARD_FILE)
        gx_results = [
            replace(r, data_docs_page=f"{DATA_DOCS_FOLDER}/{r.data_docs_page}") if r.data_docs_page else r
            for r in suites.results
        ]
        registry = registry_results(con, CHECKS, check_inputs(settings), context.run.run_id)
        results = [*registry, *site_export_checks(con), *gx_results]
        recorded = record_run(con, context.run.run_id, dt.datetime.now(dt.UTC), results)
        record_validation(con, rules, context.run.run_id, digest)
        changes = dict(con.execute("SELECT change, count(*) FROM quality.check_changes GROUP BY ALL").fetchall())
    share(data_docs)  # written beside the private working store; data managers read it
    failed = [r for r in results if not r.passed]
    return dg.MaterializeResult(
        metadata={
            "checks": recorded,
            "failed": len(failed),
            **{f"failed_{c}": sum(r.category == c for r in failed) for c in (CONFORMANCE, COMPLETENESS, PLAUSIBILITY)},
            "new_failures": changes.get("new", 0),
            "resolved_failures": changes.get("resolved", 0),
            "persisting_failures": changes.get("persisting", 0),
            "data_docs": dg.MetadataValue.path(str((data_docs / "index.html").resolve())),
            "dashboard": dg.MetadataValue.path(str((reports / DASHBOARD_FILE).resolve())),
            "sites_validated": dg.MetadataValue.json(validated if validated is not None else "all"),
        }
    )


@dg.asset(
    key=["quality", "dashboard"],
    deps=[quality_check_results.key, *(key for asset in (*metrics_assets, *planning_assets) for key in asset.keys)],
    group_name="quality",
    kinds={"html"},
)
@skippable
def quality_dashboard(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """The registry quality dashboard: one static HTML file with inline SVG charts (no server, no network),
    linking to the Data Docs and to the Dagster assets each check reads."""
    from ketreg.quality.dashboard import render_dashboard

    with working_store.connect() as con:
        path = render_dashboard(con, settings.reports_path, load_quality_settings().dagster_url)
    share(settings.reports_path, recursive=False)  # written beside the private working store
    share(path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path.resolve())),
            "url": dg.MetadataValue.url(path.resolve().as_uri()),
            "data_docs": dg.MetadataValue.path(
                str((settings.reports_path / DATA_DOCS_FOLDER / "index.html").resolve())
            ),
        }
    )


quality_assets = [quality_check_results, quality_dashboard]
