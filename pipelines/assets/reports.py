"""Reports layer: each site's data-manager folder, `<reports>/sites/<site_id>/`, with that site's own records
only (quarantined rows, rejected exports, deviations, a "what to fix" page)."""

import dagster as dg

from ketreg.incremental.ledger import shared_digest
from ketreg.reports.site_folders import SITES_FOLDER, write_changed_site_folders
from pipelines.assets.site_private import site_private_assets
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable


@dg.asset(
    key=["reports", "site_folders"],
    deps=[*(key for asset in site_private_assets for key in asset.keys), ["registry", "protocol_deviations"],
          ["registry", "file_counts"]],
    group_name="reports",
    kinds={"csv", "html", "excel"},
)
@skippable
def site_folders(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """One folder per site (files 0640, folders 0750) for that site's data manager: its quarantined rows
    with its own ids and raw values, its rejected exports, deviations, notices and a "what to fix" page."""
    run_id = dg.AssetExecutionContext.get().run.run_id
    with working_store.connect() as con:
        folders, rewritten = write_changed_site_folders(con, settings.reports_path, shared_digest(con, run_id), run_id)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(settings.reports_path / SITES_FOLDER)),
            "sites": len(folders),
            **{f"quarantined_rows_{f.site_id}": f.quarantined_rows for f in folders},
            "rejected_exports": sum(f.rejected_exports for f in folders),
            # Which sites' folders this run rewrote: "all" for a whole rewrite.
            "sites_rewritten": dg.MetadataValue.json(rewritten if rewritten is not None else "all"),
        }
    )


reports_assets = [site_folders]
