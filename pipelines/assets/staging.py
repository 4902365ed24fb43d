"""Staging layer: each new or changed export read, typed, validated with the Pandera contracts, and split
into accepted rows and quarantined rows, one transaction per batch of exports."""

import dagster as dg

from ketreg.landing.discovery import LandingScan
from ketreg.staging.stage import stage_landing
from ketreg.staging.tables import STAGED_TABLES, ensure_staging_tables
from pipelines.connections import WorkingStore
from pipelines.metadata import AssetMetadata, table_metadata
from pipelines.resources import RegistrySettings
from pipelines.staging_fanout import stage_in_parallel


@dg.multi_asset(
    specs=[dg.AssetSpec(
            ["staging", name], group_name="staging", kinds={"duckdb", "pandera"}, deps=[["landing", "exports"]]
        )
        for name in STAGED_TABLES],
    ins={"scan": dg.AssetIn(key=["landing", "exports"])},
    name="stage_exports",
    can_subset=False,
)
def stage_exports(
    context: dg.AssetExecutionContext, settings: RegistrySettings, working_store: WorkingStore, scan: LandingScan
):
    """One step for all staged tables: an export's files are validated together, since a child row is
    quarantined when its parent was, and a broken file rejects its whole export. With `staging_workers` > 1
    the exports are validated by a parallel run first (pipelines/staging_fanout.py); the serial pass after it
    finds them staged and only catches an export that changed in between."""
    parallel = None
    if settings.staging_workers > 1:
        parallel = stage_in_parallel(settings, working_store, context.instance,
                                     tags={"ketreg/registry_run": context.run.run_id})
    with working_store.connect() as con:
        ensure_staging_tables(con)
        report = stage_landing(con, scan.exports, settings.protocol())
        tables = {name: table_metadata(con, "staging", name) for name in STAGED_TABLES}
    if parallel is not None:
        report = parallel.report.followed_by(report)
    for label, reason in report.rejected.items():
        context.log.warning(f"export {label} rejected: {reason}")
    shared: AssetMetadata = {
        "exports_staged": len(report.staged),
        "exports_unchanged": len(report.unchanged),
        "exports_removed": len(report.removed),
        "exports_rejected": dg.MetadataValue.json(report.rejected),
        "staging_workers": settings.staging_workers,
    }
    if parallel is not None:
        shared["parallel_staging_run"] = parallel.run_id
    for name in STAGED_TABLES:
        metadata: AssetMetadata = {**tables[name], **shared}
        if name in report.rows_read:
            metadata["rows_read_this_run"] = report.rows_read[name]
            metadata["rows_quarantined_this_run"] = report.rows_quarantined[name]
        yield dg.MaterializeResult(asset_key=["staging", name], metadata=metadata)
